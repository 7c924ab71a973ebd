"""The label schema every room of the kit shares: the 14 CheXpert observations, the study table's columns, and the
targets models train and are scored on (one home for both, so image, text and fusion read labels alike).

Taught in notebook 01 (data preparation) and notebook 02 (the targets).
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: The 14 CheXpert observations, in the order CheXpert's own CSVs use. Always select labels by name.
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: Findings the synthetic cohort draws with a ground-truth mask (the others are derived or absent).
RENDERED_FINDINGS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Fracture",
    "Support Devices",
)

#: Label values in a study table: positive, negative, uncertain; NaN means "not mentioned".
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0

#: Columns every dataset adapter returns, before the 14 label columns.
STUDY_COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject_id",
    "study_id",
    "image_id",
    "image_path",
    "view",
    "split",
    "indication",
    "findings",
    "impression",
)

#: Optional demographic/site columns an adapter adds when the dataset knows them.
OPTIONAL_COLUMNS: tuple[str, ...] = ("site", "age", "sex")

#: Values of the ``split`` column.
SPLITS: tuple[str, ...] = ("train", "validate", "test")


def label_slug(label: str) -> str:
    """Return a short identifier for a label (``"Pleural Effusion"`` → ``"pleural_effusion"``); used in metric names."""
    return label.lower().replace(" ", "_")


#: The labels the kit's models predict: the findings the synthetic cohort draws (all exist in MIMIC/CheXpert too).
MODEL_LABELS: tuple[str, ...] = RENDERED_FINDINGS

#: How an uncertain (−1) label becomes a training target: unknown (NaN, left out of the loss), positive, or negative.
UNCERTAINTY_POLICIES: dict[str, float] = {"ignore": float("nan"), "ones": 1.0, "zeros": 0.0}


def apply_uncertainty_policy(labels: Any, policy: str) -> Any:
    """Map uncertain labels (−1) to NaN (``"ignore"``), 1 (``"ones"``) or 0 (``"zeros"``); NaN stays NaN (notebook 02).

    Works on NumPy arrays, DataFrames and torch tensors, and returns a new object of the same kind.
    """
    if policy not in UNCERTAINTY_POLICIES:
        raise ValueError(f"unknown uncertainty policy {policy!r}; choose one of {sorted(UNCERTAINTY_POLICIES)}")
    value = UNCERTAINTY_POLICIES[policy]
    torch = sys.modules.get("torch")  # a tensor exists only where torch is imported; this module never imports it
    if torch is not None and isinstance(labels, torch.Tensor):
        labels = labels.float()
        return torch.where(labels == -1, torch.full_like(labels, value), labels)
    if isinstance(labels, pd.DataFrame):
        return labels.mask(labels == -1, value).astype(float)
    array = np.asarray(labels, dtype=np.float32)
    return np.where(array == -1, np.float32(value), array)


def training_targets(rows: pd.DataFrame, labels: Sequence[str] = MODEL_LABELS) -> np.ndarray:
    """Return the ``N×K`` training targets of study-table rows: 1 / 0 / −1 kept, blank (not mentioned) → 0 (notebook 02).

    A finding the report does not mention is read as absent, as CheXpert and MIMIC-CXR baselines do; uncertain
    (−1) stays −1 so the training loop's uncertainty policy decides what it becomes. Image, text and fusion
    models all train on these.
    """
    missing = [label for label in labels if label not in rows.columns]
    if missing:
        raise KeyError(f"label column(s) {missing} not in the study table")
    return rows[list(labels)].astype(float).fillna(0.0).to_numpy(dtype=np.float32)


def evaluation_targets(rows: pd.DataFrame, labels: Sequence[str] = MODEL_LABELS) -> np.ndarray:
    """Return the targets every model is scored on: :func:`training_targets` with uncertain (−1) masked out as NaN (notebook 02)."""
    return apply_uncertainty_policy(training_targets(rows, labels), "ignore")
