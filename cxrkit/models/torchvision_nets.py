"""torchvision's VGG16, ResNet-18 and DenseNet-121 adapted to one-channel films and K sigmoid outputs (notebook 02).

They keep the interface of :mod:`cxrkit.models.image` (``embed``, ``embedding_dim``, ``last_conv``, nothing in
place). This module is imported only when one of them is built: importing torchvision costs about 2.7 s on this
kit's CPU machine, most of it ``torch._dynamo`` (which its ``ops`` import). A kernel that only loads or explains the
small CNN saves all of it; one that trains it saves about 0.35 s, because the optimizer imports ``torch._dynamo``
on its first step anyway.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

__all__ = ["VGG16", "ResNet18", "DenseNet121"]


def _fresh_first_conv(old: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class _BasicBlock(tv_resnet.BasicBlock):
    """torchvision's residual block without its in-place ``out += identity`` and with one ReLU per use."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.relu_out = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu_out(out + identity)


class ResNet18(tv_resnet.ResNet):
    """torchvision's ResNet-18 with a ``in_channels``-channel stem and ``num_outputs`` logits (notebook 02)."""

    first_conv_key = "conv1.weight"
    head_prefix = "fc."
    embedding_dim = 512

    def __init__(self, in_channels: int = 1, num_outputs: int = 14):
        super().__init__(_BasicBlock, [2, 2, 2, 2], num_classes=num_outputs)
        self.conv1 = _fresh_first_conv(self.conv1, in_channels)

    @property
    def last_conv(self) -> nn.Module:
        return self.layer4

    def embed(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


class DenseNet121(tv_densenet.DenseNet):
    """torchvision's DenseNet-121 with a ``in_channels``-channel stem, ``num_outputs`` logits, and its final
    functional in-place ReLU replaced by a module, so hooks on ``features`` see an unmodified output (notebook 02)."""

    first_conv_key = "features.conv0.weight"
    head_prefix = "classifier."

    def __init__(self, in_channels: int = 1, num_outputs: int = 14):
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, num_classes=num_outputs)
        self.features.conv0 = _fresh_first_conv(self.features.conv0, in_channels)
        self.final_relu = nn.ReLU()
        self.embedding_dim = self.classifier.in_features

    @property
    def last_conv(self) -> nn.Module:
        return self.final_relu

    def embed(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.final_relu(self.features(x)), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


class VGG16(tv_vgg.VGG):
    """torchvision's VGG16 (configuration D, no batch norm) with a ``in_channels``-channel first
    convolution and ``num_outputs`` logits (notebook 02)."""

    first_conv_key = "features.0.weight"
    head_prefix = "classifier.6."
    embedding_dim = 4096

    def __init__(self, in_channels: int = 1, num_outputs: int = 14, dropout: float = 0.5):
        super().__init__(tv_vgg.make_layers(tv_vgg.cfgs["D"], batch_norm=False), num_classes=num_outputs, dropout=dropout)
        self.features[0] = _fresh_first_conv(self.features[0], in_channels)
        self._last_relu = max(i for i, m in enumerate(self.features) if isinstance(m, nn.ReLU))

    @property
    def last_conv(self) -> nn.Module:
        return self.features[self._last_relu]

    def embed(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:-1](x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier[-1](self.embed(x))
