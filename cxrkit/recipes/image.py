"""The image-model recipe of notebook 02, as one train-or-load call: :func:`trained_image_model`.

Notebook 02 (image CNN) teaches every step — targets, loaders, model, ``fit``, predictions — with
the helpers below, and notebooks 04–06 call ``trained_image_model(P)`` to get the same model without
re-running notebook 02: the checkpoint, history and predictions are loaded from
``CXRKIT_HOME/image_models/<key>`` when present and rebuilt with the same recipe when absent. The key
holds every parameter that changes the model (:data:`IMAGE_MODEL_KNOBS`) plus :data:`RECIPE_VERSION`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrkit import store
from cxrkit.artifacts import artifact_code_version, data_code_version
from cxrkit.devices import pick_device
from cxrkit.labels import MODEL_LABELS, SPLITS, training_targets
from cxrkit.models.image import build_image_model
from cxrkit.paths import SHIPPED_ROOT, artifact_dir
from cxrkit.predictions import Predictions
from cxrkit.prep import prepare
from cxrkit.recipes.config import RecipeConfig
from cxrkit.train import BatchLoader, History, ImageAugment, ImageDataset, fit, is_main, predict

__all__ = [
    "IMAGE_MODEL_KNOBS",
    "ImageRecipe",
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
    "image_state_path",
]

#: Bumped whenever the recipe itself changes (targets, loaders, augmentation, fit settings), so old artifacts are not reused.
RECIPE_VERSION = 1

#: Batch size for prediction-only passes (no gradients, so bigger batches are cheap).
EVAL_BATCH_SIZE = 256

#: Training batches whose inputs re-estimate the batch-norm statistics after every epoch under a constant learning
#: rate (``fit(bn_refresh_batches=…)``); a one-cycle schedule anneals to ~0, so the running statistics settle themselves.
BN_REFRESH_BATCHES = 4


@dataclass(frozen=True)
class ImageRecipe(RecipeConfig):
    """Notebook 02's recipe settings, read once from a profile's parameters: ``ImageRecipe.read(P)`` (notebook 02).

    The fields are :data:`IMAGE_MODEL_KNOBS`, the knobs that change the trained model; every step below takes
    either ``P`` or this config.
    """

    dataset: str
    data_root: str | None
    patients: int
    difficulty: float
    confounders: bool
    image_size: int
    data_seed: int
    seed: int
    image_model: str
    image_width: int
    image_head: str
    epochs: int
    schedule: str
    pos_weight: str | None
    batch_size: int
    lr: float
    weight_decay: float
    uncertainty: str
    augment: bool
    patience: int


#: The parameters that change the trained image model (:class:`ImageRecipe`'s fields); the artifact folder is keyed by them.
IMAGE_MODEL_KNOBS: tuple[str, ...] = tuple(f.name for f in fields(ImageRecipe))


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


def image_loaders(P: Mapping[str, Any] | ImageRecipe, prepared: Any, labels: Sequence[str] = MODEL_LABELS) -> ImageLoaders:
    """Build notebook 02's loaders from a :class:`~cxrkit.prep.Prepared`: one per split, training ones shuffled and augmented (notebook 02).

    The training loader reshuffles every epoch (seeded by ``P["seed"]``) and drops the last partial
    batch (a batch of one breaks batch norm); with ``P["augment"]`` its dataset carries an
    :class:`~cxrkit.train.ImageAugment` (no horizontal flips). Validation and test loaders keep table order.
    """
    recipe, labels = ImageRecipe.read(P), list(labels)
    batch_size, seed = recipe.batch_size, recipe.seed
    augment = ImageAugment() if recipe.augment else None
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


def new_image_model(P: Mapping[str, Any] | ImageRecipe, num_outputs: int = len(MODEL_LABELS), **options: Any) -> nn.Module:
    """Build ``P["image_model"]`` with weights initialised from ``P["seed"]``, so the same seed gives the same start (notebook 02).

    The small CNN takes its width and head from ``P["image_width"]`` and ``P["image_head"]`` (``options`` win).
    The global random state is left as it was.
    """
    recipe = ImageRecipe.read(P)
    if recipe.image_model == "small_cnn":
        options = {"width": recipe.image_width, "head": recipe.image_head, **options}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        return build_image_model(recipe.image_model, num_outputs, **options)


def image_fit_settings(P: Mapping[str, Any] | ImageRecipe) -> dict[str, Any]:
    """Return the keyword arguments notebook 02 passes to :func:`cxrkit.train.fit` for profile ``P`` (notebook 02).

    The class recipe: AdamW under a one-cycle learning-rate schedule (``P["schedule"]``), rare labels'
    positives weighed by ``P["pos_weight"]``, in float32 on every CPU (bf16 autocast would be faster on CPUs
    with native bf16 but rounds differently from the fp32 other CPUs run, which moves results between
    machines; pass ``amp="bf16"`` to ``fit`` to choose speed). Under a scheduled learning rate the run always
    completes its epochs — stopping early would cut the annealing that makes the last weights good — and the
    best validation epoch is restored; under a constant one, ``P["patience"]`` epochs without improvement stop
    it and batch-norm statistics are refreshed after each epoch (``fit(bn_refresh_batches=…)``).
    """
    recipe = ImageRecipe.read(P)
    constant = recipe.schedule == "constant"
    return dict(
        epochs=recipe.epochs,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        uncertainty=recipe.uncertainty,
        pos_weight=recipe.pos_weight,
        schedule=recipe.schedule,
        early_stopping_patience=recipe.patience if constant else None,
        seed=recipe.seed,
        bn_refresh_batches=BN_REFRESH_BATCHES if constant else 0,
    )


def image_predictions(model: nn.Module, loaders: ImageLoaders, splits: Sequence[str] = ("validate", "test")) -> Predictions:
    """Return the model's :class:`~cxrkit.predictions.Predictions` on the films of ``splits`` (notebook 02)."""
    return Predictions.concat(Predictions.of(loaders.rows[s]["image_id"], s, predict(model, loaders.loader(s)),
                                             loaders.labels) for s in splits)


# ------------------------------------------------------------------------------------------ artifacts

def image_model_key(P: Mapping[str, Any] | ImageRecipe) -> dict[str, Any]:
    """Return what identifies a trained image model: :data:`IMAGE_MODEL_KNOBS`, the recipe version and the code versions of the recipe and of its data (notebook 02)."""
    key = ImageRecipe.read(P).knobs()
    return {**key, "labels": list(MODEL_LABELS), "recipe": RECIPE_VERSION,
            "code": artifact_code_version("image_models"), "data_code": data_code_version(key)}


def image_model_dir(P: Mapping[str, Any] | ImageRecipe) -> Path:
    """Return ``CXRKIT_HOME/image_models/<key>``, where the model of profile ``P`` lives (notebook 02)."""
    return artifact_dir("image_models", image_model_key(P))


def image_data_fingerprint(prepared: Any) -> str:
    """Return a short hash of which films are in which split with which targets, so a model trained on other data is never reused (notebook 02)."""
    table = prepared.table
    y = pd.DataFrame(training_targets(table), columns=list(MODEL_LABELS)).astype(str).agg(",".join, axis=1)
    return store.fingerprint(table["image_id"].astype(str) + "," + table["split"].astype(str) + "," + y.to_numpy())


@dataclass
class TrainedImageModel:
    """What the image recipe returns: the model (eval mode), its training history, validation + test predictions, the labels and the artifact folder (notebook 02)."""

    model: nn.Module
    history: History
    predictions: Predictions
    labels: list[str]
    folder: Path
    loaded: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, split: str) -> pd.DataFrame:
        """Return the predictions of one split (``"validate"`` or ``"test"``), indexed by ``image_id`` (``predictions.split``)."""
        return self.predictions.split(split)

    @property
    def shipped(self) -> bool:
        """True when this is a course model the kit ships (built by ``cxrkit course-models``), not one trained here."""
        return SHIPPED_ROOT in Path(self.folder).resolve().parents


def _opened(recipe: ImageRecipe, stored: store.Stored, loaded: bool) -> TrainedImageModel:
    """The trained model a stored folder holds, on the kit's device in eval mode."""
    labels = list(stored.meta["labels"])
    model = store.load_state(new_image_model(recipe, num_outputs=len(labels)), stored)
    return TrainedImageModel(model.to(pick_device()).eval(), store.read_history(stored), store.read_predictions(stored),
                             labels, stored.folder, loaded, stored.meta)


def save_image_model(P: Mapping[str, Any] | ImageRecipe, prepared: Any, model: nn.Module, history: History,
                     predictions: Predictions, *, folder: str | Path | None = None) -> TrainedImageModel:
    """Save a trained model (``state_dict``), its history and predictions atomically under :func:`image_model_dir`, and return it as read back (notebook 02)."""
    recipe = ImageRecipe.read(P)

    def write(tmp: Path) -> dict[str, Any]:
        return {"labels": list(predictions.labels), **store.write_model_files(tmp, model, history, predictions)}

    stored = store.save("image_models", image_model_key(recipe), image_data_fingerprint(prepared), write, folder=folder)
    return _opened(recipe, stored, loaded=False)


def load_image_model(P: Mapping[str, Any] | ImageRecipe, prepared: Any = None, *,
                     folder: str | Path | None = None) -> TrainedImageModel | None:
    """Load the saved model of profile ``P`` (``torch.load(weights_only=True)``), or return None when absent, incomplete or stale (notebook 02).

    Looks in ``CXRKIT_HOME``, then among the course models the kit ships (:data:`cxrkit.paths.SHIPPED_ROOT`).
    Stale means trained on other films than ``prepared`` holds (when ``prepared`` is given).
    """
    recipe = ImageRecipe.read(P)
    stored = store.find("image_models", image_model_key(recipe),
                        None if prepared is None else image_data_fingerprint(prepared), folder=folder)
    return None if stored is None else _opened(recipe, stored, loaded=True)


def image_state_path(P: Mapping[str, Any] | ImageRecipe) -> Path:
    """Return where a run of profile ``P`` keeps its resumable training state: ``CXRKIT_HOME/training_states/image_models/<key>/state.pt`` (notebook 02)."""
    folder = image_model_dir(P)
    return folder.parent.parent / "training_states" / folder.parent.name / folder.name / "state.pt"


def trained_image_model(P: Mapping[str, Any], prepared: Any = None, *, progress: bool = True,
                        force: bool = False, resumable: bool = False, pause_after: int | None = None) -> TrainedImageModel:
    """Return notebook 02's image model for profile ``P``: loaded from ``CXRKIT_HOME`` when saved, else trained and saved (notebook 02).

    Training is exactly what notebook 02 does: :func:`image_loaders` → :func:`new_image_model` →
    ``fit(model, train, validate, **image_fit_settings(P))`` → :func:`image_predictions` on the
    validation and test films. ``force=True`` retrains even when a saved model exists. ``resumable=True``
    (``cxrkit train``) keeps the training state after every epoch at :func:`image_state_path` and resumes from it;
    ``pause_after=N`` stops after N epochs (:class:`~cxrkit.train.TrainingPaused`). The state goes once the model is saved.
    """
    recipe = ImageRecipe.read(P)
    if not force and (found := load_image_model(recipe, prepared)) is not None:
        return found
    prepared = prepared if prepared is not None else prepare(dict(P), progress=progress)
    loaders = image_loaders(recipe, prepared)
    model = new_image_model(recipe, num_outputs=len(loaders.labels))
    state = image_state_path(recipe) if resumable or pause_after is not None else None
    history = fit(model, loaders.train, loaders.validate, progress=progress, state_path=state, pause_after=pause_after,
                  **image_fit_settings(recipe))
    saved = save_image_model(recipe, prepared, model, history, image_predictions(model, loaders))
    if state is not None and is_main():
        state.unlink(missing_ok=True)
        for folder in (state.parent, state.parent.parent, state.parent.parent.parent):  # its folders, once empty
            with contextlib.suppress(OSError):
                folder.rmdir()
    return saved
