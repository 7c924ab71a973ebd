"""The image cache under faults (#17): dead workers, bombs, changed sources, unusable sizes."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrkit import cache as cache_mod
from cxrkit.errors import CxrkitError
from cxrkit.io import dicom as dicom_mod

_REAL_READ_CHUNK = cache_mod._read_chunk  # bound at import, in the test process and in every spawned worker


def crash_on_named_files(args):
    """A worker body that dies outright (like the OOM killer) on a film whose name starts with 'crash'."""
    if any(Path(p).name.startswith("crash") for p in args[0]):
        os._exit(9)
    return _REAL_READ_CHUNK(args)


def _table(folder: Path, n: int = 6, names: dict[int, str] | None = None) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = (names or {}).get(i, f"img{i}")
        path = folder / f"{name}.png"
        Image.fromarray(np.full((24, 24), 20 * i + 10, dtype=np.uint8)).save(path)
        rows.append({"image_id": f"id{i}", "image_path": str(path)})
    return pd.DataFrame(rows)


def test_a_film_that_kills_its_worker_is_quarantined_named_and_the_build_finishes(tmp_path, monkeypatch, capsys):
    table = _table(tmp_path / "img", 6, names={3: "crash3"})
    reference = cache_mod.build_image_cache(table.drop(index=3), tmp_path / "ref", size=8, workers=1, progress=False)
    monkeypatch.setattr(cache_mod, "_read_chunk", crash_on_named_files)
    built = cache_mod.build_image_cache(table, tmp_path / "cache", size=8, workers=2, chunk=2, progress=False)
    assert built.quarantine["image_id"].tolist() == ["id3"]
    reason = built.quarantine["reason"].iloc[0]
    assert "worker process" in reason and "died" in reason and "BrokenProcessPool" in reason
    assert built.quarantine["image_path"].iloc[0].endswith("crash3.png")
    np.testing.assert_array_equal(built.images, reference.images)  # every other film, bit for bit
    assert built.index["image_id"].tolist() == reference.index["image_id"].tolist()
    assert (tmp_path / "cache" / "cache.json").exists()
    assert "retrying" in capsys.readouterr().err


def test_a_deflated_bomb_in_a_parallel_build_is_quarantined_with_the_limit(tmp_path, monkeypatch):
    from test_io_dicom_faults import write_deflated_film

    table = _table(tmp_path / "img", 3)
    bomb = write_deflated_film(tmp_path / "img" / "bomb.dcm", 2000, 2000)
    table = pd.concat([table, pd.DataFrame([{"image_id": "bomb", "image_path": str(bomb)}])], ignore_index=True)
    monkeypatch.setattr(dicom_mod, "MAX_PIXELS", 1_000_000, raising=False)  # handed to the spawned workers
    built = cache_mod.build_image_cache(table, tmp_path / "cache", size=8, workers=2, chunk=2, progress=False)
    q = built.quarantine.set_index("image_id")
    assert list(q.index) == ["bomb"]
    assert "2000×2000" in q.loc["bomb", "reason"] and "limit of 1.0 megapixels" in q.loc["bomb", "reason"]


@pytest.mark.parametrize("size", [0, -4, 2.5, True])
def test_an_unusable_size_is_an_error_before_anything_is_written(tmp_path, size):
    table = _table(tmp_path / "img", 2)
    with pytest.raises(CxrkitError, match=rf"image cache size {size!r} is not usable: expected a positive integer"):
        cache_mod.build_image_cache(table, tmp_path / "cache", size=size, workers=1, progress=False)
    with pytest.raises(ValueError):
        cache_mod.build_image_cache(table, tmp_path / "cache", size=size, workers=1, progress=False)
    assert not (tmp_path / "cache").exists()


def test_cxrkit_prep_with_size_zero_is_one_message_and_exit_2(tmp_path, capsys):
    from fixtures.real_trees import make_nih_cxr14

    from cxrkit import cli

    root = make_nih_cxr14(tmp_path / "data")
    assert cli.main(["prep", "--dataset", "nih-cxr14", "--root", str(root), "--out", str(tmp_path / "out"),
                     "--size", "0", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "size 0" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "cache").exists()


# ------------------------------------------------------------------------------------ changed sources

def _count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(cache_mod, "_read_chunk", lambda a: calls.append(len(a[0])) or _REAL_READ_CHUNK(a))
    return calls


def _rewrite(path: Path, value: int, *, broken: bool = False) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    Image.fromarray(np.full((24, 24), value, dtype=np.uint8)).save(path)
    if broken:
        path.write_bytes(path.read_bytes()[:40])
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))  # a later time, whatever the clock's grain


def test_a_repaired_film_leaves_the_quarantine_and_a_replaced_film_gets_its_new_pixels(tmp_path, monkeypatch, capsys):
    table = _table(tmp_path / "img", 5)
    paths = [Path(p) for p in table["image_path"]]
    paths[1].write_bytes(paths[1].read_bytes()[:40])  # truncated: quarantined at first
    folder = tmp_path / "cache"
    first = cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    assert first.quarantine["image_id"].tolist() == ["id1"]
    untouched = {i: first.images[first.rows_for([f"id{i}"])[0]].copy() for i in (0, 3, 4)}

    calls = _count_decodes(monkeypatch)
    cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    assert calls == []  # nothing changed: reused without decoding
    capsys.readouterr()

    _rewrite(paths[1], 200)  # repaired
    _rewrite(paths[2], 77)  # replaced by another film
    again = cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    assert sum(calls) == 2  # only the two changed films were decoded
    assert "2 of 5 source files changed" in capsys.readouterr().err
    assert again.quarantine.empty and again.info["n_quarantined"] == 0 and again.info["refreshed"] == 2
    assert again.index["image_id"].tolist() == [f"id{i}" for i in range(5)]
    assert (again.images[again.rows_for(["id1"])[0]] == 200).all()
    assert (again.images[again.rows_for(["id2"])[0]] == 77).all()
    for i, film in untouched.items():
        np.testing.assert_array_equal(again.images[again.rows_for([f"id{i}"])[0]], film)
    fresh = cache_mod.build_image_cache(table, tmp_path / "fresh", size=8, workers=1, progress=False)
    np.testing.assert_array_equal(again.images, fresh.images)  # the same as building from scratch

    _rewrite(paths[4], 5, broken=True)  # a good film that went bad
    worse = cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    assert worse.quarantine["image_id"].tolist() == ["id4"] and len(worse.images) == 4
    assert json.loads((folder / "cache.json").read_text())["n_quarantined"] == 1


def test_a_cache_without_fingerprints_still_loads_and_is_rebuilt_once(tmp_path, monkeypatch, capsys):
    table = _table(tmp_path / "img", 3)
    folder = tmp_path / "cache"
    built = cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    (folder / "sources.csv").unlink()  # as an older cxrkit left it
    assert cache_mod.load_image_cache(folder).images.shape == built.images.shape
    calls = _count_decodes(monkeypatch)
    again = cache_mod.build_image_cache(table, folder, size=8, workers=1, progress=False)
    assert sum(calls) == 3 and "records no file fingerprints" in capsys.readouterr().err
    np.testing.assert_array_equal(again.images, built.images)
    assert (folder / "sources.csv").exists()


def test_decoding_warnings_reach_the_building_process_and_notes_csv(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset

    table = _table(tmp_path / "img", 2)
    values = (np.arange(20 * 20, dtype=np.uint16).reshape(20, 20) % 4096)
    values[0, 0] = 5000
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.set_pixel_data(values, "MONOCHROME2", 16)
    ds.BitsStored, ds.HighBit = 12, 11
    path = tmp_path / "img" / "over.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).BitsStored == 12
    table = pd.concat([table, pd.DataFrame([{"image_id": "over", "image_path": str(path)}])], ignore_index=True)
    with pytest.warns(dicom_mod.DicomValueWarning, match="over.dcm"):
        built = cache_mod.build_image_cache(table, tmp_path / "cache", size=8, workers=2, chunk=1, progress=False)
    assert built.quarantine.empty  # decoded as before, only warned
    notes = pd.read_csv(tmp_path / "cache" / "notes.csv")
    assert notes["image_id"].tolist() == ["over"] and notes["warning"].tolist() == ["DicomValueWarning"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = cache_mod.build_image_cache(table.iloc[:2], tmp_path / "clean", size=8, workers=1, progress=False)
    assert not (tmp_path / "clean" / "notes.csv").exists() and len(clean.images) == 2
