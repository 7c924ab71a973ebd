"""Films, maps and truth outlines as PNG images inside plotly figures: a few kB a panel, not a JSON array of floats.

A 128×128 film drawn as a plotly heatmap is written into the notebook as 16,384 JSON numbers (about 300 kB),
once per panel; notebook 05's film explorer held 70 MB of them. As an 8-bit PNG the same film is about 15 kB,
and maps and outlines compress further. The price is the hover: an image trace shows the pixel and its
colour, not the map's value. Used by :mod:`cxrkit.explain.figures` (notebooks 05 and 06) and
:mod:`cxrkit.widgets` (notebook 06's explorer).
"""
from __future__ import annotations

import base64
import io
from functools import lru_cache

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image
from scipy import ndimage

#: The outline colour of a ground-truth mask (RGB).
TRUTH_RGB = (0, 255, 0)


def png_data_uri(pixels: np.ndarray, palette: np.ndarray | None = None) -> str:
    """Encode ``uint8`` pixels as a ``data:image/png`` URI: ``(H, W)`` grey, or indices into ``palette``
    (``(256, 3)`` uint8: one byte a pixel instead of three), or ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, got {pixels.dtype}")
    if palette is None:
        image = Image.fromarray(pixels)
    else:
        if pixels.ndim != 2:
            raise ValueError(f"palette indices must be (H, W), got shape {pixels.shape}")
        image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), np.ascontiguousarray(pixels).tobytes())
        image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def grey_pixels(film: np.ndarray) -> np.ndarray:
    """A film stretched min–max to 0–255, as plotly's grey heatmap would draw it."""
    film = np.asarray(film, dtype=np.float64)
    low, high = float(film.min()), float(film.max())
    scaled = (film - low) / (high - low) if high > low else np.zeros_like(film)
    return np.round(255 * scaled).astype(np.uint8)


@lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    """A plotly colour scale (e.g. ``"Hot"``, ``"RdBu_r"``) sampled at 256 levels, as a ``(256, 3)`` uint8 table."""
    samples = plotly.colors.sample_colorscale(name, list(np.linspace(0.0, 1.0, 256)), colortype="tuple")
    return np.round(255 * np.asarray(samples, dtype=np.float64)).astype(np.uint8)


def map_levels(attr_map: np.ndarray, *, signed: bool) -> np.ndarray:
    """A map already scaled to [-1, 1] (signed) or [0, 1] as 256 colour levels, ``(h, w)`` uint8."""
    a = np.asarray(attr_map, dtype=np.float64)
    unit = (np.clip(a, -1.0, 1.0) + 1.0) / 2.0 if signed else np.clip(a, 0.0, 1.0)
    return np.round(255 * unit).astype(np.uint8)


def map_scale(signed: bool) -> str:
    """The colour scale of a map: ``RdBu_r`` (blue against, red for) when signed, else ``Hot``."""
    return "RdBu_r" if signed else "Hot"


def outline_pixels(mask: np.ndarray, rgb: tuple[int, int, int] = TRUTH_RGB) -> np.ndarray:
    """The one-pixel inner edge of a boolean mask in ``rgb``, transparent elsewhere, as ``(H, W, 4)`` uint8."""
    mask = np.asarray(mask, dtype=bool)
    edge = mask & ~ndimage.binary_erosion(mask)
    out = np.zeros((*mask.shape, 4), dtype=np.uint8)
    out[edge] = (*rgb, 255)
    return out


def film_image(film: np.ndarray, **trace: object) -> go.Image:
    """A film as a grey PNG image trace, pixel centres at 0 … W−1 like a heatmap's (notebooks 05, 06)."""
    return go.Image(source=png_data_uri(grey_pixels(film)), hoverinfo="skip", **trace)


def map_image(attr_map: np.ndarray, film_shape: tuple[int, int], *, signed: bool, **trace: object) -> go.Image:
    """A scaled map as a coloured PNG image trace stretched over a film of ``film_shape`` (notebooks 05, 06)."""
    h, w = film_shape
    sy, sx = h / attr_map.shape[0], w / attr_map.shape[1]
    pixels = map_levels(attr_map, signed=signed)
    return go.Image(source=png_data_uri(pixels, palette=colour_table(map_scale(signed))), x0=0.5 * sx - 0.5, dx=sx,
                    y0=0.5 * sy - 0.5, dy=sy, hovertemplate="x %{x:.0f}, y %{y:.0f}<extra></extra>", **trace)


def outline_image(mask: np.ndarray, **trace: object) -> go.Image:
    """A truth mask's outline as a transparent PNG image trace, for drawing over a film (notebooks 05, 06)."""
    return go.Image(source=png_data_uri(outline_pixels(mask)), hoverinfo="skip", name="truth", **trace)
