"""Dataset adapters: every supported dataset (synthetic, MIMIC-CXR, MIMIC-CXR-JPG, IU X-ray, CheXpert, NIH ChestX-ray14) → one study table.

Taught in notebook 01 (data preparation): ``load_study_table(name, root)`` returns one row per image
with the columns of :data:`cxrkit.labels.STUDY_COLUMNS` (+ site/age/sex where known) and the 14
CheXpert label columns.

Choices every adapter shares:

* **Roots** come from the argument, else ``$CXRKIT_<NAME>_ROOT``; a folder that does not match the
  manifest's ``layout.required`` globs raises one :class:`cxrkit.errors.DatasetLayoutError` listing
  each expectation (found / MISSING) and the folder's top-level entries.
* **Paths read from dataset files** (CheXpert ``Path``, NIH ``Image Index``, MIMIC ids) that are
  absolute or climb out with ``..`` raise :class:`PathEscapeError` naming the file and row: a table
  that points outside its root is treated as corrupt or hostile, never silently trimmed. The check
  is lexical, so image folders that are symlinks to another disk still work.
* **Images are listed, not decoded**: a corrupt DICOM or truncated PNG still gets its row (the prep
  step quarantines it); unreadable DICOM headers only leave view/sex/age empty, with a warning.
* **Open-i XML** is parsed with defusedxml; a malformed or hostile report (entity expansion, DTD) is
  skipped with a warning naming the file; if no report is readable the root is a layout error.
* **Images missing on disk** (partial downloads) are left out with one warning; ``check_files=False``
  keeps them where the adapter can build their path from the CSV.
* **Ids are strings**; labels are floats 1.0/0.0/-1.0/NaN selected by column name; ``split`` is the
  official split or None (cxrkit.prep then assigns a seeded patient split).
"""
from __future__ import annotations

from .layout import DatasetFileError, PathEscapeError
from .manifest import ManifestError, list_manifests, load_manifest
from .nih_cxr14 import load_nih_boxes, nih_finding_to_observation, read_nih_box_file
from .registry import (BOX_READERS, DATASETS, DatasetRootError, list_datasets, load_boxes, load_study_table, resolve_root,
                       root_env_var)
from .table import StudyTableError, study_columns, validate_study_table

__all__ = [
    "BOX_READERS",
    "DATASETS",
    "DatasetFileError",
    "DatasetRootError",
    "ManifestError",
    "PathEscapeError",
    "StudyTableError",
    "list_datasets",
    "list_manifests",
    "load_boxes",
    "load_manifest",
    "load_nih_boxes",
    "load_study_table",
    "nih_finding_to_observation",
    "read_nih_box_file",
    "resolve_root",
    "root_env_var",
    "study_columns",
    "validate_study_table",
]
