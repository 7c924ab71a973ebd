"""One space for films and reports: the kit's image CNN and frozen MiniLM report vectors, each projected onto a shared
unit sphere and aligned by a symmetric contrastive loss with a learnable temperature (CLIP / ConVIRT) (notebook 07).

* :class:`AlignmentModel` — ``image_model.embed`` (the CNN trunk) → a linear projection; a report's sentence vector
  (:mod:`cxrkit.sentence_embeddings`) → a small MLP projection; both L2-normalised, so a dot product is a cosine.
* :func:`contrastive_loss` — in a batch of B (film, report) pairs, each film must pick out its own report among the B
  reports and each report its own film: the mean of the two cross-entropies over the ``B × B`` scaled cosines.

So that the kit's one training loop (:func:`cxrkit.train.fit`) can train it unchanged, ``forward`` returns one row
per pair holding ``[film embedding, report embedding, log temperature scale]``; :func:`contrastive_loss` reads the
rows of each batch as pairs (train with ``fit(..., loss=contrastive_loss, monitor="val_loss")``; the validation loss
is then the contrastive loss over the whole validation set at once). :func:`split_outputs` takes a row apart.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AlignmentModel", "contrastive_loss", "split_outputs", "pair_probabilities", "MAX_LOGIT_SCALE"]

#: The largest logit scale (1 / temperature) the model may learn: CLIP clips it at 100 to keep training stable.
MAX_LOGIT_SCALE = 100.0


class AlignmentModel(nn.Module):
    """A film encoder and a report-vector projection into one ``dim``-dimensional unit sphere (notebook 07).

    ``image_model`` is any of the kit's image models (it exposes ``embed`` and ``embedding_dim``); ``text_dim`` is the
    width of the frozen report vectors (384 for MiniLM). ``temperature`` starts the learnable scale at 1/0.07, as CLIP.
    """

    def __init__(self, image_model: nn.Module, text_dim: int = 384, dim: int = 64, temperature: float = 0.07,
                 hidden: int = 256):
        super().__init__()
        if dim < 1 or text_dim < 1 or hidden < 1 or not 0 < temperature <= 1:
            raise ValueError(f"need positive sizes and 0 < temperature <= 1, got dim={dim}, text_dim={text_dim}, "
                             f"hidden={hidden}, temperature={temperature}")
        if not hasattr(image_model, "embed") or not hasattr(image_model, "embedding_dim"):
            raise TypeError(f"{type(image_model).__name__} has no embed()/embedding_dim: use one of the kit's image models")
        self.image_model, self.dim = image_model, dim
        self.image_projection = nn.Linear(int(image_model.embedding_dim), dim)
        self.text_projection = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def last_conv(self) -> nn.Module:
        """The image trunk's last convolution (for Grad-CAM of the alignment score)."""
        return self.image_model.last_conv

    def scale(self) -> Tensor:
        """The logit scale (1 / temperature), at most :data:`MAX_LOGIT_SCALE`."""
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_images(self, images: Tensor) -> Tensor:
        """Return the films' unit-length embeddings (``B × dim``)."""
        return F.normalize(self.image_projection(self.image_model.embed(images)), dim=-1)

    def encode_texts(self, text_vectors: Tensor) -> Tensor:
        """Return the reports' unit-length embeddings (``B × dim``) from their frozen sentence vectors."""
        return F.normalize(self.text_projection(text_vectors), dim=-1)

    def forward(self, images: Tensor, text_vectors: Tensor) -> Tensor:
        """Return one row per (film, report) pair: ``[film embedding, report embedding, log scale]`` (``B × (2·dim + 1)``)."""
        if images.shape[0] != text_vectors.shape[0]:
            raise ValueError(f"{images.shape[0]} films but {text_vectors.shape[0]} reports: give one report per film")
        log_scale = self.scale().log().expand(images.shape[0], 1)
        return torch.cat([self.encode_images(images), self.encode_texts(text_vectors), log_scale], dim=1)

    def similarity(self, images: Tensor, text_vectors: Tensor) -> Tensor:
        """Return the scaled cosine of each film with each report (``N_films × N_reports``), the logits zero-shot reads."""
        return self.scale() * self.encode_images(images) @ self.encode_texts(text_vectors).T


def split_outputs(outputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Take :meth:`AlignmentModel.forward`'s rows apart: film embeddings, report embeddings and the logit scale."""
    if outputs.ndim != 2 or outputs.shape[1] < 3 or outputs.shape[1] % 2 != 1:
        raise ValueError(f"outputs must be B × (2·dim + 1) rows of AlignmentModel.forward, got {tuple(outputs.shape)}")
    dim = (outputs.shape[1] - 1) // 2
    return outputs[:, :dim], outputs[:, dim:2 * dim], outputs[:, -1].mean().exp()


def contrastive_loss(outputs: Tensor, targets: Any = None) -> Tensor:
    """Symmetric InfoNCE over the rows of a batch: film i's own report is the right one of the B, and report i's own film (notebook 07).

    ``targets`` is ignored (the kit's loop passes the batch's labels): the pairing is the supervision.
    """
    films, reports, scale = split_outputs(outputs)
    logits = scale * films @ reports.T
    truth = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, truth) + F.cross_entropy(logits.T, truth)) / 2


def pair_probabilities(scores_positive: Tensor, scores_negative: Tensor) -> Tensor:
    """Return P(positive prompt) = softmax over the pair of a film's similarities to a positive and a negative prompt (CheXzero) (notebook 07)."""
    if scores_positive.shape != scores_negative.shape:
        raise ValueError(f"the two prompts' scores differ in shape: {tuple(scores_positive.shape)} vs "
                         f"{tuple(scores_negative.shape)}")
    return torch.softmax(torch.stack([scores_positive, scores_negative], dim=-1), dim=-1)[..., 0]
