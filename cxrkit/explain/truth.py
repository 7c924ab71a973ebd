"""Attribution maps measured against ground truth: masks, NIH-style boxes, pointing game, mass inside, baselines.

Ground truth comes as boolean masks (synthetic cohort; possibly at a higher resolution than the map) or as
boxes ``(x, y, w, h)`` in some pixel space (NIH ``BBox_List_2017.csv``); both become a mask at the map's
size here, so they share one code path. Taught in notebook 05 (saliency).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage

from cxrkit.datasets.nih_cxr14 import BOX_COLUMNS, read_nih_box_file
from cxrkit.ground_truth import films_with_finding, synthetic_truth_masks  # the one reader of masks; re-exported here

Box = Sequence[float]  # (x, y, w, h): x, y the top-left corner, in pixels of a stated source space
Shape = tuple[int, int]
Truth = Union[np.ndarray, Box, Sequence[Box], None]


def _shape(shape: Sequence[int]) -> Shape:
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape must be (height, width) with positive ints, got {tuple(shape)!r}")
    return int(shape[0]), int(shape[1])


def as_map(attr_map: object) -> np.ndarray:
    """Return a 2-D float64 copy of an attribution map (numpy array or tensor; leading singleton axes dropped) (notebook 05)."""
    if isinstance(attr_map, torch.Tensor):
        attr_map = attr_map.detach().cpu().numpy()
    a = np.array(attr_map, dtype=np.float64, copy=True)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"an attribution map must be 2-D (H, W); got shape {np.shape(attr_map)}")
    if not np.isfinite(a).all():
        raise ValueError("the attribution map contains NaN or infinite values")
    return a


def resize_mask(mask: np.ndarray, shape: Sequence[int], *, area_threshold: float = 0.5, keep_nonempty: bool = True) -> np.ndarray:
    """Resize a boolean mask ``(H, W)`` or ``(N, H, W)`` to ``shape``: nearest when enlarging, covered area > ``area_threshold`` when shrinking (notebook 05).

    With ``keep_nonempty`` a non-empty mask never becomes empty: its best-covered pixel(s) are kept.
    """
    shape = _shape(shape)
    m = np.asarray(mask)
    if m.ndim not in (2, 3):
        raise ValueError(f"a mask must be (H, W) or (N, H, W); got shape {m.shape}")
    m2 = m.astype(bool)[None] if m.ndim == 2 else m.astype(bool)
    if m2.shape[-2:] == shape:
        out = m2.copy()
    else:
        t = torch.from_numpy(m2.astype(np.float32))[:, None]
        big = (max(shape[0], t.shape[-2]), max(shape[1], t.shape[-1]))
        if big != tuple(t.shape[-2:]):
            t = F.interpolate(t, size=big, mode="nearest")
        frac = F.adaptive_avg_pool2d(t, shape)[:, 0].numpy()
        out = frac > area_threshold
        if keep_nonempty:
            for i in np.flatnonzero(~out.any(axis=(1, 2)) & m2.any(axis=(1, 2))):
                out[i] = frac[i] >= frac[i].max()
    return out[0] if m.ndim == 2 else out


def box_to_mask(box: Box, shape: Sequence[int], source_shape: Sequence[int] | None = None, *, area_threshold: float = 0.5, keep_nonempty: bool = True) -> np.ndarray:
    """Return the boolean ``shape`` mask of a box ``(x, y, w, h)`` given in ``source_shape`` pixels (default: ``shape``), pixels covered > ``area_threshold`` (notebook 05)."""
    shape = _shape(shape)
    source = shape if source_shape is None else _shape(source_shape)
    if len(box) != 4:
        raise ValueError(f"a box is (x, y, w, h); got {box!r}")
    x, y, w, h = (float(v) for v in box)
    if w < 0 or h < 0 or not np.isfinite([x, y, w, h]).all():
        raise ValueError(f"box {tuple(box)!r} must have finite values and w, h >= 0")
    sy, sx = shape[0] / source[0], shape[1] / source[1]
    y0, y1, x0, x1 = y * sy, (y + h) * sy, x * sx, (x + w) * sx
    rows, cols = np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float)
    fy = np.clip(np.minimum(rows + 1, y1) - np.maximum(rows, y0), 0, 1)
    fx = np.clip(np.minimum(cols + 1, x1) - np.maximum(cols, x0), 0, 1)
    frac = fy[:, None] * fx[None, :]
    out = frac > area_threshold
    if keep_nonempty and not out.any() and frac.max() > 0:
        out = frac >= frac.max()
    return out


def as_truth_mask(truth: Truth, shape: Sequence[int], source_shape: Sequence[int] | None = None) -> np.ndarray:
    """Return one boolean ``shape`` mask from a mask (any resolution), a box, a list of boxes/masks (union), or None (empty) (notebook 05)."""
    shape = _shape(shape)
    return truth_objects(truth, shape, source_shape).any(axis=0) if truth is not None else np.zeros(shape, bool)


def truth_objects(truth: Truth, shape: Sequence[int], source_shape: Sequence[int] | None = None) -> np.ndarray:
    """Return the truth as separate objects ``(N, H, W)`` at ``shape``: each box or mask given, or a single mask's connected components (notebook 06).

    Accepted: None (no finding), a boolean mask ``(H, W)`` / ``(N, H, W)``, one box ``(x, y, w, h)``, an ``(N, 4)``
    array or a frame with ``x, y, w, h`` columns of boxes (in ``source_shape`` pixels), or a list of any of these.
    """
    shape = _shape(shape)
    empty = np.zeros((0, *shape), bool)
    if truth is None:
        return empty
    if isinstance(truth, pd.DataFrame):
        truth = truth[["x", "y", "w", "h"]].to_numpy(float)
    if isinstance(truth, (list, tuple)) and not (len(truth) == 4 and all(np.ndim(v) == 0 for v in truth)):
        parts = [truth_objects(item, shape, source_shape) for item in truth]
        return np.concatenate(parts) if parts else empty
    arr = np.asarray(truth)
    if arr.dtype != bool and arr.ndim == 1 and arr.shape[0] == 4:
        return box_to_mask(arr, shape, source_shape)[None]
    if arr.dtype != bool and arr.ndim == 2 and arr.shape[1] == 4:
        return np.stack([box_to_mask(b, shape, source_shape) for b in arr]) if len(arr) else empty
    if arr.ndim == 2:
        labels, n = ndimage.label(resize_mask(arr, shape), structure=np.ones((3, 3)))
        return labels[None] == np.arange(1, n + 1)[:, None, None]
    if arr.ndim == 3:
        objects = resize_mask(arr, shape)
        return objects[objects.any(axis=(1, 2))]
    raise ValueError(f"cannot read ground truth of shape {arr.shape}: give a mask, a box (x, y, w, h) or a list of them")


def read_bbox_list(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Return ground-truth boxes as columns ``image_id, finding, x, y, w, h``: from an NIH ``BBox_List_2017.csv`` (or the synthetic cohort's copy) via the kit's one reader, :func:`cxrkit.datasets.read_nih_box_file`, or from a frame that already has those columns (notebook 05)."""
    if not isinstance(source, pd.DataFrame):
        return read_nih_box_file(source)
    missing = [c for c in BOX_COLUMNS if c not in source.columns]
    if missing:
        raise ValueError(f"a box table needs the columns {list(BOX_COLUMNS)}; this one lacks {missing}")
    boxes = source[list(BOX_COLUMNS)].copy()
    boxes[["x", "y", "w", "h"]] = boxes[["x", "y", "w", "h"]].astype(float)
    return boxes.reset_index(drop=True)


def pointing_game(attr_map: object, mask: Truth, *, tolerance: float = 0.0, source_shape: Sequence[int] | None = None) -> bool:
    """Return whether the map's maximum (first in raster order) lies within ``tolerance`` pixels of the truth (notebook 05)."""
    a = as_map(attr_map)
    truth = as_truth_mask(mask, a.shape, source_shape)
    if not truth.any():
        raise ValueError("the truth mask is empty at the map's size: the pointing game is undefined")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    r, c = np.unravel_index(int(np.argmax(a)), a.shape)
    if tolerance == 0:
        return bool(truth[r, c])
    return bool(ndimage.distance_transform_edt(~truth)[r, c] <= tolerance)


def mass_inside(attr_map: object, mask: Truth, *, source_shape: Sequence[int] | None = None) -> float:
    """Return the share of positive attribution mass inside the truth mask (NaN when the map has no positive mass) (notebook 05)."""
    a = np.clip(as_map(attr_map), 0, None)
    truth = as_truth_mask(mask, a.shape, source_shape)
    total = a.sum()
    return float(a[truth].sum() / total) if total > 0 else float("nan")


def random_map(shape: Sequence[int], rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Return a uniform random attribution map, the chance baseline for pointing game and mass inside (notebook 05)."""
    return np.random.default_rng(rng).random(_shape(shape))


def centre_bias_map(shape: Sequence[int], sigma: float = 0.25) -> np.ndarray:
    """Return a centred Gaussian map (``sigma`` as a fraction of each side), the "always look in the middle" baseline (notebook 05)."""
    h, w = _shape(shape)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    yy = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    xx = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    return np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
