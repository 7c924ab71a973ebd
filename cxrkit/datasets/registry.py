"""The registry of dataset names: ``load_study_table("mimic-cxr-jpg", root)`` → the study table of any supported dataset.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from cxrkit.errors import CxrkitError, DatasetLayoutError

from .chexpert import load_chexpert
from .iu_xray import load_iu_xray
from .layout import top_level_entries
from .manifest import load_manifest
from .mimic_cxr import load_mimic_cxr
from .mimic_cxr_jpg import load_mimic_cxr_jpg
from .nih_cxr14 import load_nih_boxes, load_nih_cxr14
from .synthetic import default_cohort_root, load_synthetic
from .table import validate_study_table

Adapter = Callable[..., pd.DataFrame]

#: Dataset name → adapter ``adapter(root: Path, **options) -> study table``.
DATASETS: dict[str, Adapter] = {
    "synthetic": load_synthetic,
    "mimic-cxr": load_mimic_cxr,
    "mimic-cxr-jpg": load_mimic_cxr_jpg,
    "iu-xray": load_iu_xray,
    "chexpert": load_chexpert,
    "nih-cxr14": load_nih_cxr14,
}


class DatasetRootError(CxrkitError, ValueError):
    """No root folder was given for a dataset, neither as an argument nor in its environment variable (notebook 01)."""


def list_datasets() -> list[str]:
    """Return the names ``load_study_table`` accepts (notebook 01)."""
    return list(DATASETS)


def root_env_var(dataset: str) -> str:
    """Return the environment variable naming a dataset's root, e.g. ``CXRKIT_MIMIC_CXR_JPG_ROOT`` (notebook 01)."""
    return "CXRKIT_" + dataset.upper().replace("-", "_") + "_ROOT"


class UnknownDatasetError(CxrkitError, KeyError):
    """A dataset name the registry does not know (notebook 01); a ``KeyError`` too, as it always was."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _check_name(dataset: str) -> None:
    if dataset not in DATASETS:
        near = difflib.get_close_matches(str(dataset), list(DATASETS), n=1)
        raise UnknownDatasetError(f"unknown dataset {dataset!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                                  + f"; choose one of {list_datasets()}")


def resolve_root(dataset: str, root: str | Path | None = None) -> Path:
    """Return the dataset root: ``root`` if given, else ``$CXRKIT_<NAME>_ROOT``; the generated cohort for ``synthetic`` (notebook 01)."""
    _check_name(dataset)
    variable = root_env_var(dataset)
    if isinstance(root, str) and not root.strip():  # `--root ""` must not quietly mean the current folder
        raise DatasetRootError(f"empty root folder for dataset {dataset!r}: give the folder's path, or leave the root "
                               f"out to use the environment variable {variable}")
    if root is None:
        root = os.environ.get(variable) or None
    if root is None:
        if dataset == "synthetic":
            return default_cohort_root()
        access = " ".join(str(load_manifest(dataset).get("access", "")).split())
        raise DatasetRootError(
            f"no root folder for dataset {dataset!r}: pass root=... to load_study_table, or set the environment "
            f"variable {variable}=/path/to/{dataset} (e.g. `export {variable}=...` before starting Jupyter). "
            f"Access: {access}"
        )
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise DatasetLayoutError(dataset, path, [f"an existing folder holding the {dataset} dataset"], top_level_entries(path))
    return path


#: The datasets that publish ground-truth boxes, with their readers (given the resolved root).
BOX_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {"nih-cxr14": load_nih_boxes}


def load_boxes(dataset: str, root: str | Path | None = None) -> pd.DataFrame:
    """Return a dataset's ground-truth boxes (image_id, finding, x, y, w, h) read from ``root`` (or its environment variable) (notebook 06)."""
    path = resolve_root(dataset, root)
    if dataset not in BOX_READERS:
        raise CxrkitError(f"dataset {dataset!r} publishes no ground-truth boxes; those that do: {sorted(BOX_READERS)}")
    return BOX_READERS[dataset](path)


def load_study_table(dataset: str, root: str | Path | None = None, *, frontal_only: bool = False, **options: Any) -> pd.DataFrame:
    """Return the study table of ``dataset`` read from ``root`` (or its environment variable), optionally only frontal views; notebook 01 starts here."""
    _check_name(dataset)
    adapter = DATASETS[dataset]
    accepted = [p for p in inspect.signature(adapter).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for dataset {dataset!r}; it accepts {accepted + ['frontal_only']}")
    table = adapter(resolve_root(dataset, root), **options)
    if frontal_only:
        frontal = [str(v).upper() for v in load_manifest(dataset)["views"]["frontal"]]
        table = table[table["view"].isin(frontal)].reset_index(drop=True)
    validate_study_table(table)
    return table
