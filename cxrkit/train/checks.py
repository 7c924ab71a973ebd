"""Sanity checks that catch broken models and pipelines before a long run: overfit one batch, and
shuffled labels as a no-signal baseline.

Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..devices import pick_device
from .losses import masked_bce_with_logits
from .loop import _forward, _split_batch, _to_device

__all__ = ["overfit_one_batch", "shuffled_labels"]

L = TypeVar("L", np.ndarray, Tensor, pd.DataFrame)


def overfit_one_batch(
    model: nn.Module,
    batch: tuple[Any, Tensor],
    steps: int = 150,
    lr: float = 3e-3,
    device: str | torch.device | None = None,
    seed: int | None = 0,
) -> float:
    """Train on one ``(inputs, targets)`` batch for ``steps`` AdamW steps and return the final masked BCE (notebook 02).

    A healthy model and loss drive it near zero; one that stays high means the model cannot fit even
    a memorisable batch — the classic culprit is a one-unit softmax head (its output is always 1) or
    a loss applied to the wrong tensor. The model's weights are changed: use a fresh model afterwards.
    """
    if seed is not None:
        torch.manual_seed(seed)
    inputs, targets = _split_batch(batch)
    if targets is None:
        raise ValueError("overfit_one_batch needs an (inputs, targets) batch")
    device = pick_device(device)
    model.to(device).train()
    inputs, targets = _to_device(inputs, device, False), targets.to(device).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = masked_bce_with_logits(_forward(model, inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def shuffled_labels(labels: L, seed: int = 0) -> L:
    """Return the labels with whole rows permuted, keeping prevalence and co-occurrence but breaking the link to the images (notebook 02).

    A model trained on these should score validation AUROC near 0.5; clearly more means leakage.
    """
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    if isinstance(labels, Tensor):
        return labels[torch.as_tensor(order, device=labels.device)]
    if isinstance(labels, pd.DataFrame):
        return pd.DataFrame(labels.to_numpy()[order], index=labels.index, columns=labels.columns)
    return np.asarray(labels)[order]
