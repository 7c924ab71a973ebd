"""Redaction of label-revealing phrases from report text, for the leakage lesson's "redacted" arm.

Taught in notebook 03 (text CNN): labels extracted from the report a model reads leak into the model.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import yaml

from cxrkit.labeler import PHRASES_FILE, _phrase_pattern
from cxrkit.labels import CHEXPERT_LABELS
from cxrkit.text.tokenize import REDACTED_TOKEN

#: Phrases redaction removes that the labeler finds another way (No Finding is computed from absences; bare device
#: words; "heart is enlarged" is a neutral phrase plus an assertion) — the only list kept here.
REDACTION_EXTRAS: dict[str, tuple[str, ...]] = {
    "No Finding": ("no acute cardiopulmonary", "no acute intrathoracic", "no acute process", "no acute abnormality"),
    "Cardiomegaly": ("heart is enlarged", "heart size is enlarged"),
    "Support Devices": ("line", "lead", "wire", "clip", "valve", "sternotomy", "endotracheal", "nasogastric"),
}


def _labeler_mentions() -> dict[str, tuple[str, ...]]:
    """Read the mention phrases of each observation from the labeler's phrase file; an implied concept's phrases
    ("heart failure") count for the observations it implies."""
    data = yaml.safe_load(resources.files("cxrkit").joinpath(PHRASES_FILE).read_text(encoding="utf-8"))
    terms: dict[str, list[str]] = {label: [] for label in CHEXPERT_LABELS}
    for name, spec in (data.get("observations") or {}).items():
        terms[name] += list((spec or {}).get("mentions") or [])
    for spec in (data.get("implied") or {}).values():
        for name in (spec or {}).get("implies") or {}:
            terms[name] += list(spec.get("mentions") or [])
    for name, extra in REDACTION_EXTRAS.items():
        terms[name] += list(extra)
    return {label: tuple(dict.fromkeys(phrases)) for label, phrases in terms.items()}


#: Label-revealing phrases of the 14 CheXpert observations, keyed by label: the rule labeler's mention phrases
#: (``cxrkit/labeler_phrases.yaml`` — one list for labelling and redaction) plus :data:`REDACTION_EXTRAS`.
#: Phrases starting with ``re:`` are regular expressions; plain phrases match as in the labeler (plurals, hyphens).
LABEL_TERMS: dict[str, tuple[str, ...]] = _labeler_mentions()


def _pattern_for(terms: Iterable[str]) -> re.Pattern[str]:
    """Return one case-insensitive whole-word pattern for ``terms``, each phrase matched as the labeler matches it.

    Plain phrases come first, longest first ("pleural effusion" before "effusion"), then ``re:`` phrases.
    """
    cleaned = {t.strip() if t.startswith("re:") else t.strip().lower() for t in terms if t and t.strip()}
    if not cleaned:
        raise ValueError("no terms to redact: the term list is empty")
    ordered = sorted(cleaned, key=lambda t: (t.startswith("re:"), -len(t), t))
    alternatives = [_phrase_pattern(t, plural=True) for t in ordered]
    return re.compile(r"(?<![\w\[])(?:" + "|".join(alternatives) + r")(?![\w\]])", re.IGNORECASE)


@lru_cache(maxsize=8)
def _cached_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    return _pattern_for(terms)


def label_terms(labels: Iterable[str] | None = None) -> tuple[str, ...]:
    """Return the redaction phrases of ``labels`` (default: all 14 observations): the labeler's mentions plus a few extras (notebook 03)."""
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
