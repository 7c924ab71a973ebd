"""Notebook 04's coded exercise: weighted late fusion of two models' probabilities."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from cxrkit.exercises import Case, exercise

NOTEBOOK = "04_fusion"


def _weighted_cases() -> Iterator[Case]:
    rng = np.random.default_rng(4)
    p_image, p_text = rng.random((6, 3)), rng.random((6, 3))
    yield Case((p_image, p_text, 0.5), description="w = 0.5: the plain mean")
    yield Case((p_image, p_text, 1.0), description="w = 1: the image model alone")
    yield Case((p_image, p_text, 0.2), description="w = 0.2: mostly the text model")
    yield Case((p_image, p_text, np.array([0.9, 0.5, 0.1])), description="one weight per label (column)")


@exercise("nb04_weighted_late_fusion", NOTEBOOK, _weighted_cases,
          hint="w * p_image + (1 - w) * p_text; numpy broadcasts a weight per label over the rows")
def weighted_late_fusion(p_image: np.ndarray, p_text: np.ndarray, w: float | np.ndarray) -> np.ndarray:
    """Reference: the convex combination ``w·p_image + (1 − w)·p_text`` (notebook 04, exercise)."""
    w = np.asarray(w, dtype=float)
    return w * np.asarray(p_image, dtype=float) + (1.0 - w) * np.asarray(p_text, dtype=float)
