"""The kit's models: image CNNs here (notebook 02); text models and fusion live in sibling modules.

Import image models from ``cxrkit.models`` (``build_image_model("small_cnn", K)``); text and fusion
models are imported from their own modules (``cxrkit.models.text``, ``cxrkit.models.fusion``).
"""
from typing import Any

from . import image
from .image import (
    IMAGE_MODELS,
    TORCHVISION_MODELS,
    SmallCNN,
    WeightsMismatchError,
    build_image_model,
    disable_inplace,
    load_weights,
)

__all__ = [
    "IMAGE_MODELS",
    "SmallCNN",
    "VGG16",
    "ResNet18",
    "DenseNet121",
    "WeightsMismatchError",
    "build_image_model",
    "disable_inplace",
    "load_weights",
]


def __getattr__(name: str) -> Any:
    """``VGG16``, ``ResNet18`` and ``DenseNet121`` come from :mod:`cxrkit.models.torchvision_nets` when first asked for (torchvision is slow to import)."""
    if name in TORCHVISION_MODELS:
        return getattr(image, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
