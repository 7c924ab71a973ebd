"""The DICOM display pipeline (stored values → what a radiologist sees, as float32 in [0, 1]) and header fields.

The pipeline, in the order the DICOM standard applies it (taught step by step in notebook 01):

1. ``ds.pixel_array`` — the raw stored values, never inverted (first frame of a multi-frame file);
2. ``pydicom.pixels.apply_modality_lut`` — Modality LUT Sequence or rescale slope/intercept;
3. ``pydicom.pixels.apply_voi_lut(..., prefer_lut=True)`` — the VOI LUT Sequence when present, else the
   *first* window of Window Center/Width; when neither is present the modality values are min–max scaled;
4. scaling to [0, 1] by the VOI output range (the LUT's own smallest/largest entry; for a window the
   output range pydicom maps onto, i.e. the modality output range);
5. one inversion when ``PhotometricInterpretation`` is MONOCHROME1 *or* ``PresentationLUTShape`` is
   INVERSE — the two describe the same inversion and are never applied twice;
6. optionally :func:`cxrkit.io.resize.resize_gray` to a square (``aspect="pad"`` by default).

Before a VOI LUT Sequence the modality values are cast back to integers (they are integers whenever
slope and intercept are integral; otherwise they are rounded, since a LUT is indexed by integers).
Files that cannot be decoded raise :class:`cxrkit.errors.ImageReadError` naming the file and the
transfer syntax; a compressed transfer syntax for which no pydicom decoder plugin is installed (JPEG
Lossless and JPEG-LS need pylibjpeg-libjpeg or python-gdcm; JPEG 2000 is read by Pillow or
pylibjpeg-openjpeg) is told apart from corrupt data and names the fix, ``pip install "cxrkit[dicom-codecs]"``.
Before any pixel is decoded, the size the header declares (Rows × Columns × frames) is checked against
:data:`MAX_PIXELS`, so a small compressed file that declares a huge film (a decompression bomb) is refused
instead of exhausting memory; a truncated file is said to be truncated; stored values that use bits above
``BitsStored`` (which the decoder masks away) draw a :class:`DicomValueWarning` naming the file — the decoded
values themselves are never changed.
"""
from __future__ import annotations

import math
import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset as _pydicom_read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

from cxrkit.errors import ImageReadError

from .resize import Aspect, resize_gray

__all__ = ["read_dicom", "read_dataset", "dicom_to_display", "dicom_header_fields", "parse_age", "transfer_syntax_name",
           "MAX_PIXELS", "DicomValueWarning", "check_declared_size", "CODECS_INSTALL"]

#: The most pixels (Rows × Columns × frames) a film may declare before it is decoded: 100 megapixels.
#: Real chest X-rays are at most about 4300 × 3500 ≈ 15 MP; a larger declaration is refused as a likely
#: decompression bomb (a few hundred kB of deflated zeros can declare 65535² pixels, ~8.6 GB decoded).
#: Raise it (``cxrkit.io.dicom.MAX_PIXELS = ...``) to read larger films; it also bounds PNG/JPEG inputs
#: (:mod:`cxrkit.io.images`), and the image cache hands its current value to its worker processes.
MAX_PIXELS: int = 100_000_000

#: The command that installs pydicom's decoder plugins for compressed transfer syntaxes (the optional extra).
CODECS_INSTALL = 'pip install "cxrkit[dicom-codecs]"'

#: How much of a deflated file's inflated data is examined to find the declared film size.
_DEFLATE_PEEK_BYTES = 1 << 20


class DicomValueWarning(UserWarning):
    """A DICOM file's stored values are outside what its header declares (the file is decoded as the standard says, but may look wrong)."""


def transfer_syntax_name(ds: Dataset) -> str:
    """Return ``"<name> (<uid>)"`` of a dataset's transfer syntax, or a note that it has none (notebook 01)."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        return "unknown transfer syntax (no file meta information)"
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def read_dataset(path: str | Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file with pydicom, turning any failure into ImageReadError naming the file (notebook 01).

    A deflated file is inflated by pydicom as a whole, so its declared film size is checked against
    :data:`MAX_PIXELS` first, from the first megabyte of its inflated data.
    """
    try:
        _check_deflated_size(path)
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except Exception as err:  # InvalidDicomError, EOFError, struct errors … in a corrupt or non-DICOM file
        raise ImageReadError(path, f"not a readable DICOM file ({type(err).__name__}: {err})") from err


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def check_declared_size(ds: Dataset, path: str | Path = "<dataset>") -> None:
    """Raise ImageReadError when the film ``ds`` declares (Rows × Columns × frames) exceeds :data:`MAX_PIXELS` — before any decoding."""
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames = max(1, _int(ds.get("NumberOfFrames"), 1))
    declared = rows * columns * frames
    if declared > MAX_PIXELS:
        shape = f"{rows}×{columns}" + (f"×{frames} frames" if frames > 1 else "")
        raise ImageReadError(path, f"the header declares a {shape} film ({declared / 1e6:.1f} megapixels), over the "
                                   f"limit of {MAX_PIXELS / 1e6:.1f} megapixels (cxrkit.io.dicom.MAX_PIXELS); refused "
                                   "before decoding, as a likely decompression bomb — raise the limit to read it")


def _check_deflated_size(path: str | Path) -> None:
    """For a Deflated Explicit VR Little Endian file, check the declared film size without inflating the whole file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(144)
            if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
                return  # no standard file meta group: pydicom decides what this is
            meta = pydicom.filereader.read_file_meta_info(path)
            if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
                return
            handle.seek(144 + int(meta.get("FileMetaInformationGroupLength", 0)))
            inflater, inflated = zlib.decompressobj(-zlib.MAX_WBITS), b""
            while len(inflated) < _DEFLATE_PEEK_BYTES:
                data = handle.read(1 << 16) or inflater.unconsumed_tail
                if not data:
                    break
                inflated += inflater.decompress(data, _DEFLATE_PEEK_BYTES - len(inflated))
                if inflater.eof:
                    break
    except Exception:  # unreadable here (missing, corrupt meta group or stream): the full read reports it
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peeked data ends mid-element by design
        try:
            header = _pydicom_read_dataset(DicomBytesIO(inflated), False, True,
                                           stop_when=lambda tag, vr, length: tag.group > 0x0028)
        except Exception:
            return
    check_declared_size(header, path)


def _raw_pixels(ds: Dataset, path: str | Path) -> np.ndarray:
    """Decode the stored pixel values of the first frame, naming the transfer syntax when that fails."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, _no_pixel_data_reason(ds, path))
    check_declared_size(ds, path)
    _check_native_length(ds, path)
    missing = _missing_decoders(ds)
    if missing is not None and not missing[0]:
        raise ImageReadError(path, missing[1])
    try:
        arr = ds.pixel_array
    except Exception as err:  # truncated or corrupt pixel data (a missing decoder was caught above)
        hint = ""
        if missing is not None and missing[1]:
            hint = (" — the compressed data may be corrupt, or another decoder plugin may read it "
                    f"(not installed: {missing[1]}; {CODECS_INSTALL})")
        raise ImageReadError(path, f"cannot decode pixel data with transfer syntax {transfer_syntax_name(ds)}: "
                                   f"{type(err).__name__}: {err}{hint}") from err
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    _warn_bits_above_stored(ds, path)
    if frames > 1:
        arr = arr[0]
    if samples > 1:
        if arr.ndim != 3:
            raise ImageReadError(path, f"unexpected pixel array shape {arr.shape} for {samples} samples per pixel")
        # colour (secondary capture): luminance, weights of ITU-R BT.601
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D image, got pixel array shape {arr.shape}")
    return arr


def _missing_decoders(ds: Dataset) -> tuple[bool, str] | None:
    """For a compressed transfer syntax: (a decoder is installed, the reason / the plugins not installed); else None."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid or not uid.is_transfer_syntax or not uid.is_compressed:
        return None
    name = transfer_syntax_name(ds)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return False, (f"pydicom has no decoder at all for transfer syntax {name}, so no plugin can be installed "
                       "for it; convert the file to an uncompressed transfer syntax first (e.g. gdcmconv --raw)")
    unavailable = "; ".join(decoder.missing_dependencies)
    if not decoder.is_available:
        return False, (f"no decoder is installed for transfer syntax {name} (pydicom's plugins for it need: "
                       f"{unavailable}); install them with {CODECS_INSTALL}")
    return True, unavailable


def _file_size(path: str | Path) -> int | None:
    try:
        return Path(path).stat().st_size
    except (OSError, TypeError, ValueError):
        return None


def _no_pixel_data_reason(ds: Dataset, path: str | Path) -> str:
    """Why a dataset without pixel data has none: a truncated file unless the header says otherwise."""
    size = _file_size(path)
    ends = f"it ends after {size} bytes" if size is not None else "it ends"
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if rows and columns:
        return (f"the file has no pixel data: {ends}, before the pixels of the {rows}×{columns} film its header "
                "declares — the file is truncated")
    return f"the file has no pixel data: {ends} — the file is truncated, or it is not an image"


def _is_native(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return bool(uid) and uid.is_transfer_syntax and not uid.is_compressed


def _native_layout(ds: Dataset) -> tuple[int, int, int] | None:
    """(number of stored values, bits allocated, bytes expected) of native pixel data, or None when not applicable."""
    if "PixelData" not in ds or not _is_native(ds):
        return None
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames, samples = max(1, _int(ds.get("NumberOfFrames"), 1)), max(1, _int(ds.get("SamplesPerPixel"), 1))
    allocated = _int(ds.get("BitsAllocated"))
    if not (rows and columns and allocated):
        return None
    values = rows * columns * frames * samples
    return values, allocated, (values * allocated + 7) // 8


def _check_native_length(ds: Dataset, path: str | Path) -> None:
    """Raise ImageReadError saying the file is truncated when uncompressed pixel data is shorter than declared."""
    layout = _native_layout(ds)
    if layout is None:
        return
    held, expected = len(ds.PixelData or b""), layout[2]
    if held < expected:
        raise ImageReadError(path, f"the pixel data is truncated: the file holds {held} of the {expected} bytes its "
                                   f"header declares ({_int(ds.get('Rows'))}×{_int(ds.get('Columns'))}, "
                                   f"BitsAllocated {layout[1]}) — the file was cut short")


def _warn_bits_above_stored(ds: Dataset, path: str | Path) -> None:
    """Warn (DicomValueWarning) when native stored values use bits above BitsStored, which decoding masks away."""
    layout = _native_layout(ds)
    if layout is None or layout[1] not in (8, 16, 32):
        return
    values, allocated, _ = layout
    stored = _int(ds.get("BitsStored"), allocated)
    if not 0 < stored < allocated:
        return
    order = "<" if ds.file_meta.TransferSyntaxUID.is_little_endian else ">"
    raw = np.frombuffer(ds.PixelData, dtype=f"{order}u{allocated // 8}", count=values)
    signed = _int(ds.get("PixelRepresentation")) == 1
    high = raw >> stored  # the bits above BitsStored: zero in a well-formed file (or a sign extension when signed)
    if signed:  # out of range as a sign-extended value; high bits left at zero are the standard's masked encoding
        value = raw.view(f"{order}i{allocated // 8}")
        bad = int(np.count_nonzero((high != 0) & ((value < -(2 ** (stored - 1))) | (value > 2 ** (stored - 1) - 1))))
    else:
        bad = int(np.count_nonzero(high))
    if bad:
        lo, hi = (-(2 ** (stored - 1)), 2 ** (stored - 1) - 1) if signed else (0, 2**stored - 1)
        warnings.warn(f"{path}: {bad} stored pixel value(s) fall outside the {lo}..{hi} range of BitsStored {stored} "
                      f"(BitsAllocated {allocated}); the decoder keeps only the low {stored} bits, so the film "
                      "may look scrambled — check the file", DicomValueWarning, stacklevel=2)


def _has_voi_lut_sequence(ds: Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None


def _has_window(ds: Dataset) -> bool:
    return ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, "")


def _is_integral(value: Any) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def _modality_range(ds: Dataset) -> tuple[float, float]:
    """The modality-output range that a window maps onto (PS3.3 C.11.2.1.2), as pydicom uses it."""
    if ds.get("ModalityLUTSequence"):
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return lo, hi


def _min_max(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if not hi > lo:
        return np.zeros(arr.shape, dtype=np.float64)
    return (arr - lo) / (hi - lo)


def _apply_voi_lut_sequence(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """VOI LUT Sequence on integer input, scaled by the LUT's own smallest and largest entry."""
    ints = np.rint(values).astype(np.int64) if not np.issubdtype(values.dtype, np.integer) else values
    out = apply_voi_lut(ints, ds, index=0, prefer_lut=True).astype(np.float64)
    descriptor = ds.VOILUTSequence[0].LUTDescriptor
    entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
    table = apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), ds, index=0, prefer_lut=True)
    lo, hi = float(table.min()), float(table.max())
    if not hi > lo:
        return np.zeros(out.shape, dtype=np.float64)
    return (out - lo) / (hi - lo)


def dicom_to_display(ds: Dataset, path: str | Path = "<dataset>") -> np.ndarray:
    """Run the display pipeline (modality LUT → VOI LUT/window → one inversion) → float32 H×W in [0, 1] (notebook 01)."""
    raw = _raw_pixels(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        bits = int(ds.get("BitsStored", 8))
        display = np.clip(raw / float(2**bits - 1), 0.0, 1.0)
        return display.astype(np.float32)

    values = apply_modality_lut(raw, ds)
    if _has_voi_lut_sequence(ds):
        display = _apply_voi_lut_sequence(values, ds)
    elif _has_window(ds):
        try:
            windowed = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        except ValueError as err:  # e.g. a zero window width: fall back, but say so
            warnings.warn(f"{path}: unusable window ({err}); using min–max scaling instead", stacklevel=3)
            display = _min_max(values)
        else:
            lo, hi = _modality_range(ds)
            display = (windowed - lo) / (hi - lo) if hi != lo else _min_max(windowed)
    else:
        display = _min_max(values)

    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if photometric == "MONOCHROME1" or shape == "INVERSE":
        display = 1.0 - display  # the one and only inversion
    display = np.clip(display, 0.0, 1.0).astype(np.float32)
    if not np.isfinite(display).all():
        raise ImageReadError(path, "the display pipeline produced non-finite values")
    return display


def read_dicom(path: str | Path, size: int | None = None, *, aspect: Aspect = "pad") -> np.ndarray:
    """Read a DICOM file into a float32 H×W display image in [0, 1], optionally resized to ``size``×``size`` (notebook 01)."""
    ds = read_dataset(path)
    display = dicom_to_display(ds, path)
    return display if size is None else resize_gray(display, size, aspect)


_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"Y": 1.0, "": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def parse_age(value: Any) -> int | float | None:
    """Parse a DICOM Age String (``"061Y"`` → 61, ``"006M"`` → 0.5); years as int, shorter units as float years, None when blank or invalid."""
    if value is None:
        return None
    match = _AGE.match(str(value))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    if unit in ("Y", ""):
        return number
    return round(number * _AGE_UNIT_YEARS[unit], 3)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value in (None, ""):
            continue
        items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        try:
            numbers = [float(v) for v in items]
        except (TypeError, ValueError):
            continue
        numbers = [n for n in numbers if math.isfinite(n) and n > 0]
        if numbers:
            return (numbers[0], numbers[1] if len(numbers) > 1 else numbers[0])
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def dicom_header_fields(path_or_ds: str | Path | Dataset) -> dict[str, Any]:
    """Return the header fields a study table needs (view, sex, age, pixel spacing, photometric, size, institution …) without reading pixels (notebook 01).

    Keys: ``view`` (ViewPosition upper case, blank → None), ``sex`` (``"M"``/``"F"``/``"O"`` or None),
    ``age`` (years, see :func:`parse_age`), ``pixel_spacing`` ((row, column) mm from ImagerPixelSpacing,
    else PixelSpacing, else None), ``photometric``, ``rows``, ``columns``, ``bits_stored``, ``modality``,
    ``institution``, ``transfer_syntax`` (UID string or None).
    """
    if isinstance(path_or_ds, Dataset):
        ds = path_or_ds
    else:
        ds = read_dataset(path_or_ds, stop_before_pixels=True)
    view = _text(ds.get("ViewPosition"))
    sex = (_text(ds.get("PatientSex")) or "").upper()[:1] or None
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return {
        "view": view.upper() if view else None,
        "sex": sex if sex in ("M", "F", "O") else None,
        "age": parse_age(ds.get("PatientAge")),
        "pixel_spacing": _spacing(ds),
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "rows": _int_or_none(ds.get("Rows")),
        "columns": _int_or_none(ds.get("Columns")),
        "bits_stored": _int_or_none(ds.get("BitsStored")),
        "modality": _text(ds.get("Modality")),
        "institution": _text(ds.get("InstitutionName")),
        "transfer_syntax": str(ts) if ts else None,
    }
