"""Explaining a fused image + text model one input at a time (notebook 06)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cxrkit.explain import completeness_error, integrated_gradients, text_integrated_gradients
from cxrkit.explain.multimodal import ImageGivenText, TextGivenImage

torch.set_num_threads(1)


class TinyFusion(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.embedding = nn.Embedding(20, 4, padding_idx=0)
        self.head = nn.Linear(3 + 4, 2)

    def forward(self, images, input_ids, attention_mask=None):
        img = torch.tanh(self.conv(images)).mean(dim=(2, 3))
        mask = (input_ids != 0) if attention_mask is None else attention_mask.bool()
        w = mask.unsqueeze(-1).float()
        txt = (torch.tanh(self.embedding(input_ids)) * w).sum(1) / w.sum(1).clamp(min=1)
        return self.head(torch.cat([img, txt], dim=1))


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 1, 8, 8, generator=g), torch.tensor([[3, 5, 7, 0, 0]])


def test_wrappers_compute_the_same_logits_as_the_fused_model():
    fused, (x, ids) = TinyFusion().eval(), _inputs()
    with torch.no_grad():
        expected = fused(x, ids)
        assert torch.allclose(ImageGivenText(fused, ids)(x), expected)
        assert torch.allclose(TextGivenImage(fused, x)(ids), expected)
        many = x.repeat(4, 1, 1, 1)  # captum's batches of interpolation steps: the fixed input is repeated
        assert torch.allclose(ImageGivenText(fused, ids)(many), expected.repeat(4, 1), atol=1e-6)
        assert torch.allclose(TextGivenImage(fused, x)(ids.repeat(3, 1)), expected.repeat(3, 1), atol=1e-6)


def test_ig_through_each_wrapper_is_complete():
    fused, (x, ids) = TinyFusion().eval(), _inputs()
    as_image = ImageGivenText(fused, ids)
    attr = integrated_gradients(as_image, x, 1, steps=64, return_delta=False)
    assert completeness_error(as_image, x, attr, 1).item() < 1e-2
    mask = (ids != 0).long()
    scores, delta = text_integrated_gradients(TextGivenImage(fused, x), ids, 1, fused.embedding, steps=64,
                                              attention_mask=mask)
    with torch.no_grad():
        gap = fused(x, ids, mask)[0, 1] - fused(x, torch.zeros_like(ids), mask)[0, 1]
    assert scores.sum().item() == pytest.approx(gap.item(), rel=1e-2)
    assert torch.all(scores[0, 3:] == 0)  # padding positions equal the baseline


def test_wrappers_reject_wrong_shapes():
    fused, (x, ids) = TinyFusion(), _inputs()
    with pytest.raises(ValueError, match=r"input_ids must be \(B, T\)"):
        ImageGivenText(fused, ids[0])
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\)"):
        TextGivenImage(fused, x[0])
