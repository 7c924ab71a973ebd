"""Fusion (notebook 04): late fusion fitted on validation only, averaging, joint fusion starting from the submodels,
every method's predictions table, and the honest comparison helpers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxrkit import prep
from cxrkit.fusion import (LATE_METHODS, changed_calls, choose_best, comparison_figure, comparison_table, fit_late_fusion,
                           fusion_gain, late_fusion_predictions, out_of_fold_late)
from cxrkit.fusion import late as late_module
from cxrkit.labels import CHEXPERT_LABELS, MODEL_LABELS
from cxrkit.models.fusion import CrossAttentionFusion, EarlyFusion, JointFusion
from cxrkit.models.image import SmallCNN
from cxrkit.models.text import TextCNN
from cxrkit.profiles import get_profile
from cxrkit.recipes import fusion as fusion_recipe

LABELS = list(MODEL_LABELS)
FEW = LABELS[:3]  # the cross-validated elastic net is slow-ish: tests that only need a few labels use these


# ----------------------------------------------------------------------------------------------- late fusion

def _predictions(n_val: int = 120, n_test: int = 80, seed: int = 0):
    """Two models' predictions tables and a study table where each model sees part of the truth."""
    rng = np.random.default_rng(seed)
    n = n_val + n_test
    ids = np.array([f"img{i:04d}" for i in range(n)])
    split = np.array(["validate"] * n_val + ["test"] * n_test, dtype=object)
    y = (rng.random((n, len(LABELS))) < 0.3).astype(float)
    noise_a, noise_b = rng.normal(size=y.shape), rng.normal(size=y.shape)
    p_a = 1 / (1 + np.exp(-(1.5 * y + noise_a - 0.7)))
    p_b = 1 / (1 + np.exp(-(1.0 * y + noise_b - 0.5)))
    rows = pd.DataFrame({"image_id": ids, "subject_id": [f"p{i // 2}" for i in range(n)], "split": split,
                         "indication": ["text"] * n})
    rows = pd.concat([rows, pd.DataFrame(y, columns=LABELS)], axis=1)
    table = lambda p: pd.concat([pd.DataFrame({"image_id": ids, "split": split}), pd.DataFrame(p, columns=LABELS)], axis=1)
    return {"image": table(p_a), "text": table(p_b)}, rows


def test_mean_equals_the_manual_mean():
    preds, rows = _predictions()
    rule, fused = late_fusion_predictions("mean", preds, rows, LABELS)
    manual = (preds["image"][LABELS].to_numpy() + preds["text"][LABELS].to_numpy()) / 2
    order = preds["image"].set_index("image_id").index
    got = fused.on(order, LABELS)
    np.testing.assert_allclose(got, manual, rtol=0, atol=1e-12)
    assert rule.models == {}


@pytest.mark.parametrize("method", ["linear", "elastic_net"])
def test_stacking_is_fitted_on_validation_rows_only(method, monkeypatch):
    preds, rows = _predictions()
    seen: list[list[str]] = []
    original = late_module.fit_late_fusion

    def spy(method_, probs, targets, split, groups=None, seed=0):
        seen.append(list(targets.index))
        return original(method_, probs, targets, split, groups, seed)

    monkeypatch.setattr(late_module, "fit_late_fusion", spy)
    # poison the test rows (predictions that contradict the truth): if any reached the fit, its weights would change
    poisoned = {k: v.assign(**{lab: np.where(v["split"] == "test", 1 - v[lab], v[lab]) for lab in FEW}) for k, v in preds.items()}
    rule, fused = late_fusion_predictions(method, poisoned, rows, FEW)
    test_ids = set(rows.loc[rows["split"] == "test", "image_id"])
    assert seen and not (set(seen[0]) & test_ids)
    assert set(rule.fitted_on) == set(rows.loc[rows["split"] == "validate", "image_id"])
    clean_rule, _ = late_fusion_predictions(method, preds, rows, FEW)
    np.testing.assert_allclose(rule.weights().to_numpy(), clean_rule.weights().to_numpy())  # test values never mattered


def test_fit_refuses_test_rows():
    preds, rows = _predictions()
    probs = {k: v.set_index("image_id")[LABELS] for k, v in preds.items()}
    targets = rows.set_index("image_id")[LABELS]
    split = rows.set_index("image_id")["split"]
    with pytest.raises(ValueError, match="validation predictions only.*test"):
        fit_late_fusion("elastic_net", probs, targets, split, rows.set_index("image_id")["subject_id"])


def test_stacking_learns_to_trust_the_better_model():
    preds, rows = _predictions(n_val=400, n_test=100)
    rule, _ = late_fusion_predictions("elastic_net", preds, rows, LABELS[:6])
    w = rule.weights()
    assert (w["image"] > w["text"]).mean() > 0.6  # image carries 1.5 units of signal, text 1.0
    assert not rule.fallback


def test_a_label_without_enough_positives_falls_back_to_the_mean():
    preds, rows = _predictions()
    rows = rows.copy()
    rows[LABELS[0]] = 0.0
    rows.loc[rows.index[:3], LABELS[0]] = 1.0
    rule, _ = late_fusion_predictions("elastic_net", preds, rows, FEW)
    assert LABELS[0] in rule.fallback


@pytest.mark.filterwarnings("ignore")
def test_the_fast_auroc_scorer_chooses_what_scikit_learns_roc_auc_scorer_chooses():
    """The elastic net's search scored by the kit's scorer picks the same C, mix and weights as with ``"roc_auc"``."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n = 240
    y = (rng.random(n) < 0.25).astype(int)
    x = np.column_stack([1.2 * y + rng.normal(size=n), np.round(0.6 * y + rng.normal(size=n), 1)])  # ties in one input
    groups = np.arange(n) // 2

    class Scores:  # the decision function the scorer reads
        def decision_function(self, features):
            return features[:, 1]

    assert late_module.auroc_scorer(Scores(), x, y) == pytest.approx(roc_auc_score(y, x[:, 1]), abs=1e-12)
    assert np.isnan(late_module.auroc_scorer(Scores(), x, np.zeros(n, int)))  # one class: NaN, as roc_auc_score
    kit = late_module._elastic_net(x, y, groups, seed=0).fit(x, y)
    reference = late_module._elastic_net(x, y, groups, seed=0)
    reference[-1].set_params(scoring="roc_auc")
    reference.fit(x, y)
    assert np.ravel(kit[-1].C_)[0] == np.ravel(reference[-1].C_)[0]
    assert np.ravel(kit[-1].l1_ratio_)[0] == np.ravel(reference[-1].l1_ratio_)[0]
    np.testing.assert_allclose(kit[-1].coef_, reference[-1].coef_, rtol=0, atol=1e-12)


def test_unknown_method_is_named():
    preds, rows = _predictions()
    with pytest.raises(ValueError, match="'median'"):
        late_fusion_predictions("median", preds, rows, LABELS)


@pytest.mark.parametrize("method", LATE_METHODS)
def test_every_late_method_writes_a_valid_predictions_table(method):
    preds, rows = _predictions()
    _, fused = late_fusion_predictions(method, preds, rows, LABELS)
    table = fused.table
    assert list(table.columns) == ["image_id", "split"] + LABELS and fused.labels == LABELS
    assert set(table["split"]) == {"validate", "test"} and table["image_id"].is_unique
    assert len(table) == len(rows) and table[LABELS].to_numpy().min() >= 0 and table[LABELS].to_numpy().max() <= 1


def test_out_of_fold_predictions_never_use_their_own_rows():
    preds, rows = _predictions()
    val = rows[rows["split"] == "validate"].set_index("image_id")
    probs = {k: v.set_index("image_id").loc[val.index, LABELS] for k, v in preds.items()}
    oof = out_of_fold_late("linear", probs, val[LABELS], val["subject_id"])
    assert not oof.isna().any().any()
    fitted_all = late_module.fit_late_fusion("linear", probs, val[LABELS], pd.Series("validate", index=val.index),
                                             val["subject_id"]).predict(probs)
    assert not np.allclose(oof.to_numpy(), fitted_all.to_numpy())  # in-sample and out-of-fold differ


def test_comparison_gain_choice_and_figure():
    preds, rows = _predictions(n_val=100, n_test=200)
    _, mean = late_fusion_predictions("mean", preds, rows, LABELS)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    y = test[LABELS].to_numpy()
    probs = {"image": preds["image"][preds["image"].split == "test"].set_index("image_id")[LABELS],
             "text": preds["text"][preds["text"].split == "test"].set_index("image_id")[LABELS],
             "mean": mean.split("test")}
    table = comparison_table(probs, test, y, LABELS, n_boot=50)
    assert list(table.index) == ["image", "text", "mean"]
    assert (table["auroc_lo"] <= table["auroc"]).all() and (table["auroc"] <= table["auroc_hi"]).all()
    assert table.loc["image", "auroc"] > table.loc["text", "auroc"]
    assert choose_best({"image": 0.8, "text": 0.7, "mean": 0.85, "linear": 0.83}, ["image", "text"], ["mean", "linear"]) == ("image", "mean")
    gain = fusion_gain(probs, test, y, LABELS, "image", "mean", n_boot=50)
    assert gain["lo"] <= gain["gain"] <= gain["hi"]
    assert np.isclose(gain["gain"], table.loc["mean", "auroc"] - table.loc["image", "auroc"])
    fig = comparison_figure(table, LABELS)
    assert len(fig.data) == 2 and list(fig.data[0].y) == ["mean", "text", "image"]
    changed = changed_calls(test, y, 0, probs["image"].to_numpy(), probs["mean"].to_numpy(), 0.5, 0.5)
    assert set(changed["verdict"]) <= {"fixed by fusion", "broken by fusion"}
    flips = (probs["image"].to_numpy()[:, 0] >= 0.5) != (probs["mean"].to_numpy()[:, 0] >= 0.5)
    assert len(changed) == int(flips.sum())


# ------------------------------------------------------------------------------------------ layer-level fusion

def _submodels(k: int = 3, vocab: int = 30, head: str = "gap"):
    torch.manual_seed(0)
    image = SmallCNN(num_outputs=k, width=8, head=head).eval()
    text = TextCNN(vocab, embed_dim=8, num_outputs=k, channels=4).eval()
    x = torch.rand(4, 1, 32, 32)
    ids = torch.randint(2, vocab, (4, 7))
    ids[:, 5:] = 0
    return image, text, x, ids


@pytest.mark.parametrize("head", ["gap", "gapmax", "lse"])
def test_joint_fusion_starts_from_the_submodels(head):
    image, text, x, ids = _submodels(head=head)
    joint = JointFusion(image, text).eval()
    for mine, theirs in zip(joint.image_model.state_dict().values(), image.state_dict().values()):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(joint.text_model.state_dict().values(), text.state_dict().values()):
        assert torch.equal(mine, theirs)
    with torch.no_grad():
        expected = (image(x) + text(ids)) / 2
        torch.testing.assert_close(joint(x, ids), expected, rtol=1e-5, atol=1e-6)
    assert joint.image_model is not image and all(p.requires_grad for p in joint.parameters())


@pytest.mark.parametrize("head", ["gap", "gapmax", "lse"])
def test_early_and_attention_fusion_freeze_their_encoders(head):
    image, text, x, ids = _submodels(head=head)
    for model in (EarlyFusion(image, text, 3, hidden=8), CrossAttentionFusion(image, text, 3, dim=8, heads=2, grid=4)):
        model.train()
        assert not model.image_model.training and not model.text_model.training
        frozen = [p for n, p in model.named_parameters() if n.startswith(("image_model.", "text_model."))]
        assert frozen and not any(p.requires_grad for p in frozen)
        out = model(x, ids)
        assert out.shape == (4, 3)
        out.sum().backward()
        assert all(p.grad is None for p in frozen)


def test_attention_ignores_padding_tokens():
    image, text, x, ids = _submodels()
    model = CrossAttentionFusion(image, text, 3, dim=8, heads=2, grid=4).eval()
    longer = torch.cat([ids, torch.zeros(4, 3, dtype=ids.dtype)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, ids), model(x, longer), rtol=1e-5, atol=1e-6)


def _toy(root, n_patients=16):
    rng = np.random.default_rng(0)
    rows = []
    for p in range(n_patients):
        for k in range(2):
            image_id = f"img{p}_{k}"
            path = root / "img" / f"{image_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            positive = (p + k) % 2
            Image.fromarray((rng.integers(0, 120, size=(24, 24)) + 100 * positive).astype(np.uint8)).save(path)
            labels = {name: float(rng.integers(0, 2)) for name in CHEXPERT_LABELS}
            labels[MODEL_LABELS[0]] = float(positive)
            rows.append({"dataset": "toy", "subject_id": f"1{p:07d}", "study_id": f"5{p:04d}{k:03d}", "image_id": image_id,
                         "image_path": str(path), "view": "PA", "split": None,
                         "indication": f"___M with {'cough' if labels[MODEL_LABELS[1]] else 'fall'} // eval",
                         "findings": "", "impression": "", **labels})
    return pd.DataFrame(rows)


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    P = get_profile("smoke", dataset="toy", data_root=str(tmp_path), image_size=16, epochs=1, text_epochs=1,
                    fusion_epochs=1, joint_epochs=1, batch_size=8)
    prepared = prep.prepare(P, out=tmp_path / "prepared", workers=1, progress=False, table=_toy(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield P, prepared
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["early", "joint", "attention"])
def test_every_fusion_model_trains_saves_loads_and_writes_a_valid_table(toy, method, monkeypatch):
    P, prepared = toy
    first = fusion_recipe.trained_fusion_model(P, method, prepared, progress=False)
    assert not first.loaded
    table = first.predictions.table
    assert list(table.columns) == ["image_id", "split"] + LABELS and set(table["split"]) == {"validate", "test"}
    assert table[LABELS].to_numpy().min() >= 0 and table[LABELS].to_numpy().max() <= 1
    monkeypatch.setattr(fusion_recipe, "fit", lambda *a, **k: pytest.fail("the saved fusion model should be loaded"))
    again = fusion_recipe.trained_fusion_model(P, method, prepared, progress=False)
    assert again.loaded
    pd.testing.assert_frame_equal(again.predictions.table, first.predictions.table)
    rows, films = prepared.subset("test")
    with torch.no_grad():
        probs = torch.sigmoid(again.model(**again.inputs(rows, films))).numpy()
    np.testing.assert_allclose(probs, again.predictions.on(rows), atol=1e-5)


@pytest.mark.parametrize("method", ["early", "attention"])
def test_frozen_encoders_give_the_same_features_whatever_layout_training_left(toy, method):
    """A model fresh from ``fit`` is channels-last on a CPU, a loaded one contiguous: the fusion's features must not differ."""
    P, prepared = toy
    image = fusion_recipe.trained_image_model(P, prepared, progress=False)
    text = fusion_recipe.trained_text_model(P, prepared=prepared, progress=False)
    torch.manual_seed(0)
    image.model = SmallCNN(in_channels=1, num_outputs=len(image.labels), width=24).eval()  # big enough to round differently
    rows, _ = prepared.subset("validate")
    films = np.random.default_rng(0).integers(0, 256, (len(rows), 128, 128), dtype=np.uint8)
    inputs = text.inputs(rows)
    contiguous = fusion_recipe.encoder_outputs(fusion_recipe.new_fusion_model(method, image, text), films, inputs)
    image.model.to(memory_format=torch.channels_last)
    channels_last = fusion_recipe.encoder_outputs(fusion_recipe.new_fusion_model(method, image, text), films, inputs)
    for name in contiguous:
        assert torch.equal(contiguous[name], channels_last[name]), name


def test_tensor_dict_dataset_serves_named_batches_and_names_bad_rows():
    from cxrkit.train import TensorDictDataset

    data = TensorDictDataset({"features": torch.arange(12.0).reshape(6, 2), "pooled": torch.zeros(6, 3)}, np.ones((6, 2)))
    inputs, y = data.batch(torch.tensor([4, 1]))
    assert inputs["features"].tolist() == [[8.0, 9.0], [2.0, 3.0]] and y.shape == (2, 2)
    with pytest.raises(ValueError, match="'pooled': \\(5, 3\\)"):
        TensorDictDataset({"features": torch.zeros(6, 2), "pooled": torch.zeros(5, 3)}, np.ones((6, 2)))
