"""The DICOM display pipeline and header fields, on small fixtures written with Dataset.set_pixel_data."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, JPEGLSLossless

from cxrkit.errors import ImageReadError
from cxrkit.io.dicom import dicom_header_fields, dicom_to_display, parse_age, read_dicom

BITS = 12
MAX = 2**BITS - 1


def base_image(h: int = 40, w: int = 32) -> np.ndarray:
    """A 12-bit test image with a ramp and a bright square, all values in 100..3900."""
    y, x = np.mgrid[0:h, 0:w]
    img = 100 + (x * 3000 // (w - 1)) + 0 * y
    img[10:20, 8:16] = 3900
    return img.astype(np.uint16)


def make_ds(stored: np.ndarray, photometric: str = "MONOCHROME2", **elements) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    ds.Modality = "DX"
    ds.set_pixel_data(stored, photometric, BITS)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def linear_voi_lut(center: float, width: float, n_entries: int = MAX + 1, first: int = 0, out_bits: int = 16) -> Dataset:
    """A VOI LUT Sequence item implementing a linear window (what a vendor LUT often is)."""
    x = np.arange(first, first + n_entries, dtype=np.float64)
    y = np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * (2**out_bits - 1)
    item = Dataset()
    item.add_new(0x00283002, "US", [n_entries, first, out_bits])  # LUT Descriptor
    item.add_new(0x00283006, "US", [int(v) for v in np.rint(y)])  # LUT Data
    return item


def test_output_is_float32_unit_range(tmp_path):
    out = read_dicom(save(make_ds(base_image()), tmp_path / "a.dcm"))
    assert out.dtype == np.float32 and out.shape == (40, 32)
    assert out.min() == 0.0 and out.max() == 1.0  # no window: min–max scaling


def test_monochrome1_and_monochrome2_of_the_same_image_display_alike(tmp_path):
    img = base_image()
    mono2 = read_dicom(save(make_ds(img), tmp_path / "m2.dcm"))
    mono1 = read_dicom(save(make_ds((MAX - img).astype(np.uint16), "MONOCHROME1"), tmp_path / "m1.dcm"))
    np.testing.assert_allclose(mono1, mono2, atol=1e-6)
    # a bright (dense) square is bright in both
    assert mono1[15, 12] == pytest.approx(1.0)


def test_monochrome1_with_window_matches_monochrome2_with_mirrored_window(tmp_path):
    img = base_image()
    mono2 = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=2000), tmp_path / "m2.dcm"))
    mono1 = read_dicom(save(make_ds((MAX - img).astype(np.uint16), "MONOCHROME1",
                                    WindowCenter=MAX - 2000 + 1, WindowWidth=2000), tmp_path / "m1.dcm"))
    np.testing.assert_allclose(mono1, mono2, atol=2e-3)
    assert 0.0 < mono2[0, 10] < 1.0  # a mid-grey inside the window is not clipped


def test_window_is_applied_and_clips_outside(tmp_path):
    img = base_image()
    out = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=1000), tmp_path / "w.dcm"))
    assert out[img <= 1500].max() == 0.0
    assert out[img > 2500].min() == 1.0
    inside = (img > 1600) & (img < 2400)
    expected = (img[inside] - 1500.0) / 1000.0
    np.testing.assert_allclose(out[inside], expected, atol=2e-3)


def test_voi_lut_sequence_matches_the_equivalent_window(tmp_path):
    img = base_image()
    windowed = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=1600), tmp_path / "w.dcm"))
    ds = make_ds(img)
    ds.VOILUTSequence = [linear_voi_lut(2000, 1600)]
    lut = read_dicom(save(ds, tmp_path / "lut.dcm"))
    np.testing.assert_allclose(lut, windowed, atol=2e-3)


def test_voi_lut_sequence_is_preferred_over_a_window(tmp_path):
    img = base_image()
    ds = make_ds(img, WindowCenter=2000, WindowWidth=1600)
    item = linear_voi_lut(2000, 1600)
    item.LUTData = [65535 - v for v in item.LUTData]  # a LUT that disagrees with the window: inverted
    ds.VOILUTSequence = [item]
    out = read_dicom(save(ds, tmp_path / "both.dcm"))
    window_only = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=1600), tmp_path / "w.dcm"))
    np.testing.assert_allclose(out, 1.0 - window_only, atol=2e-3)


def test_rescale_slope_intercept_then_window_in_modality_units(tmp_path):
    img = base_image()
    plain = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=1000), tmp_path / "p.dcm"))
    rescaled = make_ds(img, RescaleSlope=2, RescaleIntercept=-1024,
                       WindowCenter=2 * 2000 - 1024, WindowWidth=2 * 1000)
    out = read_dicom(save(rescaled, tmp_path / "r.dcm"))
    np.testing.assert_allclose(out, plain, atol=2e-3)


def test_integral_rescale_before_a_voi_lut_is_cast_back_to_integers(tmp_path):
    img = base_image()
    ds = make_ds(img, RescaleSlope=1, RescaleIntercept=0)
    ds.VOILUTSequence = [linear_voi_lut(2000, 1600)]
    path = save(ds, tmp_path / "lut.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom warns when a VOI LUT gets float input
        out = read_dicom(path)
    no_rescale = make_ds(img)
    no_rescale.VOILUTSequence = [linear_voi_lut(2000, 1600)]
    np.testing.assert_array_equal(out, read_dicom(save(no_rescale, tmp_path / "lut2.dcm")))


def test_first_of_several_windows_is_used(tmp_path):
    img = base_image()
    several = read_dicom(save(make_ds(img, WindowCenter=[2000, 800], WindowWidth=[1000, 400]), tmp_path / "s.dcm"))
    first = read_dicom(save(make_ds(img, WindowCenter=2000, WindowWidth=1000), tmp_path / "f.dcm"))
    second = read_dicom(save(make_ds(img, WindowCenter=800, WindowWidth=400), tmp_path / "t.dcm"))
    np.testing.assert_array_equal(several, first)
    assert not np.allclose(several, second)


def test_presentation_lut_shape_inverse_inverts_once(tmp_path):
    img = base_image()
    plain = read_dicom(save(make_ds(img), tmp_path / "p.dcm"))
    inverse = read_dicom(save(make_ds(img, PresentationLUTShape="INVERSE"), tmp_path / "i.dcm"))
    np.testing.assert_allclose(inverse, 1.0 - plain, atol=1e-6)
    # MONOCHROME1 with INVERSE (what DX files carry) is the same single inversion, not two
    mono1 = make_ds((MAX - img).astype(np.uint16), "MONOCHROME1")
    both = read_dicom(save(make_ds((MAX - img).astype(np.uint16), "MONOCHROME1", PresentationLUTShape="INVERSE"),
                           tmp_path / "b.dcm"))
    np.testing.assert_allclose(both, read_dicom(save(mono1, tmp_path / "m1.dcm")), atol=1e-6)
    np.testing.assert_allclose(both, plain, atol=1e-6)


def test_constant_image_without_window_is_black_not_nan(tmp_path):
    out = read_dicom(save(make_ds(np.full((8, 8), 700, np.uint16)), tmp_path / "c.dcm"))
    assert np.isfinite(out).all() and out.max() == 0.0


def test_resize_pad_and_stretch(tmp_path):
    path = save(make_ds(base_image(40, 32)), tmp_path / "a.dcm")
    padded = read_dicom(path, size=20)
    assert padded.shape == (20, 20) and padded.dtype == np.float32
    assert padded[:, :2].max() == 0.0 and padded[:, -2:].max() == 0.0  # 40×32 → 20×16 centred: 2 black columns each side
    stretched = read_dicom(path, size=20, aspect="stretch")
    assert stretched.shape == (20, 20) and stretched[:, 0].max() > 0.0
    assert padded.mean() == pytest.approx(read_dicom(path).mean() * 16 / 20, abs=0.01)  # area averaging keeps the mean


def test_signed_pixels_with_window(tmp_path):
    img = base_image().astype(np.int16) - 2048
    ds = make_ds(img, WindowCenter=0, WindowWidth=1000)
    assert ds.PixelRepresentation == 1
    out = read_dicom(save(ds, tmp_path / "s.dcm"))
    assert out[img <= -500].max() == 0.0 and out[img > 500].min() == 1.0


# ---------------------------------------------------------------------------------------- failures

def test_non_dicom_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(ImageReadError) as info:
        read_dicom(path)
    assert str(path) in str(info.value) and info.value.path == path


def test_random_bytes_raise(tmp_path):
    path = tmp_path / "noise.dcm"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.dcm"):
        read_dicom(path)


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_file_raises_naming_the_file(tmp_path, keep):
    path = save(make_ds(base_image()), tmp_path / "full.dcm")
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError) as info:
        read_dicom(cut)
    assert "cut.dcm" in str(info.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_dicom(tmp_path / "absent.dcm")


@pytest.mark.parametrize("uid, name", [(JPEGLSLossless, "JPEG-LS"), (JPEG2000, "JPEG 2000")])
def test_undecodable_compressed_transfer_syntax_names_it(tmp_path, uid, name):
    ds = make_ds(base_image())
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # not a real codestream
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid
    path = tmp_path / "compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_dicom(path)
    message = str(info.value)
    assert "compressed.dcm" in message and name in message and str(uid) in message


def test_file_without_pixel_data_raises(tmp_path):
    ds = make_ds(base_image())
    del ds.PixelData
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_dicom(save(ds, tmp_path / "nopix.dcm"))


# ---------------------------------------------------------------------------------------- headers

def test_header_fields(tmp_path):
    ds = make_ds(base_image(), "MONOCHROME1", ViewPosition="PA", PatientSex="F", PatientAge="061Y",
                 ImagerPixelSpacing=[0.139, 0.143], PixelSpacing=[0.2, 0.2], InstitutionName="General Hospital")
    fields = dicom_header_fields(save(ds, tmp_path / "h.dcm"))
    assert fields["view"] == "PA" and fields["sex"] == "F" and fields["age"] == 61
    assert fields["pixel_spacing"] == pytest.approx((0.139, 0.143))  # ImagerPixelSpacing wins
    assert fields["photometric"] == "MONOCHROME1"
    assert (fields["rows"], fields["columns"]) == (40, 32)
    assert fields["institution"] == "General Hospital" and fields["modality"] == "DX"


def test_header_blank_view_and_pixel_spacing_fallback():
    ds = make_ds(base_image(), ViewPosition="", PixelSpacing=[0.2, 0.25], PatientSex="")
    fields = dicom_header_fields(ds)
    assert fields["view"] is None and fields["sex"] is None and fields["age"] is None
    assert fields["pixel_spacing"] == pytest.approx((0.2, 0.25))
    assert dicom_header_fields(make_ds(base_image()))["pixel_spacing"] is None


def test_header_read_stops_before_pixels(tmp_path):
    """Header fields come back even when the pixel data is truncated, because pixels are never read."""
    path = save(make_ds(base_image(), ViewPosition="AP"), tmp_path / "h.dcm")
    data = path.read_bytes()
    path.write_bytes(data[:-200])
    assert dicom_header_fields(path)["view"] == "AP"
    with pytest.raises(ImageReadError):
        read_dicom(path)


def test_header_of_non_dicom_raises(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\x89PNG not dicom")
    with pytest.raises(ImageReadError, match="x.dcm"):
        dicom_header_fields(path)


@pytest.mark.parametrize("raw, years", [("061Y", 61), ("61", 61), ("006M", 0.5), ("002W", 0.038), ("010D", 0.027),
                                        ("", None), (None, None), ("abc", None)])
def test_parse_age(raw, years):
    assert parse_age(raw) == (pytest.approx(years, abs=1e-3) if years is not None else None)


def test_pydicom_sample_file_reads():
    """A file pydicom ships (16-bit signed CT with rescale) goes through the pipeline."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    out = read_dicom(path, size=16)
    assert out.shape == (16, 16) and 0.0 <= out.min() < out.max() <= 1.0
    assert isinstance(pydicom.dcmread(path), Dataset)


def test_in_memory_dataset_displays_like_its_file(tmp_path):
    ds = make_ds(base_image(), "MONOCHROME1", WindowCenter=2000, WindowWidth=1500)
    np.testing.assert_array_equal(dicom_to_display(ds), read_dicom(save(ds, tmp_path / "m.dcm")))
