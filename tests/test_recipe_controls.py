"""The control models of notebook 05 (cxrkit.recipes.controls): trained once with the image recipe, then loaded —
from CXRKIT_HOME or from the course models the kit ships."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cxrkit.profiles import get_profile
from cxrkit.recipes import controls
from cxrkit.recipes.controls import planted_control_model, planted_films, planted_probabilities, shuffled_label_model


class _FakePrepared:
    """Just enough of cxrkit.prep.Prepared for the image recipe's loaders: a table and uint8 films per split."""

    def __init__(self, n_per_split=24, size=32, seed=0):
        import pandas as pd

        from cxrkit.labels import MODEL_LABELS

        rng = np.random.default_rng(seed)
        n = 3 * n_per_split
        self.table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)],
                                   "split": np.repeat(["train", "validate", "test"], n_per_split)})
        for label in MODEL_LABELS:
            self.table[label] = rng.integers(0, 2, n).astype(float)
        self.images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)

    def subset(self, split):
        idx = np.flatnonzero(self.table["split"].to_numpy() == split)
        return self.table.iloc[idx].reset_index(drop=True), self.images[idx]


def test_shuffled_label_model_trains_once_then_loads(tmp_path, monkeypatch):

    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path))
    P = get_profile("smoke", image_size=32, batch_size=8)
    prepared = _FakePrepared()
    first = shuffled_label_model(P, prepared, epochs=1, progress=False)
    assert not first.training
    folders = list((tmp_path / "shuffled_label_models").iterdir())
    assert len(folders) == 1 and (folders[0] / "model.pt").is_file()
    mtime = (folders[0] / "model.pt").stat().st_mtime_ns
    again = shuffled_label_model(P, prepared, epochs=1, progress=False)
    assert (folders[0] / "model.pt").stat().st_mtime_ns == mtime  # loaded, not retrained
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        shuffled_label_model(P, prepared, epochs=0, progress=False)


def test_planted_control_trains_once_loads_and_its_films_are_the_data_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path))
    P = get_profile("smoke", image_size=32, batch_size=8)
    prepared = _FakePrepared()
    a, b = planted_films(P, prepared, "test"), planted_films({**P, "seed": 7}, prepared, "test")
    assert np.array_equal(a.films, b.films) and a.labels.min() == 0 and a.labels.max() == 1  # the data, not training
    assert not np.array_equal(a.masks, planted_films({**P, "data_seed": 1}, prepared, "test").masks)
    first = planted_control_model(P, prepared, progress=False)
    assert not first.loaded and not first.model.training and (first.folder / "model.pt").is_file()
    again = planted_control_model(P, prepared, progress=False)
    assert again.loaded and again.folder == first.folder
    p = planted_probabilities(again, a)
    assert p.shape == (len(a.labels),) and ((p >= 0) & (p <= 1)).all()
    assert first.model(torch.zeros(1, 1, 32, 32)).shape == (1, 1)  # one output: disc or not


def test_a_shipped_control_is_found_after_the_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("cxrkit.paths.SHIPPED_ROOT", tmp_path / "shipped")
    P = get_profile("smoke", image_size=32, batch_size=8)
    prepared = _FakePrepared()
    built = planted_control_model(P, prepared, progress=False)
    shipped = tmp_path / "shipped" / "planted_models" / built.folder.name
    shutil.copytree(built.folder, shipped)
    shutil.rmtree(built.folder)
    found = planted_control_model(P, prepared, progress=False)
    assert found.loaded and found.folder == shipped
    assert "planted_models" in controls.control_key(P, "planted_models")["control"]
