"""Text attributions: embedding-layer IG completeness on a tiny model, and the word heatmap figure."""
from __future__ import annotations

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
