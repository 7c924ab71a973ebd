"""Where two modalities meet: early, joint and cross-attention fusion of an image model and a text model (notebook 04).

All three take a trained image model (anything with ``embed(x)`` and ``last_conv``, e.g.
:class:`~cxrkit.models.image.SmallCNN`) and a trained :class:`~cxrkit.models.text.TextCNN`, and all
three have the same forward function, ``model(images, input_ids, attention_mask=None) -> B×K logits``,
so they train with :func:`cxrkit.train.fit` and are explained by the same attribution code as the
single-modality models (notebook 06).

* :class:`EarlyFusion` — both encoders **frozen**; their pooled features are standardised,
  concatenated and a small head is trained. Because the encoders never change, the head can be
  trained on features computed once (:meth:`EarlyFusion.encode`), which takes seconds.
* :class:`JointFusion` — both encoders **fine-tuned** end to end through one linear head that
  starts as the average of the two trained heads, so at step 0 it predicts exactly the mean of the
  two submodels' logits. Starting joint fusion from fresh layers instead throws away what the
  submodels learned — one source project's bug.
* :class:`CrossAttentionFusion` — the advanced option: every text token attends to the image's
  regions (the last convolutional map, pooled to a grid), encoders frozen; the attended token
  vectors are pooled and joined with both pooled features.

Late fusion (averaging, stacking) works on predictions, not on layers: see :mod:`cxrkit.fusion`.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = ["FeatureScaler", "EarlyFusion", "JointFusion", "CrossAttentionFusion", "frozen_copy", "image_feature_map",
           "FUSION_MODELS"]


def frozen_copy(module: nn.Module) -> nn.Module:
    """Return a deep copy of ``module`` in eval mode with every parameter frozen (notebook 04)."""
    clone = copy.deepcopy(module).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def image_feature_map(image_model: nn.Module, images: Tensor) -> Tensor:
    """Return the image model's last ``B×C×h×w`` feature map: its ``feature_map(x)``, else the output of ``last_conv`` (notebook 04)."""
    if hasattr(image_model, "feature_map"):
        return image_model.feature_map(images)
    if not hasattr(image_model, "last_conv"):
        raise TypeError(f"{type(image_model).__name__} has no last_conv; cross-attention needs its last feature map")
    store: dict[str, Tensor] = {}
    handle = image_model.last_conv.register_forward_hook(lambda _m, _i, out: store.__setitem__("map", out))
    try:
        image_model.embed(images)
    finally:
        handle.remove()
    return store["map"]


class FeatureScaler(nn.Module):
    """Standardise features with a mean and standard deviation fitted on training rows only, stored as buffers (notebook 04)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, features: Tensor) -> "FeatureScaler":
        """Set the mean and standard deviation from ``N×dim`` training features (a constant feature gets std 1)."""
        if features.ndim != 2 or features.shape[1] != self.mean.numel():
            raise ValueError(f"expected N×{self.mean.numel()} features, got {tuple(features.shape)}")
        self.mean.copy_(features.mean(0))
        std = features.std(0)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _text_dim(text_model: nn.Module) -> int:
    dim = getattr(text_model, "feature_dim", None)
    if dim is None:
        raise TypeError(f"{type(text_model).__name__} has no feature_dim; fusion needs the text model's pooled features")
    return int(dim)


def _image_dim(image_model: nn.Module) -> int:
    dim = getattr(image_model, "embedding_dim", None)
    if dim is None:
        raise TypeError(f"{type(image_model).__name__} has no embedding_dim; fusion needs the image model's pooled embedding size")
    return int(dim)


def _num_outputs(model: nn.Module) -> int:
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    if isinstance(head, nn.Conv2d):
        return head.out_channels
    raise TypeError(f"{type(model).__name__}.head is {type(head).__name__}; joint fusion needs a linear or 1×1-convolution head")


class _FrozenEncoders(nn.Module):
    """Two frozen encoders that stay in eval mode whatever ``train()`` says."""

    def __init__(self, image_model: nn.Module, text_model: nn.Module):
        super().__init__()
        self.image_model = frozen_copy(image_model)
        self.text_model = frozen_copy(text_model)

    def train(self, mode: bool = True) -> "_FrozenEncoders":
        super().train(mode)
        self.image_model.eval()
        self.text_model.eval()
        return self


class EarlyFusion(_FrozenEncoders):
    """Frozen encoders → standardised pooled features, concatenated → a small trained head (notebook 04).

    ``hidden=0`` makes the head one linear layer (a logistic regression on the joint features).
    """

    def __init__(self, image_model: nn.Module, text_model: nn.Module, num_outputs: int, hidden: int = 64,
                 dropout: float = 0.3):
        super().__init__(image_model, text_model)
        dim = _image_dim(image_model) + _text_dim(text_model)
        self.scaler = FeatureScaler(dim)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_outputs)] if hidden else \
            [nn.Linear(dim, num_outputs)]
        self.head = nn.Sequential(*layers)

    def encode(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Return the raw (unstandardised) concatenated ``B×(image_dim+text_dim)`` features of the frozen encoders."""
        return torch.cat([self.image_model.embed(images), self.text_model.features(input_ids, attention_mask)], dim=1)

    def head_forward(self, features: Tensor) -> Tensor:
        """Return logits from precomputed :meth:`encode` features (what training on cached features calls)."""
        return self.head(self.scaler(features))

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.head_forward(self.encode(images, input_ids, attention_mask))


def logits_and_embedding(model: nn.Module, *inputs: Tensor) -> tuple[Tensor, Tensor]:
    """Return a submodel's ``(logits, pooled embedding)``: one pass where it offers ``logits_and_embedding``, else two (notebook 04)."""
    if hasattr(model, "logits_and_embedding"):
        return model.logits_and_embedding(*inputs)
    embed = model.embed if hasattr(model, "embed") else model.features
    return model(*inputs), embed(*inputs)


class JointFusion(nn.Module):
    """Both trained encoders fine-tuned end to end; the fused logit starts as the mean of the two submodels' logits (notebook 04).

    ``JointFusion(img, txt)(x, ids) = (img(x) + txt(ids)) / 2 + W·[e_img(x), e_txt(ids)] + b``: the mean of the
    two trained models' logits plus a linear correction read from both pooled embeddings, which starts at zero.
    So at initialisation (and in eval mode) it predicts exactly the mean of the two submodels; training then moves
    all weights together — the encoders, their heads and the correction. The submodels given are copied, never
    modified. Any image head works (a linear layer on pooled features, or a pooled class-evidence map).
    """

    def __init__(self, image_model: nn.Module, text_model: nn.Module, dropout: float = 0.2):
        super().__init__()
        self.image_model = copy.deepcopy(image_model)
        self.text_model = copy.deepcopy(text_model)
        for p in list(self.image_model.parameters()) + list(self.text_model.parameters()):
            p.requires_grad_(True)
        n_image, n_text = _num_outputs(self.image_model), _num_outputs(self.text_model)
        if n_image != n_text:
            raise ValueError(f"the image model predicts {n_image} labels, the text model {n_text}: "
                             "they must predict the same labels")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(_image_dim(self.image_model) + _text_dim(self.text_model), n_image)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        image_logits, image_embedding = logits_and_embedding(self.image_model, images)
        text_args = (input_ids,) if attention_mask is None else (input_ids, attention_mask)
        text_logits, text_embedding = logits_and_embedding(self.text_model, *text_args)
        correction = self.head(self.dropout(torch.cat([image_embedding, text_embedding], dim=1)))
        return (image_logits + text_logits) / 2 + correction


class CrossAttentionFusion(_FrozenEncoders):
    """Text tokens attend to image regions (frozen encoders); attended tokens pooled and joined with both pooled features (notebook 04).

    The image regions are the last convolutional map average-pooled to ``grid×grid`` cells; queries are
    the text CNN's per-token features (:meth:`~cxrkit.models.text.TextCNN.token_features`). Padding
    tokens are excluded from the pooling. :meth:`attention` returns the weights for figures.
    """

    def __init__(self, image_model: nn.Module, text_model: nn.Module, num_outputs: int, dim: int = 64, heads: int = 4,
                 grid: int = 8, dropout: float = 0.3):
        super().__init__(image_model, text_model)
        channels = int(getattr(image_model, "feature_channels", _image_dim(image_model)))  # channels of the feature map
        text_dim = _text_dim(text_model)
        self.grid = int(grid)
        self.region_proj = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, dim))
        self.token_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.position = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.scaler = FeatureScaler(channels + text_dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim + channels + text_dim, num_outputs))

    def encode(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Return the frozen encoders' outputs: image ``regions`` (B×grid²×C), ``tokens`` (B×L×D), ``token_mask``, ``pooled``."""
        fmap = image_feature_map(self.image_model, images)
        regions = F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2)
        mask = self.text_model._mask(input_ids, attention_mask)
        tokens = self.text_model.token_features(input_ids, mask)
        pooled = torch.cat([fmap.mean(dim=(2, 3)), tokens.max(dim=1).values], dim=1)
        return {"regions": regions, "tokens": tokens, "token_mask": mask, "pooled": pooled}

    def attention(self, regions: Tensor, tokens: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return (attended token vectors ``B×L×dim``, attention weights ``B×L×grid²`` averaged over heads)."""
        keys = self.region_proj(regions) + self.position
        queries = self.token_proj(tokens)
        attended, weights = self.attn(queries, keys, keys, need_weights=True, average_attn_weights=True)
        return attended * token_mask.unsqueeze(-1).to(attended.dtype), weights

    def head_forward(self, regions: Tensor, tokens: Tensor, token_mask: Tensor, pooled: Tensor) -> Tensor:
        """Return logits from precomputed :meth:`encode` outputs (what training on cached encoder outputs calls)."""
        attended, _ = self.attention(regions, tokens, token_mask)
        n_real = token_mask.sum(dim=1, keepdim=True).clamp(min=1).to(attended.dtype)
        summary = attended.sum(dim=1) / n_real
        return self.head(torch.cat([summary, self.scaler(pooled)], dim=1))

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.head_forward(**self.encode(images, input_ids, attention_mask))


#: The layer-level fusion models by the name the recipe and notebook 04 use.
FUSION_MODELS: dict[str, Any] = {"early": EarlyFusion, "joint": JointFusion, "attention": CrossAttentionFusion}
