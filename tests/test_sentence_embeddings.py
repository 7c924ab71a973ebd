"""Notebook 07's frozen report vectors (cxrkit.sentence_embeddings): MiniLM's own recipe, computed once, keyed by the texts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import cxrkit.sentence_embeddings as se
from cxrkit.text.pretrained import load_pretrained_model, load_pretrained_tokenizer


@pytest.fixture()
def table(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    return pd.DataFrame({"image_id": ["a", "b", "c", "d"], "indication": ["cough"] * 4,
                         "impression": ["Large left pleural effusion.", "No acute cardiopulmonary process.",
                                        "Small right pneumothorax.", None]})


def test_vectors_are_minilms_mean_pooled_normalised_embeddings(table):
    vectors = se.embed_sentences(["Large left pleural effusion.", "No acute cardiopulmonary process."], batch_size=1)
    tokenizer, model = load_pretrained_tokenizer(), load_pretrained_model()
    batch = tokenizer(["Large left pleural effusion."], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]
    by_hand = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], by_hand, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    padded = se.embed_sentences(["Large left pleural effusion.", "No acute cardiopulmonary process."], batch_size=2)
    np.testing.assert_allclose(padded, vectors, atol=1e-5)  # padding in a batch does not move a report's vector


def test_computed_once_then_loaded_and_recomputed_for_other_texts(table, monkeypatch):
    first = se.sentence_embeddings(table, progress=False)
    assert not first.loaded and first.vectors.shape == (4, 384) and first.ids == ["a", "b", "c", "d"]
    monkeypatch.setattr(se, "embed_sentences", lambda *a, **k: pytest.fail("stored vectors should be loaded"))
    again = se.sentence_embeddings(table, progress=False)
    assert again.loaded and again.folder == first.folder and np.array_equal(again.vectors, first.vectors)
    np.testing.assert_array_equal(again.on(table.iloc[[2, 0]]), first.vectors[[2, 0]])
    with pytest.raises(KeyError, match="1 of the 2 films.*'zz'"):
        again.on(["a", "zz"])
    changed = table.assign(impression=table["impression"].where(table["image_id"] != "b", "Cardiomegaly."))
    with pytest.raises(pytest.fail.Exception, match="should be loaded"):
        se.sentence_embeddings(changed, progress=False)  # another text: not the stored vectors


def test_a_table_without_image_ids_is_refused(table):
    with pytest.raises(ValueError, match="image_id"):
        se.sentence_embeddings(table.drop(columns="image_id"), progress=False)
