"""DICOM header look-ups for the adapters (view, sex, age, institution) — headers only, never pixels.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable


def read_dicom_headers(paths: Iterable[Path]) -> dict[Path, dict[str, Any]]:
    """Return cxrkit.io.dicom.dicom_header_fields for each file; an unreadable file gets no entry and a warning naming it (the prep step quarantines it) (notebook 01)."""
    from cxrkit.io.dicom import dicom_header_fields

    fields: dict[Path, dict[str, Any]] = {}
    failed: list[str] = []
    for path in paths:
        try:
            fields[path] = dict(dicom_header_fields(path))
        except Exception as err:  # any unreadable header: the row stays, its header columns stay empty
            failed.append(f"{path} ({type(err).__name__}: {err})")
    if failed:
        shown = "; ".join(failed[:3]) + (" …" if len(failed) > 3 else "")
        warnings.warn(f"{len(failed)} DICOM header(s) could not be read; their view/sex/age/site are left empty: {shown}", stacklevel=3)
    return fields
