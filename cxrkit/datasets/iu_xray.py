"""The ``iu-xray`` adapter: Open-i ``ecgen-radiology/*.xml`` reports + PNG or DICOM images → the study table.

Taught in notebook 01 (data preparation). There is no patient id, so ``subject_id`` is the report uid
and cxrkit.prep splits by report. Views come from :mod:`cxrkit.datasets.iu_views` (DICOM header,
``indiana_projections.csv``, caption, figure order — its limits are stated there); labels come from
findings + impression (the manifest's labeled-section policy) by the rule labeler.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd

from cxrkit.errors import CxrkitError, DatasetLayoutError
from cxrkit.io.reports import OpenIReport, normalise_openi_image_id, parse_openi_xml

from .headers import read_dicom_headers
from .iu_views import VIEW_METHODS, check_some_frontal, decide_views
from .layout import DatasetFileError, check_layout, top_level_entries, walk_files
from .manifest import load_manifest
from .table import build_table, normalise_sex, normalise_view
from .textlabels import label_texts, labeling_text, report_fields, section_policy

NAME = "iu-xray"
IMAGE_KINDS: tuple[str, ...] = ("auto", "png", "dcm")


def _reports_dir(root: Path, name: str) -> Path:
    for candidate in [root / name, *sorted(root.glob(f"*/{name}"))]:
        if candidate.is_dir() and next(candidate.glob("*.xml"), None) is not None:
            return candidate
    raise DatasetLayoutError(NAME, root, [f"{name}/*.xml (from NLMCXR_reports.tgz)"], top_level_entries(root))


def _image_key(path: Path) -> str | None:
    """Normalised Open-i image id of a file name (``CXR1_1_IM-0001-3001.png``, ``1000_IM-0003-2001.dcm``, ``1_IM-0001-4001.dcm.png``), None for other files."""
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
    return {image_id: view for image_id, view in zip(ids, views) if isinstance(view, str)}


def _known_views(report: OpenIReport, found: dict[str, Path], headers: dict[Path, dict],
                 projections: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Views the files state for one report's images: the DICOM header first, then indiana_projections.csv."""
    known = {}
    for image_id in report.image_ids:
        header_view = normalise_view(headers.get(found.get(image_id), {}).get("view"))
        if header_view:
            known[image_id] = (header_view, "header")
        elif projections.get(image_id):
            known[image_id] = (projections[image_id], "projections")
    return known


def load_iu_xray(root: Path, *, images: str = "auto", images_root: str | Path | None = None, read_headers: bool = True,
                 views: str = "auto", sections: str | None = None) -> pd.DataFrame:
    """Read the IU X-ray collection into the study table: one row per image of each report, views by cxrkit.datasets.iu_views, labels from the report text (``sections``: the labeled-section policy, default the manifest's findings+impression) by the rule labeler (notebook 01)."""
    if images not in IMAGE_KINDS:
        raise ValueError(f"images must be one of {IMAGE_KINDS}, not {images!r}")
    if views not in VIEW_METHODS:
        raise ValueError(f"views must be one of {VIEW_METHODS}, not {views!r}")
    policy = section_policy(NAME, sections)
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
    labels = label_texts([labeling_text(r.sections, policy) for r in reports]).to_dict("records")
    rows, missing, sources = [], [], Counter()
    for report, label_row in sorted(zip(reports, labels), key=lambda pair: (len(_uid(pair[0].uid)), _uid(pair[0].uid))):
        uid = _uid(report.uid)
        present = [f for f in report.figures if f.image_id in found]
        missing += [f.image_id for f in report.figures if f.image_id not in found]
        decided = decide_views(present, _known_views(report, found, headers, projections), views)
        for figure in present:
            path = found[figure.image_id]
            header = headers.get(path, {})
            view, source = decided.get(figure.image_id, (None, "unknown"))
            sources[source] += 1
            rows.append({
                "dataset": NAME, "subject_id": uid, "study_id": uid, "image_id": figure.image_id, "image_path": str(path),
                "view": view, "split": None, **report_fields(report.sections),
                "site": manifest.get("site"), "age": header.get("age"), "sex": normalise_sex(header.get("sex")),
                **label_row,
            })
    if missing and not rows:
        wanted = "PNG or DICOM" if images == "auto" else kind.upper()
        raise DatasetFileError(f"none of the {len(missing)} images named in the reports has a {wanted} file under "
                               f"{image_base} (e.g. {', '.join(missing[:3])}); is images_root the right folder?")
    if missing:
        warnings.warn(f"{len(missing)} image(s) named in the reports have no {kind.upper()} file under {image_base} "
                      f"and were left out (e.g. {', '.join(missing[:3])})", stacklevel=2)
    check_some_frontal(sources, [r["view"] for r in rows], root, views)
    if sources["order"] or sources["unknown"]:
        warnings.warn(f"iu-xray views: {dict(sources)} (films per source). 'order' assumes the first figure of a "
                      f"two-image report is the frontal film, which the Open-i files do not state; 'unknown' films "
                      f"are dropped by the frontal filter. For views from another source add {PROJECTIONS_CSV} "
                      f"at {root} or use the DICOM release (see cxrkit.datasets.iu_views)", stacklevel=2)
    optional = ["site", *[c for c in ("age", "sex") if any(r[c] is not None for r in rows)]]
    return build_table(rows, optional)
