"""The image cache at scale (#20): an interrupted build resumes, compaction streams, a missing codec is named."""
from __future__ import annotations

import json
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless, UID, generate_uid

from cxrkit import cache as cache_mod
from cxrkit.errors import ImageReadError
from cxrkit.io import dicom as dicom_mod

SIZE, CHUNK = 8, 2


def _table(folder: Path, n: int = 9, bad: tuple[int, ...] = (3,), noisy: tuple[int, ...] = (6,)) -> pd.DataFrame:
    """PNG films of random content; the ``bad`` ones are not images, the ``noisy`` DICOMs draw a warning."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        if i in bad:
            path = folder / f"bad{i}.png"
            path.write_bytes(b"not a png")
        elif i in noisy:
            values = rng.integers(0, 4096, (20, 16), dtype=np.uint16)
            values[0, 0] = 5000  # above BitsStored 12: a DicomValueWarning
            ds = Dataset()
            ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.1.1", "DX"
            ds.set_pixel_data(values, "MONOCHROME2", 16)
            ds.BitsStored, ds.HighBit = 12, 11
            path = folder / f"noisy{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
        else:
            path = folder / f"film{i}.png"
            Image.fromarray(rng.integers(0, 256, (24, 20), dtype=np.uint8)).save(path)
        rows.append({"image_id": f"id{i}", "image_path": str(path)})
    return pd.DataFrame(rows)


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, k: int) -> list[int]:
    """Make the build raise KeyboardInterrupt when it logs its (k+1)-th chunk; return the list of logged chunks."""
    logged: list[int] = []
    real = cache_mod._record_chunk

    def record(log, chunk, failures, notes):
        if len(logged) == k:
            raise KeyboardInterrupt
        logged.append(chunk)
        real(log, chunk, failures, notes)

    monkeypatch.setattr(cache_mod, "_record_chunk", record)
    return logged


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    decoded: list[int] = []
    real = cache_mod._record_chunk
    monkeypatch.setattr(cache_mod, "_record_chunk", lambda log, c, f, n: decoded.append(c) or real(log, c, f, n))
    return decoded


def _same_cache(a: Path, b: Path) -> None:
    assert (a / "images.npy").read_bytes() == (b / "images.npy").read_bytes()
    for name in ("index.csv", "quarantine.csv", "notes.csv", "sources.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_build_resumes_decoding_only_the_rest_and_equals_a_clean_build(tmp_path, monkeypatch, workers):
    table = _table(tmp_path / "img")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache_mod.build_image_cache(table, tmp_path / "clean", size=SIZE, chunk=CHUNK, workers=1, progress=False)
    folder = tmp_path / "cache"
    logged = _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=workers, progress=False)
    assert len(logged) == 3 and not (folder / "cache.json").exists() and (folder / "images.npy.tmp").exists()
    monkeypatch.undo()
    decoded = _count_decodes(monkeypatch)
    with pytest.warns(dicom_mod.DicomValueWarning):  # a warning of a chunk finished before the interruption too
        built = cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=workers, progress=False)
    assert sorted(decoded) == sorted(set(range(5)) - set(logged))  # 9 films in 5 chunks: only the rest decoded
    _same_cache(folder, tmp_path / "clean")
    assert built.quarantine["image_id"].tolist() == ["id3"]  # quarantined in the part finished first, or not
    assert json.loads((folder / "cache.json").read_text())["resumed_chunks"] == 3
    assert not any((folder / n).exists() for n in (cache_mod.PROGRESS, cache_mod.PROGRESS_LOG,
                                                   cache_mod.PROGRESS_PRINTS, "images.npy.tmp"))


def test_the_quarantined_film_of_a_finished_chunk_survives_the_resume(tmp_path, monkeypatch):
    table = _table(tmp_path / "img", bad=(0,), noisy=())
    folder = tmp_path / "cache"
    _interrupt_after(monkeypatch, 1)  # chunk 0 (with the bad film) finishes, then the build stops
    with pytest.raises(KeyboardInterrupt):
        cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=1, progress=False)
    monkeypatch.undo()
    decoded = _count_decodes(monkeypatch)
    built = cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=1, progress=False)
    assert 0 not in decoded
    assert built.quarantine["image_id"].tolist() == ["id0"] and "bad0.png" in built.quarantine["image_path"].iloc[0]
    assert len(built.images) == len(table) - 1


def _interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame) -> Path:
    folder = tmp_path / "cache"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=1, progress=False)
    monkeypatch.undo()
    return folder


@pytest.mark.parametrize("spoil", ["params", "log", "tmp", "size"])
def test_an_inconsistent_unfinished_build_is_started_over(tmp_path, monkeypatch, spoil, capsys):
    table = _table(tmp_path / "img", noisy=())
    folder = _interrupted(tmp_path, monkeypatch, table)
    size = SIZE
    if spoil == "params":
        state = json.loads((folder / cache_mod.PROGRESS).read_text())
        state["chunk"] = 99
        (folder / cache_mod.PROGRESS).write_text(json.dumps(state))
    elif spoil == "log":
        (folder / cache_mod.PROGRESS).write_text("{torn")
    elif spoil == "tmp":
        (folder / "images.npy.tmp").write_bytes(b"\x93NUMPY garbage")
    else:
        size = SIZE + 4  # another film size: the unfinished build is not this one
    decoded = _count_decodes(monkeypatch)
    built = cache_mod.build_image_cache(table, folder, size=size, chunk=CHUNK, workers=1, progress=False)
    assert sorted(decoded) == list(range(5))
    clean = cache_mod.build_image_cache(table, tmp_path / "clean", size=size, chunk=CHUNK, workers=1, progress=False)
    np.testing.assert_array_equal(built.images, clean.images)
    assert "starting over" in capsys.readouterr().err


def test_a_torn_log_line_and_a_changed_file_are_decoded_again(tmp_path, monkeypatch):
    table = _table(tmp_path / "img", noisy=())
    folder = _interrupted(tmp_path, monkeypatch, table)  # chunks 0 and 1 logged
    with open(folder / cache_mod.PROGRESS_LOG, "a") as log:
        log.write('{"chunk": 2, "fail')  # killed while writing a line
    Image.fromarray(np.full((24, 20), 7, dtype=np.uint8)).save(table.image_path[1])  # chunk 0 changed meanwhile
    decoded = _count_decodes(monkeypatch)
    built = cache_mod.build_image_cache(table, folder, size=SIZE, chunk=CHUNK, workers=1, progress=False)
    assert sorted(decoded) == [0, 2, 3, 4]
    clean = cache_mod.build_image_cache(table, tmp_path / "clean", size=SIZE, chunk=CHUNK, workers=1, progress=False)
    np.testing.assert_array_equal(built.images, clean.images)
    assert built.images[built.rows_for(["id1"])[0]].max() == 7  # the film as it is now


def test_compaction_streams_in_blocks_to_the_same_bytes_in_constant_memory(tmp_path):
    rng = np.random.default_rng(1)
    full = rng.integers(0, 256, (400, 32, 32), dtype=np.uint8)  # 400 kB
    np.save(tmp_path / "full.npy", full)
    keep = np.array([i for i in range(400) if i % 7 != 3], dtype=np.int64)
    np.save(tmp_path / "expected.npy", np.ascontiguousarray(full[keep]))
    tracemalloc.start()
    cache_mod._compact(tmp_path / "full.npy", tmp_path / "kept.npy", keep, 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (tmp_path / "kept.npy").read_bytes() == (tmp_path / "expected.npy").read_bytes()
    assert peak < full.nbytes / 10, peak  # a block at a time, never the whole array


def test_a_build_with_quarantined_films_equals_the_array_of_the_kept_films(tmp_path):
    table = _table(tmp_path / "img", bad=(0, 4, 8), noisy=())
    built = cache_mod.build_image_cache(table, tmp_path / "cache", size=SIZE, chunk=CHUNK, workers=1, progress=False)
    kept = table.drop(index=[0, 4, 8])
    ref = cache_mod.build_image_cache(kept, tmp_path / "ref", size=SIZE, chunk=CHUNK, workers=1, progress=False)
    assert (tmp_path / "cache" / "images.npy").read_bytes() == (tmp_path / "ref" / "images.npy").read_bytes()
    assert built.quarantine["image_id"].tolist() == ["id0", "id4", "id8"] and len(ref.quarantine) == 0


# ------------------------------------------------------------------------------- compressed DICOM decoders

def _compressed(path: Path, uid: str, frame: bytes = b"\xff\x4f\xff\x51" + b"\x00" * 60) -> Path:
    """Write a 16×16 12-bit film whose encapsulated pixel data claims transfer syntax ``uid``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(uid)
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SamplesPerPixel, ds.PhotometricInterpretation = "DX", 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


class _NoDecoder:
    is_available = False
    missing_dependencies = ["gdcm - requires gdcm>=3.0.10", "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"]


def test_a_transfer_syntax_without_an_installed_decoder_names_it_and_the_extra(tmp_path, monkeypatch):
    path = _compressed(tmp_path / "lossless.dcm", JPEGLosslessSV1)
    monkeypatch.setattr(dicom_mod, "get_decoder", lambda uid: _NoDecoder())  # as on a machine without the plugins
    with pytest.raises(ImageReadError) as info:
        dicom_mod.read_dicom(path)
    reason = info.value.reason
    assert "no decoder is installed for transfer syntax JPEG Lossless" in reason and JPEGLosslessSV1 in reason
    assert 'pip install "cxrkit[dicom-codecs]"' in reason and "pylibjpeg-libjpeg" in reason
    assert "lossless.dcm" in str(info.value)


@pytest.mark.skipif(dicom_mod.get_decoder(JPEGLosslessSV1).is_available, reason="a JPEG Lossless decoder is installed")
def test_without_the_extra_installed_jpeg_lossless_is_named_as_missing_a_decoder(tmp_path):
    with pytest.raises(ImageReadError, match=r"no decoder is installed for transfer syntax JPEG Lossless.*"
                                             r'pip install "cxrkit\[dicom-codecs\]"'):
        dicom_mod.read_dicom(_compressed(tmp_path / "lossless.dcm", JPEGLosslessSV1))


def test_a_transfer_syntax_pydicom_cannot_decode_at_all_is_named(tmp_path):
    path = _compressed(tmp_path / "video.dcm", "1.2.840.10008.1.2.4.100")  # MPEG2: no plugin exists
    with pytest.raises(ImageReadError, match=r"no decoder at all for transfer syntax MPEG2.*uncompressed"):
        dicom_mod.read_dicom(path)


@pytest.mark.parametrize("uid", [RLELossless, JPEG2000Lossless])
def test_corrupt_compressed_data_with_a_decoder_installed_is_not_called_a_missing_decoder(tmp_path, uid):
    if not dicom_mod.get_decoder(uid).is_available:
        pytest.skip(f"no decoder for {uid.name} here")
    with pytest.raises(ImageReadError) as info:
        dicom_mod.read_dicom(_compressed(tmp_path / "corrupt.dcm", uid))
    reason = info.value.reason
    assert reason.startswith(f"cannot decode pixel data with transfer syntax {uid.name}") and "corrupt" in reason
    assert "no decoder is installed" not in reason


def test_a_film_without_a_decoder_is_quarantined_with_the_reason_and_the_build_goes_on(tmp_path, monkeypatch):
    table = _table(tmp_path / "img", n=4, bad=(), noisy=())
    _compressed(tmp_path / "img" / "j2k.dcm", JPEGLosslessSV1)
    table = pd.concat([table, pd.DataFrame([{"image_id": "j2k", "image_path": str(tmp_path / "img" / "j2k.dcm")}])],
                      ignore_index=True)
    monkeypatch.setattr(dicom_mod, "get_decoder", lambda uid: _NoDecoder())
    built = cache_mod.build_image_cache(table, tmp_path / "cache", size=SIZE, chunk=CHUNK, workers=1, progress=False)
    assert built.quarantine["image_id"].tolist() == ["j2k"] and len(built.images) == 4
    assert "cxrkit[dicom-codecs]" in built.quarantine["reason"].iloc[0]
