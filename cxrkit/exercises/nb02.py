"""Notebook 02's coded exercise: per-label AUROC on the known labels only."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from cxrkit.exercises import Case, exercise
from cxrkit.metrics import per_label_metric

NOTEBOOK = "02_image_cnn"


def _auroc_cases() -> Iterator[Case]:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (40, 3)).astype(float)
    p = np.clip(0.3 * y + rng.random((40, 3)) * 0.7, 0, 1)
    yield Case((y, p), description="three labels, every target known")
    y_unknown = y.copy()
    y_unknown[rng.random(y.shape) < 0.3] = np.nan
    yield Case((y_unknown, p), description="some targets unknown (NaN): leave those films out of that label")
    y_one_class = y.copy()
    y_one_class[:, 1] = 0.0
    yield Case((y_one_class, p), description="label 1 has no positive film: its AUROC is undefined → NaN")


@exercise("nb02_per_label_auroc", NOTEBOOK, _auroc_cases,
          hint="for each column k, keep rows where y_true[:, k] is not NaN; if both 0 and 1 remain use "
               "roc_auc_score, else np.nan")
def per_label_auroc(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Reference: AUROC per label on its known rows, NaN where a label lacks a positive or a negative (notebook 02, exercise)."""
    return per_label_metric(y_true, y_prob)
