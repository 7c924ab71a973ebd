"""Explaining a fused image + text model one modality at a time: the other input held fixed.

A fused model ``forward(images, input_ids, attention_mask=None) -> (B, K)`` logits is wrapped as a
one-input module, so the image methods (IG on pixels) and the text method (IG on the text model's embedding
layer) explain the **same forward function that predicts**. Taught in notebook 06 (clustered IG localization).
"""
from __future__ import annotations

import torch
from torch import nn


def _batch_of(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Repeat the held-fixed input to ``n`` rows: captum batches many interpolation steps of each input at once."""
    if t is None or t.shape[0] == n:
        return t
    if t.shape[0] == 1:
        return t.expand(n, *t.shape[1:])
    return t.repeat(n // t.shape[0], *([1] * (t.ndim - 1)))


class ImageGivenText(nn.Module):
    """The fused model as a function of the film only, the report's ``input_ids`` (and mask) held fixed (notebook 06)."""

    def __init__(self, fused: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        super().__init__()
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (B, T) or (1, T); got shape {tuple(input_ids.shape)}")
        self.fused = fused
        self.register_buffer("input_ids", input_ids.detach().clone(), persistent=False)
        self.register_buffer("attention_mask", None if attention_mask is None else attention_mask.detach().clone(),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        return self.fused(images, _batch_of(self.input_ids, n), _batch_of(self.attention_mask, n))


class TextGivenImage(nn.Module):
    """The fused model as a function of the report only, ``forward(input_ids, attention_mask=None)``, the film held fixed (notebook 06)."""

    def __init__(self, fused: nn.Module, images: torch.Tensor):
        super().__init__()
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W) or (1, C, H, W); got shape {tuple(images.shape)}")
        self.fused = fused
        self.register_buffer("images", images.detach().clone(), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.fused(_batch_of(self.images, input_ids.shape[0]), input_ids, attention_mask)
