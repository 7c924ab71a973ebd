"""The image recipe (cxrkit.recipes.image): train once, save atomically, load by key, retrain when the key or data change."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxrkit import prep
from cxrkit.labels import CHEXPERT_LABELS, MODEL_LABELS, evaluation_targets
from cxrkit.profiles import get_profile
from cxrkit.recipes import image as recipe
from cxrkit.models.image import SmallCNN
from cxrkit.train import BatchLoader, History, ImageDataset, fit, predict, refresh_batch_norm


def _toy_table(root, n_patients=14, per_patient=2, seed=0):
    """Frontal PNG films whose brightness carries the first label, with 1/0/-1/blank labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for k in range(per_patient):
            image_id = f"img{p}_{k}"
            path = root / "img" / f"{image_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            positive = (p + k) % 2
            film = rng.integers(0, 120, size=(24, 24)) + 100 * positive
            Image.fromarray(film.astype(np.uint8)).save(path)
            labels = {name: rng.choice([1.0, 0.0, -1.0, np.nan]) for name in CHEXPERT_LABELS}
            labels[MODEL_LABELS[0]] = float(positive)
            rows.append({"dataset": "toy", "subject_id": f"1{p:07d}", "study_id": f"5{p:04d}{k:03d}",
                         "image_id": image_id, "image_path": str(path), "view": "PA", "split": None,
                         "indication": "", "findings": "", "impression": "", **labels})
    return pd.DataFrame(rows)


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """A tiny prepared dataset (no cohort generation) and a smoke profile pointing at it; artifacts in tmp."""
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    P = get_profile("smoke", dataset="toy", data_root=str(tmp_path), image_size=16, epochs=2, batch_size=8)
    prepared = prep.prepare(P, out=tmp_path / "prepared", workers=1, progress=False, table=_toy_table(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread avoids thread hand-off overhead on a busy CPU
    yield P, prepared
    torch.set_num_threads(threads)


def _counting_fit(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return fit(*args, **kwargs)

    monkeypatch.setattr(recipe, "fit", counted)
    return calls


def _failing_fit(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("fit must not run: the saved model should have been loaded")

    monkeypatch.setattr(recipe, "fit", fail)


def test_trains_saves_then_loads_identically_without_training(toy, monkeypatch):
    P, prepared = toy
    calls = _counting_fit(monkeypatch)
    first = recipe.trained_image_model(P, prepared, progress=False)
    assert len(calls) == 1 and not first.loaded
    assert {p.name for p in first.folder.iterdir()} == {"model.pt", "history.csv", "predictions.csv", "meta.json"}
    assert isinstance(first.history, History) and len(first.history.table) >= 1
    assert not first.model.training

    _failing_fit(monkeypatch)
    second = recipe.trained_image_model(P, prepared, progress=False)
    assert second.loaded and second.folder == first.folder
    pd.testing.assert_frame_equal(second.predictions.table, first.predictions.table, check_exact=True)
    pd.testing.assert_frame_equal(second.history.table, first.history.table)
    assert second.history.best_epoch == first.history.best_epoch
    assert not second.model.training
    for (k, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()), k
    # the loaded model predicts what was saved
    loaders = recipe.image_loaders(P, prepared)
    np.testing.assert_allclose(predict(second.model, loaders.test), second.probabilities("test").to_numpy(),
                               rtol=1e-5, atol=1e-6)
    # without a Prepared the saved model is found by its key alone
    assert recipe.trained_image_model(P, progress=False).loaded


def test_predictions_follow_the_contract(toy):
    P, prepared = toy
    trained = recipe.trained_image_model(P, prepared, progress=False)
    preds = trained.predictions.table
    assert list(preds.columns) == ["image_id", "split", *MODEL_LABELS]
    assert trained.labels == list(MODEL_LABELS)
    assert set(preds["split"]) == {"validate", "test"}
    expected = prepared.table[prepared.table["split"].isin(["validate", "test"])]
    assert sorted(preds["image_id"]) == sorted(expected["image_id"].astype(str))
    by_id = expected.set_index(expected["image_id"].astype(str))["split"]
    assert (preds["split"].to_numpy() == by_id.loc[preds["image_id"]].to_numpy()).all()
    values = preds[list(MODEL_LABELS)].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1


def test_changing_a_key_parameter_retrains_and_others_do_not(toy, monkeypatch):
    P, prepared = toy
    calls = _counting_fit(monkeypatch)
    base = recipe.trained_image_model(P, prepared, progress=False)
    other = recipe.trained_image_model({**P, "lr": P["lr"] / 2}, prepared, progress=False)
    assert len(calls) == 2 and calls[1]["lr"] == P["lr"] / 2
    assert other.folder != base.folder and not other.loaded
    again = recipe.trained_image_model({**P, "n_boot": 7, "ig_steps": 3}, prepared, progress=False)  # not model knobs
    assert again.loaded and again.folder == base.folder and len(calls) == 2
    recipe.trained_image_model(P, prepared, progress=False, force=True)
    assert len(calls) == 3


def test_a_model_trained_on_other_films_is_not_reused(toy, tmp_path, monkeypatch):
    P, prepared = toy
    calls = _counting_fit(monkeypatch)
    recipe.trained_image_model(P, prepared, progress=False)
    moved = prepared.table.copy()
    moved.loc[moved["split"] == "test", "split"] = "validate"
    moved.loc[moved.index[:2], "split"] = "test"
    other = prep.Prepared(prepared.folder, moved, prepared.cache)
    recipe.trained_image_model(P, other, progress=False)
    assert len(calls) == 2


def test_a_model_trained_on_other_labels_is_not_reused(toy, monkeypatch):
    P, prepared = toy
    calls = _counting_fit(monkeypatch)
    recipe.trained_image_model(P, prepared, progress=False)
    relabelled = prepared.table.copy()
    label = recipe.MODEL_LABELS[0]
    relabelled.loc[relabelled.index[0], label] = 1.0 - float(relabelled.loc[relabelled.index[0], label] == 1.0)
    recipe.trained_image_model(P, prep.Prepared(prepared.folder, relabelled, prepared.cache), progress=False)
    assert len(calls) == 2  # same films and splits, one label changed (a regenerated report): retrained


def test_the_recipe_is_the_notebooks_steps(toy):
    """Notebook 02 trains with these exact calls; the recipe must give the same predictions."""
    P, prepared = toy
    loaders = recipe.image_loaders(P, prepared)
    model = recipe.new_image_model(P)
    history = fit(model, loaders.train, loaders.validate, progress=False, **recipe.image_fit_settings(P))
    by_hand = recipe.image_predictions(model, loaders)
    trained = recipe.trained_image_model(P, prepared, progress=False)
    pd.testing.assert_frame_equal(trained.predictions.table, by_hand.table)
    pd.testing.assert_frame_equal(trained.history.table.drop(columns=["seconds", "train_images_per_s"]),
                                  history.table.drop(columns=["seconds", "train_images_per_s"]))


def test_loaders_targets_and_settings(toy):
    P, prepared = toy
    loaders = recipe.image_loaders(P, prepared)
    for split in ("train", "validate", "test"):
        rows = loaders.rows[split]
        assert (rows["split"] == split).all() and len(loaders.targets[split]) == len(rows)
    train_x, train_y = next(iter(loaders.train))
    assert train_x.shape[1:] == (1, 16, 16) and train_y.shape[1] == len(MODEL_LABELS)
    assert loaders.train.shuffle and not loaders.test.shuffle
    assert loaders.augment is not None and not loaders.augment.hflip
    assert recipe.image_loaders({**P, "augment": False}, prepared).augment is None

    raw = loaders.rows["train"][list(MODEL_LABELS)].to_numpy(dtype=float)
    targets = loaders.targets["train"]
    assert (targets[np.isnan(raw)] == 0).all()  # blank → negative
    assert (targets[raw == -1] == -1).all()  # uncertain kept for the policy
    scored = evaluation_targets(loaders.rows["train"])
    assert np.isnan(scored[raw == -1]).all() and not np.isnan(scored[raw != -1]).any()

    settings = recipe.image_fit_settings(P)
    assert settings["epochs"] == P["epochs"] and settings["lr"] == P["lr"] and settings["seed"] == P["seed"]
    before = torch.random.get_rng_state()
    a, b = recipe.new_image_model(P), recipe.new_image_model(P)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global random state is untouched
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_key_holds_every_model_knob(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path))
    P = get_profile("class")
    key = recipe.image_model_key(P)
    assert set(recipe.IMAGE_MODEL_KNOBS) <= set(key) and key["recipe"] == recipe.RECIPE_VERSION
    for knob in recipe.IMAGE_MODEL_KNOBS:
        changed = {**P, knob: "changed"}
        assert recipe.image_model_dir(changed) != recipe.image_model_dir(P), knob
    assert recipe.image_model_dir({**P, "n_boot": 1}) == recipe.image_model_dir(P)


# --------------------------------------------------------------------- batch-norm refresh (cxrkit.train.loop)

def test_refresh_batch_norm_makes_eval_match_the_batch_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten())
    x = torch.randn(32, 1, 8, 8) * 3 + 5  # far from the initial running stats (mean 0, var 1)
    with torch.no_grad():
        train_out = model.train()(x)
        model.eval()
        assert not torch.allclose(model(x), train_out, atol=1e-2)  # one momentum-0.1 update: stale stats
        momentum = model[1].momentum
        assert refresh_batch_norm(model, [x]) == 1
        assert torch.allclose(model(x), train_out, atol=1e-2)  # eval now uses this batch's statistics
    assert model[1].momentum == momentum and not model.training
    assert refresh_batch_norm(model, []) == 0 and refresh_batch_norm(torch.nn.Linear(2, 2), [torch.ones(1, 2)]) == 0


def test_fit_bn_refresh_leaves_statistics_of_the_final_weights(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 24, 24), dtype=np.uint8)
    labels = (rng.random((24, 2)) < 0.5).astype(np.float32)
    loader = BatchLoader(ImageDataset(images, labels), batch_size=24)  # one batch: the refresh uses exactly it

    def trained(refresh):
        torch.manual_seed(0)
        model = SmallCNN(num_outputs=2, width=4)
        history = fit(model, loader, epochs=2, lr=1e-2, progress=False, seed=0, device="cpu", bn_refresh_batches=refresh)
        return model, history

    model, history = trained(1)
    assert history.settings["bn_refresh_batches"] == 1
    stale_model, _ = trained(0)
    x, _ = loader.dataset.batch(torch.arange(24))
    with torch.no_grad():
        refreshed = model.eval()(x)
        stale = stale_model.eval()(x)
        model.train().dropout.eval()
        batch_stats = model(x)  # what the final weights give with this batch's statistics (no dropout)
    # equal up to the unbiased (running) vs biased (batch) variance; the stale running average is far off
    assert (refreshed - batch_stats).abs().max() < 0.05
    assert (stale - batch_stats).abs().max() > 0.2
    with pytest.raises(ValueError, match="bn_refresh_batches"):
        fit(SmallCNN(num_outputs=2, width=4), loader, epochs=1, bn_refresh_batches=-1, progress=False)


def test_fit_settings_are_the_class_recipe_in_float32_on_every_cpu():
    P = get_profile("class")
    settings = recipe.image_fit_settings(P)
    assert "amp" not in settings and "channels_last" not in settings  # fp32; fit picks the memory format
    assert settings["schedule"] == "onecycle" and settings["pos_weight"] == "sqrt_balanced"
    assert settings["early_stopping_patience"] is None and settings["bn_refresh_batches"] == 0  # the cycle runs out
    constant = recipe.image_fit_settings({**P, "schedule": "constant", "pos_weight": None})
    assert constant["early_stopping_patience"] == P["patience"] and constant["bn_refresh_batches"] > 0
    assert constant["pos_weight"] is None
    model = recipe.new_image_model(P)
    assert model.head_kind == P["image_head"] and model.feature_channels == 4 * P["image_width"]
