"""DICOM header look-ups for the adapters (view, sex, age, institution) — headers only, never pixels.

Reading 2,000 headers costs seconds, and every notebook prepares its data again, so the fields read are kept per
dataset folder in ``CXRKIT_HOME/dicom_headers/<key>.json`` (the key: the folder and the code that reads headers),
each with the file's size and modification time: a file that changed, or one not seen before, is read again; one
that could not be read is never kept, so its warning comes every time. The dataset folder itself is never written.
Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from cxrkit.artifacts import code_version
from cxrkit.atomic import write_text
from cxrkit.io.dicom import dicom_header_fields
from cxrkit.paths import cxrkit_home, params_key

#: The folder under ``CXRKIT_HOME`` that keeps header fields already read.
HEADER_CACHE = "dicom_headers"


def header_cache_file(paths: list[Path]) -> Path:
    """Return the file that keeps the header fields of ``paths``: keyed by their common folder and the header code (notebook 01)."""
    folder = os.path.commonpath([str(Path(p).resolve().parent) for p in paths])
    key = params_key({"folder": folder, "code": code_version("io/dicom.py", "datasets/headers.py")})
    return cxrkit_home() / HEADER_CACHE / f"{key}.json"


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _load(cache: Path) -> dict[str, Any]:
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}  # absent or half-written by a killed process: read the headers again


def _save(cache: Path, entries: dict[str, Any]) -> None:
    write_text(cache, json.dumps(entries))


def read_dicom_headers(paths: Iterable[Path]) -> dict[Path, dict[str, Any]]:
    """Return cxrkit.io.dicom.dicom_header_fields for each file; an unreadable file gets no entry and a warning naming it (the prep step quarantines it) (notebook 01).

    Fields read before from an unchanged file (same size and modification time) come from the header cache.
    """
    paths = list(paths)
    fields: dict[Path, dict[str, Any]] = {}
    failed: list[str] = []
    cache = header_cache_file(paths) if paths else None
    kept = _load(cache) if cache is not None else {}
    fresh: dict[str, Any] = {}
    for path in paths:
        name = str(Path(path).resolve())
        try:
            stamp = _stamp(Path(path))
        except OSError:
            stamp = None  # reading it below names the problem
        entry = kept.get(name)
        try:
            found = (dict(entry[1]) if stamp is not None and entry is not None and entry[0] == stamp
                     else dict(dicom_header_fields(path)))
        except Exception as err:  # any unreadable header: the row stays, its header columns stay empty
            failed.append(f"{path} ({type(err).__name__}: {err})")
            continue
        if stamp is not None:
            fresh[name] = [stamp, json.loads(json.dumps(found))]
        if found.get("pixel_spacing") is not None:
            found["pixel_spacing"] = tuple(found["pixel_spacing"])  # a list after the JSON round trip
        fields[path] = found
    if cache is not None and fresh != kept:
        _save(cache, fresh)
    if failed:
        shown = "; ".join(failed[:3]) + (" …" if len(failed) > 3 else "")
        warnings.warn(f"{len(failed)} DICOM header(s) could not be read; their view/sex/age/site are left empty: {shown}", stacklevel=3)
    return fields
