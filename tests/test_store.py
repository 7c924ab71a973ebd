"""The one artifact store (cxrkit.store), the predictions contract (cxrkit.predictions) and the recipes' configs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cxrkit import store
from cxrkit.predictions import Predictions
from cxrkit.profiles import get_profile
from cxrkit.recipes.config import RecipeConfig, read_knob
from cxrkit.recipes.controls import ControlRecipe
from cxrkit.recipes.fusion import FusionRecipe
from cxrkit.recipes.image import IMAGE_MODEL_KNOBS, ImageRecipe
from cxrkit.recipes.text import TEXT_MODEL_KNOBS, TextRecipe
from cxrkit.train import History

LABELS = ["Edema", "Pneumothorax"]


def _predictions() -> Predictions:
    val = Predictions.of(["a", "b"], "validate", np.array([[0.1, 0.2], [0.3, 0.4]]), LABELS)
    test = Predictions.of([3, "c"], "test", np.array([[0.5, 0.6], [0.7, 1 / 3]]), LABELS)
    return Predictions.concat([val, test])


# ------------------------------------------------------------------------------------------- predictions

def test_predictions_answer_by_split_by_rows_and_whole():
    p = _predictions()
    assert p.splits == ["validate", "test"] and len(p) == 4 and p.labels == LABELS
    assert list(p.split("test").index) == ["3", "c"]  # ids are strings, whatever they were given as
    rows = pd.DataFrame({"image_id": ["c", "a", 3], "other": [0, 0, 0]})
    np.testing.assert_array_equal(p.on(rows), [[0.7, 1 / 3], [0.1, 0.2], [0.5, 0.6]])
    np.testing.assert_array_equal(p.on(["b"], ["Pneumothorax"]), [[0.4]])
    assert list(p.wide().index) == ["a", "b", "3", "c"] and list(p.wide().columns) == LABELS
    assert "4 films" in repr(p)


def test_predictions_name_what_is_missing_or_wrong():
    p = _predictions()
    with pytest.raises(KeyError, match="no prediction for 1 of the 2 films.*'zz'"):
        p.on(["a", "zz"])
    with pytest.raises(ValueError, match="no predictions for split 'train'.*validate"):
        p.split("train")
    with pytest.raises(ValueError, match="unique.*'a'"):
        Predictions.concat([p, Predictions.of(["a"], "test", np.array([[0.1, 0.1]]), LABELS)])
    with pytest.raises(ValueError, match="different labels"):
        Predictions.concat([p, Predictions.of(["x"], "test", np.array([[0.1]]), ["Edema"])])
    with pytest.raises(ValueError, match="'split'"):
        Predictions(pd.DataFrame({"image_id": ["a"], "Edema": [0.1]}))


def test_predictions_round_trip_through_csv_exactly(tmp_path):
    p = _predictions()
    p.to_csv(tmp_path / "predictions.csv")
    back = Predictions.read_csv(tmp_path / "predictions.csv", LABELS)
    pd.testing.assert_frame_equal(back.table, p.table, check_exact=True)


# ------------------------------------------------------------------------------------------------- store

def _write(model, history, predictions):
    return lambda tmp: {"labels": LABELS, **store.write_model_files(tmp, model, history, predictions)}


@pytest.fixture()
def saved(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    model = torch.nn.Linear(3, 2)
    history = History(pd.DataFrame({"epoch": [1], "val_auroc": [0.5]}), 1, "val_auroc", False, "cpu", "", {"lr": 1.0})
    key = {"a": (1, 2), "where": tmp_path, "nested": {"b": 1}}
    stored = store.save("image_models", key, "fp1", _write(model, history, _predictions()))
    return key, model, stored


def test_a_saved_artifact_is_found_by_its_key_and_fingerprint_only(saved):
    key, model, stored = saved
    assert {p.name for p in stored.folder.iterdir()} == set(store.MODEL_FILES)
    assert not [p for p in stored.folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    found = store.find("image_models", key, "fp1")
    assert found is not None and found.folder == stored.folder and found.meta["key"]["a"] == [1, 2]  # the JSON round trip
    assert store.find("image_models", key) is not None  # no fingerprint asked: the key decides
    assert store.find("image_models", key, "another") is None
    assert store.find("image_models", {**key, "a": (1, 3)}) is None
    back = store.load_state(torch.nn.Linear(3, 2), found)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    assert store.read_history(found).settings == {"lr": 1.0} and store.read_history(found).best_epoch == 1
    pd.testing.assert_frame_equal(store.read_predictions(found).table, _predictions().table, check_exact=True)


def test_an_incomplete_or_foreign_folder_is_not_an_artifact(saved):
    key, _, stored = saved
    (stored.folder / "predictions.csv").unlink()
    assert store.find("image_models", key) is None
    assert store.find("image_models", key, files=store.CONTROL_FILES) is not None  # a control stores no predictions
    meta = json.loads((stored.folder / "meta.json").read_text())
    (stored.folder / "meta.json").write_text(json.dumps({**meta, "key": {"a": "other"}}))
    assert store.find("image_models", key, files=store.CONTROL_FILES) is None


def test_a_failed_write_leaves_the_old_artifact_and_no_staging(saved):
    key, _, stored = saved

    def broken(tmp):
        (tmp / "model.pt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.save("image_models", key, "fp2", broken)
    assert store.find("image_models", key, "fp1") is not None
    assert not [p for p in stored.folder.parent.iterdir() if p.name.startswith(".")]


def test_fingerprints_are_order_free_unless_asked():
    assert store.fingerprint(["b", "a"]) == store.fingerprint(["a", "b"])
    assert store.fingerprint(["b", "a"], ordered=True) != store.fingerprint(["a", "b"], ordered=True)
    assert len(store.fingerprint(["x"])) == 16


# ----------------------------------------------------------------------------------------------- configs

def test_each_recipe_reads_its_knobs_once_from_the_parameters(tmp_path):
    P = get_profile("smoke", data_root=str(tmp_path / ".." / tmp_path.name), pos_weight="none")
    image = ImageRecipe.read(P)
    assert tuple(image.knobs()) == IMAGE_MODEL_KNOBS and image.epochs == P["epochs"]
    assert image.data_root == str(tmp_path.resolve()) and image.pos_weight is None
    assert ImageRecipe.read(image) is image  # a config passes through
    assert set(TEXT_MODEL_KNOBS) == set(TextRecipe.read(P).knobs()) - {"text_source"}
    assert FusionRecipe.read({}).fusion_epochs == get_profile("class")["fusion_epochs"]  # absent: the class profile's
    assert ControlRecipe.read(P).control_epochs == P["control_epochs"]
    with pytest.raises(TypeError, match="another recipe's config"):
        TextRecipe.read(image)
    with pytest.raises(KeyError, match="'nonsense'"):
        read_knob(P, "nonsense")
    with pytest.raises(Exception):  # frozen: a config is read once and never changed
        image.epochs = 3  # type: ignore[misc]
    assert issubclass(ImageRecipe, RecipeConfig)
