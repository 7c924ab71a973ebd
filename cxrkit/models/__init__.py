"""The kit's models: image CNNs here (notebook 02); text models and fusion live in sibling modules.

Import image models from ``cxrkit.models`` (``build_image_model("small_cnn", K)``); text and fusion
models are imported from their own modules (``cxrkit.models.text``, ``cxrkit.models.fusion``).
"""
from .image import (
    IMAGE_MODELS,
    VGG16,
    DenseNet121,
    ResNet18,
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
