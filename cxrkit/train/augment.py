"""Batched image augmentation on the device: one random affine warp (``affine_grid``/``grid_sample``)
and one brightness/contrast jitter per batch, with per-image random parameters.

Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ImageAugment"]


class ImageAugment(nn.Module):
    """Small random rotations, shifts, zooms and brightness/contrast changes of a ``B×C×H×W`` batch in [0, 1] (notebook 02).

    Like dropout it acts only in training mode: ``fit`` switches it on while training and off for
    validation, and ``predict`` switches it off. Each image gets its own random parameters, but the
    whole batch is warped by one ``grid_sample`` call on whatever device the batch is on.

    Horizontal flips are off by default, on purpose: a chest X-ray is not left–right symmetric. The
    heart sits on the patient's left, so a flipped film shows dextrocardia (a rare anomaly), moves
    the aortic knob, gastric bubble and laterality markers ("L"/"R") to the wrong side, and swaps
    any left/right-specific finding — the model would learn anatomy that does not exist. Turn
    ``hflip`` on only for tasks that are truly symmetric.

    Parameters are maxima: ``degrees`` of rotation, ``translate`` as a fraction of the image size,
    ``scale`` as a fractional zoom (0.05 → 0.95–1.05×), ``brightness`` added in [0, 1] units and
    ``contrast`` as a fractional stretch around each image's mean. Square images are assumed.
    """

    def __init__(
        self,
        degrees: float = 7.0,
        translate: float = 0.05,
        scale: float = 0.05,
        brightness: float = 0.1,
        contrast: float = 0.1,
        hflip: bool = False,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        for name, value in dict(degrees=degrees, translate=translate, scale=scale, brightness=brightness, contrast=contrast).items():
            if value < 0:
                raise ValueError(f"ImageAugment {name} must be >= 0, got {value}")
        if scale >= 1 or contrast >= 1:
            raise ValueError(f"ImageAugment scale and contrast must be < 1, got scale={scale}, contrast={contrast}")
        if padding_mode not in ("zeros", "border", "reflection"):
            raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.brightness, self.contrast, self.hflip, self.padding_mode = brightness, contrast, hflip, padding_mode

    def extra_repr(self) -> str:
        return (f"degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"brightness={self.brightness}, contrast={self.contrast}, hflip={self.hflip}")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"ImageAugment expects a float B×C×H×W batch, got {tuple(x.shape)} {x.dtype}")
        b = x.shape[0]

        def uniform(limit: float) -> Tensor:  # one draw per image in [-limit, limit]
            return (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * limit

        angle = uniform(math.radians(self.degrees))
        zoom = 1 + uniform(self.scale)
        # affine_grid maps output to input coordinates in [-1, 1]: zooming in by s samples a region 1/s as big.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        flip = torch.ones_like(cos)
        if self.hflip:
            flip = torch.where(torch.rand(b, device=x.device) < 0.5, -flip, flip)
        shift_x, shift_y = uniform(2 * self.translate), uniform(2 * self.translate)
        theta = torch.stack([
            torch.stack([cos * flip, -sin, shift_x], dim=1),
            torch.stack([sin * flip, cos, shift_y], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)
        if self.brightness or self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            gain = (1 + uniform(self.contrast)).view(b, 1, 1, 1)
            x = ((x - mean) * gain + mean + uniform(self.brightness).view(b, 1, 1, 1)).clamp(0, 1)
        return x
