"""Integrated gradients with a stated baseline and its completeness check (captum ``IntegratedGradients``).

Completeness (Sundararajan et al. 2017): the attributions of one image sum to ``F(x) - F(baseline)``,
where ``F`` is the explained logit. Taught in notebook 05 (saliency).
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients
from scipy import ndimage
from torch import nn

from ._common import Target, as_image_batch, check_target, eval_mode, logit_forward, logits_of

BASELINES = ("black", "blurred")


def make_baseline(x: torch.Tensor, kind: str | float | torch.Tensor = "black", *, black_value: float = 0.0, blur_sigma: float | None = None) -> torch.Tensor:
    """Return an IG baseline shaped like ``x``: ``"black"`` (``black_value``, 0 in [0, 1] input space), ``"blurred"`` (Gaussian blur), a constant or a tensor (notebook 05)."""
    if isinstance(kind, torch.Tensor):
        base = kind.to(device=x.device, dtype=x.dtype)
        if base.shape != x.shape:
            base = base.expand_as(x)
        return base.detach().clone()
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return torch.full_like(x, float(kind))
    if kind == "black":
        return torch.full_like(x, float(black_value))
    if kind == "blurred":
        sigma = 0.1 * min(x.shape[-2:]) if blur_sigma is None else float(blur_sigma)
        if sigma <= 0:
            raise ValueError(f"blur_sigma must be > 0, got {blur_sigma!r}")
        sig = (0,) * (x.ndim - 2) + (sigma, sigma)
        blurred = ndimage.gaussian_filter(x.detach().cpu().double().numpy(), sigma=sig, mode="nearest")
        return torch.as_tensor(np.asarray(blurred), dtype=x.dtype, device=x.device)
    raise ValueError(f"baseline {kind!r} is not one of {BASELINES}, a number or a tensor")


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    baseline: str | float | torch.Tensor = "black",
    steps: int = 64,
    return_delta: bool = True,
    *,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    black_value: float = 0.0,
    blur_sigma: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Return IG attributions of logit ``target`` (shaped like ``x``) and, with ``return_delta``, captum's per-image completeness delta (notebook 05)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    x = as_image_batch(x, model)
    base = make_baseline(x, baseline, black_value=black_value, blur_sigma=blur_sigma)
    with eval_mode(model):
        t = check_target(model, x, target)
        ig = IntegratedGradients(logit_forward(model))
        out = ig.attribute(
            x, baselines=base, target=t, n_steps=steps, method=method,
            internal_batch_size=internal_batch_size, return_convergence_delta=return_delta,
        )
    if return_delta:
        attr, delta = out
        return attr.detach(), delta.detach()
    return out.detach()


def completeness_error(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: Target,
    baseline: str | float | torch.Tensor = "black",
    *,
    relative: bool = True,
    black_value: float = 0.0,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """Return per image ``|sum(attributions) - (F(x) - F(baseline))|``, divided by ``|F(x) - F(baseline)|`` when ``relative`` (notebook 05)."""
    x = as_image_batch(x, model)
    attributions = torch.as_tensor(attributions).to(x.device)
    if attributions.shape != x.shape:
        raise ValueError(f"attributions of shape {tuple(attributions.shape)} do not match the input {tuple(x.shape)}")
    base = make_baseline(x, baseline, black_value=black_value, blur_sigma=blur_sigma)
    with eval_mode(model), torch.no_grad():
        t = check_target(model, x, target)
        rows = torch.arange(x.shape[0], device=x.device)
        gap = logits_of(model(x))[rows, t] - logits_of(model(base))[rows, t]
    err = (attributions.reshape(x.shape[0], -1).sum(1) - gap).abs()
    if relative:
        err = err / gap.abs().clamp_min(1e-12)
    return err.detach()
