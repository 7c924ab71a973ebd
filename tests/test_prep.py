"""Splits, the image cache and its quarantine (cxrkit.prep, cxrkit.cache)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrkit import cache as cache_mod
from cxrkit import prep
from cxrkit.labels import CHEXPERT_LABELS


def _table(n_patients=30, per_patient=3, split=None):
    rows = []
    for p in range(n_patients):
        for k in range(per_patient):
            rows.append({"dataset": "toy", "subject_id": f"1{p:07d}", "study_id": f"5{p:04d}{k:03d}",
                         "image_id": f"img{p}_{k}", "image_path": "", "view": ["PA", "AP", "LATERAL"][k % 3],
                         "split": split})
    return pd.DataFrame(rows)


def test_patient_split_is_disjoint_seeded_and_near_fractions():
    t = _table()
    a, b, c = (prep.patient_split(t, seed=s) for s in (0, 0, 1))
    assert a.equals(b) and not a.equals(c)
    t = t.assign(split=a)
    prep.assert_patient_disjoint(t)
    shares = t.drop_duplicates("subject_id")["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.65) < 0.05 and abs(shares["test"] - 0.20) < 0.05


def test_official_split_is_kept_and_others_filled():
    t = _table(10)
    t.loc[t.subject_id == "10000000", "split"] = "test"
    s = prep.patient_split(t, seed=0)
    assert (s[t.subject_id == "10000000"] == "test").all()
    assert s.notna().all()


def test_image_split_leaks_patients_and_assertion_catches_it():
    t = _table()
    leaky = t.assign(split=prep.image_split(t, seed=0))
    assert len(prep.patients_in_several_splits(leaky)) > 0
    with pytest.raises(prep.SplitLeakError, match="more than one split"):
        prep.assert_patient_disjoint(leaky)


def test_frontal_only():
    t = _table(4)
    assert set(prep.frontal_only(t)["view"]) == {"PA", "AP"}


def test_bad_fractions_rejected():
    with pytest.raises(ValueError, match="fractions"):
        prep.patient_split(_table(3), seed=0, fractions=(0.5, 0.5, 0.5))


@pytest.fixture()
def image_table(tmp_path):
    t = _table(6, 2).assign(view="PA")
    paths = []
    for i, row in t.iterrows():
        p = tmp_path / "img" / f"{row.image_id}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((48, 48), i * 10 % 255, dtype=np.uint8)).save(p)
        paths.append(str(p))
    t["image_path"] = paths
    Path = type(tmp_path)
    good = Path(paths[1]).read_bytes()
    Path(paths[1]).write_bytes(good[: len(good) // 2])  # truncated PNG
    Path(paths[2]).write_text("not an image at all")  # wrong content
    t.loc[3, "image_path"] = str(tmp_path / "img" / "missing.png")
    for label in CHEXPERT_LABELS:
        t[label] = np.nan
    return t


def test_cache_quarantines_bad_files_and_keeps_going(image_table, tmp_path):
    c = cache_mod.build_image_cache(image_table, tmp_path / "cache", size=16, workers=1, progress=False)
    assert c.images.shape == (len(image_table) - 3, 16, 16) and c.images.dtype == np.uint8
    q = c.quarantine.set_index("image_id")
    assert set(q.index) == {"img0_1", "img1_0", "img1_1"}
    assert all(isinstance(r, str) and r for r in q["reason"])
    # the first film is uniform 0, the fifth uniform 40 → the cache holds those values
    assert c.images[c.rows_for(["img0_0"])[0]].max() == 0
    assert c.images[c.rows_for(["img2_0"])[0]].min() == 40


def test_cache_is_reused_rebuilt_on_change_and_after_interruption(image_table, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    cache_mod.build_image_cache(image_table, folder, size=16, workers=1, progress=False)
    calls = []
    real = cache_mod._read_chunk
    monkeypatch.setattr(cache_mod, "_read_chunk", lambda a: calls.append(1) or real(a))
    cache_mod.build_image_cache(image_table, folder, size=16, workers=1, progress=False)
    assert calls == []  # same parameters: reused
    c = cache_mod.build_image_cache(image_table, folder, size=8, workers=1, progress=False)
    assert calls and c.images.shape[1:] == (8, 8)  # size changed: rebuilt
    calls.clear()
    (folder / "cache.json").unlink()  # as if interrupted before the marker was written
    cache_mod.build_image_cache(image_table, folder, size=8, workers=1, progress=False)
    assert calls
    assert json.loads((folder / "cache.json").read_text())["n_quarantined"] == 3


def test_cache_in_parallel_equals_serial(image_table, tmp_path):
    a = cache_mod.build_image_cache(image_table, tmp_path / "a", size=16, workers=1, progress=False, chunk=2)
    b = cache_mod.build_image_cache(image_table, tmp_path / "b", size=16, workers=2, progress=False, chunk=2)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.quarantine.equals(b.quarantine)


def test_prepare_writes_table_splits_and_quarantine(image_table, tmp_path):
    params = {"dataset": "toy", "data_root": str(tmp_path), "image_size": 16, "seed": 0}
    p = prep.prepare(params, out=tmp_path / "prepared", workers=1, progress=False, table=image_table)
    assert len(p.table) == len(image_table) - 3
    for name in ("studies.csv", "splits.csv", "quarantine.csv"):
        assert (tmp_path / "prepared" / name).exists()
    rows, films = p.subset("train")
    assert len(rows) == len(films) and (rows["split"] == "train").all()
    np.testing.assert_array_equal(films[0], p.images[rows["cache_row"].iloc[0]])
    assert p.labels(rows).shape == (len(rows), 14)
