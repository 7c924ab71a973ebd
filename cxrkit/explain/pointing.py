"""The honest pointing-game protocol of notebooks 05 and 06: per finding, with baselines per finding, and maps
that carry no positive evidence counted in their own column rather than dropped.

Each (method, film) pair gives one row: did the map's strongest pixel land on the finding (within a
tolerance), did the map carry any positive evidence at all, and what share of its positive mass lies on the
finding. A map with no positive value (Grad-CAM after its ReLU, when nothing speaks for the finding) cannot
point anywhere: it counts as a miss in the hit rate *and* is counted in ``no_evidence``; its mass inside is
undefined and left out of that mean with its count shown (``mass_inside_n``), never silently.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from cxrkit.explain.truth import as_map

__all__ = ["POINTING_TOLERANCE", "pointing_tolerance_px", "pointing_rows", "pointing_summary", "per_finding_table"]

#: Tolerance of the pointing game as a share of the film's side: Zhang et al. (2016) count a hit within
#: 15 pixels of the annotation on images about 500 pixels wide, 3% of the side (4 pixels at 128).
POINTING_TOLERANCE = 0.03


def pointing_tolerance_px(shape: Sequence[int], share: float = POINTING_TOLERANCE) -> float:
    """Return the pointing-game tolerance in pixels for maps of ``shape`` (``share`` of the shorter side) (notebook 05)."""
    if share < 0:
        raise ValueError(f"the tolerance share must be >= 0, got {share!r}")
    return float(share * min(int(shape[-2]), int(shape[-1])))


def pointing_rows(maps: Mapping[str, np.ndarray], masks: np.ndarray, finding: str,
                  tolerance: float | None = None) -> pd.DataFrame:
    """Score every method's maps of one finding's films: one row per (method, film) (notebook 05).

    ``maps`` holds ``(N, H, W)`` arrays per method (the score map: ``|map|`` for sign-free gradients),
    ``masks`` the ``(N, H, W)`` truth at the maps' size. Columns: ``finding``, ``film``, ``method``, ``hit``
    (the strongest positive pixel lies within ``tolerance`` pixels of the mask; default
    :func:`pointing_tolerance_px`), ``no_evidence`` (the map has no positive value), ``mass_inside`` (share of
    the positive mass on the mask, NaN without evidence), ``mask_share`` (the chance of a random pixel), and
    where the strongest pixel lies: ``row``, ``col`` and ``distance`` (pixels to the mask; 0 on it).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or not masks.reshape(len(masks), -1).any(1).all():
        raise ValueError(f"masks must be (N, H, W) with every mask non-empty at the map size; got shape {masks.shape}")
    tol = pointing_tolerance_px(masks.shape) if tolerance is None else float(tolerance)
    distances = [ndimage.distance_transform_edt(~m) for m in masks]
    rows = []
    for method, stack in maps.items():
        stack = np.asarray(stack)
        if stack.shape != masks.shape:
            raise ValueError(f"{method}: maps of shape {stack.shape} for masks of shape {masks.shape}")
        for j, (raw, mask) in enumerate(zip(stack, masks)):
            a = as_map(raw)
            positive = np.clip(a, 0, None)
            evidence = bool(positive.max() > 0)
            r, c = np.unravel_index(int(np.argmax(a)), a.shape)
            rows.append({"finding": finding, "film": j, "method": method,
                         "hit": bool(evidence and distances[j][r, c] <= tol), "no_evidence": not evidence,
                         "mass_inside": float(positive[mask].sum() / positive.sum()) if evidence else float("nan"),
                         "mask_share": float(mask.mean()), "row": int(r), "col": int(c),
                         "distance": float(distances[j][r, c])})
    return pd.DataFrame(rows)


def pointing_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`pointing_rows` per finding and method: films, hit rate, no-evidence share, mass inside and its count (notebook 05)."""
    grouped = rows.groupby(["finding", "method"], sort=False)
    return pd.DataFrame({
        "films": grouped.size(),
        "hit_rate": grouped["hit"].mean(),
        "no_evidence": grouped["no_evidence"].mean(),
        "mass_inside": grouped["mass_inside"].mean(),
        "mass_inside_n": grouped["mass_inside"].count(),
        "mask_share": grouped["mask_share"].mean(),
    })


def per_finding_table(rows: pd.DataFrame, findings: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Return the hit rate as a method × finding table with a ``mean`` column (the unweighted mean over findings) (notebook 05)."""
    table = rows.pivot_table(index="method", columns="finding", values="hit", aggfunc="mean")
    table = table.reindex(index=list(methods), columns=list(findings))
    table["mean"] = table[list(findings)].mean(axis=1)
    return table
