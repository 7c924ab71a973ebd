"""Gradient saliency maps and the one entry point :func:`attribute` for every attribution method.

Every method explains the **logit** ``target`` (an output index into the model's ``(B, K)`` logits) of
the same forward function that predicts, with the model in eval mode (set inside, restored after).
Per-method functions return attributions shaped like the input (Grad-CAM: ``(B, 1, H, W)``);
:func:`attribute` returns ``(B, H, W)`` maps summed over channels. Taught in notebook 05 (saliency).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from captum.attr import InputXGradient, NoiseTunnel, Saliency
from torch import nn

from ._common import Target, as_image_batch, check_target, eval_mode, logit_forward, logits_of
from .gradcam import gradcam
from .ig import integrated_gradients


def gradient_saliency(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Return d logit[target] / d x, written with plain ``torch.autograd.grad`` (notebook 05 derives it and checks it against captum)."""
    x = as_image_batch(x, model).clone().requires_grad_(True)
    with eval_mode(model):
        t = check_target(model, x.detach(), target)
        logits = logits_of(model(x))
        chosen = logits.gather(1, t[:, None]).sum()  # images are independent in eval mode: one backward pass
        (grad,) = torch.autograd.grad(chosen, x)
    return grad.detach()


def vanilla_gradient(model: nn.Module, x: torch.Tensor, target: Target, *, abs: bool = False) -> torch.Tensor:
    """Return the input gradient of logit ``target`` via captum ``Saliency`` (signed unless ``abs``) (notebook 05)."""
    x = as_image_batch(x, model)
    with eval_mode(model):
        t = check_target(model, x, target)
        attr = Saliency(logit_forward(model)).attribute(x.clone().requires_grad_(True), target=t, abs=abs)
    return attr.detach()


def gradient_x_input(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Return gradient × input of logit ``target`` via captum ``InputXGradient`` (notebook 05)."""
    x = as_image_batch(x, model)
    with eval_mode(model):
        t = check_target(model, x, target)
        attr = InputXGradient(logit_forward(model)).attribute(x.clone().requires_grad_(True), target=t)
    return attr.detach()


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    *,
    noise_level: float = 0.15,
    n_samples: int = 25,
    data_range: float | None = None,
    batch_size: int | None = None,
    squared: bool = False,
    seed: int | None = 0,
) -> torch.Tensor:
    """Return SmoothGrad of logit ``target`` (captum ``NoiseTunnel`` over ``Saliency``); noise std = ``noise_level`` × data range (notebook 05).

    ``data_range`` defaults to ``x.max() - x.min()`` over the batch (pass 1.0 for [0, 1] input space);
    ``seed`` makes the noise reproducible without touching the global RNG (``None``: use it).
    """
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level!r}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    x = as_image_batch(x, model)
    span = float(x.max() - x.min()) if data_range is None else float(data_range)
    with eval_mode(model), _seeded(seed, x.device):
        t = check_target(model, x, target)
        tunnel = NoiseTunnel(Saliency(logit_forward(model)))
        attr = tunnel.attribute(
            x, nt_type="smoothgrad_sq" if squared else "smoothgrad", nt_samples=n_samples,
            nt_samples_batch_size=batch_size, stdevs=noise_level * span, target=t, abs=False,
        )
    return attr.detach()


def _integrated_gradients_map(model: nn.Module, x: torch.Tensor, target: Target, **kw) -> torch.Tensor:
    kw["return_delta"] = False
    return integrated_gradients(model, x, target, **kw)


#: The attribution methods :func:`attribute` knows, by name.
METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "vanilla_gradient": vanilla_gradient,
    "gradient_x_input": gradient_x_input,
    "smoothgrad": smoothgrad,
    "gradcam": gradcam,
    "integrated_gradients": _integrated_gradients_map,
}


def attribute(method: str, model: nn.Module, x: torch.Tensor, target: Target, **kw) -> torch.Tensor:
    """Return the ``(B, H, W)`` attribution maps (summed over channels, detached) of logit ``target`` by ``method`` from :data:`METHODS` (notebook 05)."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(METHODS)}")
    attr = METHODS[method](model, x, target, **kw)
    return attr.sum(dim=1).detach()
