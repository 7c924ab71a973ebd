"""Report sections → the study table's text columns, and report text → the 14 labels via the rule labeler.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cxrkit.datasets.manifest import load_manifest
from cxrkit.io.reports import check_section_policy
from cxrkit.io.reports import labeling_text as _labeling_text
from cxrkit.labeler import label_reports
from cxrkit.labels import CHEXPERT_LABELS

from .table import StudyTableError, label_frame_values

#: Section names tried, in order, for the study table's ``indication`` column (MIMIC variants use ``history``).
INDICATION_SECTIONS: tuple[str, ...] = ("indication", "history")


def _clean(text: object) -> str | None:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    stripped = " ".join(str(text).split())
    return stripped or None


def report_fields(sections: Mapping[str, str] | None) -> dict[str, str | None]:
    """Return ``indication``/``findings``/``impression`` from parsed report sections, None when absent (notebook 01).

    ``history`` stands in for a missing indication; a report without any headings (only a
    ``preamble``) gives its whole text as ``findings``.
    """
    sections = sections or {}
    indication = next((_clean(sections.get(name)) for name in INDICATION_SECTIONS if _clean(sections.get(name))), None)
    findings, impression = _clean(sections.get("findings")), _clean(sections.get("impression"))
    if findings is None and impression is None and set(sections) <= {"preamble", "addendum"}:
        findings = _clean(sections.get("preamble"))  # a report without headings: its text is the findings
    return {"indication": indication, "findings": findings, "impression": impression}


def section_policy(dataset: str, override: str | None = None) -> str:
    """Return the labeled-section policy of a dataset: ``override`` when given, else its manifest's ``labels.sections`` (notebook 01)."""
    if override is not None:
        return check_section_policy(override)
    policy = (load_manifest(dataset).get("labels") or {}).get("sections")
    if policy is None:
        raise ValueError(f"dataset {dataset!r} does not label report text (its labels come from its own files); "
                         "it has no labeled-section policy")
    return check_section_policy(str(policy))


def labeling_text(sections: Mapping[str, str] | None, policy: str = "impression") -> str | None:
    """Return the text the labeler reads for one report under ``policy`` (cxrkit.io.reports.labeling_text), or None when there is no report (notebook 01)."""
    if sections is None:
        return None

    text = _labeling_text(dict(sections), policy)
    return text if text and text.strip() else None


def label_texts(texts: Sequence[str | None]) -> pd.DataFrame:
    """Label report texts with the rule labeler (cxrkit.labeler.label_reports); a None text gets all-NaN labels (notebook 01)."""
    out = pd.DataFrame(np.full((len(texts), len(CHEXPERT_LABELS)), np.nan), columns=list(CHEXPERT_LABELS))
    present = [i for i, text in enumerate(texts) if text is not None]
    if not present:
        return out

    labelled = label_reports([texts[i] for i in present])
    if len(labelled) != len(present):
        raise StudyTableError(f"the labeler returned {len(labelled)} rows for {len(present)} reports")
    values = label_frame_values(pd.DataFrame(labelled).reset_index(drop=True), "cxrkit.labeler.label_reports output")
    out.iloc[present, :] = values[list(CHEXPERT_LABELS)].to_numpy(dtype="float64")
    return out
