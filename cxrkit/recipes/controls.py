"""The two control models notebook 05 explains beside the real one, trained with notebook 02's recipe on replaced labels.

* :func:`shuffled_label_model` — training labels permuted between films (Adebayo et al.'s data randomisation):
  prevalences stay, the link to the pixels is gone, so a map that still looks the same explains the image,
  not what the model learned.
* :func:`planted_control_model` — a small bright disc planted in half the films as the *only* label
  (:func:`cxrkit.controls.plant_signal`): a model that learns it must point at it, which separates "the method
  does not localize" from "the model never learned where the finding is".

Both are cached under ``CXRKIT_HOME`` keyed by the image model's key (so its parameters, data and code
versions) plus their own, and both are among the course models the kit ships (``cxrkit course-models``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from torch import nn

from cxrkit import store
from cxrkit.artifacts import artifact_code_version
from cxrkit.controls import PlantedFilms, PlantedSignal, plant_signal
from cxrkit.devices import pick_device
from cxrkit.prep import prepare
from cxrkit.recipes.config import RecipeConfig
from cxrkit.recipes.image import ImageRecipe, image_fit_settings, image_loaders, image_model_key, new_image_model
from cxrkit.train import BatchLoader, ImageDataset, fit, predict
from cxrkit.train.checks import shuffled_labels

__all__ = ["PLANTED_SIGNAL", "ControlRecipe", "ControlModel", "shuffled_label_model", "shuffled_label_control", "planted_films", "planted_control_model",
           "planted_probabilities", "control_key"]

#: The signal the planted control plants: a disc of radius 6–10 px and +89 grey levels on a 128-pixel film. (At radius
#: 4–6 px and +64 the class recipe did not learn it within 20 epochs — validation AUROC 0.58; benchmarks/image_recipe.py.)
PLANTED_SIGNAL = PlantedSignal(radius=(0.05, 0.08), contrast=0.35)


@dataclass(frozen=True)
class ControlRecipe(RecipeConfig):
    """Notebook 05's control settings, read once from a profile's parameters, beside the image recipe they reuse (notebook 05)."""

    control_epochs: int
    seed: int
    data_seed: int


@dataclass
class ControlModel:
    """A trained control model (eval mode), where it lives, and whether it came from disk (notebook 05)."""

    model: nn.Module
    folder: Path
    loaded: bool


def control_key(P: Mapping[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    """Return the key of a control model: the image model's key, which control, its settings and its code version (notebook 05)."""
    return {**image_model_key(P), "control": kind, **extra, "control_code": artifact_code_version(kind)}


def _fingerprint(rows: Any, targets: np.ndarray) -> str:
    """The data fingerprint of a control: its training films, in order, and the targets it was trained on."""
    lines = list(rows["image_id"].astype(str)) + [np.ascontiguousarray(targets, dtype=np.float32).tobytes().hex()]
    return store.fingerprint(lines, ordered=True)


def _trained_or_loaded(kind: str, key: dict[str, Any], fingerprint: str, new_model: Callable[[], nn.Module],
                       loaders: Callable[[], tuple[BatchLoader, BatchLoader | None]], settings: dict[str, Any],
                       progress: bool, force: bool) -> ControlModel:
    """Load the control of ``key`` when stored (unless ``force``), else build its loaders, train a new model and save it.

    Either way the model returned is the stored one, freshly built and loaded, so a control trained here is the
    same object as one loaded later (memory layout included).
    """
    stored = None if force else store.find(kind, key, fingerprint, files=store.CONTROL_FILES)
    if stored is None:
        model = new_model()
        history = fit(model, *loaders(), progress=progress, **settings)
        stored = store.save(kind, key, fingerprint, lambda tmp: store.write_model_files(tmp, model, history))
        loaded = False
    else:
        loaded = True
    return ControlModel(store.load_state(new_model(), stored).to(pick_device()).eval(), stored.folder, loaded)


def _prepared(P: Mapping[str, Any], prepared: Any, progress: bool) -> Any:
    return prepared if prepared is not None else prepare(dict(P), progress=progress)


def shuffled_label_model(P: Mapping[str, Any], prepared: Any = None, *, epochs: int | None = None,
                         progress: bool = True, force: bool = False) -> nn.Module:
    """Return notebook 02's network trained with notebook 02's recipe on row-permuted training labels, in eval mode (notebook 05).

    The permutation is seeded by ``P["seed"]``; there is no validation set (nothing real to learn) and ``epochs``
    defaults to ``P["control_epochs"]``. Loaded from ``CXRKIT_HOME`` or the shipped course models when saved.
    """
    return shuffled_label_control(P, prepared, epochs=epochs, progress=progress, force=force).model


def shuffled_label_control(P: Mapping[str, Any], prepared: Any = None, *, epochs: int | None = None,
                           progress: bool = True, force: bool = False) -> ControlModel:
    """:func:`shuffled_label_model` with where it lives and whether it was loaded (``cxrkit course-models`` ships it)."""
    recipe, image = ControlRecipe.read(P), ImageRecipe.read(P)
    epochs = recipe.control_epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    prepared = _prepared(P, prepared, progress)
    loaders = image_loaders(image, prepared)
    targets = shuffled_labels(loaders.targets["train"], seed=recipe.seed)

    def train_loaders() -> tuple[BatchLoader, None]:
        _, films = prepared.subset("train")
        return BatchLoader(ImageDataset(films, targets, augment=loaders.augment), batch_size=loaders.train.batch_size,
                           shuffle=True, seed=loaders.train.seed, drop_last=loaders.train.drop_last), None

    settings = {**image_fit_settings(image), "epochs": epochs, "early_stopping_patience": None}
    return _trained_or_loaded("shuffled_label_models", control_key(image, "shuffled_label_models", epochs=epochs),
                              _fingerprint(loaders.rows["train"], targets),
                              lambda: new_image_model(image, num_outputs=len(loaders.labels)), train_loaders, settings,
                              progress, force)


def planted_films(P: Mapping[str, Any], prepared: Any, split: str, signal: PlantedSignal = PLANTED_SIGNAL) -> PlantedFilms:
    """Return one split's films with the planted disc, its labels and masks, seeded by the data seed and the split (notebook 05)."""
    _, films = prepared.subset(split)
    return plant_signal(films, ControlRecipe.read(P).data_seed, split, signal)


def planted_control_model(P: Mapping[str, Any], prepared: Any = None, *, signal: PlantedSignal = PLANTED_SIGNAL,
                          progress: bool = True, force: bool = False) -> ControlModel:
    """Return notebook 02's network trained with notebook 02's recipe on the planted disc as its only label (notebook 05).

    Training and validation films carry the disc in about half of them (:func:`planted_films`); the recipe is
    :func:`~cxrkit.recipes.image.image_fit_settings` with one output, for ``P["control_epochs"]`` epochs. Cached
    like every model.
    """
    recipe, image = ControlRecipe.read(P), ImageRecipe.read(P)
    prepared = _prepared(P, prepared, progress)
    loaders = image_loaders(image, prepared)
    planted = {s: planted_films(recipe, prepared, s, signal) for s in ("train", "validate")}

    def train_loaders() -> tuple[BatchLoader, BatchLoader]:
        return (BatchLoader(ImageDataset(planted["train"].films, planted["train"].labels[:, None], augment=loaders.augment),
                            batch_size=loaders.train.batch_size, shuffle=True, seed=loaders.train.seed,
                            drop_last=loaders.train.drop_last),
                BatchLoader(ImageDataset(planted["validate"].films, planted["validate"].labels[:, None]),
                            batch_size=loaders.validate.batch_size))

    key = control_key(image, "planted_models", signal=signal.as_dict(), epochs=recipe.control_epochs)
    settings = {**image_fit_settings(image), "epochs": recipe.control_epochs}
    return _trained_or_loaded("planted_models", key, _fingerprint(loaders.rows["train"], planted["train"].labels),
                              lambda: new_image_model(image, num_outputs=1), train_loaders, settings, progress, force)


def planted_probabilities(control: ControlModel, planted: PlantedFilms) -> np.ndarray:
    """Return the planted model's probability of "disc present" for each film of ``planted`` (notebook 05)."""
    loader = BatchLoader(ImageDataset(planted.films, planted.labels[:, None]), batch_size=256)
    return predict(control.model, loader)[:, 0]
