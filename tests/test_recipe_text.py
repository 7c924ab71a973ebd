"""The text recipe of notebook 03 (cxrkit.recipes.text): train-or-load, train-only vocabulary, the predictions
contract, keys; and the pieces it rests on (labeler-based redaction, principal MiniLM vectors)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import cxrkit.recipes.text as recipe
from cxrkit.labeler import find_mentions
from cxrkit.labels import CHEXPERT_LABELS, MODEL_LABELS
from cxrkit.prep import Prepared
from cxrkit.profiles import get_profile
from cxrkit.text import LABEL_TERMS, REDACTED_TOKEN, label_terms, redact_label_terms, text_for_source

torch.set_num_threads(1)

SPLIT_WORDS = {"train": "", "validate": "zebrafish", "test": "quokka"}  # words only one split's reports hold
STORIES = {"Pleural Effusion": "short of breath", "Pneumothorax": "chest pain after a fall",
           "Fracture": "fall from standing", "Consolidation": "fever and cough"}
FINDINGS = {"Pleural Effusion": "Moderate left pleural effusion.", "Pneumothorax": "Small right apical pneumothorax.",
            "Fracture": "Displaced fracture of the left 5th rib.", "Consolidation": "Dense consolidation in the right lower lobe."}


def _table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """A hand-made prepared study table: one film per patient, texts that carry the labels, a fixed split."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        split = "train" if i < 54 else "validate" if i < 72 else "test"
        finding = list(STORIES)[i % len(STORIES)]
        positive = rng.random() < 0.5
        marker = SPLIT_WORDS[split]
        indication = f"___M with {STORIES[finding] if positive else 'routine check'} {marker} // eval".replace("  ", " ")
        findings = (FINDINGS[finding] if positive else "No pleural effusion or pneumothorax.") + f" {marker}".rstrip()
        impression = FINDINGS[finding] if positive else "No acute cardiopulmonary process."
        row = {"dataset": "toy", "subject_id": f"p{i:03d}", "study_id": f"s{i:03d}", "image_id": f"img{i:03d}",
               "image_path": "", "view": "PA", "split": split, "indication": indication, "findings": findings,
               "impression": impression, "cache_row": i}
        row.update({label: np.nan for label in CHEXPERT_LABELS})
        if positive:
            row[finding] = 1.0
        else:
            row["Pleural Effusion"], row["No Finding"] = 0.0, 1.0
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def prepared(tmp_path):
    return Prepared(folder=tmp_path / "prepared", table=_table(), cache=None)


@pytest.fixture()
def P():
    return get_profile("smoke", text_epochs=3, batch_size=16, patience=3)


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fit was called: the recipe trained instead of loading")

    monkeypatch.setattr(recipe, "fit", refuse)


# ----------------------------------------------------------------------------------- train, save, load

def test_recipe_trains_saves_and_a_second_call_loads_identical_predictions(home, prepared, P, monkeypatch):
    first = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    assert not first.loaded and not first.model.training
    assert first.folder.parent == home / "text_models"
    for name in ("model.pt", "vocab.json", "history.csv", "predictions.csv", "meta.json"):
        assert (first.folder / name).is_file(), name
    assert not [p for p in first.folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert 1 <= len(first.history.table) <= 3 and first.history.best_epoch is not None

    _no_training(monkeypatch)
    second = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    assert second.loaded and second.folder == first.folder
    pd.testing.assert_frame_equal(first.predictions.table, second.predictions.table, check_exact=True)
    assert second.vocab.itos == first.vocab.itos and second.max_len == first.max_len
    rows = prepared.table[prepared.table.split == "test"]
    assert np.array_equal(first.predict(rows), second.predict(rows))
    # without `prepared` the saved model is found by its key alone
    third = recipe.trained_text_model(P, "indication", progress=False)
    assert third.loaded and third.folder == first.folder


def test_stored_predictions_are_what_the_model_predicts(home, prepared, P):
    tm = recipe.trained_text_model(P, "findings_impression", prepared=prepared, progress=False)
    test_rows = prepared.table[prepared.table.split == "test"].reset_index(drop=True)
    stored = tm.probabilities("test").loc[test_rows.image_id]
    assert np.allclose(stored.to_numpy(), tm.predict(test_rows), atol=1e-6)
    inputs = tm.inputs(test_rows)
    assert torch.equal(inputs["input_ids"], recipe.text_inputs(test_rows, "findings_impression", tm.vocab, tm.max_len)["input_ids"])
    assert inputs["input_ids"].shape == (len(test_rows), tm.max_len)
    assert list(tm.texts(test_rows)) == list(text_for_source(test_rows, "findings_impression"))


def test_force_retrains(home, prepared, P, monkeypatch):
    recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    _no_training(monkeypatch)
    with pytest.raises(AssertionError, match="fit was called"):
        recipe.trained_text_model(P, "indication", prepared=prepared, progress=False, force=True)


# ------------------------------------------------------------------------------- leakage guards, contract

def test_vocabulary_never_sees_validation_or_test_text(home, prepared, P):
    for source in ("indication", "findings_impression", "redacted"):
        tm = recipe.trained_text_model(P, source, prepared=prepared, progress=False)
        assert "zebrafish" not in tm.vocab and "quokka" not in tm.vocab, source
        train_words = {w for text in text_for_source(prepared.table[prepared.table.split == "train"], source)
                       for w in tm.vocab.tokens(text)}
        assert set(tm.vocab.words) == train_words - set(tm.vocab.itos[:4]), source
        # max_len comes from the training reports: validation/test lengths never enter it
        assert tm.max_len == recipe.choose_max_len(tm.vocab.lengths(
            text_for_source(prepared.table[prepared.table.split == "train"], source)), recipe.MAX_LEN_QUANTILE)


def test_encoder_fit_ignores_everything_but_train(prepared):
    table = prepared.table.copy()
    vocab, max_len = recipe.fit_text_encoder(table, "indication")
    held_out = table.split != "train"
    table.loc[held_out, "indication"] = "an extremely long held out indication " * 20
    vocab2, max_len2 = recipe.fit_text_encoder(table, "indication")
    assert vocab2.itos == vocab.itos and max_len2 == max_len


def test_predictions_table_contract(home, prepared, P):
    tm = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    pred = tm.predictions.table
    assert list(pred.columns) == ["image_id", "split", *MODEL_LABELS] and tm.labels == list(MODEL_LABELS)
    assert set(pred.split) == {"validate", "test"}
    assert pred.image_id.is_unique
    expected = prepared.table.loc[prepared.table.split.isin(["validate", "test"]), ["image_id", "split"]]
    assert sorted(zip(pred.image_id, pred.split)) == sorted(zip(expected.image_id, expected.split))
    probs = pred[list(MODEL_LABELS)].to_numpy()
    assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1


def test_changing_source_or_a_knob_retrains(home, prepared, P, monkeypatch):
    tm = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    keys = {recipe.text_model_dir(P, "indication"), recipe.text_model_dir(P, "findings_impression"),
            recipe.text_model_dir(P, "redacted"), recipe.text_model_dir(P, "indication", pretrained=True),
            recipe.text_model_dir({**P, "text_lr": 1e-2}, "indication"),
            recipe.text_model_dir({**P, "seed": 1}, "indication")}
    assert len(keys) == 6 and tm.folder == recipe.text_model_dir(P, "indication")
    assert recipe.text_model_dir({**P, "text_source": "redacted"}) == recipe.text_model_dir(P, "redacted")
    _no_training(monkeypatch)
    with pytest.raises(AssertionError, match="fit was called"):
        recipe.trained_text_model(P, "findings_impression", prepared=prepared, progress=False)
    with pytest.raises(AssertionError, match="fit was called"):
        recipe.trained_text_model({**P, "text_epochs": 2}, "indication", prepared=prepared, progress=False)


def test_a_model_trained_on_other_reports_is_not_reused(home, prepared, P, monkeypatch):
    recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    changed = Prepared(prepared.folder, prepared.table.copy(), None)
    changed.table.loc[0, "indication"] = "a different story altogether"
    assert recipe.load_text_model(P, "indication", prepared=changed) is None
    assert recipe.load_text_model(P, "indication", prepared=prepared) is not None
    meta = json.loads((recipe.text_model_dir(P, "indication") / "meta.json").read_text())
    assert meta["source"] == "indication" and meta["key"]["text_epochs"] == 3


def test_bad_arguments_are_named(home, prepared, P):
    with pytest.raises(ValueError, match="'impressions'"):
        recipe.trained_text_model(P, "impressions", prepared=prepared, progress=False)
    with pytest.raises(ValueError, match="always pretrained"):
        recipe.trained_text_model(P, "indication", prepared=prepared, arch="minilm", progress=False)
    with pytest.raises(ValueError, match="architecture"):
        recipe.text_model_key(P, arch="lstm")
    with pytest.raises(ValueError, match="rows"):
        recipe.TextDataset({"input_ids": torch.zeros(3, 4, dtype=torch.long)}, np.zeros((2, 1)))


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with recipe.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_training_is_deterministic(home, prepared, P):
    a = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False)
    b = recipe.trained_text_model(P, "indication", prepared=prepared, progress=False, force=True)
    assert np.array_equal(a.predictions.wide().to_numpy(), b.predictions.wide().to_numpy())


# ------------------------------------------------------------------------------------ pretrained arm

@pytest.fixture(scope="module")
def principal():
    from cxrkit.text.pretrained import principal_embedding_matrix

    return principal_embedding_matrix(recipe.CNN_SETTINGS["embed_dim"])


def test_principal_vectors_are_centred_deterministic_and_ordered(principal):
    from cxrkit.text.pretrained import pretrained_embedding_matrix, principal_embedding_matrix

    full = pretrained_embedding_matrix()
    dim = recipe.CNN_SETTINGS["embed_dim"]
    assert principal.matrix.shape == (full.shape[0], dim) and 0 < principal.explained < 1
    assert principal.matrix.mean(dim=0).abs().max() < 1e-4
    variances = principal.matrix.var(dim=0)
    assert (variances[:-1] >= variances[1:] - 1e-6).all()  # first component carries the most variance
    assert torch.equal(principal_embedding_matrix(dim).matrix, principal.matrix)
    assert principal_embedding_matrix(8).explained < principal.explained
    with pytest.raises(ValueError, match="dim"):
        principal_embedding_matrix(full.shape[1] + 1)


def test_pretrained_arm_starts_from_the_principal_vectors(home, prepared, P, principal):
    from cxrkit.text.pretrained import load_pretrained_tokenizer

    data = recipe.text_data(P, prepared, "indication")
    model, report = recipe.new_text_model(P, data.vocab, pretrained=True)
    random_model, none = recipe.new_text_model(P, data.vocab, pretrained=False)
    assert none is None and report.coverage > 0.9
    tokenizer = load_pretrained_tokenizer()
    word = "fever"
    row = data.vocab.stoi[word]
    assert torch.allclose(model.embedding.weight[row], principal.matrix[tokenizer.convert_tokens_to_ids(word)])
    assert not torch.allclose(random_model.embedding.weight[row], model.embedding.weight[row])
    assert abs(float(random_model.embedding.weight[4:].detach().std()) - recipe.EMBED_INIT_STD) < 0.02
    tm = recipe.trained_text_model(P, "indication", pretrained=True, prepared=prepared, progress=False)
    assert tm.pretrained and tm.meta["embedding_init"]["coverage"] == report.coverage
    assert tm.folder != recipe.text_model_dir(P, "indication", pretrained=False)


# ---------------------------------------------------------------------- redaction uses the labeler's list

def test_redaction_terms_are_the_labelers_mention_phrases():
    from importlib import resources

    import yaml

    phrases = yaml.safe_load(resources.files("cxrkit").joinpath("labeler_phrases.yaml").read_text())
    for name, spec in phrases["observations"].items():
        assert set(spec["mentions"]) <= set(LABEL_TERMS[name]), name
    assert "heart failure" in LABEL_TERMS["Cardiomegaly"]  # implied by the labeler
    assert set(label_terms(["Fracture"])) >= {"fracture", "rib fracture"}


@pytest.mark.parametrize("text", [
    "Moderate left pleural effusion.", "Small right apical pneumothorax.", "Blunting of the left costophrenic angle.",
    "Displaced fracture of the left 5th rib.", "Right IJ central line with tip in the SVC.",
    "Perihilar haziness consistent with mild pulmonary edema.", "Widened mediastinum.", "Plate-like atelectasis.",
])
def test_after_redaction_the_labeler_finds_no_mention(text):
    assert find_mentions(text), text  # the labeler sees a finding …
    redacted = redact_label_terms(text)
    assert REDACTED_TOKEN in redacted
    assert not find_mentions(redacted), redacted  # … and nothing once its phrases are redacted


def test_minilm_fine_tuning_trains_saves_and_loads(home, prepared, P, monkeypatch):
    P1 = {**P, "text_epochs": 1}
    tm = recipe.trained_text_model(P1, "indication", pretrained=True, prepared=prepared, arch="minilm", progress=False)
    assert tm.arch == "minilm" and not tm.loaded and tm.history.settings["lr"] == recipe.MINILM_SETTINGS["lr"]
    test_rows = prepared.table[prepared.table.split == "test"].reset_index(drop=True)
    inputs = tm.inputs(test_rows)
    assert set(inputs) == {"input_ids", "attention_mask"} and inputs["input_ids"].shape[1] == tm.max_len
    _no_training(monkeypatch)
    again = recipe.trained_text_model(P1, "indication", pretrained=True, prepared=prepared, arch="minilm", progress=False)
    assert again.loaded
    pd.testing.assert_frame_equal(tm.predictions.table, again.predictions.table, check_exact=True)
    assert np.allclose(again.predict(test_rows), again.probabilities("test").loc[test_rows.image_id].to_numpy(), atol=1e-5)


def test_loading_minilm_shows_no_progress_bar_and_leaves_the_setting_alone(capfd):
    from transformers.utils import logging as hf_logging

    from cxrkit.text.pretrained import load_pretrained_model

    hf_logging.enable_progress_bar()
    load_pretrained_model()
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # switched off only while loading


def test_transfer_refuses_a_matrix_of_the_wrong_shape(principal):
    from cxrkit.models.text import TextCNN
    from cxrkit.text import Vocabulary
    from cxrkit.text.pretrained import init_embedding_from_pretrained

    vocab = Vocabulary.fit(["no pleural effusion"])
    with pytest.raises(ValueError, match="one row per word-piece"):
        init_embedding_from_pretrained(TextCNN(len(vocab), embed_dim=8), vocab, matrix=principal.matrix[:100, :8])
    with pytest.raises(ValueError, match="embed_dim"):
        init_embedding_from_pretrained(TextCNN(len(vocab), embed_dim=8), vocab, matrix=principal.matrix)
