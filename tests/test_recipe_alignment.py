"""Notebook 07's alignment recipe (cxrkit.recipes.alignment): trained on training films once, then loaded bit for bit;
its shuffled-pair control differs only in the pairing; keys known from the parameters alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxrkit.labels import MODEL_LABELS
from cxrkit.profiles import get_profile
from cxrkit.recipes import alignment
from cxrkit.recipes.alignment import (alignment_datasets, alignment_key, new_alignment_model, report_vectors_key,
                                      trained_alignment_model)
from cxrkit.sentence_embeddings import SentenceEmbeddings


class _FakePrepared:
    """Just enough of cxrkit.prep.Prepared: a table with splits and impressions, and uint8 films."""

    def __init__(self, n_per_split=16, size=32, seed=0):
        rng = np.random.default_rng(seed)
        n = 3 * n_per_split
        self.table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "subject_id": [f"p{i // 2}" for i in range(n)],
                                   "split": np.repeat(["train", "validate", "test"], n_per_split),
                                   "impression": [f"finding {i % 5}" for i in range(n)]})
        for label in MODEL_LABELS:
            self.table[label] = rng.integers(0, 2, n).astype(float)
        self.images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)

    def subset(self, split):
        idx = np.flatnonzero(self.table["split"].to_numpy() == split)
        return self.table.iloc[idx].reset_index(drop=True), self.images[idx]


def _vectors(prepared, dim=12, seed=0) -> SentenceEmbeddings:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(prepared.table), dim)).astype(np.float32)
    return SentenceEmbeddings(prepared.table["image_id"].tolist(), v / np.linalg.norm(v, axis=1, keepdims=True),
                              Path("unused"), False, {"fake": True}, f"fake-{seed}")


@pytest.fixture
def P(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    return get_profile("smoke", image_size=32, batch_size=8, align_epochs=2, align_dim=8)


def test_trained_once_then_loaded_bit_for_bit(P, monkeypatch):
    prepared = _FakePrepared()
    vectors = _vectors(prepared)
    first = trained_alignment_model(P, prepared, vectors=vectors, progress=False)
    assert not first.loaded and len(first.history.table) == 2 and first.pairs == "aligned"
    monkeypatch.setattr(alignment, "fit", lambda *a, **k: pytest.fail("a stored model must be loaded, not retrained"))
    again = trained_alignment_model(P, prepared, vectors=vectors, progress=False)
    assert again.loaded and again.folder == first.folder
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not again.model.training


def test_other_report_vectors_or_pairing_never_load_the_stored_model(P, monkeypatch):
    prepared = _FakePrepared()
    first = trained_alignment_model(P, prepared, vectors=_vectors(prepared), progress=False)
    calls = []
    real_fit = alignment.fit
    monkeypatch.setattr(alignment, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    other = trained_alignment_model(P, prepared, vectors=_vectors(prepared, seed=1), progress=False)
    assert calls and not other.loaded  # same key, other texts: the fingerprint refuses the stored weights
    control = trained_alignment_model(P, prepared, pairs="shuffled", vectors=_vectors(prepared), progress=False)
    assert not control.loaded and control.folder != first.folder and control.meta["pairs"] == "shuffled"
    with pytest.raises(ValueError, match="pairs must be one of"):
        trained_alignment_model(P, prepared, pairs="random", vectors=_vectors(prepared), progress=False)


def test_trained_on_training_films_only_and_chosen_by_validation_loss(P, monkeypatch):
    prepared = _FakePrepared()
    seen = {}

    def fake_fit(model, train, val, **settings):
        seen.update(train=len(train.dataset), val=len(val.dataset), **settings)
        raise RuntimeError("stop here")

    monkeypatch.setattr(alignment, "fit", fake_fit)
    with pytest.raises(RuntimeError, match="stop here"):
        trained_alignment_model(P, prepared, vectors=_vectors(prepared), progress=False)
    n = lambda split: int((prepared.table["split"] == split).sum())  # noqa: E731
    assert seen["train"] == n("train") and seen["val"] == n("validate")
    assert seen["monitor"] == "val_loss" and seen["loss"] is alignment.contrastive_loss and seen["epochs"] == 2


def test_the_shuffled_pairing_is_a_seeded_permutation_and_the_aligned_one_the_identity(P):
    prepared = _FakePrepared()
    vectors = _vectors(prepared)
    own = alignment_datasets(P, prepared, vectors)["train"][1].inputs["text_vectors"]
    rows = alignment_datasets(P, prepared, vectors)["train"][0]
    assert torch.equal(own, torch.from_numpy(vectors.on(rows)))
    shuffled = alignment_datasets(P, prepared, vectors, "shuffled")["train"][1].inputs["text_vectors"]
    again = alignment_datasets(P, prepared, vectors, "shuffled")["train"][1].inputs["text_vectors"]
    other_seed = alignment_datasets({**P, "seed": 1}, prepared, vectors, "shuffled")["train"][1].inputs["text_vectors"]
    assert torch.equal(shuffled, again) and not torch.equal(shuffled, own) and not torch.equal(shuffled, other_seed)
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, own.tolist()))  # the same reports, re-paired


def test_keys_come_from_the_parameters_alone(P):
    a, b = alignment_key(P), alignment_key({**P, "seed": 1})
    assert a != b and a["pairs"] == "aligned" and alignment_key(P, "shuffled")["pairs"] == "shuffled"
    assert a["report_vectors"] == report_vectors_key(P) == report_vectors_key({**P, "seed": 1})
    assert report_vectors_key(P) != report_vectors_key({**P, "patients": 61})  # other reports, other vectors
    assert alignment_key({**P, "epochs": 7}) == a  # the image CNN's own epochs do not touch the alignment model


def test_new_model_is_seeded_and_leaves_the_global_random_state_alone(P):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m1, m2 = new_alignment_model(P, 12), new_alignment_model(P, 12)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(m1.state_dict().values(), m2.state_dict().values()))
    m3 = new_alignment_model({**P, "seed": 5}, 12)
    assert not torch.equal(m1.text_projection[0].weight, m3.text_projection[0].weight)
