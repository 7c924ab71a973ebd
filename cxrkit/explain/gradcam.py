"""Grad-CAM on a chosen convolutional layer, upsampled to the input size (captum ``LayerGradCam``).

Taught in notebook 05 (saliency).
"""
from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ._common import Target, as_image_batch, check_target, eval_mode, logit_forward

#: Attributes an image model may expose to point Grad-CAM at its last conv block (cxrkit's image models: ``last_conv``).
GRADCAM_LAYER_ATTRS = ("last_conv", "gradcam_layer")


def resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    """Return the layer Grad-CAM explains: ``layer`` itself, a submodule name, ``model.last_conv`` (or ``gradcam_layer``), or the last ``Conv2d`` (notebook 05)."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer {layer.__class__.__name__} is not a submodule of {model.__class__.__name__}")
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as exc:
            names = [n for n, _ in model.named_modules() if n]
            raise ValueError(f"model has no submodule {layer!r}; its submodules are {names[:20]}") from exc
    if layer is not None:
        raise TypeError(f"layer must be a module, a submodule name or None, got {type(layer).__name__}")
    for attr in GRADCAM_LAYER_ATTRS:
        exposed = getattr(model, attr, None)
        if isinstance(exposed, (nn.Module, str)):
            return resolve_layer(model, exposed)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{model.__class__.__name__} has no Conv2d layer for Grad-CAM; pass layer= explicitly")
    return convs[-1]


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    layer: nn.Module | str | None = None,
    *,
    interpolate_mode: str = "bilinear",
) -> torch.Tensor:
    """Return the ReLU'd Grad-CAM map of logit ``target`` at ``layer``, upsampled to ``(B, 1, H, W)`` (notebook 05)."""
    x = as_image_batch(x, model)
    conv = resolve_layer(model, layer)
    with eval_mode(model):
        t = check_target(model, x, target)
        cam = LayerGradCam(logit_forward(model), conv).attribute(x, target=t, relu_attributions=True)
        if cam.ndim != 4:
            raise ValueError(f"layer {conv.__class__.__name__} gives a map of shape {tuple(cam.shape)}; pick a conv layer")
        up = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode=interpolate_mode)
    return torch.relu(up).detach()
