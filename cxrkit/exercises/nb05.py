"""Notebook 05's coded exercise: gradient × input of one logit, written with ``torch.autograd.grad``."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from cxrkit.exercises import Case, exercise

NOTEBOOK = "05_saliency_derivation"


class _TinyCNN(nn.Module):
    """A seeded two-logit CNN (conv → ReLU → pool → linear) small enough for an exercise check."""

    def __init__(self, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 1, 8, 8, generator=g)
    yield Case((_TinyCNN(0), x, 0), description="three 8×8 films, logit 0")
    yield Case((_TinyCNN(1), x, 1), description="another model, logit 1")
    linear = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        linear[1].weight.copy_(torch.linspace(-1, 1, 72).reshape(2, 36))
        linear[1].bias.fill_(0.5)
    yield Case((linear, torch.rand(2, 1, 6, 6, generator=g), 1),
               description="a linear model: gradient × input is the weights times the film")


@exercise("nb05_gradient_x_input", NOTEBOOK, _cases,
          hint="x.detach().clone().requires_grad_(True); logits = model(x); grad = torch.autograd.grad("
               "logits[:, k].sum(), x)[0]; return (grad * x).detach()")
def gradient_x_input(model: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: gradient × input of logit ``k`` for each film of the batch, shaped like ``x`` (notebook 05, exercise)."""
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, k].sum(), x)
    return (grad * x).detach()
