"""Resizing a grayscale display image to a square model input, with the aspect handling made explicit.

Two choices, named by ``aspect``:

* ``"pad"`` (the default) keeps the anatomy's proportions: the longer side is scaled to ``size``,
  the shorter side keeps the same scale, and the image is centred on a black (0.0) square.
  Odd leftovers go to the bottom/right.
* ``"stretch"`` scales height and width independently to ``size`` (plain resize; distorts a
  non-square radiograph slightly, which is what many CheXpert/MIMIC pipelines do).

Downscaling is area averaging (PIL ``BOX``), upscaling is bilinear; both work on float32 so
16-bit DICOM detail is not quantised before the model sees it. Taught in notebook 01 (data prep).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Aspect = Literal["pad", "stretch"]
ASPECTS: tuple[str, ...] = ("pad", "stretch")


def _resample(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float32 H×W array to (height, width): area average when shrinking, bilinear when growing."""
    if arr.shape == (height, width):
        return arr.astype(np.float32, copy=True)
    shrinking = height <= arr.shape[0] and width <= arr.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))
    return np.asarray(image.resize((width, height), resample=method), dtype=np.float32)


def resize_gray(arr: np.ndarray, size: int, aspect: Aspect = "pad") -> np.ndarray:
    """Resize a 2-D grayscale array to ``size``×``size`` float32, padding (default) or stretching (notebook 01)."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"resize_gray expects a 2-D grayscale array, got shape {arr.shape}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if aspect not in ASPECTS:
        raise ValueError(f"aspect must be one of {ASPECTS}, got {aspect!r}")
    height, width = arr.shape
    if height == 0 or width == 0:
        raise ValueError(f"cannot resize an empty image of shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if aspect == "stretch":
        return _resample(arr, int(size), int(size))
    scale = size / max(height, width)
    new_h = min(size, max(1, round(height * scale)))
    new_w = min(size, max(1, round(width * scale)))
    scaled = _resample(arr, new_h, new_w)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top:top + new_h, left:left + new_w] = scaled
    return out
