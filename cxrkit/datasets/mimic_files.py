"""Shared readers of the MIMIC-CXR family: the ``files/pNN/p<subject>/s<study>/`` tree, metadata, labels and split tables.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

from cxrkit.labels import CHEXPERT_LABELS, SPLITS

from .layout import DatasetFileError, read_csv_checked, walk_files
from .table import label_frame_values

_ID = r"[0-9A-Za-z][0-9A-Za-z._-]*"
#: ``.../files/pNN/p<subject>/s<study>/<image>.<ext>`` anywhere in a path (the zips' top folders vary).
IMAGE_RE = re.compile(rf"(?:^|/)files/p\d\d/p(\d+)/s(\d+)/({_ID})\.(dcm|jpg|jpeg)$", re.IGNORECASE)
#: ``.../files/pNN/p<subject>/s<study>.txt`` anywhere in a path.
REPORT_RE = re.compile(r"(?:^|/)files/p\d\d/p(\d+)/s(\d+)\.txt$")
#: What ids read from a MIMIC CSV must look like before they become parts of a path.
DIGITS_RE = re.compile(r"^\d+$")
DICOM_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]*$")

StudyKey = tuple[str, str]
ImageKey = tuple[str, str, str]


def index_tree(root: Path, image_suffixes: Iterable[str], exclude_dirs: Iterable[str] = (), *, reports: bool = True) -> tuple[dict[ImageKey, Path], dict[StudyKey, Path]]:
    """Walk ``root`` once and map (subject, study, image) → image and (subject, study) → report, finding ``files/pNN/`` anywhere (notebook 01)."""
    images: dict[ImageKey, Path] = {}
    found_reports: dict[StudyKey, Path] = {}
    suffixes = (*image_suffixes, ".txt") if reports else tuple(image_suffixes)
    for path in walk_files(root, suffixes, exclude_dirs):
        relative = path.relative_to(root).as_posix()
        match = IMAGE_RE.search(relative)
        if match and path.suffix.lower() in image_suffixes:
            images.setdefault((match.group(1), match.group(2), match.group(3)), path)
            continue
        match = REPORT_RE.search(relative) if reports else None
        if match:
            found_reports.setdefault((match.group(1), match.group(2)), path)
    return images, found_reports


def index_reports(root: Path, exclude_dirs: Iterable[str] = ()) -> dict[StudyKey, Path]:
    """Map (subject_id, study_id) → report path, finding the ``files/pNN/`` segment anywhere below ``root`` (notebook 01)."""
    return index_tree(root, (), exclude_dirs)[1]


def image_relpath(subject_id: str, study_id: str, image_id: str, ext: str) -> str:
    """Return ``files/pNN/p<subject>/s<study>/<image>.<ext>`` for validated ids (notebook 01)."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}/{image_id}.{ext}"


def report_relpath(subject_id: str, study_id: str) -> str:
    """Return ``files/pNN/p<subject>/s<study>.txt`` for validated ids (notebook 01)."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}.txt"


def _check_ids(frame: pd.DataFrame, path: Path, columns: dict[str, re.Pattern[str]]) -> None:
    for column, pattern in columns.items():
        bad = frame[column][~frame[column].astype(str).str.fullmatch(pattern.pattern)]
        if len(bad):
            raise DatasetFileError(f"{path}: column {column!r} holds {bad.iloc[0]!r}, which is not a MIMIC id (row {bad.index[0] + 2})")


def read_metadata(path: Path) -> pd.DataFrame:
    """Read ``mimic-cxr-2.0.0-metadata.csv.gz`` with ids as strings and ``StudyTime`` zero-padded to HHMMSS.fff (notebook 01)."""
    frame = read_csv_checked(path, ("dicom_id", "subject_id", "study_id", "ViewPosition"), dtype=str, keep_default_na=False)
    _check_ids(frame, path, {"dicom_id": DICOM_ID_RE, "subject_id": DIGITS_RE, "study_id": DIGITS_RE})
    if "StudyTime" in frame.columns:
        frame["StudyTime"] = frame["StudyTime"].map(pad_study_time)
    return frame.set_index("dicom_id", drop=False)


def pad_study_time(value: str) -> str:
    """Restore the leading zeros MIMIC's float ``StudyTime`` lost: ``"80556.875"`` → ``"080556.875"`` (notebook 01)."""
    text = str(value).strip()
    if not text:
        return text
    whole, _, fraction = text.partition(".")
    return whole.zfill(6) + ("." + fraction if fraction else "")


def read_split(path: Path) -> dict[str, str]:
    """Read ``mimic-cxr-2.0.0-split.csv.gz`` into dicom_id → split, refusing values other than train/validate/test (notebook 01)."""
    frame = read_csv_checked(path, ("dicom_id", "split"), dtype=str, keep_default_na=False)
    bad = sorted(set(frame["split"]) - set(SPLITS))
    if bad:
        raise DatasetFileError(f"{path}: column 'split' holds {bad[:3]}; expected one of {list(SPLITS)}")
    return dict(zip(frame["dicom_id"], frame["split"]))


def read_study_labels(path: Path) -> pd.DataFrame:
    """Read a per-study label table (chexpert or negbio csv.gz), selecting the 14 label columns by name, indexed by study_id (notebook 01)."""
    frame = read_csv_checked(path, ("study_id", *CHEXPERT_LABELS), dtype=str, keep_default_na=False)
    _check_ids(frame, path, {"study_id": DIGITS_RE})
    labels = label_frame_values(frame, str(path))
    labels.index = frame["study_id"].astype(str)
    if labels.index.duplicated().any():
        dupe = labels.index[labels.index.duplicated()][0]
        warnings.warn(f"{path}: study {dupe} has more than one label row; the first is used", stacklevel=3)
        labels = labels[~labels.index.duplicated()]
    return labels
