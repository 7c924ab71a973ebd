"""The image-model recipe of notebook 02, as one train-or-load call: :func:`trained_image_model`.

Notebook 02 (image CNN) teaches every step — targets, loaders, model, ``fit``, predictions — with
the helpers below, and notebooks 04–06 call ``trained_image_model(P)`` to get the same model without
re-running notebook 02: the checkpoint, history and predictions are loaded from
``CXRKIT_HOME/image_models/<key>`` when present and rebuilt with the same recipe when absent. The key
holds every parameter that changes the model (:data:`IMAGE_MODEL_KNOBS`) plus :data:`RECIPE_VERSION`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrkit.devices import pick_device
from cxrkit.labels import MODEL_LABELS, SPLITS, training_targets
from cxrkit.metrics import predictions_table
from cxrkit.models.image import build_image_model
from cxrkit.paths import SHIPPED_ROOT, artifact_dir, find_artifact
from cxrkit.recipes.store import (history_meta, read_training_files, split_probabilities, staged_folder, write_meta,
                                  write_training_files)
from cxrkit.profiles import CLASS
from cxrkit.train import BatchLoader, History, ImageAugment, ImageDataset, fit, load_checkpoint, predict

__all__ = [
    "IMAGE_MODEL_KNOBS",
    "RECIPE_VERSION",
    "ImageLoaders",
    "TrainedImageModel",
    "image_loaders",
    "new_image_model",
    "image_fit_settings",
    "image_predictions",
    "image_model_key",
    "image_model_dir",
    "save_image_model",
    "load_image_model",
    "trained_image_model",
]

#: The parameters that change the trained image model; the artifact folder is keyed by them.
IMAGE_MODEL_KNOBS: tuple[str, ...] = (
    "dataset", "data_root", "patients", "difficulty", "confounders", "image_size", "data_seed", "seed",
    "image_model", "image_width", "image_head", "epochs", "schedule", "pos_weight", "batch_size", "lr",
    "weight_decay", "uncertainty", "augment", "patience",
)

#: Bumped whenever the recipe itself changes (targets, loaders, augmentation, fit settings), so old artifacts are not reused.
RECIPE_VERSION = 1

#: Batch size for prediction-only passes (no gradients, so bigger batches are cheap).
EVAL_BATCH_SIZE = 256

#: Training batches whose inputs re-estimate the batch-norm statistics after every epoch under a constant learning
#: rate (``fit(bn_refresh_batches=…)``); a one-cycle schedule anneals to ~0, so the running statistics settle themselves.
BN_REFRESH_BATCHES = 4

_FILES = ("model.pt", "history.csv", "predictions.csv", "meta.json")


# ------------------------------------------------------------------------------------- targets, data

@dataclass
class ImageLoaders:
    """The batch loaders of one prepared dataset — ``train`` (shuffled, augmented if asked), ``validate``, ``test`` — with their rows and targets (notebook 02)."""

    train: BatchLoader
    validate: BatchLoader
    test: BatchLoader
    rows: dict[str, pd.DataFrame]
    targets: dict[str, np.ndarray]
    labels: list[str]
    augment: ImageAugment | None = None

    def loader(self, split: str) -> BatchLoader:
        """Return the loader of ``split`` (``"train"``, ``"validate"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)


def _knob(P: dict[str, Any], name: str) -> Any:
    return P.get(name, CLASS[name])


def image_loaders(P: dict[str, Any], prepared: Any, labels: Sequence[str] = MODEL_LABELS) -> ImageLoaders:
    """Build notebook 02's loaders from a :class:`~cxrkit.prep.Prepared`: one per split, training ones shuffled and augmented (notebook 02).

    The training loader reshuffles every epoch (seeded by ``P["seed"]``) and drops the last partial
    batch (a batch of one breaks batch norm); with ``P["augment"]`` its dataset carries an
    :class:`~cxrkit.train.ImageAugment` (no horizontal flips). Validation and test loaders keep table order.
    """
    labels = list(labels)
    batch_size, seed = int(_knob(P, "batch_size")), int(_knob(P, "seed"))
    augment = ImageAugment() if _knob(P, "augment") else None
    rows, targets, loaders = {}, {}, {}
    for split in SPLITS:
        split_rows, films = prepared.subset(split)
        if len(split_rows) == 0:
            raise ValueError(f"the prepared dataset has no {split} films; the recipe needs all three splits")
        rows[split], targets[split] = split_rows, training_targets(split_rows, labels)
        if split == "train":
            dataset = ImageDataset(films, targets[split], augment=augment)
            loaders[split] = BatchLoader(dataset, batch_size=batch_size, shuffle=True, seed=seed,
                                         drop_last=len(split_rows) > batch_size)
        else:
            loaders[split] = BatchLoader(ImageDataset(films, targets[split]), batch_size=EVAL_BATCH_SIZE)
    return ImageLoaders(loaders["train"], loaders["validate"], loaders["test"], rows, targets, labels, augment)


def new_image_model(P: dict[str, Any], num_outputs: int = len(MODEL_LABELS), **options: Any) -> nn.Module:
    """Build ``P["image_model"]`` with weights initialised from ``P["seed"]``, so the same seed gives the same start (notebook 02).

    The small CNN takes its width and head from ``P["image_width"]`` and ``P["image_head"]`` (``options`` win).
    The global random state is left as it was.
    """
    name = str(_knob(P, "image_model"))
    if name == "small_cnn":
        options = {"width": int(_knob(P, "image_width")), "head": str(_knob(P, "image_head")), **options}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(_knob(P, "seed")))
        return build_image_model(name, num_outputs, **options)


def image_fit_settings(P: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments notebook 02 passes to :func:`cxrkit.train.fit` for profile ``P`` (notebook 02).

    The class recipe: AdamW under a one-cycle learning-rate schedule (``P["schedule"]``), rare labels'
    positives weighed by ``P["pos_weight"]``, in float32 on every CPU (bf16 autocast would be faster on CPUs
    with native bf16 but rounds differently from the fp32 other CPUs run, which moves results between
    machines; pass ``amp="bf16"`` to ``fit`` to choose speed). Under a scheduled learning rate the run always
    completes its epochs — stopping early would cut the annealing that makes the last weights good — and the
    best validation epoch is restored; under a constant one, ``P["patience"]`` epochs without improvement stop
    it and batch-norm statistics are refreshed after each epoch (``fit(bn_refresh_batches=…)``).
    """
    schedule = str(_knob(P, "schedule"))
    constant = schedule == "constant"
    pos_weight = _knob(P, "pos_weight")
    return dict(
        epochs=int(_knob(P, "epochs")),
        lr=float(_knob(P, "lr")),
        weight_decay=float(_knob(P, "weight_decay")),
        uncertainty=str(_knob(P, "uncertainty")),
        pos_weight=None if pos_weight in (None, "none") else str(pos_weight),
        schedule=schedule,
        early_stopping_patience=int(_knob(P, "patience")) if constant else None,
        seed=int(_knob(P, "seed")),
        bn_refresh_batches=BN_REFRESH_BATCHES if constant else 0,
    )


def image_predictions(model: nn.Module, loaders: ImageLoaders, splits: Sequence[str] = ("validate", "test")) -> pd.DataFrame:
    """Return the predictions table (``image_id``, ``split``, one probability per label) of ``splits`` (notebook 02)."""
    parts = [predictions_table(loaders.rows[s]["image_id"].astype(str).to_numpy(), s, predict(model, loaders.loader(s)),
                               loaders.labels) for s in splits]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------ artifacts

def image_model_key(P: dict[str, Any]) -> dict[str, Any]:
    """Return what identifies a trained image model: :data:`IMAGE_MODEL_KNOBS`, the recipe version and the code versions of the recipe and of its data (notebook 02)."""
    from cxrkit.artifacts import artifact_code_version, data_code_version

    key = {name: _knob(P, name) for name in IMAGE_MODEL_KNOBS}
    if key["data_root"] is not None:
        key["data_root"] = str(Path(key["data_root"]).expanduser().resolve())
    return {**key, "labels": list(MODEL_LABELS), "recipe": RECIPE_VERSION,
            "code": artifact_code_version("image_models"), "data_code": data_code_version(key)}


def image_model_dir(P: dict[str, Any]) -> Path:
    """Return ``CXRKIT_HOME/image_models/<key>``, where the model of profile ``P`` lives (notebook 02)."""
    return artifact_dir("image_models", image_model_key(P))


def _data_fingerprint(prepared: Any) -> str:
    """A short hash of which films are in which split with which labels, so a model trained on other data is never reused."""
    table = prepared.table
    y = pd.DataFrame(training_targets(table), columns=list(MODEL_LABELS)).astype(str).agg(",".join, axis=1)
    lines = table["image_id"].astype(str) + "," + table["split"].astype(str) + "," + y.to_numpy()
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


@dataclass
class TrainedImageModel:
    """What the image recipe returns: the model (eval mode), its training history, validation + test predictions, the labels and the artifact folder (notebook 02)."""

    model: nn.Module
    history: History
    predictions: pd.DataFrame
    labels: list[str]
    folder: Path
    loaded: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, split: str) -> pd.DataFrame:
        """Return the predictions of one split (``"validate"`` or ``"test"``), indexed by ``image_id``."""
        return split_probabilities(self.predictions, self.labels, split)

    @property
    def shipped(self) -> bool:
        """True when this is a course model the kit ships (built by ``cxrkit course-models``), not one trained here."""
        return SHIPPED_ROOT in Path(self.folder).resolve().parents


def save_image_model(P: dict[str, Any], prepared: Any, model: nn.Module, history: History,
                     predictions: pd.DataFrame, *, folder: str | Path | None = None) -> TrainedImageModel:
    """Save a trained model (``state_dict``), its history and predictions atomically under :func:`image_model_dir` (notebook 02)."""
    folder = Path(folder) if folder is not None else image_model_dir(P)
    with staged_folder(folder) as tmp:
        write_training_files(tmp, model, history, predictions)
        meta = {
            "key": image_model_key(P),
            "labels": list(predictions.columns[2:]),
            "data_fingerprint": _data_fingerprint(prepared),
            **history_meta(history),
        }
        write_meta(tmp, meta)
    history = History(history.table, history.best_epoch, history.monitor, history.stopped_early, history.device,
                      str(folder / "model.pt"), history.settings)
    return TrainedImageModel(model.eval(), history, predictions, list(meta["labels"]), folder, False, meta)


def load_image_model(P: dict[str, Any], prepared: Any = None, *, folder: str | Path | None = None) -> TrainedImageModel | None:
    """Load the saved model of profile ``P`` (``torch.load(weights_only=True)``), or return None when absent, incomplete or stale (notebook 02).

    Looks in ``CXRKIT_HOME``, then among the course models the kit ships (:data:`cxrkit.paths.SHIPPED_ROOT`).
    Stale means trained on other films than ``prepared`` holds (when ``prepared`` is given).
    """
    folder = Path(folder) if folder is not None else find_artifact("image_models", image_model_key(P), _FILES)
    if folder is None or not all((folder / name).is_file() for name in _FILES):
        return None
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("key") != json.loads(json.dumps(image_model_key(P), default=str)):
        return None
    if prepared is not None and meta.get("data_fingerprint") != _data_fingerprint(prepared):
        return None
    labels = list(meta["labels"])
    model = new_image_model(P, num_outputs=len(labels))
    load_checkpoint(model, folder / "model.pt")
    model.to(pick_device()).eval()
    history, predictions = read_training_files(folder, meta)
    return TrainedImageModel(model, history, predictions, labels, folder, True, meta)


def trained_image_model(P: dict[str, Any], prepared: Any = None, *, progress: bool = True,
                        force: bool = False) -> TrainedImageModel:
    """Return notebook 02's image model for profile ``P``: loaded from ``CXRKIT_HOME`` when saved, else trained and saved (notebook 02).

    Training is exactly what notebook 02 does: :func:`image_loaders` → :func:`new_image_model` →
    ``fit(model, train, validate, **image_fit_settings(P))`` → :func:`image_predictions` on the
    validation and test films. ``force=True`` retrains even when a saved model exists.
    """
    if not force:
        found = load_image_model(P, prepared)
        if found is not None:
            return found
    if prepared is None:
        from cxrkit.prep import prepare

        prepared = prepare(P, progress=progress)
    loaders = image_loaders(P, prepared)
    model = new_image_model(P, num_outputs=len(loaders.labels))
    history = fit(model, loaders.train, loaders.validate, progress=progress, **image_fit_settings(P))
    return save_image_model(P, prepared, model, history, image_predictions(model, loaders))
