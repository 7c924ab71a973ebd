"""Text attributions: embedding-layer IG completeness on a tiny model, and the word heatmap figure."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from torch import nn

from cxrkit.explain import text_integrated_gradients, word_heatmap_figure

torch.set_num_threads(1)
V, D, K = 30, 8, 2


class TinyText(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.mix = nn.Linear(D, D)
        self.out = nn.Linear(D, K)

    def forward(self, ids, attention_mask=None):
        h = torch.tanh(self.mix(self.embedding(ids)))
        if attention_mask is None:
            pooled = h.mean(1)
        else:
            w = attention_mask.unsqueeze(-1).float()
            pooled = (h * w).sum(1) / w.sum(1)
        return self.out(pooled)


def _ids():
    return torch.tensor([[5, 7, 9, 11, 0, 0], [3, 4, 5, 6, 7, 8]])


def _gap(model, ids, baseline, target, mask=None):
    with torch.no_grad():
        f = model(ids, attention_mask=mask) if mask is not None else model(ids)
        b = model(baseline, attention_mask=mask) if mask is not None else model(baseline)
    return f[:, target] - b[:, target]


def test_text_ig_completeness_padding_baseline():
    model, ids = TinyText(), _ids()
    model.train()
    scores, delta = text_integrated_gradients(model, ids, 1, model.embedding, baseline_id=0, steps=64)
    assert scores.shape == ids.shape and delta.shape == (2,)
    assert model.training  # mode restored
    gap = _gap(model, ids, torch.zeros_like(ids), 1)
    rel = (scores.sum(1) - gap).abs() / gap.abs()
    assert (rel < 1e-2).all(), rel
    assert delta.abs().max() < 1e-3
    assert torch.all(scores[0, 4:] == 0)  # padding tokens equal the baseline: no attribution
    assert scores[0, :4].abs().min() > 0


def test_text_ig_with_attention_mask_and_kept_tokens():
    model, ids = TinyText(), _ids()
    mask = (ids != 0).long()
    scores, delta = text_integrated_gradients(model, ids, 0, model.embedding, steps=64, attention_mask=mask, keep_ids=[5])
    baseline = torch.where(ids == 5, ids, torch.zeros_like(ids))
    gap = _gap(model, ids, baseline, 0, mask)
    assert ((scores.sum(1) - gap).abs() / gap.abs() < 1e-2).all()
    assert scores[0, 0] == 0 and scores[1, 2] == 0  # token 5 is kept in the baseline
    with pytest.raises(ValueError, match="out of range"):
        text_integrated_gradients(model, ids, K, model.embedding)
    with pytest.raises(TypeError, match="integer"):
        text_integrated_gradients(model, ids.float(), 0, model.embedding)


def test_word_heatmap_has_one_cell_per_word():
    words = [f"w{i}" for i in range(27)]
    scores = np.linspace(-1, 2, 27)
    fig = word_heatmap_figure(words, scores, title="report", words_per_row=12)
    heat = fig.data[0]
    z = np.array(heat.z, dtype=float)
    assert z.shape == (3, 12)
    assert np.isfinite(z).sum() == 27
    assert [t for row in heat.text for t in row if t] == words
    assert heat.zmid == 0 and heat.zmin == -2 and heat.zmax == 2
    assert fig.layout.title.text == "report"
    with pytest.raises(ValueError, match="3 words but 2 scores"):
        word_heatmap_figure(["a", "b", "c"], [0.1, 0.2])


REPORT = "No pleural effusion; ___ x-XXXX, cardiomegaly (mild). Pneumothorax?"


def test_ig_word_scores_align_with_words_vocabulary():
    from cxrkit.explain import word_attributions
    from cxrkit.text import Vocabulary, word_spans

    vocab = Vocabulary.fit([REPORT, "pleural effusion is small"])
    model = TinyText()
    model.embedding = nn.Embedding(len(vocab), D, padding_idx=0)
    ids = vocab.encode([REPORT], 24)[0]
    words, delta = word_attributions(model, REPORT, vocab, ids, 1, steps=64)
    surface = [REPORT[a:b] for _, a, b in word_spans(REPORT)]
    assert list(words["word"]) == surface and "___" in surface and ";" in surface and "(" in surface
    mask = (ids != 0).long()[None]  # the report's mask is kept at the baseline
    scores, _ = text_integrated_gradients(model, ids[None], 1, model.embedding, steps=64, attention_mask=mask)
    n = len(vocab.ids(REPORT))
    assert list(words["n_tokens"]) == [1] * n  # one model token per reader word, in order
    assert np.allclose(words["score"], scores[0, :n].numpy(), atol=1e-6)  # word i carries token i's score: no offset
    gap = _gap(model, ids[None], torch.zeros_like(ids[None]), 1, mask)
    assert abs(words["score"].sum() - gap.item()) < 1e-2 * abs(gap.item())  # completeness through the words
    assert abs(delta) < 1e-3
    with pytest.raises(ValueError, match="do not match"):
        word_attributions(model, "no effusion", vocab, ids, 1)


def test_ig_word_scores_align_with_wordpieces():
    from transformers import BertTokenizerFast

    from cxrkit.explain import word_attributions
    from cxrkit.text import word_spans
    from cxrkit.text.pretrained import encode_wordpieces

    # a tiny word-piece vocabulary, built here so the test needs no download
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "no", "pl", "##eur", "##al", "eff", "##usion", ";", "_", "x", "-",
              "xx", "##xx", ",", "card", "##io", "##me", "##galy", "(", "mild", ")", ".", "pneumo", "##thorax", "?"]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "vocab.txt"), "w") as f:
            f.write("\n".join(pieces) + "\n")
        tok = BertTokenizerFast(os.path.join(d, "vocab.txt"), do_lower_case=True)
    model = TinyText()
    model.embedding = nn.Embedding(len(pieces), D, padding_idx=0)
    enc = encode_wordpieces(tok, [REPORT], 40)
    ids, mask = enc["input_ids"][0], enc["attention_mask"][0]
    words, delta = word_attributions(model, REPORT, tok, ids, 0, attention_mask=mask, steps=64)
    assert list(words["word"]) == [REPORT[a:b] for _, a, b in word_spans(REPORT)]
    by_word = words.set_index("word")
    assert by_word.loc["pleural", "n_tokens"] == 3 and by_word.loc["___", "n_tokens"] == 3  # genuine splits
    assert by_word.loc["cardiomegaly", "n_tokens"] == 4 and by_word.loc["Pneumothorax", "n_tokens"] == 2
    scores, _ = text_integrated_gradients(model, ids[None], 0, model.embedding, attention_mask=mask[None], steps=64,
                                          keep_ids=[tok.cls_token_id, tok.sep_token_id])
    position = 1  # after [CLS], each word takes its next n_tokens positions: the sums must match exactly
    for score, n in words[["score", "n_tokens"]].itertuples(index=False):
        assert score == pytest.approx(scores[0, position:position + n].sum().item(), abs=1e-6)
        position += n
    assert tok.convert_ids_to_tokens(int(ids[position])) == "[SEP]"
