"""The ``iu-xray`` adapter: Open-i ``ecgen-radiology/*.xml`` reports + PNG or DICOM images → the study table.

Taught in notebook 01 (data preparation). There is no patient id, so ``subject_id`` is the report uid
and cxrkit.prep splits by report.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from cxrkit.errors import CxrkitError, DatasetLayoutError

from .headers import read_dicom_headers
from .layout import DatasetFileError, check_layout, top_level_entries, walk_files
from .manifest import load_manifest
from .table import build_table, normalise_sex, normalise_view
from .textlabels import label_texts, labeling_text, report_fields

NAME = "iu-xray"
IMAGE_KINDS: tuple[str, ...] = ("auto", "png", "dcm")


def _reports_dir(root: Path, name: str) -> Path:
    for candidate in [root / name, *sorted(root.glob(f"*/{name}"))]:
        if candidate.is_dir() and next(candidate.glob("*.xml"), None) is not None:
            return candidate
    raise DatasetLayoutError(NAME, root, [f"{name}/*.xml (from NLMCXR_reports.tgz)"], top_level_entries(root))


def _image_key(path: Path) -> str | None:
    """Normalised Open-i image id of a file name (``CXR1_1_IM-0001-3001.png``, ``1000_IM-0003-2001.dcm``, ``1_IM-0001-4001.dcm.png``), None for other files."""
    from cxrkit.io.reports import normalise_openi_image_id

    try:
        return normalise_openi_image_id(path.name)
    except ValueError:
        return None


def index_images(images_root: Path, kind: str, exclude: str) -> tuple[dict[str, Path], str]:
    """Map normalised image id → file for the PNG or DICOM release found under ``images_root`` (searched recursively) (notebook 01)."""
    by_kind: dict[str, dict[str, Path]] = {"png": {}, "dcm": {}}
    suffixes = (".png", ".dcm") if kind == "auto" else (f".{kind}",)
    for path in walk_files(images_root, suffixes, exclude_dirs=(exclude,)):
        key = _image_key(path)
        if key is not None:
            by_kind["png" if path.name.lower().endswith(".png") else "dcm"].setdefault(key, path)
    chosen = kind if kind != "auto" else ("png" if by_kind["png"] else "dcm")
    return by_kind[chosen], chosen


def _parse_reports(folder: Path) -> list:
    """Parse every report XML; a file that is malformed or hostile (entity expansion, DTDs) is skipped with a warning naming it."""
    from cxrkit.io.reports import parse_openi_xml

    reports, skipped = [], []
    for path in sorted(folder.glob("*.xml")):
        try:
            reports.append(parse_openi_xml(path))
        except (CxrkitError, ValueError, SyntaxError, OSError) as err:  # defusedxml and ParseError derive from these
            skipped.append(f"{path.name} ({type(err).__name__}: {err})")
    if skipped:
        warnings.warn(f"{len(skipped)} report XML file(s) in {folder} were skipped: {'; '.join(skipped[:3])}", stacklevel=3)
    if not reports:
        raise DatasetLayoutError(NAME, folder, ["at least one readable Open-i report XML"], [s.split(" ")[0] for s in skipped])
    return reports


def _uid(value: object) -> str:
    return re.sub(r"^CXR", "", str(value).strip(), flags=re.IGNORECASE)


#: The popular derivative CSV (``uid,filename,projection``) that gives PNG-release films a view.
PROJECTIONS_CSV = "indiana_projections.csv"
_PROJECTION_VIEW = {"frontal": "FRONTAL", "lateral": "LATERAL"}


def _projections(root: Path) -> dict[str, str]:
    """Read ``indiana_projections.csv`` when present: normalised image id → ``FRONTAL``/``LATERAL`` (PA vs AP unknown)."""
    path = root / PROJECTIONS_CSV
    if not path.exists():
        return {}
    table = pd.read_csv(path, dtype=str)
    missing = {"filename", "projection"} - set(table.columns)
    if missing:
        raise DatasetFileError(f"{path} lacks column(s) {sorted(missing)}; expected uid,filename,projection")
    ids = table["filename"].str.replace(r"(\.dcm)?\.png$", "", regex=True)
    views = table["projection"].str.strip().str.lower().map(_PROJECTION_VIEW)
    return dict(zip(ids, views))


def load_iu_xray(root: Path, *, images: str = "auto", images_root: str | Path | None = None, read_headers: bool = True) -> pd.DataFrame:
    """Read the IU X-ray collection into the study table: one row per image of each report, labels from the report text by the rule labeler (notebook 01)."""
    if images not in IMAGE_KINDS:
        raise ValueError(f"images must be one of {IMAGE_KINDS}, not {images!r}")
    root = Path(root).expanduser().resolve()
    manifest = load_manifest(NAME)
    layout = manifest["layout"]
    image_base = Path(images_root).expanduser().resolve() if images_root is not None else root
    check_layout(NAME, root, layout["required"][:1], layout.get("description", ""))
    check_layout(NAME, image_base, layout["required"][1:], "the NLMCXR_png.tgz or NLMCXR_dcm.tgz images")
    reports_name = manifest["files"]["reports_dir"]
    reports = _parse_reports(_reports_dir(root, reports_name))
    found, kind = index_images(image_base, images, reports_name)

    projections = _projections(root)
    headers: dict[Path, dict] = {}
    if kind == "dcm" and read_headers:
        headers = read_dicom_headers(found.values())
    labels = label_texts([labeling_text(r.sections) for r in reports]).to_dict("records")
    rows, missing = [], []
    for report, label_row in sorted(zip(reports, labels), key=lambda pair: (len(_uid(pair[0].uid)), _uid(pair[0].uid))):
        uid = _uid(report.uid)
        for image_id in report.image_ids:
            path = found.get(image_id)
            if path is None:
                missing.append(image_id)
                continue
            header = headers.get(path, {})
            rows.append({
                "dataset": NAME, "subject_id": uid, "study_id": uid, "image_id": image_id, "image_path": str(path),
                "view": normalise_view(header.get("view")) or projections.get(image_id), "split": None, **report_fields(report.sections),
                "site": manifest.get("site"), "age": header.get("age"), "sex": normalise_sex(header.get("sex")),
                **label_row,
            })
    if missing:
        warnings.warn(f"{len(missing)} image(s) named in the reports have no {kind.upper()} file under {image_base} "
                      f"and were left out (e.g. {', '.join(missing[:3])})", stacklevel=2)
    optional = ["site", *[c for c in ("age", "sex") if any(r[c] is not None for r in rows)]]
    return build_table(rows, optional)
