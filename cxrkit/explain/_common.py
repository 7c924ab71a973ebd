"""Shared plumbing for the attribution methods: eval mode, the target-index convention, input checks.

The convention every method in :mod:`cxrkit.explain` follows (taught in notebook 05, saliency):
the model is the *same* forward function that predicts, it returns **logits** of shape ``(B, K)``
(one per label, before the sigmoid), and an attribution *target* is an output index ``k`` into those
``K`` logits — an ``int`` for the whole batch or one index per image. :class:`LogitOf` turns
"logit ``k`` of this model" into a stand-alone module when a single-output function is wanted.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Union

import torch
from torch import nn

Target = Union[int, Sequence[int], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` (every submodule) in eval mode for the block and restore each module's mode after (notebook 05)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


class LogitOf(nn.Module):
    """Wrap ``model`` so that its forward returns logit ``index`` only, shape ``(B,)`` (notebook 05)."""

    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be a non-negative int output index, got {index!r}")
        self.model, self.index = model, index

    def forward(self, *args, **kwargs) -> torch.Tensor:
        logits = logits_of(self.model(*args, **kwargs))
        if self.index >= logits.shape[1]:
            raise ValueError(f"index {self.index} is out of range for a model with {logits.shape[1]} logits")
        return logits[:, self.index]


def logits_of(output: object) -> torch.Tensor:
    """Return the ``(B, K)`` logits of a model output (a tensor, or an object with ``.logits``) (notebook 05)."""
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor (or an object with .logits), got {type(output).__name__}")
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits of shape (B, K); got shape {tuple(logits.shape)}")
    return logits


def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's first parameter (CPU for a parameter-free model) (notebook 05)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_image_batch(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Return ``x`` as a detached float ``(B, C, H, W)`` batch on the model's device (a ``(C, H, W)`` image gets B = 1) (notebook 05)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W) or (C, H, W); got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.float()
    return x.detach().to(model_device(model))


def target_tensor(target: Target, batch: int, n_logits: int | None = None) -> torch.Tensor:
    """Return the target as a ``(B,)`` long tensor of output indices, checking its range when ``n_logits`` is known (notebook 05)."""
    if isinstance(target, bool) or (isinstance(target, float)):
        raise TypeError(f"target must be an int output index (or one per image), got {target!r}")
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1).cpu()
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"target has {t.numel()} indices for a batch of {batch} images")
    if (t < 0).any() or (n_logits is not None and (t >= n_logits).any()):
        raise ValueError(f"target index {t.tolist()} out of range for a model with {n_logits} logits")
    return t.clone()


def check_target(model: nn.Module, x: torch.Tensor, target: Target, *forward_args) -> torch.Tensor:
    """Run one forward pass (no grad) to check the output is ``(B, K)`` logits and ``target`` indexes them (notebook 05)."""
    with torch.no_grad():
        logits = logits_of(model(x, *forward_args))
    if logits.shape[0] != x.shape[0]:
        raise ValueError(f"the model returned {logits.shape[0]} rows for a batch of {x.shape[0]}")
    return target_tensor(target, x.shape[0], logits.shape[1]).to(x.device)


def logit_forward(model: nn.Module):
    """Return a forward function that calls ``model`` and returns its ``(B, K)`` logits, captum's ``forward_func`` (notebook 05)."""

    def forward(*args, **kwargs) -> torch.Tensor:
        return logits_of(model(*args, **kwargs))

    return forward
