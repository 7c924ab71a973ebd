"""The study table every adapter returns: its columns, its assembly and its validation.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from cxrkit.errors import CxrkitError
from cxrkit.labels import CHEXPERT_LABELS, OPTIONAL_COLUMNS, SPLITS, STUDY_COLUMNS

#: The label values a study table may hold (NaN, "not mentioned", is allowed besides these).
LABEL_VALUES: frozenset[float] = frozenset({1.0, 0.0, -1.0})


class StudyTableError(CxrkitError, ValueError):
    """A study table does not have the agreed columns or values (notebook 01)."""


def study_columns(optional: Iterable[str] = ()) -> list[str]:
    """Return the study table's column order: the fixed columns, the given optional ones, then the 14 labels (notebook 01)."""
    wanted = set(optional)
    return [*STUDY_COLUMNS, *[c for c in OPTIONAL_COLUMNS if c in wanted], *CHEXPERT_LABELS]


def empty_labels() -> dict[str, float]:
    """Return one row's labels, all NaN (not mentioned) (notebook 01)."""
    return {label: math.nan for label in CHEXPERT_LABELS}


def normalise_sex(value: Any) -> str | None:
    """Map the sex encodings of the datasets (M/F, Male/Female, O, Unknown, blank) to ``"M"``, ``"F"`` or None (notebook 01)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().upper()
    if text in {"M", "MALE"}:
        return "M"
    if text in {"F", "FEMALE"}:
        return "F"
    return None


def normalise_view(value: Any) -> str | None:
    """Return a view position in upper case (``"PA"``, ``"AP"``, ``"LATERAL"`` …) or None when blank (notebook 01)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = " ".join(str(value).split()).upper()
    return text or None


def build_table(rows: Sequence[Mapping[str, Any]], optional: Iterable[str] = ()) -> pd.DataFrame:
    """Assemble row dicts into a study table with the agreed columns, order and dtypes (notebook 01)."""
    columns = study_columns(optional)
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    for label in CHEXPERT_LABELS:
        frame[label] = pd.to_numeric(frame[label], errors="raise").astype("float64")
    if "age" in frame.columns:
        frame["age"] = pd.to_numeric(frame["age"], errors="coerce").astype("float64")
    text_columns = [c for c in columns if c not in CHEXPERT_LABELS and c != "age"]
    for column in text_columns:  # object columns with None (not NaN) for missing values
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.reset_index(drop=True)


def validate_study_table(df: pd.DataFrame) -> None:
    """Raise :class:`StudyTableError` listing every missing/extra column and bad value; return None for a valid table (notebook 01)."""
    problems: list[str] = []
    allowed = {*STUDY_COLUMNS, *OPTIONAL_COLUMNS, *CHEXPERT_LABELS}
    missing = [c for c in (*STUDY_COLUMNS, *CHEXPERT_LABELS) if c not in df.columns]
    extra = [c for c in df.columns if c not in allowed]
    if missing:
        problems.append(f"missing column(s): {missing}")
    if extra:
        problems.append(f"unexpected column(s): {extra} (allowed besides the required: {list(OPTIONAL_COLUMNS)})")
    for label in CHEXPERT_LABELS:
        if label not in df.columns:
            continue
        values = pd.to_numeric(df[label], errors="coerce")
        not_numeric = df[label][values.isna() & df[label].notna()]
        bad = values[values.notna() & ~values.isin(list(LABEL_VALUES))]
        if len(not_numeric) or len(bad):
            shown = sorted({repr(v) for v in [*not_numeric.tolist(), *bad.tolist()]})[:5]
            problems.append(f"label {label!r} has values outside 1.0/0.0/-1.0/NaN: {', '.join(shown)}")
    if "split" in df.columns:
        bad_splits = sorted({str(s) for s in df["split"].dropna().unique()} - set(SPLITS))
        if bad_splits:
            problems.append(f"split has values outside {list(SPLITS)} or None: {bad_splits}")
    if "image_id" in df.columns:
        dupes = df["image_id"][df["image_id"].duplicated()].unique().tolist()
        if dupes:
            problems.append(f"image_id is not unique: {dupes[:5]}")
        if df["image_id"].isna().any():
            problems.append("image_id has missing values")
    if "image_path" in df.columns:
        relative = [p for p in df["image_path"].tolist() if not isinstance(p, str) or not os.path.isabs(p)]
        if relative:
            problems.append(f"image_path must be absolute strings; got e.g. {relative[:3]}")
    for column in ("dataset", "subject_id", "study_id"):
        if column in df.columns and df[column].isna().any():
            problems.append(f"{column} has missing values")
    if problems:
        raise StudyTableError("not a valid study table:\n  - " + "\n  - ".join(problems))


def label_frame_values(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return ``frame``'s 14 label columns as floats, raising an error naming ``source`` for any value outside 1/0/-1/blank (notebook 01)."""
    missing = [label for label in CHEXPERT_LABELS if label not in frame.columns]
    if missing:
        raise StudyTableError(f"{source}: missing label column(s) {missing}")
    labels = frame[list(CHEXPERT_LABELS)].apply(pd.to_numeric, errors="coerce").astype("float64")
    raw = frame[list(CHEXPERT_LABELS)]
    unparsable = labels.isna() & raw.notna() & (raw.astype(str).apply(lambda s: s.str.strip()) != "")
    bad = labels.notna() & ~labels.isin(list(LABEL_VALUES))
    if unparsable.to_numpy().any() or bad.to_numpy().any():
        column = next(c for c in CHEXPERT_LABELS if unparsable[c].any() or bad[c].any())
        value = raw[column][unparsable[column] | bad[column]].iloc[0]
        raise StudyTableError(f"{source}: label column {column!r} holds {value!r}; expected 1.0, 0.0, -1.0 or blank")
    return labels
