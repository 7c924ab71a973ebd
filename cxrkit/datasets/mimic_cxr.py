"""The ``mimic-cxr`` adapter: MIMIC-CXR DICOM images + free-text reports → the study table (also used for ``synthetic``).

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

from cxrkit.errors import CxrkitError
from cxrkit.io.reports import read_mimic_report

from .headers import read_dicom_headers
from .layout import check_layout
from .manifest import load_manifest
from .mimic_files import index_reports, index_tree, read_metadata, read_split, read_study_labels
from .table import build_table, empty_labels, normalise_sex, normalise_view
from .textlabels import label_texts, labeling_text, report_fields, section_policy

NAME = "mimic-cxr"
LABELERS: tuple[str, ...] = ("rules", "chexpert", "negbio")


def _warn_some(what: str, items: list[str], stacklevel: int = 4) -> None:
    if items:
        shown = ", ".join(items[:3]) + (" …" if len(items) > 3 else "")
        warnings.warn(f"{len(items)} {what}: {shown}", stacklevel=stacklevel)


def _read_reports(paths: dict[tuple[str, str], Path]) -> dict[tuple[str, str], dict[str, str]]:
    """Parse every report file; unreadable ones are left out with a warning naming them."""
    parsed: dict[tuple[str, str], dict[str, str]] = {}
    failed: list[str] = []
    for key, path in paths.items():
        try:
            parsed[key] = dict(read_mimic_report(path))
        except (CxrkitError, OSError, UnicodeDecodeError, ValueError) as err:
            failed.append(f"{path} ({err})")
    _warn_some("report file(s) could not be read and count as missing", failed)
    return parsed


def load_mimic_dicom_tree(
    root: Path,
    dataset: str,
    *,
    labeler: str = "rules",
    read_headers: bool = True,
    reports_root: Path | None = None,
    exclude_dirs: Iterable[str] = (),
    sections: str | None = None,
) -> pd.DataFrame:
    """Build the study table of a MIMIC-CXR-layout DICOM tree (real MIMIC-CXR or the synthetic cohort); ``sections`` overrides the manifest's labeled-section policy — notebook 01."""
    if labeler not in LABELERS:
        raise ValueError(f"labeler must be one of {LABELERS}, not {labeler!r}")
    policy = section_policy(dataset, sections)
    root = Path(root).expanduser().resolve()
    manifest = load_manifest(dataset)
    layout = manifest["layout"]
    reports_root = Path(reports_root).expanduser().resolve() if reports_root is not None else root
    if reports_root == root:
        check_layout(dataset, root, layout["required"], layout.get("description", ""))
    else:
        check_layout(dataset, root, layout["required"][:1], layout.get("description", ""))
        check_layout(dataset, reports_root, layout["required"][1:], "the MIMIC-CXR reports (files/pNN/p<subject>/s<study>.txt)")
    files = manifest.get("files", {})
    excluded = list(exclude_dirs) + list(layout.get("never_read", []))

    images, report_paths = index_tree(root, (".dcm",), excluded, reports=reports_root == root)
    if reports_root != root:
        report_paths = index_reports(reports_root, excluded)
    studies = sorted({(s, t) for s, t, _ in images})
    reports = _read_reports({key: report_paths[key] for key in studies if key in report_paths})
    _warn_some("stud(y/ies) have no report; their text and labels are empty", [f"s{t}" for s, t in studies if (s, t) not in reports])

    metadata_path = root / files.get("metadata", "mimic-cxr-2.0.0-metadata.csv.gz")
    metadata = read_metadata(metadata_path) if metadata_path.is_file() else None
    split_path = root / files.get("split", "mimic-cxr-2.0.0-split.csv.gz")
    splits = read_split(split_path) if split_path.is_file() else {}

    if labeler == "rules":
        texts = [labeling_text(reports.get(key), policy) for key in studies]
        study_labels = dict(zip(studies, label_texts(texts).to_dict("records")))
    else:
        label_path = root / files.get(labeler, f"mimic-cxr-2.0.0-{labeler}.csv.gz")
        by_study = read_study_labels(label_path).to_dict("index")
        study_labels = {key: by_study.get(key[1]) or empty_labels() for key in studies}

    meta_views = dict(zip(metadata["dicom_id"], metadata["ViewPosition"])) if metadata is not None else {}
    headers = read_dicom_headers(images.values()) if read_headers else {}
    site_default = manifest.get("site")
    rows = []
    for (subject_id, study_id, image_id), path in sorted(images.items()):
        header = headers.get(path, {})
        meta_view = normalise_view(meta_views.get(image_id))
        rows.append({
            "dataset": dataset,
            "subject_id": subject_id,
            "study_id": study_id,
            "image_id": image_id,
            "image_path": str(path),
            "view": meta_view or normalise_view(header.get("view")),
            "split": splits.get(image_id),
            **report_fields(reports.get((subject_id, study_id))),
            "site": header.get("institution") or site_default,
            "age": header.get("age"),
            "sex": normalise_sex(header.get("sex")),
            **study_labels[(subject_id, study_id)],
        })
    optional = [c for c in ("site", "age", "sex") if any(r[c] is not None for r in rows)]
    return build_table(rows, optional)


def load_mimic_cxr(root: Path, *, labeler: str = "rules", read_headers: bool = True, reports_root: str | Path | None = None,
                   sections: str | None = None) -> pd.DataFrame:
    """Read MIMIC-CXR (DICOM release + reports) into the study table; labels come from the reports (``sections``: the labeled-section policy, default the manifest's) via the rule labeler unless ``labeler="chexpert"|"negbio"`` names a MIMIC-CXR-JPG label file in the root (notebook 01)."""
    return load_mimic_dicom_tree(root, NAME, labeler=labeler, read_headers=read_headers,
                                 reports_root=Path(reports_root) if reports_root is not None else None, sections=sections)
