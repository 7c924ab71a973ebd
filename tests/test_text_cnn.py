"""The Kim-style text CNN, and gradient × embedding laid back onto words (cxrkit.models.text, cxrkit.text.attribution)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cxrkit.models.text import TextCNN
from cxrkit.text import PAD_ID, Vocabulary, gradient_x_embedding, tokens_to_words

torch.set_num_threads(1)

FILLER = ("heart", "lungs", "clear", "stable", "mild", "left", "right", "base", "size", "normal", "no",
          "small", "chest", "view", "seen", "unchanged", "since", "prior", "study", "___", ",", ".")


def _synthetic_reports(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short reports; the label is whether the word 'effusion' appears somewhere in them."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(FILLER, size=int(rng.integers(4, 14))))
        y = int(rng.random() < 0.5)
        if y:
            words.insert(int(rng.integers(0, len(words) + 1)), "effusion")
        texts.append(" ".join(words))
        labels.append(y)
    return texts, np.array(labels, dtype=np.float32)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train_texts, y_train = _synthetic_reports(400, seed=1)
    test_texts, y_test = _synthetic_reports(200, seed=2)
    vocab = Vocabulary.fit(train_texts)
    x_train, x_test = vocab.encode(train_texts, 16), vocab.encode(test_texts, 16)
    model = TextCNN(len(vocab), embed_dim=24, num_outputs=1, widths=(2, 3), channels=16, dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    targets = torch.from_numpy(y_train).unsqueeze(1)
    for _epoch in range(8):
        model.train()
        for start in range(0, len(x_train), 32):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(x_train[start:start + 32]), targets[start:start + 32]
            )
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        scores = model(x_test)[:, 0].numpy()
    return model, vocab, roc_auc_score(y_test, scores)


def test_forward_backward_shapes():
    model = TextCNN(50, embed_dim=8, num_outputs=5, widths=(3, 4, 5), channels=6)
    ids = torch.randint(1, 50, (4, 7))
    ids[:, 5:] = PAD_ID
    logits = model(ids)
    assert logits.shape == (4, 5)
    assert model.features(ids).shape == (4, model.feature_dim) == (4, 18)
    logits.sum().backward()
    assert model.embedding.weight.grad.shape == (50, 8)
    assert model.embedding.weight.grad[PAD_ID].abs().sum() == 0
    assert all(c.weight.grad is not None for c in model.convs)


def test_texts_shorter_than_the_widest_kernel_still_work():
    model = TextCNN(20, embed_dim=4, num_outputs=2, widths=(5,), channels=3).eval()
    out = model(torch.tensor([[3, 4]]))
    assert out.shape == (1, 2) and torch.isfinite(out).all()
    empty = model(torch.zeros(1, 6, dtype=torch.long))
    assert torch.isfinite(empty).all()


def test_padding_does_not_change_the_output():
    torch.manual_seed(0)
    model = TextCNN(30, embed_dim=6, num_outputs=3, widths=(2, 3), channels=4).eval()
    real = torch.tensor([[5, 9, 2, 7]])
    short = torch.cat([real, torch.zeros(1, 2, dtype=torch.long)], dim=1)
    long = torch.cat([real, torch.zeros(1, 9, dtype=torch.long)], dim=1)
    before = model(short)
    assert torch.allclose(before, model(long), atol=1e-6)
    with torch.no_grad():
        model.embedding.weight[PAD_ID] = torch.randn(6) * 10
    assert torch.allclose(before, model(short), atol=1e-6)
    # with an explicit mask, whatever ids sit in the masked positions are ignored too
    other = short.clone()
    other[0, 4:] = torch.tensor([11, 12])
    mask = (short != PAD_ID).long()
    assert torch.allclose(before, model(other, attention_mask=mask), atol=1e-6)
    assert not torch.allclose(before, model(other), atol=1e-6)  # unmasked, they are read


def test_constructor_rejects_bad_values():
    with pytest.raises(ValueError, match="widths"):
        TextCNN(10, widths=(0, 3))
    with pytest.raises(ValueError, match="dropout"):
        TextCNN(10, dropout=1.5)
    with pytest.raises(ValueError, match="shape"):
        TextCNN(10, embed_dim=4, channels=2)(torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4))


def test_text_cnn_learns_a_keyword_task(trained):
    _model, _vocab, auroc = trained
    assert auroc > 0.95


def test_gradient_x_embedding_matches_a_manual_computation_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = TextCNN(40, embed_dim=5, num_outputs=3, widths=(2,), channels=4, dropout=0.5)
    model.train()
    ids = torch.tensor([[4, 8, 15, 16, 0, 0], [23, 4, 2, 0, 0, 0]])
    scores, logits = gradient_x_embedding(model, ids, target=[2, 0], return_logits=True)
    assert model.training  # restored
    assert all(p.grad is None for p in model.parameters())  # no gradient left on the parameters
    model.eval()
    assert torch.allclose(logits, model(ids))  # eval-mode forward: the function that predicts
    emb = model.embedding(ids).detach().requires_grad_(True)
    manual_logits = model.head(torch.cat([
        torch.nn.functional.relu(conv(torch.nn.functional.pad(
            (emb * (ids != 0).unsqueeze(-1)).transpose(1, 2), (0, w - 1)))).masked_fill(
            (ids == 0).unsqueeze(1), 0.0).max(dim=2).values
        for w, conv in zip(model.widths, model.convs)], dim=1))
    chosen = manual_logits[0, 2] + manual_logits[1, 0]
    (grad,) = torch.autograd.grad(chosen, emb)
    assert torch.allclose(scores, (grad * emb).sum(-1), atol=1e-6)
    assert scores.shape == ids.shape and (scores[ids == 0] == 0).all()
    with pytest.raises(ValueError, match="out of range"):
        gradient_x_embedding(model, ids, target=3)


def test_words_are_aligned_with_punctuation_deid_and_stop_words():
    vocab = Vocabulary.fit(["the heart is normal , no effusion . seen by ___"], remove_stop_words=True)
    text = "The heart: normal, no effusion; seen by ___ (x-XXXX)."
    ids = vocab.encode([text], 20)[0]
    kept = vocab.decode(ids)
    scores = torch.zeros(20)
    scores[: len(kept)] = torch.arange(1, len(kept) + 1, dtype=torch.float)  # score k on the k-th kept token
    words = tokens_to_words(text, scores, vocab, input_ids=ids)
    assert list(words["word"]) == ["The", "heart", ":", "normal", ",", "no", "effusion", ";", "seen", "by",
                                   "___", "(", "x-XXXX", ")", "."]
    for word, a, b in words[["word", "start", "end"]].itertuples(index=False):
        assert text[a:b] == word
    by_word = dict(zip(words["word"], words["score"]))
    assert by_word["The"] == 0 and by_word["by"] == 0  # stop words: never read by the model
    expected = {w: float(i + 1) for i, w in enumerate(
        ["heart", ":", "normal", ",", "no", "effusion", ";", "seen", "___", "(", "x-XXXX", ")", "."])}
    for word, value in expected.items():
        assert by_word[word] == value, word
    assert words.loc[words["word"] == "The", "n_tokens"].item() == 0
    with pytest.raises(ValueError, match="do not match"):
        tokens_to_words(text, scores, vocab, input_ids=vocab.encode(["no effusion"], 20)[0])


def test_truncated_words_get_no_score():
    vocab = Vocabulary.fit(["a b c d"])
    words = tokens_to_words("a b c d", torch.tensor([1.0, 2.0]), vocab)
    assert list(words["score"]) == [1.0, 2.0, 0.0, 0.0]
    assert list(words["n_tokens"]) == [1, 1, 0, 0]


def test_trained_model_attributes_to_the_keyword(trained):
    model, vocab, _ = trained
    text = "heart size normal , left base effusion . no change since prior"
    ids = vocab.encode([text], 16)
    scores = gradient_x_embedding(model, ids, target=0)
    words = tokens_to_words(text, scores[0], vocab, input_ids=ids[0])
    assert words.loc[words["score"].idxmax(), "word"] == "effusion"
