"""One image reader for every dataset: DICOM through the display pipeline, PNG/JPEG through Pillow.

Every reader returns float32 H×W in [0, 1]. PNG/JPEG values are divided by their bit depth's
maximum (255 or 65535) — no contrast stretching, since those files are already display images
(MIMIC-CXR-JPG is inverted and equalised, NIH PNGs are 8-bit). RGB/RGBA/palette images are
collapsed to luminance (alpha is ignored). A PNG/JPEG whose declared width × height exceeds
:data:`cxrkit.io.dicom.MAX_PIXELS` (100 megapixels unless raised) is refused before its pixels are
decoded, as a DICOM is; Pillow's own decompression-bomb guard stays on. Taught in notebook 01.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrkit.errors import ImageReadError

from . import dicom as _dicom
from .dicom import read_dicom
from .resize import Aspect, resize_gray

__all__ = ["read_image", "read_raster", "to_uint8", "DICOM_SUFFIXES", "RASTER_SUFFIXES"]

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
RASTER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_raster(path: str | Path) -> np.ndarray:
    """Read an 8- or 16-bit PNG/JPEG (gray, RGB, RGBA, palette) into float32 H×W in [0, 1] (notebook 01)."""
    try:
        with Image.open(path) as image:
            _check_declared_size(image, path)
            image.load()  # Image.open is lazy: truncation shows up only when the pixels are decoded
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(image, dtype=np.float32) / 65535.0
            elif mode == "I":
                values = np.asarray(image, dtype=np.int64)
                if values.min() < 0:
                    raise ImageReadError(path, "32-bit signed pixels are not a supported image format")
                arr = values.astype(np.float32) / (65535.0 if values.max() <= 65535 else float(values.max()))
            elif mode == "F":
                values = np.asarray(image, dtype=np.float32)
                arr = values if values.min() >= 0 and values.max() <= 1 else _unit(values)
            elif mode == "L":
                arr = np.asarray(image, dtype=np.float32) / 255.0
            else:  # 1, P, LA, RGB, RGBA, CMYK, YCbCr …: luminance, alpha ignored
                arr = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except UnidentifiedImageError as err:
        raise ImageReadError(path, f"not a recognised image file ({err})") from err
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"refused before decoding, as a likely decompression bomb: {err} "
                                   "(PIL.Image.MAX_IMAGE_PIXELS)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"cannot decode the image, it may be truncated or corrupt ({type(err).__name__}: {err})") from err
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D grayscale image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def _check_declared_size(image: Image.Image, path: str | Path) -> None:
    """Raise ImageReadError when an opened (not yet decoded) image declares more than MAX_PIXELS pixels."""
    width, height = image.size
    declared = width * height
    if declared > _dicom.MAX_PIXELS:
        raise ImageReadError(path, f"the image declares {width}×{height} pixels ({declared / 1e6:.1f} megapixels), "
                                   f"over the limit of "
                                   f"{_dicom.MAX_PIXELS / 1e6:.1f} megapixels (cxrkit.io.dicom.MAX_PIXELS); refused "
                                   "before decoding, as a likely decompression bomb — raise the limit to read it")


def _unit(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return np.zeros_like(values) if not hi > lo else (values - lo) / (hi - lo)


def read_image(path: str | Path, size: int | None = None, *, aspect: Aspect = "pad") -> np.ndarray:
    """Read a .dcm/.png/.jpg chest X-ray into float32 H×W in [0, 1], optionally resized to ``size``×``size`` (notebook 01).

    Dispatches on the suffix; a file with another suffix is read as DICOM when it carries the
    ``DICM`` marker, else rejected. ``aspect`` is ``"pad"`` (default, keep proportions on a black
    square) or ``"stretch"`` — see :mod:`cxrkit.io.resize`. Unreadable files raise ImageReadError.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return read_dicom(path, size, aspect=aspect)
    if suffix in RASTER_SUFFIXES:
        arr = read_raster(path)
    elif not path.exists():
        raise ImageReadError(path, "file not found")
    elif _looks_like_dicom(path):
        return read_dicom(path, size, aspect=aspect)
    else:
        raise ImageReadError(path, f"unsupported file type {suffix or '(no suffix)'!r}; "
                                   f"expected one of {DICOM_SUFFIXES + RASTER_SUFFIXES}")
    return arr if size is None else resize_gray(arr, size, aspect)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a [0, 1] float image to uint8 (round to nearest, clipped) for the image cache (notebook 01)."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"to_uint8 expects a float array in [0, 1] (or uint8), got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("to_uint8 got NaN or infinite values")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
