"""Redaction of label-revealing phrases from report text, for the leakage lesson's "redacted" arm.

Taught in notebook 03 (text CNN): labels extracted from the report a model reads leak into the model.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from cxrkit.text.tokenize import REDACTED_TOKEN

#: Mention phrases (and common synonyms) of the 14 CheXpert observations, keyed by label. One data constant,
#: used only by :func:`redact_label_terms`; plural forms are matched by the pattern, not listed here.
LABEL_TERMS: dict[str, tuple[str, ...]] = {
    "No Finding": ("no acute cardiopulmonary", "no acute process", "no acute abnormality"),
    "Enlarged Cardiomediastinum": (
        "enlarged cardiomediastinum", "cardiomediastinal enlargement", "widened mediastinum",
        "mediastinal widening", "mediastinal enlargement", "enlarged mediastinum",
    ),
    "Cardiomegaly": (
        "cardiomegaly", "enlarged heart", "heart is enlarged", "heart size is enlarged",
        "cardiac enlargement", "enlarged cardiac silhouette", "enlargement of the heart",
    ),
    "Lung Lesion": ("nodule", "nodular", "mass", "lesion", "tumor", "neoplasm", "granuloma", "cavitation"),
    "Lung Opacity": (
        "opacity", "opacities", "opacification", "opacified", "infiltrate", "infiltration",
        "density", "densities", "haziness", "hazy", "airspace disease", "reticulation",
    ),
    "Edema": (
        "edema", "oedema", "vascular congestion", "pulmonary congestion", "vascular prominence",
        "heart failure", "chf", "kerley",
    ),
    "Consolidation": ("consolidation", "consolidative", "consolidated", "airspace consolidation"),
    "Pneumonia": ("pneumonia", "pneumonic", "infection", "infectious process", "aspiration"),
    "Atelectasis": ("atelectasis", "atelectatic", "collapse", "collapsed"),
    "Pneumothorax": ("pneumothorax", "pneumothoraces", "hydropneumothorax"),
    "Pleural Effusion": ("pleural effusion", "effusion", "pleural fluid", "hydrothorax", "blunting"),
    "Pleural Other": ("pleural thickening", "pleural scarring", "pleural plaque", "fibrothorax", "pleural calcification"),
    "Fracture": ("fracture", "fractured", "fx"),
    "Support Devices": (
        "tube", "line", "catheter", "pacemaker", "pacer", "icd", "defibrillator", "wire", "lead",
        "stent", "picc", "port", "port-a-cath", "drain", "clip", "valve", "sternotomy",
        "endotracheal", "nasogastric", "tracheostomy", "support device", "device", "hardware",
    ),
}


def _pattern_for(terms: Iterable[str]) -> re.Pattern[str]:
    """Return one case-insensitive whole-word pattern for ``terms``, longest first, allowing plural ``s``/``es``."""
    cleaned = sorted({t.strip().lower() for t in terms if t and t.strip()}, key=lambda t: (-len(t), t))
    if not cleaned:
        raise ValueError("no terms to redact: the term list is empty")
    alternatives = []
    for term in cleaned:
        words = [re.escape(w) for w in term.split()]
        alternatives.append(r"\s+".join(words) + r"(?:e?s)?")
    return re.compile(r"(?<![\w\[])(?:" + "|".join(alternatives) + r")(?![\w\]])", re.IGNORECASE)


@lru_cache(maxsize=8)
def _cached_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    return _pattern_for(terms)


def label_terms(labels: Iterable[str] | None = None) -> tuple[str, ...]:
    """Return the redaction phrases of ``labels`` (default: all 14 observations) from :data:`LABEL_TERMS` (notebook 03)."""
    chosen = list(LABEL_TERMS) if labels is None else list(labels)
    unknown = [lab for lab in chosen if lab not in LABEL_TERMS]
    if unknown:
        raise KeyError(f"unknown label(s) {unknown}; choose from {list(LABEL_TERMS)}")
    return tuple(t for lab in chosen for t in LABEL_TERMS[lab])


def redact_label_terms(text: str, terms: Iterable[str] | None = None, token: str = REDACTED_TOKEN) -> str:
    """Replace every label-revealing phrase in ``text`` with ``[REDACTED]`` (notebook 03, the leakage lesson).

    Matching is whole-word and case-insensitive; multi-word phrases become one ``[REDACTED]``;
    ``terms`` defaults to every phrase in :data:`LABEL_TERMS`. Missing text (``None``/NaN) gives ``""``.
    """
    if text is None or (not isinstance(text, str) and text != text):
        return ""
    if not isinstance(text, str):
        raise TypeError(f"expected a report string, got {type(text).__name__}: {text!r}")
    pattern = _cached_pattern(label_terms() if terms is None else tuple(terms))
    return pattern.sub(token, text)
