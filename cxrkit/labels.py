"""The label schema every room of the kit shares: the 14 CheXpert observations and the study table's columns.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

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
