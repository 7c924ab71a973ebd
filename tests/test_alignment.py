"""Notebook 07's alignment model (cxrkit.models.alignment) and fit's validation-loss monitor it trains with."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from cxrkit.models.alignment import AlignmentModel, contrastive_loss, pair_probabilities, split_outputs
from cxrkit.models.image import SmallCNN
from cxrkit.train import BatchLoader, TensorDictDataset, fit


def _model(dim: int = 8, text_dim: int = 6) -> AlignmentModel:
    torch.manual_seed(0)
    return AlignmentModel(SmallCNN(num_outputs=1, width=8), text_dim=text_dim, dim=dim, hidden=16).eval()


def test_rows_hold_unit_embeddings_and_the_scale():
    model = _model()
    out = model(torch.rand(5, 1, 32, 32), torch.randn(5, 6))
    assert out.shape == (5, 17)
    films, reports, scale = split_outputs(out)
    np.testing.assert_allclose(films.norm(dim=1).detach(), 1, atol=1e-6)
    np.testing.assert_allclose(reports.norm(dim=1).detach(), 1, atol=1e-6)
    assert float(scale.detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    sims = model.similarity(torch.rand(3, 1, 32, 32), torch.randn(4, 6))
    assert sims.shape == (3, 4) and float(sims.detach().abs().max()) <= 1 / 0.07 + 1e-4
    with pytest.raises(ValueError, match="5 films but 4 reports"):
        model(torch.rand(5, 1, 32, 32), torch.randn(4, 6))
    with pytest.raises(TypeError, match="embed"):
        AlignmentModel(torch.nn.Linear(2, 2))


def test_the_loss_is_the_symmetric_infonce_of_the_batch():
    torch.manual_seed(1)
    films, reports = F.normalize(torch.randn(4, 3), dim=1), F.normalize(torch.randn(4, 3), dim=1)
    scale = torch.tensor(5.0)
    out = torch.cat([films, reports, scale.log().expand(4, 1)], dim=1)
    logits = 5.0 * films @ reports.T
    by_hand = sum(-torch.log_softmax(logits, 1)[i, i] - torch.log_softmax(logits, 0)[i, i] for i in range(4)) / 8
    assert float(contrastive_loss(out)) == pytest.approx(float(by_hand), rel=1e-5)
    order = torch.tensor([2, 0, 3, 1])  # the same pairs in another order: the same loss
    assert float(contrastive_loss(out[order])) == pytest.approx(float(by_hand), rel=1e-5)
    matched = torch.cat([films, films, torch.full((4, 1), np.log(100.0))], dim=1)
    mismatched = torch.cat([films, films[[1, 2, 3, 0]], torch.full((4, 1), np.log(100.0))], dim=1)
    assert float(contrastive_loss(matched)) < float(contrastive_loss(mismatched))


def test_the_loss_equals_a_hand_computation_on_a_3x3_batch():
    """Films e1, e2, e3 and reports (1,0,0), (0.6,0.8,0), (0,0,1) at scale 2: logits [[2,1.2,0],[0,1.6,0],[0,0,2]]."""
    import math

    films = torch.eye(3)
    reports = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    out = torch.cat([films, reports, torch.full((3, 1), math.log(2.0))], dim=1)
    L = [[2.0, 1.2, 0.0], [0.0, 1.6, 0.0], [0.0, 0.0, 2.0]]  # L[i][j] = 2 · film i · report j

    def ce(values, right):
        return -(values[right] - math.log(sum(math.exp(v) for v in values)))

    rows = sum(ce(L[i], i) for i in range(3)) / 3
    columns = sum(ce([L[k][j] for k in range(3)], j) for j in range(3)) / 3
    assert float(contrastive_loss(out)) == pytest.approx((rows + columns) / 2, rel=1e-6)
    assert (rows + columns) / 2 == pytest.approx(0.35755, abs=1e-5)


def test_swapping_the_prompts_turns_auroc_into_one_minus_auroc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pos, neg = torch.tensor(rng.normal(size=200) + y), torch.tensor(rng.normal(size=200))
    p = pair_probabilities(pos, neg).numpy()
    swapped = pair_probabilities(neg, pos).numpy()
    np.testing.assert_allclose(p + swapped, 1, atol=1e-12)
    assert roc_auc_score(y, swapped) == pytest.approx(1 - roc_auc_score(y, p), abs=1e-12)
    with pytest.raises(ValueError, match="differ in shape"):
        pair_probabilities(pos, neg[:3])


def _pairs(n: int, seed: int):
    """Films with a bright square in one of four places; each place's 'report' is its own noisy vector."""
    rng = np.random.default_rng(seed)
    where = rng.integers(0, 4, n)
    images = rng.random((n, 1, 32, 32)).astype(np.float32) * 0.2
    for i, w in enumerate(where):
        r, c = divmod(int(w), 2)
        images[i, 0, 4 + 16 * r:12 + 16 * r, 4 + 16 * c:12 + 16 * c] += 0.8
    prototypes = np.random.default_rng(99).normal(size=(4, 6))
    texts = (prototypes[where] + 0.1 * rng.normal(size=(n, 6))).astype(np.float32)
    data = TensorDictDataset({"images": torch.from_numpy(images), "text_vectors": torch.from_numpy(texts)},
                             np.zeros((n, 1), np.float32))
    return data, where


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is as fast, and its numbers do not depend on the cores
    yield
    torch.set_num_threads(before)


def test_the_kits_loop_trains_it_by_validation_loss(one_thread):
    train, _ = _pairs(256, 0)
    val, where = _pairs(64, 1)
    model = _model()
    history = fit(model, BatchLoader(train, batch_size=32, shuffle=True, seed=0, drop_last=True),
                  BatchLoader(val, batch_size=64), epochs=6, lr=3e-3, loss=contrastive_loss, monitor="val_loss",
                  early_stopping_patience=None, progress=False, seed=0)
    table = history.table
    assert history.monitor == "val_loss" and table["val_auroc"].isna().all()
    assert table["val_loss"].iloc[-1] < table["val_loss"].iloc[0]
    with torch.no_grad():
        sims = model.similarity(val.inputs["images"], val.inputs["text_vectors"])
    same_place = where[sims.argmax(1).numpy()] == where
    assert same_place.mean() > 0.6  # chance: about 0.25
    with pytest.raises(ValueError, match="monitor"):
        fit(model, BatchLoader(train, batch_size=32), monitor="val_acc", progress=False)


# ------------------------------------------------------------------------------------------------ zero-shot

def test_prompts_and_the_negative_class_rule():
    from cxrkit.zero_shot import prompt_pair, prompt_pairs

    assert prompt_pair("Pleural Effusion") == ("pleural effusion", "no pleural effusion")
    assert list(prompt_pairs(["Edema", "Cardiomegaly"])) == ["Edema", "Cardiomegaly"]
    with pytest.raises(ValueError, match="negative class.*'no no finding'"):
        prompt_pair("No Finding")
    with pytest.raises(ValueError, match="templates"):
        prompt_pair("Edema", positive="edema")


def test_zero_shot_is_the_softmax_over_each_findings_two_prompts():
    from cxrkit.zero_shot import prompt_pairs, zero_shot_probabilities

    model = _model()
    rng = np.random.default_rng(0)
    table = {}

    def embed(texts):  # a fixed random vector per prompt text
        return np.stack([table.setdefault(t, rng.normal(size=6)) for t in texts]).astype(np.float32)

    images = torch.rand(7, 1, 32, 32)
    pairs = prompt_pairs(["Edema", "Pneumothorax"])
    p = zero_shot_probabilities(model, images, pairs, embed, batch_size=3)
    assert p.shape == (7, 2) and ((p > 0) & (p < 1)).all()
    with torch.no_grad():
        sims = model.similarity(images, torch.as_tensor(embed(["edema", "no edema"])))
    np.testing.assert_allclose(p[:, 0], torch.softmax(sims, dim=1)[:, 0].numpy(), atol=1e-6)
    swapped = zero_shot_probabilities(model, images, {k: v[::-1] for k, v in pairs.items()}, embed)
    np.testing.assert_allclose(p + swapped, 1, atol=1e-6)
    from cxrkit.zero_shot import zero_shot_from_embeddings

    with torch.no_grad():
        films = model.encode_images(images).numpy()
    np.testing.assert_allclose(zero_shot_from_embeddings(model, films, pairs, embed), p, atol=1e-6)
    with pytest.raises(ValueError, match="film_embeddings must be N"):
        zero_shot_from_embeddings(model, films[:, :3], pairs, embed)
