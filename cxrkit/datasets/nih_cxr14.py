"""The ``nih-cxr14`` adapter: NIH ChestX-ray14 ``Data_Entry_2017*.csv`` + PNGs → the study table, and its bounding boxes.

Taught in notebook 01 (data preparation); the boxes are used again in notebook 06 (localization).
"""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path, PurePosixPath

import pandas as pd

from cxrkit.labels import CHEXPERT_LABELS

from .layout import DatasetFileError, PathEscapeError, check_layout, read_csv_checked, read_name_list
from .manifest import load_manifest
from .table import build_table, normalise_sex, normalise_view

NAME = "nih-cxr14"
REQUIRED_COLUMNS: tuple[str, ...] = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position")
BOX_COLUMNS: tuple[str, ...] = ("image_id", "finding", "x", "y", "w", "h")
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([YMWD]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def parse_age(value: str) -> float:
    """Return an NIH ``Patient Age`` (``61``, ``058Y``, ``011M``) in years; blank or implausible (>120) values give NaN (notebook 01)."""
    match = _AGE_RE.match(str(value))
    if not match:
        return math.nan
    years = float(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()]
    return years if years <= 120 else math.nan


def image_name(value: str, source: str) -> str:
    """Return an ``Image Index`` value checked to be a plain file name; ``..``, folders or absolute paths raise :class:`PathEscapeError` (notebook 01)."""
    name = str(value).strip()
    if not name or "/" in name or "\\" in name or name in {".", ".."} or os.path.isabs(name):
        raise PathEscapeError(f"{source}: image name {value!r} is not a plain file name; refused (it could point outside the dataset root)")
    return name


def index_png(root: Path, image_dirs: list[str]) -> dict[str, Path]:
    """Map PNG file name → path across ``images/`` and ``images_0NN/images/`` (notebook 01)."""
    found: dict[str, Path] = {}
    for pattern in image_dirs:
        for folder in sorted(root.glob(pattern)):
            for path in sorted(folder.glob("*.png")):
                found.setdefault(path.name, path)
    return found


def labels_from_findings(findings: str, label_map: dict[str, str | None], absent: float, source: str) -> dict[str, float]:
    """Map a ``|``-joined NIH ``Finding Labels`` value onto the 14 observations with the manifest's label map (notebook 01)."""
    names = [n.strip() for n in str(findings).split("|") if n.strip()]
    unknown = [n for n in names if n not in label_map]
    if unknown:
        raise DatasetFileError(f"{source}: unknown finding label {unknown[0]!r}; known: {sorted(label_map)}")
    positive = {label_map[n] for n in names if label_map[n]}
    mapped = {v for v in label_map.values() if v}
    return {obs: 1.0 if obs in positive else (absent if obs in mapped else math.nan) for obs in CHEXPERT_LABELS}


def load_nih_cxr14(root: Path, *, check_files: bool = True) -> pd.DataFrame:
    """Read NIH ChestX-ray14 into the study table, labels mapped to the 14 observations by the manifest, the official train_val/test split (notebook 01)."""
    root = Path(root).expanduser().resolve()
    manifest = load_manifest(NAME)
    layout, files, label_spec = manifest["layout"], manifest["files"], manifest["labels"]
    check_layout(NAME, root, layout["required"], layout.get("description", ""))
    entry_path = next(root / name for name in files["data_entry"] if (root / name).is_file())
    # index_col=False: the older file ends rows with a trailing comma, which must not become an index
    frame = read_csv_checked(entry_path, REQUIRED_COLUMNS, dtype=str, keep_default_na=False, index_col=False)
    splits: dict[str, str] = {}
    for key, split in (("train_val", "train"), ("test", "test")):
        if (root / files[key]).is_file():
            splits.update({name: split for name in read_name_list(root / files[key])})
    pngs = index_png(root, list(files["image_dirs"]))
    default_dir = root / "images"
    rows, missing = [], []
    for i, record in enumerate(frame.to_dict("records")):
        source = f"{entry_path} row {i + 2}"
        name = image_name(record["Image Index"], source)
        labels = labels_from_findings(record["Finding Labels"], label_spec["map"], float(label_spec["absent_mapped"]), source)
        path = pngs.get(name)
        if path is None:
            if check_files:
                missing.append(name)
                continue
            path = default_dir / name
        patient = str(record["Patient ID"]).strip()
        if not patient.isdigit():
            raise DatasetFileError(f"{source}: Patient ID {patient!r} is not a number")
        stem = PurePosixPath(name).stem
        rows.append({
            "dataset": NAME, "subject_id": patient.zfill(8), "study_id": stem, "image_id": stem, "image_path": str(path),
            "view": normalise_view(record["View Position"]), "split": splits.get(name),
            "indication": None, "findings": None, "impression": None,
            "site": manifest.get("site"), "age": parse_age(record["Patient Age"]), "sex": normalise_sex(record["Patient Gender"]),
            **labels,
        })
    if missing:
        warnings.warn(f"{len(missing)} image(s) listed in {entry_path.name} are not on disk and were left out "
                      f"(e.g. {', '.join(missing[:3])}); pass check_files=False to keep them", stacklevel=2)
    return build_table(rows, ["site", "age", "sex"])


def load_nih_boxes(root: str | Path) -> pd.DataFrame:
    """Read the dataset's ``BBox_List_2017.csv`` under ``root`` (:func:`read_nih_box_file`); :func:`cxrkit.datasets.load_boxes` finds the root (notebook 06)."""
    return read_nih_box_file(Path(root).expanduser() / load_manifest(NAME)["files"]["boxes"])


def read_nih_box_file(path: str | Path) -> pd.DataFrame:
    """Read an NIH ``BBox_List_2017.csv`` (9 header fields over 6-field rows, as published; the synthetic cohort writes one too) into image_id, finding, x, y, w, h; ``Infiltrate`` becomes ``Infiltration`` (notebook 06).

    The kit's one reader of ground-truth boxes: ``image_id`` is the file name's stem (``00000123_004``), as in
    the study table.
    """
    path = Path(path)
    manifest = load_manifest(NAME)
    if not path.is_file():
        raise DatasetFileError(f"{path}: bounding-box file not found (it ships with NIH ChestX-ray14 as {path.name})")
    with open(path, encoding="utf-8-sig") as handle:
        header = handle.readline().strip()
    if not header.startswith("Image Index,Finding Label"):
        raise DatasetFileError(f"{path}: header {header[:60]!r} is not 'Image Index,Finding Label,Bbox [x,y,w,h],,,'")
    names = [*BOX_COLUMNS, "extra1", "extra2", "extra3"]  # the header's 9 fields over rows of 6
    frame = read_csv_checked(path, (), header=None, skiprows=1, names=names, dtype=str, keep_default_na=False, index_col=False)
    boxes = frame[list(BOX_COLUMNS)].copy()
    boxes["image_id"] = [PurePosixPath(image_name(v, f"{path} row {i + 2}")).stem for i, v in enumerate(boxes["image_id"])]
    aliases = manifest["labels"].get("box_aliases", {})
    boxes["finding"] = boxes["finding"].str.strip().replace(aliases)
    for column in ("x", "y", "w", "h"):
        values = pd.to_numeric(boxes[column], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().nonzero()[0][0])
            raise DatasetFileError(f"{path} row {row + 2}: box field {column!r} is {boxes[column].iloc[row]!r}, not a number")
        boxes[column] = values.astype("float64")
    return boxes.reset_index(drop=True)


def nih_finding_to_observation(finding: str) -> str | None:
    """Return the CheXpert observation an NIH finding name maps to (``Effusion`` → ``Pleural Effusion``), None when it has none (notebook 01)."""
    spec = load_manifest(NAME)["labels"]
    name = spec.get("box_aliases", {}).get(finding, finding)
    if name not in spec["map"]:
        raise KeyError(f"unknown NIH finding {finding!r}; known: {sorted(spec['map'])}")
    return spec["map"][name]
