"""Text models that read report text: a Kim-style 1-D CNN over word embeddings, and a fine-tunable MiniLM.

Taught in notebook 03 (text CNN). Both return K logits (one per label; train with multi-task BCE),
take ``forward(input_ids, attention_mask=None)``, expose ``embedding`` (for attribution) and
``features(...)`` (the pooled vector, for fusion in notebook 04).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cxrkit.text.pretrained import load_pretrained_model


class TextCNN(nn.Module):
    """Embedding → parallel 1-D convolutions (one per width) → ReLU → max over real tokens → dropout → K logits (notebook 03).

    Padding never influences the output: padded positions are zeroed after the embedding and excluded
    from the max-pool, so neither the padding vectors nor the amount of padding change a prediction.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        num_outputs: int = 14,
        widths: Sequence[int] = (3, 4, 5),
        channels: int = 64,
        dropout: float = 0.5,
        padding_idx: int | None = 0,
    ):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (padding and unknown), got {vocab_size}")
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be positive kernel sizes, got {widths}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.widths, self.padding_idx = widths, padding_idx
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, kernel_size=w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = channels * len(widths)
        self.head = nn.Linear(self.feature_dim, num_outputs)

    def _mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be batch × length, got shape {tuple(input_ids.shape)}")
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
                )
            return attention_mask.bool()
        if self.padding_idx is None:
            return torch.ones_like(input_ids, dtype=torch.bool)
        return input_ids != self.padding_idx

    def token_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return one ``feature_dim`` vector per token position (``B × L × feature_dim``; zero at padding) — the
        n-gram detectors' responses before the max-pool, which cross-modal attention reads (notebook 04)."""
        mask = self._mask(input_ids, attention_mask)
        x = self.embedding(input_ids) * mask.unsqueeze(-1).to(self.embedding.weight.dtype)
        x = x.transpose(1, 2)  # B × E × L
        maps = []
        for width, conv in zip(self.widths, self.convs):
            # pad on the right so every real token starts a window; windows read zeros past the end
            h = F.relu(conv(F.pad(x, (0, width - 1))))  # B × C × L
            maps.append(h.masked_fill(~mask.unsqueeze(1), 0.0))  # ReLU output is >= 0, so 0 never wins the max
        return torch.cat(maps, dim=1).transpose(1, 2)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the pooled text vector (``B × feature_dim``), before dropout and the head — fusion's input (notebook 04)."""
        return self.token_features(input_ids, attention_mask).max(dim=1).values

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``B × num_outputs`` logits; ``attention_mask`` defaults to ``input_ids != padding_idx``."""
        return self.head(self.dropout(self.features(input_ids, attention_mask)))


class MiniLMClassifier(nn.Module):
    """A pretrained MiniLM (or any local Hugging Face encoder) with a linear head on its pooled output (notebook 03).

    The optional transformer baseline: ``freeze=True`` trains only the head (fast on CPU; the encoder stays
    in eval mode), ``freeze=False`` fine-tunes everything. ``pooling`` is ``"mean"`` over real tokens
    (how all-MiniLM-L6-v2 was trained) or ``"cls"``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        num_outputs: int = 14,
        freeze: bool = True,
        pooling: str = "mean",
        dropout: float = 0.1,
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = load_pretrained_model(path)
        self.pooling, self.freeze = pooling, freeze
        self.feature_dim = int(self.encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_outputs)
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def embedding(self) -> nn.Module:
        """The encoder's word-piece embedding layer (the layer attributions are taken at)."""
        return self.encoder.get_input_embeddings()

    def train(self, mode: bool = True) -> "MiniLMClassifier":
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the pooled sentence vector (``B × hidden``): mean over real tokens, or the ``[CLS]`` state."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return ``B × num_outputs`` logits."""
        return self.head(self.dropout(self.features(input_ids, attention_mask, token_type_ids)))
