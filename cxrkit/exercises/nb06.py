"""Notebook 06's coded exercises: the clustering step of clustered IG, and a threshold for a false-region budget."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from cxrkit.exercises import Case, compare_values, exercise

NOTEBOOK = "06_clustered_ig_localization"


def canonical_labels(labels: Any) -> np.ndarray:
    """Renumber cluster labels by first appearance (0, 1, 2, … in the given order), so two partitions compare equal whatever their numbering (notebook 06)."""
    arr = np.asarray(labels).ravel()
    _, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse]


def _compare_partitions(got: Any, expected: Any) -> str | None:
    try:
        g = np.asarray(got)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        return f"expected an array of cluster labels, got {type(got).__name__}"
    if g.shape != np.asarray(expected).shape:
        return f"expected one label per surviving pixel, shape {np.asarray(expected).shape}; got shape {g.shape}"
    n_got, n_exp = len(np.unique(g)), len(np.unique(expected))
    if n_got != n_exp:
        return f"expected {n_exp} clusters, got {n_got}"
    if not np.array_equal(canonical_labels(g), canonical_labels(expected)):
        return "the right number of clusters, but some pixels are in the wrong cluster"
    return None


def _grid(size: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    keep = np.zeros((size, size), bool)
    for r0, c0, r1, c1 in boxes:
        keep[r0:r1, c0:c1] = True
    return keep


def _cluster_cases() -> Iterator[Case]:
    yield Case((_grid(20, (2, 2, 5, 5), (12, 12, 16, 15)), 3.0), description="two blobs far apart")
    yield Case((_grid(20, (2, 2, 5, 5), (2, 7, 5, 9)), 3.0), description="two blobs 3 px apart: one cluster at distance 3")
    yield Case((_grid(20, (2, 2, 5, 5), (2, 7, 5, 9)), 2.0), description="the same blobs at distance 2: two clusters")
    keep = np.random.default_rng(3).random((16, 16)) > 0.85
    yield Case((keep, 1.5), description="scattered pixels, distance 1.5 (touching diagonally links)")
    yield Case((_grid(6, (1, 1, 2, 2)), 4.0), description="a single pixel")


@exercise("nb06_cluster_pixels", NOTEBOOK, _cluster_cases, compare=_compare_partitions,
          hint="points = np.argwhere(keep) gives (row, col) in raster order; with more than one point use "
               "scipy's linkage(points, method='single') and fcluster(..., t=distance, criterion='distance')")
def cluster_pixels(keep: np.ndarray, distance: float) -> np.ndarray:
    """Reference: single-linkage cluster labels (0..k-1) of the ``True`` pixels of ``keep`` in raster order, linked within ``distance`` px (notebook 06, exercise)."""
    points = np.argwhere(keep).astype(float)
    if len(points) <= 1:
        return np.zeros(len(points), dtype=np.int64)
    return fcluster(linkage(points, method="single"), t=distance, criterion="distance").astype(np.int64) - 1


def _sweep(recall: list[float], false_per_film: list[float]) -> pd.DataFrame:
    thresholds = np.round(np.linspace(0.3, 0.9, len(recall)), 2)
    return pd.DataFrame({"threshold": thresholds, "recall": recall, "false_regions_per_film": false_per_film})


def _budget_cases() -> Iterator[Case]:
    sweep = _sweep([0.9, 0.85, 0.8, 0.7, 0.5, 0.3, 0.1], [3.0, 2.1, 1.4, 0.9, 0.5, 0.2, 0.0])
    yield Case((sweep, 1.0), description="budget 1 false region per film")
    yield Case((sweep, 0.2), description="a budget met exactly (<= counts)")
    yield Case((sweep, 5.0), description="a budget every threshold meets")
    tied = _sweep([0.8, 0.8, 0.8, 0.6, 0.4], [1.5, 1.0, 0.8, 0.3, 0.1])
    yield Case((tied, 1.2), description="a tie in recall: take the highest threshold (fewest regions)")
    yield Case((sweep, -1.0), description="an impossible budget: return None")


@exercise("nb06_threshold_for_budget", NOTEBOOK, _budget_cases, compare=compare_values,
          hint="keep the rows with false_regions_per_film <= budget; if none, return None; else take the "
               "largest recall and, among ties, the largest threshold; return it as a float")
def threshold_for_budget(sweep: pd.DataFrame, budget: float) -> float | None:
    """Reference: the threshold with the highest recall among those with at most ``budget`` false regions per film, ties to the highest threshold; None when none qualifies (notebook 06, exercise)."""
    ok = sweep[sweep["false_regions_per_film"] <= budget]
    if ok.empty:
        return None
    best = ok[ok["recall"] == ok["recall"].max()]
    return float(best["threshold"].max())
