"""Clustered localization: keep the strongest attributions, cluster the surviving pixels, one region per cluster.

The recipe of the original clustered-IG project, as one pure function: sign → (smooth) → normalise →
threshold → cluster (single linkage with a distance cutoff, DBSCAN, or connected components) → a circle
or box and a score (attribution mass) per cluster. Taught in notebook 06 (clustered IG localization).

Coordinates: ``x`` is the column and ``y`` the row, in pixels of the attribution map, pixel centres at integers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.cluster import DBSCAN

from .truth import _shape, as_map

SIGNS = ("positive", "absolute")
NORMALISATIONS = ("minmax", "max", "none")
THRESHOLD_MODES = ("quantile", "absolute")
CLUSTER_METHODS = ("single_linkage", "dbscan", "components")
REGION_SHAPES = ("circle", "box")
#: Above this many surviving pixels, single linkage switches from scipy's O(n²) ``linkage`` to the
#: identical clusters of :func:`grid_single_linkage_labels` (components + k-d tree on their edge pixels).
MAX_LINKAGE_POINTS = 2000
_COLUMNS = ("cx", "cy", "radius", "x0", "y0", "x1", "y1", "score", "peak", "n_pixels")


@dataclass(frozen=True)
class Regions:
    """The regions found in one attribution map (notebook 06): one entry per cluster, strongest score first."""

    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    score: np.ndarray
    peak: np.ndarray
    n_pixels: np.ndarray
    shape: str = "circle"
    map_shape: tuple[int, int] = (0, 0)
    n_surviving: int = 0
    threshold_value: float = float("nan")
    params: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.cx.shape[0])

    @classmethod
    def empty(cls, map_shape: Sequence[int], shape: str = "circle", **meta) -> "Regions":
        """Return a result with no regions for a map of ``map_shape``."""
        zeros = {c: np.zeros(0, dtype=np.int64 if c == "n_pixels" else np.float64) for c in _COLUMNS}
        return cls(**zeros, shape=shape, map_shape=_shape(map_shape), **meta)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per region: centre, radius, box corners, score, peak, pixel count and shape."""
        df = pd.DataFrame({c: getattr(self, c) for c in _COLUMNS})
        df["shape"] = self.shape
        return df

    def geometry(self, shape: Sequence[int] | None = None) -> pd.DataFrame:
        """Return each region in the pixel space of ``shape`` (default: the map's): centre ``cx, cy``, radii ``rx, ry`` and box edges ``left, top, right, bottom``."""
        h, w = self.map_shape if shape is None else _shape(shape)
        sy, sx = h / self.map_shape[0], w / self.map_shape[1]
        return pd.DataFrame({
            "cx": (self.cx + 0.5) * sx - 0.5, "cy": (self.cy + 0.5) * sy - 0.5,
            "rx": self.radius * sx, "ry": self.radius * sy,
            "left": self.x0 * sx - 0.5, "top": self.y0 * sy - 0.5,
            "right": (self.x1 + 1) * sx - 0.5, "bottom": (self.y1 + 1) * sy - 0.5,
        })

    def masks(self, shape: Sequence[int] | None = None) -> np.ndarray:
        """Return one boolean mask per region, ``(n, H, W)``, drawn at ``shape`` (default: the map's size)."""
        h, w = self.map_shape if shape is None else _shape(shape)
        g = self.geometry((h, w))
        rows = np.arange(h, dtype=float)[None, :, None]
        cols = np.arange(w, dtype=float)[None, None, :]
        col = lambda name: g[name].to_numpy(float)[:, None, None]  # noqa: E731
        if self.shape == "circle":
            rx, ry = col("rx"), col("ry")
            return (cols - col("cx")) ** 2 * ry**2 + (rows - col("cy")) ** 2 * rx**2 <= (rx * ry) ** 2
        return (cols >= col("left")) & (cols < col("right")) & (rows >= col("top")) & (rows < col("bottom"))

    def union_mask(self, shape: Sequence[int] | None = None) -> np.ndarray:
        """Return the union of all region masks, ``(H, W)``."""
        size = self.map_shape if shape is None else _shape(shape)
        return self.masks(size).any(axis=0) if len(self) else np.zeros(size, bool)


def _check(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _normalise(a: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return a
    top = a.max()
    if how == "max":
        return a / top if top > 0 else np.zeros_like(a)
    low = a.min()
    return (a - low) / (top - low) if top > low else np.zeros_like(a)


def single_linkage_labels(points: np.ndarray, distance: float) -> np.ndarray:
    """Return flat single-linkage cluster labels (0..k-1) of ``(n, 2)`` points with cutoff ``distance``, via scipy ``linkage`` + ``fcluster`` (notebook 06)."""
    if len(points) <= 1:
        return np.zeros(len(points), dtype=np.int64)
    return fcluster(linkage(points, method="single"), t=distance, criterion="distance").astype(np.int64) - 1


def grid_single_linkage_labels(keep: np.ndarray, distance: float) -> np.ndarray:
    """Return the same clusters as :func:`single_linkage_labels` for the pixels of a boolean grid, in raster order, in ~O(n) (notebook 06).

    Single linkage with a cutoff is "connected within ``distance``". Touching pixels are linked first
    (connected components); two components are then linked when some pair of their *edge* pixels is
    within ``distance`` (the closest pair between two pixel sets always lies on their edges), found with a k-d tree.
    """
    n = int(keep.sum())
    if distance < 1:
        return np.arange(n, dtype=np.int64)
    struct = ndimage.generate_binary_structure(2, 2 if distance >= np.sqrt(2) else 1)
    comp, n_comp = ndimage.label(keep, structure=struct)
    edge = keep & ~ndimage.binary_erosion(keep, structure=struct, border_value=0)
    edge_comp = comp[edge] - 1
    pairs = cKDTree(np.argwhere(edge)).query_pairs(r=distance, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (edge_comp[pairs[:, 0]], edge_comp[pairs[:, 1]])), shape=(n_comp, n_comp))
    merged = connected_components(graph, directed=False)[1]
    return merged[comp[keep] - 1].astype(np.int64)


def _cluster(keep: np.ndarray, points: np.ndarray, method: str, distance: float, min_samples: int, max_points: int) -> np.ndarray:
    if method == "single_linkage":
        if len(points) <= max_points:
            return single_linkage_labels(points, distance)
        return grid_single_linkage_labels(keep, distance)
    if method == "dbscan":
        return DBSCAN(eps=distance, min_samples=min_samples).fit_predict(points).astype(np.int64)
    labels, _ = ndimage.label(keep, structure=np.ones((3, 3), dtype=int))
    return labels[keep].astype(np.int64) - 1


def localize(
    attr_map: object,
    *,
    sign: str = "positive",
    normalise: str = "minmax",
    threshold: float = 0.7,
    threshold_mode: str = "absolute",
    smooth_sigma: float = 0.0,
    method: str = "single_linkage",
    distance: float = 10.0,
    min_cluster_size: int = 5,
    min_samples: int = 4,
    shape: str = "circle",
    padding: float = 5.0,
    max_linkage_points: int = MAX_LINKAGE_POINTS,
) -> Regions:
    """Return the regions of one 2-D attribution map: threshold the strongest attributions, cluster the survivors, one circle/box per cluster (notebook 06).

    ``threshold`` is a value of the normalised map (``threshold_mode="absolute"``) or a quantile of it
    (``"quantile"``); pixels with no attribution of the chosen ``sign`` never survive. ``distance`` is the
    single-linkage cutoff / DBSCAN ``eps`` in pixels (components use 8-connectivity and ignore it);
    ``min_samples`` is DBSCAN's; clusters smaller than ``min_cluster_size`` pixels are dropped. A circle's
    radius is the largest pixel distance to the cluster centre plus ``padding``; a box is padded alike.
    ``score`` is the cluster's attribution mass (``sign`` applied, before smoothing and normalising).
    The input is never modified; no survivor gives an empty :class:`Regions`.
    """
    _check("sign", sign, SIGNS)
    _check("normalise", normalise, NORMALISATIONS)
    _check("threshold_mode", threshold_mode, THRESHOLD_MODES)
    _check("method", method, CLUSTER_METHODS)
    _check("shape", shape, REGION_SHAPES)
    if threshold_mode == "quantile" and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a quantile threshold must lie in [0, 1], got {threshold!r}")
    if not distance > 0:
        raise ValueError(f"distance must be > 0, got {distance!r}")
    if smooth_sigma < 0 or padding < 0:
        raise ValueError(f"smooth_sigma and padding must be >= 0, got {smooth_sigma!r} and {padding!r}")
    if int(min_cluster_size) < 1 or int(min_samples) < 1:
        raise ValueError(f"min_cluster_size and min_samples must be >= 1, got {min_cluster_size!r} and {min_samples!r}")
    params = dict(sign=sign, normalise=normalise, threshold=threshold, threshold_mode=threshold_mode,
                  smooth_sigma=smooth_sigma, method=method, distance=distance, min_cluster_size=min_cluster_size,
                  min_samples=min_samples, shape=shape, padding=padding)

    raw = as_map(attr_map)  # a float64 copy: the caller's array is never written
    mass = np.clip(raw, 0, None) if sign == "positive" else np.abs(raw)
    work = ndimage.gaussian_filter(mass, smooth_sigma) if smooth_sigma > 0 else mass
    norm = _normalise(work, normalise)
    cut = float(np.quantile(norm, threshold)) if threshold_mode == "quantile" else float(threshold)
    keep = (norm >= cut) & (work > 0)
    n_surviving = int(keep.sum())
    meta = dict(n_surviving=n_surviving, threshold_value=cut, params=params)
    if n_surviving == 0:
        return Regions.empty(raw.shape, shape, **meta)

    rows, cols = np.nonzero(keep)
    points = np.column_stack([rows, cols]).astype(float)
    labels = _cluster(keep, points, method, float(distance), int(min_samples), int(max_linkage_points))
    valid = labels >= 0
    rows, cols, labels = rows[valid], cols[valid], labels[valid]
    if labels.size == 0:
        return Regions.empty(raw.shape, shape, **meta)
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)
    big = counts >= min_cluster_size
    if not big.any():
        return Regions.empty(raw.shape, shape, **meta)
    new_id = np.cumsum(big) - 1  # relabel kept clusters 0..m-1
    sel = big[labels]
    rows, cols, labels = rows[sel], cols[sel], new_id[labels[sel]]
    m, counts = int(big.sum()), counts[big]

    cy = np.bincount(labels, weights=rows, minlength=m) / counts
    cx = np.bincount(labels, weights=cols, minlength=m) / counts
    dist = np.hypot(rows - cy[labels], cols - cx[labels])
    radius, peak = np.zeros(m), np.zeros(m)
    np.maximum.at(radius, labels, dist)
    np.maximum.at(peak, labels, mass[rows, cols])
    x0, y0 = np.full(m, np.inf), np.full(m, np.inf)
    x1, y1 = np.full(m, -np.inf), np.full(m, -np.inf)
    np.minimum.at(x0, labels, cols), np.minimum.at(y0, labels, rows)
    np.maximum.at(x1, labels, cols), np.maximum.at(y1, labels, rows)
    score = np.bincount(labels, weights=mass[rows, cols], minlength=m)

    order = np.argsort(-score, kind="stable")
    pick = lambda v: np.ascontiguousarray(v[order])  # noqa: E731
    return Regions(
        cx=pick(cx), cy=pick(cy), radius=pick(radius + padding),
        x0=pick(x0 - padding), y0=pick(y0 - padding), x1=pick(x1 + padding), y1=pick(y1 + padding),
        score=pick(score), peak=pick(peak), n_pixels=pick(counts.astype(np.int64)),
        shape=shape, map_shape=raw.shape, **meta,
    )
