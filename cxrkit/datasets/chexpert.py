"""The ``chexpert`` adapter: CheXpert v1.0 / v1.0-small ``train.csv`` + ``valid.csv`` → the study table.

Taught in notebook 01 (data preparation). The root may be the ``CheXpert-v1.0-small/`` (or
``CheXpert-v1.0/``) folder itself or the folder that holds it — the one the CSV ``Path`` column
(``CheXpert-v1.0-small/train/patient…``) is relative to.
"""
from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath

import pandas as pd

from cxrkit.errors import DatasetLayoutError

from .layout import DatasetFileError, check_layout, read_csv_checked, safe_join, top_level_entries
from .manifest import load_manifest
from .table import build_table, label_frame_values, normalise_sex, normalise_view

NAME = "chexpert"
REQUIRED_COLUMNS: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")


def strip_prefix(path: str, prefixes: list[str]) -> str:
    """Remove a leading ``CheXpert-v1.0-small/`` or ``CheXpert-v1.0/`` from a CSV ``Path`` value (notebook 01)."""
    text = str(path).strip().replace("\\", "/")
    for prefix in prefixes:
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _view(ap_pa: str, frontal_lateral: str) -> str | None:
    view = normalise_view(ap_pa or None)
    if view:
        return view
    return "LATERAL" if str(frontal_lateral).strip().lower() == "lateral" else None


def _read_csv(root: Path, csv_name: str, split: str | None, prefixes: list[str], check_files: bool) -> tuple[list[dict], list[str]]:
    path = root / csv_name
    frame = read_csv_checked(path, REQUIRED_COLUMNS, dtype=str, keep_default_na=False)
    labels = label_frame_values(frame, str(path))
    rows, missing = [], []
    for i, (record, label_row) in enumerate(zip(frame.to_dict("records"), labels.to_dict("records"))):
        source = f"{path} row {i + 2}"
        relative = strip_prefix(record["Path"], prefixes)
        image_path = safe_join(root, relative, source)
        parts = PurePosixPath(relative).parts
        if len(parts) < 3:
            raise DatasetFileError(f"{source}: Path {record['Path']!r} is not <split>/patientNNNNN/studyN/viewN_*.jpg")
        patient, study, stem = parts[-3], parts[-2], PurePosixPath(parts[-1]).stem
        if check_files and not image_path.is_file():
            missing.append(relative)
            continue
        rows.append({
            "dataset": NAME, "subject_id": patient, "study_id": f"{patient}_{study}", "image_id": f"{patient}_{study}_{stem}",
            "image_path": str(image_path), "view": _view(record["AP/PA"], record["Frontal/Lateral"]), "split": split,
            "indication": None, "findings": None, "impression": None,
            "age": pd.to_numeric(record["Age"], errors="coerce"), "sex": normalise_sex(record["Sex"]),
            **label_row,
        })
    return rows, missing


def chexpert_folder(root: Path, files: dict) -> Path:
    """Return the folder holding ``train.csv``/``valid.csv``: ``root`` itself, or the one ``CheXpert-v1.0-small/`` or ``CheXpert-v1.0/`` inside it (notebook 01)."""
    def has_csv(folder: Path) -> bool:
        return (folder / files["train"]).is_file() or (folder / files["valid"]).is_file()

    if has_csv(root):
        return root
    inner = [root / prefix.rstrip("/") for prefix in files["path_prefixes"] if has_csv(root / prefix.rstrip("/"))]
    if len(inner) > 1:
        raise DatasetLayoutError(NAME, root, [f"one CheXpert release, but {' and '.join(p.name + '/' for p in inner)} both "
                                              "hold train.csv/valid.csv: pass the one to use as the root"], top_level_entries(root))
    return inner[0] if inner else root


def load_chexpert(root: Path, *, include_train: bool = True, include_valid: bool = True, check_files: bool = True) -> pd.DataFrame:
    """Read CheXpert into the study table from the release folder or the folder holding it: ``valid.csv`` rows get split "validate", ``train.csv`` rows none (cxrkit.prep splits them by patient) — notebook 01."""
    manifest = load_manifest(NAME)
    layout, files = manifest["layout"], manifest["files"]
    root = chexpert_folder(Path(root).expanduser().resolve(), files)
    check_layout(NAME, root, layout["required"], layout.get("description", ""))
    prefixes = list(files["path_prefixes"])
    rows: list[dict] = []
    missing: list[str] = []
    for wanted, csv_name, split in ((include_train, files["train"], None), (include_valid, files["valid"], "validate")):
        if wanted and (root / csv_name).is_file():
            got, lost = _read_csv(root, csv_name, split, prefixes, check_files)
            rows += got
            missing += lost
    if missing:
        warnings.warn(f"{len(missing)} image(s) listed in the CSVs are not on disk and were left out "
                      f"(e.g. {', '.join(missing[:3])}); pass check_files=False to keep them", stacklevel=2)
    for row in rows:
        row["site"] = manifest.get("site")
    return build_table(rows, ["site", "age", "sex"])
