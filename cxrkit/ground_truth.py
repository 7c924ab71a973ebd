"""Reading a cohort's ground truth: the synthetic cohort's masks, one film or the films of one finding (notebooks 01, 05, 06).

The one reader of ``<root>/truth/masks/<image_id>.npz``: the gallery of notebook 01, the pointing game of notebook 05
and the localization of notebook 06 all open masks through it (``cxrkit.explain.truth`` re-exports it beside the
measures that score maps against them). NIH ChestX-ray14's boxes have theirs in ``cxrkit.datasets``
(:func:`~cxrkit.datasets.read_nih_box_file`, :func:`~cxrkit.datasets.load_boxes`). It needs neither torch nor
captum, so notebook 01 can read masks without loading the explanation code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrkit.labels import label_slug

__all__ = ["synthetic_truth_masks", "films_with_finding"]


def synthetic_truth_masks(root: str | Path, image_id: str) -> dict[str, np.ndarray]:
    """Return ``{label slug: boolean mask}`` of one film of a generated cohort (``<root>/truth/masks/<image_id>.npz``) (notebooks 01, 05, 06)."""
    path = Path(root) / "truth" / "masks" / f"{image_id}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ground-truth masks for film {image_id} (is {root} a generated cohort?)")
    with np.load(path) as z:
        return {key: z[key].astype(bool) for key in z.files}


def films_with_finding(root: str | Path, rows: pd.DataFrame, finding: str, n: int | None = None) -> list[tuple[int, np.ndarray]]:
    """Return (row position, mask) of the first ``n`` rows (table order; all when None) whose synthetic truth mask holds ``finding`` — films chosen by truth, never by label or prediction (notebooks 05, 06)."""
    slug, found = label_slug(finding), []
    for i, image_id in enumerate(rows["image_id"].astype(str)):
        if n is not None and len(found) == n:
            break
        mask = synthetic_truth_masks(root, image_id).get(slug)
        if mask is not None and mask.any():
            found.append((i, mask))
    return found
