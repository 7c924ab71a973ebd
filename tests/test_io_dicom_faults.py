"""Bad image files (#17): decompression bombs, truncated files and values above BitsStored, each named clearly."""
from __future__ import annotations

import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from cxrkit.errors import ImageReadError
from cxrkit.io import dicom as dicom_mod
from cxrkit.io import images as images_mod


def _header(rows: int, columns: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def write_deflated_film(path: Path, rows: int, columns: int, *, complete: bool = True) -> Path:
    """Write a Deflated Explicit VR Little Endian film of zeros without ever holding its inflated pixels.

    Blocks compressed after a full flush are byte-aligned and independent, so one compressed block of
    zeros is repeated as often as needed: a 20000×20000 film costs well under a second to write.
    """
    ds = _header(rows, columns)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    nbytes = rows * columns * 2
    head = body.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, nbytes)
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = [first.compress(head) + first.flush(zlib.Z_FULL_FLUSH)]
    block = 1 << 22
    piece = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = piece.compress(bytes(block)) + piece.flush(zlib.Z_FULL_FLUSH)
    todo = nbytes if complete else min(nbytes, 1 << 20)
    stream.append(repeated * (todo // block))
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream.append(last.compress(bytes(todo % block)) + last.flush())
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    path.write_bytes(out.getvalue() + b"".join(stream))
    return path


def test_a_deflated_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = write_deflated_film(tmp_path / "bomb.dcm", 20000, 20000)
    assert path.stat().st_size < 1_000_000  # under a megabyte on disk, 800 MB of stored values
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageReadError) as info:
            images_mod.read_image(path, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 50_000_000  # nothing near the 800 MB of inflated data was allocated
    reason = info.value.reason
    assert "20000×20000" in reason and "400.0 megapixels" in reason and "100.0 megapixels" in reason
    assert "MAX_PIXELS" in reason and "bomb.dcm" in str(info.value)


def test_the_guard_fires_on_the_declared_size_even_when_the_pixels_are_missing(tmp_path):
    path = write_deflated_film(tmp_path / "short.dcm", 20000, 20000, complete=False)
    with pytest.raises(ImageReadError, match=r"20000×20000.*over the limit of 100\.0 megapixels"):
        dicom_mod.read_dicom(path)


def test_the_limit_is_a_module_constant_the_user_can_change(tmp_path, monkeypatch):
    path = write_deflated_film(tmp_path / "big.dcm", 2000, 2000)  # 4 MP: under the default limit
    assert dicom_mod.read_dicom(path, 16).shape == (16, 16)
    monkeypatch.setattr(dicom_mod, "MAX_PIXELS", 1_000_000, raising=False)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match=r"2000×2000 film \(4\.0 megapixels\), over the limit of 1\.0"):
            dicom_mod.read_dicom(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000  # the 8 MB of inflated pixel data were never produced


def test_an_uncompressed_header_declaring_a_huge_film_is_refused_before_pixel_array(tmp_path, monkeypatch):
    ds = _header(30000, 30000)
    ds.PixelData = b"\0" * 64
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    touched = []
    monkeypatch.setattr(Dataset, "pixel_array", property(lambda self: touched.append(1)))
    with pytest.raises(ImageReadError, match=r"30000×30000 film \(900\.0 megapixels\)"):
        dicom_mod.read_dicom(path)
    assert touched == []


def test_a_png_over_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((200, 300), dtype=np.uint8)).save(path)
    assert images_mod.read_image(path).shape == (200, 300)
    monkeypatch.setattr(dicom_mod, "MAX_PIXELS", 50_000, raising=False)
    loads = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1) or real_load(self))
    with pytest.raises(ImageReadError, match=r"300×200 pixels \(0\.1 megapixels\), over the limit of 0\.1.*MAX_PIXELS"):
        images_mod.read_image(path)
    assert loads == []


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width×height 8-bit gray pixels and whose data is a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_png_declaring_a_huge_image_names_the_limit(tmp_path):
    with pytest.raises(ImageReadError, match=r"11000×11000 pixels \(121\.0 megapixels\).*MAX_PIXELS"):
        images_mod.read_image(_png_header_only(tmp_path / "tall.png", 11000, 11000))
    with pytest.raises(ImageReadError, match=r"decompression bomb"):
        images_mod.read_image(_png_header_only(tmp_path / "huge.png", 60000, 60000))


# ------------------------------------------------------------------------------------ truncated files

def _film(tmp_path: Path) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.Modality = "DX"
    ds.set_pixel_data(np.arange(40 * 32, dtype=np.uint16).reshape(40, 32) % 4096, "MONOCHROME2", 12)
    path = tmp_path / "full.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.99])
def test_a_file_cut_inside_its_pixel_data_is_said_to_be_truncated(tmp_path, keep):
    data = _film(tmp_path).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match=r"truncated: the file holds \d+ of the 2560 bytes") as info:
        dicom_mod.read_dicom(cut)
    assert "cut.dcm" in str(info.value)


def test_a_file_cut_before_its_pixel_data_is_said_to_be_truncated(tmp_path):
    full = _film(tmp_path)
    ds = pydicom.dcmread(full)
    data = full.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - len(ds.PixelData) - 12])  # ends just before the PixelData element
    with pytest.raises(ImageReadError, match=r"no pixel data: it ends after \d+ bytes, before the pixels of the "
                                             r"40×32 film its header declares — the file is truncated"):
        dicom_mod.read_dicom(cut)
    tiny = tmp_path / "tiny.dcm"
    tiny.write_bytes(data[:156])
    with pytest.raises(ImageReadError, match=r"no pixel data: it ends after 156 bytes — the file is truncated"):
        dicom_mod.read_dicom(tiny)


# ------------------------------------------------------------------------------- values over BitsStored

def _over_bits_film(tmp_path: Path, values: np.ndarray, signed: bool = False) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.Modality = "DX"
    ds.set_pixel_data(values, "MONOCHROME2", 16)
    ds.BitsStored, ds.HighBit = 12, 11  # the header now says 12 bits; some values use more
    path = tmp_path / ("signed.dcm" if signed else "over.dcm")
    ds.save_as(path, enforce_file_format=True)
    return path


def test_values_above_bits_stored_warn_naming_the_file_and_decode_as_before(tmp_path):
    values = (np.arange(40 * 32, dtype=np.uint16).reshape(40, 32) % 4096)
    clean = _over_bits_film(tmp_path, values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = dicom_mod.read_dicom(clean)  # a valid film: no warning
    values = values.copy()
    values[0, 0], values[1, 1] = 5000, 65535
    path = _over_bits_film(tmp_path, values)
    with pytest.warns(dicom_mod.DicomValueWarning, match=r"over\.dcm: 2 stored pixel value\(s\) fall outside the "
                                                         r"0\.\.4095 range of BitsStored 12"):
        shown = dicom_mod.read_dicom(path)
    (tmp_path / "ref").mkdir()
    reference = _over_bits_film(tmp_path / "ref", values & 4095)
    np.testing.assert_array_equal(shown, dicom_mod.read_dicom(reference))  # decoded exactly as the standard says
    assert expected.shape == shown.shape


def test_signed_values_out_of_range_warn_but_the_masked_encoding_does_not(tmp_path):
    values = (np.arange(40 * 32, dtype=np.int16).reshape(40, 32) % 4000) - 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dicom_mod.read_dicom(_over_bits_film(tmp_path, values, signed=True))  # sign-extended, in range
        masked = tmp_path / "masked"
        masked.mkdir()
        dicom_mod.read_dicom(_over_bits_film(masked, (values.view(np.uint16) & 4095).view(np.int16), signed=True))
    values = values.copy()
    values[0, 0] = -3000
    with pytest.warns(dicom_mod.DicomValueWarning, match=r"1 stored pixel value\(s\) fall outside the -2048\.\.2047"):
        dicom_mod.read_dicom(_over_bits_film(tmp_path, values, signed=True))
