"""Tokenization, the train-only vocabulary, encoding, text sources and label-term redaction (cxrkit.text)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cxrkit.text import (
    DEID_TOKEN,
    LABEL_TERMS,
    NEGATION_WORDS,
    PAD_ID,
    REDACTED_TOKEN,
    SPECIAL_TOKENS,
    STOP_WORDS,
    TEXT_SOURCES,
    UNK_ID,
    Vocabulary,
    choose_max_len,
    fit_vocabulary,
    redact_label_terms,
    report_text,
    text_for_source,
    tokenize,
    word_spans,
)

torch.set_num_threads(1)


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "split": ["train", "train", "train", "validate", "test"],
            "indication": ["Cough.", "Fever and cough", None, "Zebrafish exposure", "Quokka bite"],
            "findings": ["No pleural effusion.", "Small left effusion.", "Heart is normal.",
                         "Giraffe-shaped opacity.", "Wombat pneumothorax."],
            "impression": ["Normal.", "Effusion.", "", "Pneumonia possible.", None],
        },
        index=[10, 11, 12, 13, 14],
    )


# --- tokenization --------------------------------------------------------------------------------

def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("No pleural effusion. Heart, normal!") == [
        "no", "pleural", "effusion", ".", "heart", ",", "normal", "!"
    ]


@pytest.mark.parametrize("text", ["No effusion.", "Without pneumothorax", "Not enlarged", "none seen"])
def test_negation_words_survive_stop_word_removal(text):
    kept = tokenize(text, remove_stop_words=True)
    negation = text.split()[0].lower()
    assert negation in kept
    assert kept[0] == negation


def test_stop_word_list_really_removes_words_but_never_negations():
    assert tokenize("the heart is normal", remove_stop_words=True) == ["heart", "normal"]
    assert not (STOP_WORDS & NEGATION_WORDS)
    assert {"no", "not", "without"} <= NEGATION_WORDS


@pytest.mark.parametrize(
    "text, expected",
    [
        ("___ year old", [DEID_TOKEN, "year", "old"]),
        ("Dr. ___, seen", ["dr", ".", DEID_TOKEN, ",", "seen"]),
        ("XXXX", [DEID_TOKEN]),
        ("chest x-XXXX today", ["chest", DEID_TOKEN, "today"]),
        ("XXXX-year-old", [DEID_TOKEN, "-", "year", "-", "old"]),
        ("in XXXX. ___", ["in", DEID_TOKEN, ".", DEID_TOKEN]),
    ],
)
def test_deidentification_marks_are_one_token(text, expected):
    assert tokenize(text) == expected


def test_word_spans_point_at_the_surface_text():
    text = "Chest x-XXXX: ___, 2.5 cm [REDACTED]."
    spans = word_spans(text)
    assert [text[a:b] for _, a, b in spans] == ["Chest", "x-XXXX", ":", "___", ",", "2.5", "cm", "[REDACTED]", "."]
    assert [t for t, _, _ in spans][-2] == REDACTED_TOKEN


def test_tokenize_refuses_non_strings():
    with pytest.raises(TypeError, match="report string"):
        tokenize(3.0)


# --- vocabulary ----------------------------------------------------------------------------------

def test_fit_vocabulary_never_sees_validation_or_test_text():
    table = _table()
    vocab = fit_vocabulary(table, text_for_source(table, "findings_impression"))
    for word in ("giraffe", "wombat", "pneumonia", "possible", "pneumothorax", "opacity"):
        assert word not in vocab, word
    for word in ("no", "pleural", "effusion", "heart", "normal", "small", "left"):
        assert word in vocab, word
    by_name = fit_vocabulary(table, "indication")
    assert "zebrafish" not in by_name and "quokka" not in by_name
    assert "cough" in by_name and "fever" in by_name


def test_fit_vocabulary_errors_name_the_problem():
    table = _table()
    with pytest.raises(KeyError, match="'notes'"):
        fit_vocabulary(table, "notes")
    with pytest.raises(KeyError, match="split"):
        fit_vocabulary(table.drop(columns="split"), "indication")
    with pytest.raises(ValueError, match="train"):
        fit_vocabulary(table.assign(split="test"), "indication")
    with pytest.raises(ValueError, match="aligned"):
        fit_vocabulary(table, table["indication"].reset_index(drop=True))


def test_vocabulary_fit_is_deterministic_and_honours_min_freq_and_max_size():
    texts = ["b a a", "c a b", "d"]
    vocab = Vocabulary.fit(texts)
    assert vocab.itos[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab.words == ["a", "b", "c", "d"]  # by frequency, ties alphabetical
    assert Vocabulary.fit(texts, min_freq=2).words == ["a", "b"]
    assert len(Vocabulary.fit(texts, max_size=len(SPECIAL_TOKENS) + 1)) == len(SPECIAL_TOKENS) + 1
    with pytest.raises(TypeError, match="one string"):
        Vocabulary.fit("a single report")
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.fit(texts, min_freq=0)


def test_encode_pads_truncates_and_marks_unknown_words():
    vocab = Vocabulary.fit(["no pleural effusion", "small effusion"])
    ids = vocab.encode(["No effusion seen", "small pleural effusion no effusion", ""], max_len=4)
    assert ids.dtype == torch.long and ids.shape == (3, 4)
    no, eff, small, pleural = (vocab.stoi[w] for w in ("no", "effusion", "small", "pleural"))
    assert ids[0].tolist() == [no, eff, UNK_ID, PAD_ID]
    assert ids[1].tolist() == [small, pleural, eff, no]  # truncated on the right
    assert ids[2].tolist() == [PAD_ID] * 4
    assert vocab.decode(ids[0]) == ["no", "effusion", "[UNK]"]
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode(["x"], max_len=0)


def test_encode_maps_deid_to_its_reserved_id_and_round_trips(tmp_path):
    vocab = Vocabulary.fit(["seen by ___"], remove_stop_words=True)
    ids = vocab.encode(["Dr XXXX and ___"], max_len=6)
    deid = vocab.stoi[DEID_TOKEN]
    assert ids[0].tolist().count(deid) == 2
    loaded = Vocabulary.load(vocab.save(tmp_path / "vocab.json"))
    assert loaded.itos == vocab.itos and loaded.remove_stop_words
    assert torch.equal(loaded.encode(["Dr XXXX and ___"], 6), ids)


def test_choose_max_len_uses_the_quantile_of_training_lengths():
    lengths = np.arange(1, 101)
    assert choose_max_len(lengths, quantile=0.95) == 96
    assert choose_max_len(lengths, quantile=1.0) == 100
    assert choose_max_len([0, 0, 0], minimum=2) == 2
    vocab = Vocabulary.fit(["a b c", "a b", "a"])
    assert choose_max_len(vocab.lengths(["a b c", "a b", "a"]), quantile=1.0) == 3
    with pytest.raises(ValueError, match="quantile"):
        choose_max_len(lengths, quantile=1.5)


# --- text sources and redaction ------------------------------------------------------------------

def test_report_text_joins_sections_and_skips_missing_ones():
    table = _table()
    text = report_text(table, ("findings", "impression"))
    assert text.index.equals(table.index)
    assert text.loc[10] == "No pleural effusion. Normal."
    assert text.loc[12] == "Heart is normal."
    assert text.loc[14] == "Wombat pneumothorax."
    assert report_text(table).loc[12] == ""
    with pytest.raises(KeyError, match="history"):
        report_text(table, ("history",))


def test_text_for_source_switches_arms():
    table = _table()
    assert set(TEXT_SOURCES) >= {"indication", "findings_impression", "redacted"}
    assert text_for_source(table).equals(report_text(table).rename("indication"))
    redacted = text_for_source(table, "redacted")
    assert "effusion" not in redacted.loc[11].lower() and REDACTED_TOKEN in redacted.loc[11]
    assert redacted.loc[10] == f"No {REDACTED_TOKEN}. Normal."
    with pytest.raises(ValueError, match="'impressions'"):
        text_for_source(table, "impressions")


def test_redaction_removes_label_terms_and_keeps_the_rest():
    text = "No pleural effusion or pneumothorax. Stable cardiomegaly; new right PICC line. Lung nodules."
    out = redact_label_terms(text)
    for term in ("effusion", "pneumothorax", "cardiomegaly", "picc", "line", "nodule"):
        assert term not in out.lower(), term
    assert out.startswith("No ")  # negation stays
    assert "Stable" in out and "right" in out
    assert out.count(REDACTED_TOKEN) == 6  # "pleural effusion" is one phrase
    assert redact_label_terms("Midline trachea; massive? no: mass.") == f"Midline trachea; massive? no: {REDACTED_TOKEN}."
    assert redact_label_terms(None) == ""
    assert tokenize(out).count(REDACTED_TOKEN) == 6


def test_label_terms_cover_every_observation():
    from cxrkit.labels import CHEXPERT_LABELS

    assert set(LABEL_TERMS) == set(CHEXPERT_LABELS)
    for phrase in ("effusion", "pneumothorax", "consolidation", "pneumonia", "atelectasis", "edema",
                   "cardiomegaly", "nodule", "mass", "fracture", "tube", "line", "pacemaker", "opacity"):
        assert redact_label_terms(phrase) == REDACTED_TOKEN, phrase
