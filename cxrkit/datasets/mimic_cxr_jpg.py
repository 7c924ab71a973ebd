"""The ``mimic-cxr-jpg`` adapter: MIMIC-CXR-JPG images, metadata, CheXpert/NegBio labels and the official split → the study table.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from cxrkit.errors import CxrkitError
from cxrkit.io.reports import read_mimic_report

from .layout import DatasetFileError, check_layout
from .manifest import load_manifest
from .mimic_files import image_relpath, index_reports, read_metadata, read_split, read_study_labels, report_relpath
from .table import build_table, empty_labels, normalise_view
from .textlabels import report_fields

NAME = "mimic-cxr-jpg"
LABELERS: tuple[str, ...] = ("chexpert", "negbio")


def _reports(root: Path, reports_root: Path | None, studies: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Parse the reports that exist beside the study folders (or anywhere under ``reports_root``); none is fine."""
    if reports_root is not None:
        paths = index_reports(reports_root)
    else:
        paths = {key: root / report_relpath(*key) for key in studies}
    present = {key: paths[key] for key in studies if key in paths and paths[key].is_file()}
    sections: dict[tuple[str, str], dict[str, str]] = {}
    if not present:
        return sections

    failed: list[str] = []
    for key, path in present.items():
        try:
            sections[key] = dict(read_mimic_report(path))
        except (CxrkitError, OSError, UnicodeDecodeError, ValueError) as err:
            failed.append(f"{path} ({err})")
    if failed:
        warnings.warn(f"{len(failed)} report file(s) could not be read: {', '.join(failed[:3])}", stacklevel=3)
    return sections


def load_mimic_cxr_jpg(
    root: Path,
    *,
    labeler: str = "chexpert",
    check_files: bool = True,
    reports_root: str | Path | None = None,
) -> pd.DataFrame:
    """Read MIMIC-CXR-JPG into the study table: one row per metadata image present on disk, labels by name from the ``labeler`` CSV, the official split (notebook 01)."""
    if labeler not in LABELERS:
        raise ValueError(f"labeler must be one of {LABELERS} for {NAME}, not {labeler!r}")
    root = Path(root).expanduser().resolve()
    manifest = load_manifest(NAME)
    layout, files = manifest["layout"], manifest["files"]
    check_layout(NAME, root, layout["required"], layout.get("description", ""))

    metadata = read_metadata(root / files["metadata"])
    label_path = root / files[labeler]
    if not label_path.is_file():
        raise DatasetFileError(f"{label_path}: label file for labeler={labeler!r} not found in {root}")
    labels = read_study_labels(label_path)
    split_path = root / files["split"]
    if split_path.is_file():
        splits = read_split(split_path)
    else:
        warnings.warn(f"{split_path} not found: the split column is left empty (cxrkit.prep assigns a patient split)", stacklevel=2)
        splits = {}

    rows, missing = [], []
    for record in metadata.itertuples(index=False):
        subject_id, study_id, image_id = str(record.subject_id), str(record.study_id), str(record.dicom_id)
        path = root / image_relpath(subject_id, study_id, image_id, "jpg")
        if check_files and not path.is_file():
            missing.append(image_id)
            continue
        rows.append({
            "dataset": NAME, "subject_id": subject_id, "study_id": study_id, "image_id": image_id,
            "image_path": str(path), "view": normalise_view(record.ViewPosition), "split": splits.get(image_id),
            "site": manifest.get("site"),
        })
    if missing:
        warnings.warn(f"{len(missing)} image(s) listed in {files['metadata']} are not on disk and were left out "
                      f"(e.g. {', '.join(missing[:3])}); pass check_files=False to keep them", stacklevel=2)

    studies = sorted({(r["subject_id"], r["study_id"]) for r in rows})
    sections = _reports(root, Path(reports_root).expanduser().resolve() if reports_root is not None else None, studies)
    by_study = labels.to_dict("index")
    for row in rows:
        key = (row["subject_id"], row["study_id"])
        row.update(report_fields(sections.get(key)))
        row.update(by_study.get(key[1]) or empty_labels())
    return build_table(rows, ["site"])
