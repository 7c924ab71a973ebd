"""The ``synthetic`` adapter: the generated cohort (MIMIC-CXR DICOM layout) read like MIMIC-CXR, never its ``truth/`` folder.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from cxrkit.profiles import get_profile
from cxrkit.synth import cohort_for_profile

from .mimic_cxr import load_mimic_dicom_tree

NAME = "synthetic"


def default_cohort_root() -> Path:
    """Generate (or reuse) the ``class``-profile synthetic cohort with cxrkit.synth and return its folder (notebook 01)."""
    cohort: Any = cohort_for_profile(get_profile("class"))
    if isinstance(cohort, (str, PathLike)):
        return Path(cohort)
    root = getattr(cohort, "root", None)
    if root is None:
        raise TypeError(f"cxrkit.synth.cohort_for_profile returned {type(cohort).__name__}, neither a path nor an object with .root")
    return Path(root)


def load_synthetic(root: Path, *, read_headers: bool = True, sections: str | None = None) -> pd.DataFrame:
    """Read a generated cohort into the study table: view from the metadata CSV, site/sex/age from DICOM headers, labels from the reports (``sections``: the labeled-section policy, default the manifest's) by the rule labeler (notebook 01)."""
    return load_mimic_dicom_tree(root, NAME, labeler="rules", read_headers=read_headers, exclude_dirs=("truth",),
                                 sections=sections)
