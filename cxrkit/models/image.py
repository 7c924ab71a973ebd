"""Image models: a small CPU-friendly CNN and torchvision VGG16 / ResNet-18 / DenseNet-121 adapted to
one-channel chest X-rays and K independent sigmoid outputs (one logit per label, never a softmax).

Every model here shares a small interface the rest of the kit relies on:

* ``model(x)`` maps a ``B×C×H×W`` float batch to ``B×K`` logits;
* ``model.embed(x)`` returns the pooled ``B×D`` embedding (``model.embedding_dim`` = D) — fusion uses it;
* ``model.last_conv`` is the layer whose output is the last convolutional feature map — Grad-CAM uses it;
* no module works in place, so captum's hooks see every activation unmodified.

Pretrained weights load only from a local file (:func:`load_weights`); nothing is ever downloaded.
Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import CxrkitError
from ..lazy import lazy_import

torchvision_nets = lazy_import("cxrkit.models.torchvision_nets")  # torchvision takes seconds to import: on first use

__all__ = [
    "IMAGE_MODELS",
    "SmallCNN",
    "SMALL_CNN_HEADS",
    "TORCHVISION_MODELS",
    "WeightsMismatchError",
    "build_image_model",
    "load_weights",
    "disable_inplace",
]


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Return one convolution → batch norm → ReLU block, the unit :class:`SmallCNN` is built from (notebook 02)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


#: The pooling heads :class:`SmallCNN` offers (notebook 02).
SMALL_CNN_HEADS = ("gap", "gapmax", "lse")


class SmallCNN(nn.Module):
    """A five-block CNN that trains on a laptop CPU in minutes at 128×128 (notebook 02).

    The stem is strided (a 5×5 convolution with stride 2), because full-resolution early
    convolutions dominate the cost on a CPU. Two more stride-2 blocks bring a 128×128 input to
    16×16, where two more blocks widen the features; the last one keeps a 16×16 map so Grad-CAM
    stays usefully sharp. The ``head`` turns that map into one logit per label:

    * ``"gap"`` — global average pooling, dropout, one linear layer (the classic CNN classifier);
    * ``"gapmax"`` — average *and* maximum pooling side by side, then one linear layer;
    * ``"lse"`` — a 1×1 convolution gives a **class-evidence map** per label (``class_map``), pooled by
      log-sum-exp, ``(1/r)·log(mean(exp(r·s)))``: between the mean (r → 0) and the maximum (r → ∞), so a
      small finding that lights up a few cells moves the logit (Wang et al. 2017 pooled ChestX-ray8 maps
      this way). Its ``last_conv`` is that 1×1 convolution, so Grad-CAM there is the class-evidence map.
    """

    first_conv_key = "stem.0.weight"
    head_prefix = "head."

    def __init__(self, in_channels: int = 1, num_outputs: int = 14, width: int = 32, dropout: float = 0.2,
                 head: str = "gap", lse_r: float = 5.0):
        super().__init__()
        if num_outputs < 1 or width < 1 or in_channels < 1:
            raise ValueError(f"SmallCNN needs positive sizes, got in_channels={in_channels}, "
                             f"num_outputs={num_outputs}, width={width}")
        if head not in SMALL_CNN_HEADS:
            raise ValueError(f"SmallCNN head must be one of {SMALL_CNN_HEADS}, got {head!r}")
        if lse_r <= 0:
            raise ValueError(f"lse_r must be > 0, got {lse_r!r}")
        w = width
        self.stem = conv_bn_relu(in_channels, w, kernel=5, stride=2)  # H/2
        self.blocks = nn.Sequential(
            conv_bn_relu(w, w, stride=2),  # H/4
            conv_bn_relu(w, 2 * w, stride=2),  # H/8
            conv_bn_relu(2 * w, 4 * w),
            conv_bn_relu(4 * w, 4 * w),
        )
        self.dropout = nn.Dropout(dropout)
        self.head_kind, self.lse_r = head, float(lse_r)
        self.feature_channels = 4 * w
        self.embedding_dim = 4 * w * (2 if head == "gapmax" else 1)
        self.head = nn.Conv2d(4 * w, num_outputs, 1) if head == "lse" else nn.Linear(self.embedding_dim, num_outputs)

    @property
    def last_conv(self) -> nn.Module:
        """The layer Grad-CAM weighs: the last conv block, or the 1×1 class-evidence convolution of the ``"lse"`` head."""
        return self.head if self.head_kind == "lse" else self.blocks[-1]

    def feature_map(self, x: Tensor) -> Tensor:
        """Return the last block's ``B×4w×h×w`` feature map (16×16 for a 128×128 film)."""
        return self.blocks(self.stem(x))

    def features(self, x: Tensor) -> Tensor:
        """Return the pooled ``B×embedding_dim`` embedding (average, or average and maximum, of the feature map)."""
        return self.logits_and_embedding(x)[1]

    embed = features  # the name every image model in the kit shares

    def class_map(self, x: Tensor) -> Tensor:
        """Return the ``"lse"`` head's ``B×K×h×w`` class-evidence map, whose log-sum-exp pooling is the logit."""
        if self.head_kind != "lse":
            raise TypeError(f"class_map needs the 'lse' head; this SmallCNN has head={self.head_kind!r}")
        return self.head(self.dropout(self.feature_map(x)))

    def logits_and_embedding(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits, pooled embedding)`` from one pass through the network (joint fusion needs both)."""
        f = self.feature_map(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1) if self.head_kind == "gapmax" else f.mean(dim=(2, 3))
        if self.head_kind != "lse":
            return self.head(self.dropout(pooled)), pooled
        s = self.head(self.dropout(f)).flatten(2)  # B×K×(h·w): the class-evidence map
        return (torch.logsumexp(self.lse_r * s, dim=2) - math.log(s.shape[2])) / self.lse_r, pooled

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_embedding(x)[0]


#: The torchvision architectures, built from :mod:`cxrkit.models.torchvision_nets` (imported on first use).
TORCHVISION_MODELS: tuple[str, ...] = ("VGG16", "ResNet18", "DenseNet121")


def __getattr__(name: str) -> Any:
    """Hand out the torchvision architectures (``VGG16``, ``ResNet18``, ``DenseNet121``) without importing torchvision before they are asked for."""
    if name in TORCHVISION_MODELS:
        return getattr(torchvision_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _TorchvisionNet:
    """A constructor of one torchvision architecture that imports torchvision when first called."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, **options: Any) -> nn.Module:
        return __getattr__(self.name)(**options)

    def __repr__(self) -> str:
        return f"cxrkit.models.torchvision_nets.{self.name}"


#: The names :func:`build_image_model` accepts, and the classes they build.
IMAGE_MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "vgg16": _TorchvisionNet("VGG16"),
    "resnet18": _TorchvisionNet("ResNet18"),
    "densenet121": _TorchvisionNet("DenseNet121"),
}


def disable_inplace(model: nn.Module) -> nn.Module:
    """Switch every module's ``inplace`` flag off (ReLU, Dropout, …) so attribution hooks see true activations (notebook 02)."""
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return model


def build_image_model(
    name: str,
    num_outputs: int,
    *,
    weights_path: str | Path | None = None,
    in_channels: int = 1,
    **options: Any,
) -> nn.Module:
    """Build image model ``name`` with ``num_outputs`` logits, optionally loading a local weights file (notebook 02).

    ``options`` go to the model's constructor (e.g. ``width=``/``dropout=`` for ``"small_cnn"``).
    """
    if name not in IMAGE_MODELS:
        raise ValueError(f"unknown image model {name!r}; choose one of {sorted(IMAGE_MODELS)}")
    if not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive int, got {num_outputs!r}")
    model = disable_inplace(IMAGE_MODELS[name](in_channels=in_channels, num_outputs=num_outputs, **options))
    if weights_path is not None:
        load_weights(model, weights_path)
    return model


# ----------------------------------------------------------------------------------------- weights

class WeightsMismatchError(CxrkitError, ValueError):
    """A weights file does not fit the model's architecture; lists the keys and shapes at fault."""

    def __init__(self, path: str | Path, model_name: str, problems: dict[str, list[str]]):
        self.path, self.model_name, self.problems = Path(path), model_name, problems
        lines = [f"weights file {path} does not fit {model_name}:"]
        for kind, items in problems.items():
            if items:
                shown = "; ".join(items[:10]) + (f"; … ({len(items) - 10} more)" if len(items) > 10 else "")
                lines.append(f"  {kind} ({len(items)}): {shown}")
        super().__init__("\n".join(lines))


# Old torchvision DenseNet files name layers 'norm.1', 'conv.2', …; the modules are now 'norm1', 'conv2'.
_LEGACY_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")


def _normalise_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _LEGACY_DENSE_KEY.match(key)
        if match:
            key = match.group(1) + match.group(2)
        out[key] = value
    return out


class WeightsFileError(CxrkitError, FileNotFoundError):
    """The weights file a user named does not exist (``weights_path``, notebook 02)."""


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsFileError(f"weights file {path} does not exist (weights load only from a local file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path named
        raise WeightsMismatchError(path, "any model", {"unreadable (not a weights-only state_dict)": [str(exc)[:300]]}) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsMismatchError(path, "any model", {"not a state_dict of tensors": [type(state).__name__]})
    return _normalise_keys(state)


def load_weights(model: nn.Module, weights_path: str | Path) -> list[str]:
    """Load a local ``state_dict`` file into a kit image model and return the keys left freshly initialised (notebook 02).

    Two kinds of file fit: a full-model state dict of the same architecture (everything must match),
    or an RGB backbone such as an ImageNet checkpoint — then the first convolution's weights are summed
    over the three colour channels (spread evenly over ``in_channels``) and a classifier whose shape
    differs is left fresh. Anything else raises :class:`WeightsMismatchError` listing the keys at fault.
    """
    path = Path(weights_path).expanduser()  # "~/weights/densenet121.pth" as notebook 02 documents it
    name = type(model).__name__
    first_key, head = getattr(model, "first_conv_key", None), getattr(model, "head_prefix", None)
    if first_key is None or head is None:
        raise TypeError(f"{name} is not a kit image model (no first_conv_key/head_prefix); build it with build_image_model")
    state = _read_state_dict(path)
    target = model.state_dict()

    rgb_backbone = first_key in state and state[first_key].ndim == 4 and state[first_key].shape[1] == 3
    want = target[first_key]
    if rgb_backbone and want.shape[1] != 3 and state[first_key].shape[0] == want.shape[0]:
        summed = state[first_key].sum(dim=1, keepdim=True)
        state[first_key] = summed.repeat(1, want.shape[1], 1, 1) / want.shape[1]

    def optional(key: str) -> bool:
        return key.endswith("num_batches_tracked")

    fresh = [k for k in target if k.startswith(head) and rgb_backbone and (k not in state or state[k].shape != target[k].shape)]
    missing = [k for k in target if k not in state and k not in fresh and not optional(k)]
    unexpected = [k for k in state if k not in target and not (rgb_backbone and k.startswith(head))]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in target
        if k in state and k not in fresh and state[k].shape != target[k].shape
    ]
    if missing or unexpected or shapes:
        raise WeightsMismatchError(
            path, name, {"shape mismatches": shapes, "missing from file": missing, "unexpected in file": unexpected}
        )
    model.load_state_dict({k: v for k, v in state.items() if k in target and k not in fresh}, strict=False)
    if fresh:
        warnings.warn(f"{path.name}: RGB backbone loaded into {name}; classifier left fresh ({', '.join(fresh)})", stacklevel=2)
    return fresh
