"""Notebook 07's coded exercises: the symmetric InfoNCE loss, and nDCG@k with the ideal DCG from the whole gallery."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.exercises import Case, compare_values, exercise
from cxrkit.retrieval import ndcg_at_k

NOTEBOOK = "07_joint_embedding"


def _info_nce_cases() -> Iterator[Case]:
    yield Case((np.array([[2.0, 0.0, -1.0], [0.5, 3.0, 0.0], [0.0, 1.0, 1.5]]),),
               description="a 3×3 batch, the true pairs on the diagonal")
    yield Case((np.zeros((4, 4)),), description="no alignment at all: the loss is log B")
    yield Case((np.array([[1.0, 4.0], [0.0, 1.0]]),), description="an asymmetric 2×2 batch (rows and columns differ)")
    yield Case((np.array([[1000.0, 0.0], [0.0, 1000.0]]),), description="huge logits: needs a stable log-softmax")
    rng = np.random.default_rng(7)
    yield Case((rng.normal(scale=5.0, size=(6, 6)),), description="a random 6×6 batch")


@exercise("nb07_info_nce", NOTEBOOK, _info_nce_cases, compare=compare_values,
          hint="take log_softmax along each row (film → reports) and along each column (report → films), average "
               "each diagonal, negate, and return the mean of the two as a float")
def info_nce(logits: np.ndarray) -> float:
    """Reference: the symmetric InfoNCE loss of a ``B × B`` matrix of scaled film–report cosines, true pairs on the diagonal (notebook 07, exercise)."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    truth = torch.arange(len(x))
    return float((F.cross_entropy(x, truth) + F.cross_entropy(x.T, truth)) / 2)


def _ndcg_cases() -> Iterator[Case]:
    yield Case(([0, 1, 0, 0, 1, 0, 1], 3), description="7 items, relevant at ranks 2, 5, 7: 0.30, not 0.63")
    yield Case(([1.0, 0.5, 0.0, 0.25], 2), description="graded gains, a perfect top 2")
    yield Case(([0.0, 0.25, 0.5, 1.0], 2), description="graded gains in the worst order")
    yield Case(([0, 0, 0], 2), description="no relevant item: 0 by convention")
    yield Case(([0.5, 1.0], 5), description="k longer than the gallery")


@exercise("nb07_ndcg_at_k", NOTEBOOK, _ndcg_cases, compare=compare_values,
          hint="DCG@k = sum of gains[:k] / log2(rank + 1) for ranks 1..k; the ideal is the same sum over the whole "
               "gallery's gains sorted from high to low; return 0.0 when the ideal is 0")
def ndcg(ranked_gains: list[float], k: int) -> float:
    """Reference: nDCG@k of one query's gains in rank order, the ideal from every gain of the gallery (notebook 07, exercise)."""
    return float(ndcg_at_k(np.asarray(ranked_gains, dtype=float)[None], k, ideal="full")[0])
