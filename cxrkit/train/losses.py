"""The multi-label loss: the NaN-masked BCE and class-balanced weights (the uncertainty policy lives in :mod:`cxrkit.labels`).

Targets are float ``B×K`` arrays/tensors: 1 positive, 0 negative, NaN unknown (not mentioned, or an
uncertain label under the ``"ignore"`` policy). Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cxrkit.labels import UNCERTAINTY_POLICIES, apply_uncertainty_policy  # the targets' home; re-exported for the loop

__all__ = ["UNCERTAINTY_POLICIES", "apply_uncertainty_policy", "masked_bce_with_logits", "balanced_pos_weight"]

def masked_bce_with_logits(logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with logits averaged over the known targets only — NaN (and an unmapped -1) count as unknown (notebook 02).

    Unknown entries get weight 0, so they contribute neither loss nor gradient. With no known target
    at all the loss is 0 (still connected to the graph, so ``backward()`` works).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape "
                         "(one logit per label: K sigmoid outputs, not a softmax)")
    known = targets >= 0  # False for NaN and for -1
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
    total = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float().nan_to_num(0.0), weight=known.float(), pos_weight=pos_weight, reduction="sum"
    )
    return total / known.sum().clamp(min=1)


def balanced_pos_weight(labels: np.ndarray | Tensor, max_weight: float = 100.0, power: float = 1.0) -> Tensor:
    """Return per-label ``(n_negative / n_positive) ** power`` from training labels (NaN ignored), clipped to ``[1/max, max]`` (notebook 02).

    ``power=1`` balances positives and negatives fully; ``power=0.5`` (the class recipe's ``"sqrt_balanced"``)
    goes half way on a log scale, so a label with 1 positive in 25 weighs its positives 5×, not 24×. A label
    with no positive or no negative example gets weight 1.
    """
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power!r}")
    y = labels.detach().float().cpu() if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels, dtype=np.float32))
    if y.ndim != 2:
        raise ValueError(f"labels must be N×K, got shape {tuple(y.shape)}")
    pos = (y == 1).sum(0).float()
    neg = (y == 0).sum(0).float()
    weight = torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), torch.ones_like(pos))
    return weight.pow(power).clamp(1.0 / max_weight, max_weight)
