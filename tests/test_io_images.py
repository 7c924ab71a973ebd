"""read_image on PNG/JPEG (8/16-bit, RGB/RGBA, truncated, not an image), DICOM dispatch, resizing and to_uint8."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from cxrkit.errors import ImageReadError
from cxrkit.io.images import read_image, to_uint8
from cxrkit.io.resize import resize_gray


def gradient(h: int = 24, w: int = 20) -> np.ndarray:
    return np.tile(np.linspace(0, 1, w), (h, 1))


def test_png_8bit(tmp_path):
    arr = np.rint(gradient() * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (24, 20)
    np.testing.assert_allclose(out, arr / 255.0, atol=1e-7)


def test_png_16bit_keeps_its_depth(tmp_path):
    arr = np.rint(gradient() * 65535).astype(np.uint16)
    arr[0, 0] = 257  # not a multiple of 256: 8-bit reading would lose it
    Image.fromarray(arr).save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    np.testing.assert_allclose(out, arr / 65535.0, atol=1e-6)
    assert out[0, 0] == pytest.approx(257 / 65535, abs=1e-7)


def test_rgba_and_rgb_collapse_to_gray(tmp_path):
    gray = np.rint(gradient() * 255).astype(np.uint8)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    out = read_image(tmp_path / "c.png")
    assert out.shape == (24, 20)
    np.testing.assert_allclose(out, gray / 255.0, atol=1 / 255)
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "d.jpg", quality=95)
    jpg = read_image(tmp_path / "d.jpg")
    assert jpg.shape == (24, 20) and abs(float(jpg.mean()) - float(out.mean())) < 0.02


def test_truncated_png_raises_naming_the_file(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "cut.png")
    assert "cut.png" in str(info.value)


def test_not_an_image_raises(tmp_path):
    (tmp_path / "fake.png").write_text("hello, I am text")
    with pytest.raises(ImageReadError, match="fake.png"):
        read_image(tmp_path / "fake.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(tmp_path / "x.gif")
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.png")


def _dicom(path):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.set_pixel_data(np.rint(gradient() * 4095).astype(np.uint16), "MONOCHROME2", 12)
    ds.save_as(path, enforce_file_format=True)


def test_dicom_dispatch_by_suffix_and_by_marker(tmp_path):
    _dicom(tmp_path / "a.dcm")
    out = read_image(tmp_path / "a.dcm", size=12)
    assert out.shape == (12, 12)
    _dicom(tmp_path / "no_suffix")
    np.testing.assert_array_equal(read_image(tmp_path / "no_suffix"), read_image(tmp_path / "a.dcm"))


def test_resize_from_read_image(tmp_path):
    Image.fromarray(np.full((30, 60), 255, np.uint8)).save(tmp_path / "wide.png")
    padded = read_image(tmp_path / "wide.png", size=20)
    assert padded.shape == (20, 20)
    assert padded[:5].max() == 0.0 and padded[-5:].max() == 0.0 and padded[5:15].min() == 1.0
    assert read_image(tmp_path / "wide.png", size=20, aspect="stretch").min() == 1.0


def test_resize_gray_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        resize_gray(np.zeros((3, 4, 3)), 8)
    with pytest.raises(ValueError, match="size"):
        resize_gray(np.zeros((3, 4)), 0)
    with pytest.raises(ValueError, match="aspect"):
        resize_gray(np.zeros((3, 4)), 8, aspect="crop")


def test_resize_upsamples_too():
    out = resize_gray(gradient(6, 6), 12)
    assert out.shape == (12, 12) and out[:, 0].mean() < out[:, -1].mean()


def test_to_uint8():
    arr = np.array([[0.0, 0.5, 1.0], [-0.2, 1.3, 0.999]], dtype=np.float32)
    out = to_uint8(arr)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255], [0, 255, 255]]
    np.testing.assert_allclose(to_uint8(gradient()) / 255.0, gradient(), atol=0.5 / 255 + 1e-9)
    with pytest.raises(ValueError):
        to_uint8(np.array([np.nan]))
    with pytest.raises(TypeError):
        to_uint8(np.array([1, 2], dtype=np.int32))
