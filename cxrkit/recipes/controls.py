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

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from cxrkit.artifacts import artifact_code_version
from cxrkit.controls import PlantedFilms, PlantedSignal, plant_signal
from cxrkit.devices import pick_device
from cxrkit.paths import artifact_dir, find_artifact
from cxrkit.profiles import CLASS
from cxrkit.recipes.image import image_fit_settings, image_loaders, image_model_key, new_image_model
from cxrkit.recipes.store import staged_folder, write_meta
from cxrkit.train import BatchLoader, ImageDataset, fit, load_checkpoint, predict
from cxrkit.train.checks import shuffled_labels

__all__ = ["PLANTED_SIGNAL", "ControlModel", "shuffled_label_model", "shuffled_label_control", "planted_films", "planted_control_model",
           "planted_probabilities", "control_key"]

#: The signal the planted control plants: a disc of radius 6–10 px and +89 grey levels on a 128-pixel film. (At radius
#: 4–6 px and +64 the class recipe did not learn it within 20 epochs — validation AUROC 0.58; benchmarks/image_recipe.py.)
PLANTED_SIGNAL = PlantedSignal(radius=(0.05, 0.08), contrast=0.35)

_FILES = ("model.pt", "history.csv", "meta.json")


@dataclass
class ControlModel:
    """A trained control model (eval mode), where it lives, and whether it came from disk (notebook 05)."""

    model: nn.Module
    folder: Path
    loaded: bool


def control_key(P: Mapping[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    """Return the key of a control model: the image model's key, which control, its settings and its code version (notebook 05)."""
    return {**image_model_key(dict(P)), "control": kind, **extra, "control_code": artifact_code_version(kind)}


def _fingerprint(rows: Any, targets: np.ndarray) -> str:
    h = hashlib.sha256("\n".join(rows["image_id"].astype(str)).encode())
    h.update(np.ascontiguousarray(targets, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _load(kind: str, key: dict[str, Any], fingerprint: str, model: nn.Module) -> ControlModel | None:
    folder = find_artifact(kind, key, _FILES)
    if folder is None:
        return None
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("fingerprint") != fingerprint or meta.get("key") != json.loads(json.dumps(key, default=str)):
        return None
    load_checkpoint(model, folder / "model.pt")
    return ControlModel(model.to(pick_device()).eval(), folder, True)


def _train(kind: str, key: dict[str, Any], fingerprint: str, model: nn.Module, train: BatchLoader,
           validate: BatchLoader | None, settings: dict[str, Any], progress: bool) -> ControlModel:
    history = fit(model, train, validate, progress=progress, **settings)
    folder = artifact_dir(kind, key)
    with staged_folder(folder) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        history.table.to_csv(tmp / "history.csv", index=False)
        write_meta(tmp, {"key": key, "fingerprint": fingerprint, "best_epoch": history.best_epoch,
                         "settings": history.settings})
    return ControlModel(model.eval(), folder, False)


def _prepared(P: Mapping[str, Any], prepared: Any, progress: bool) -> Any:
    if prepared is not None:
        return prepared
    from cxrkit.prep import prepare

    return prepare(dict(P), progress=progress)


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
    epochs = int(P.get("control_epochs", CLASS["control_epochs"]) if epochs is None else epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    prepared = _prepared(P, prepared, progress)
    loaders = image_loaders(dict(P), prepared)
    targets = shuffled_labels(loaders.targets["train"], seed=int(P.get("seed", CLASS["seed"])))
    key = control_key(P, "shuffled_label_models", epochs=epochs)
    fingerprint = _fingerprint(loaders.rows["train"], targets)
    model = new_image_model(dict(P), num_outputs=len(loaders.labels))
    if not force and (found := _load("shuffled_label_models", key, fingerprint, model)) is not None:
        return found
    _, films = prepared.subset("train")
    train = BatchLoader(ImageDataset(films, targets, augment=loaders.augment), batch_size=loaders.train.batch_size,
                        shuffle=True, seed=loaders.train.seed, drop_last=loaders.train.drop_last)
    settings = {**image_fit_settings(dict(P)), "epochs": epochs, "early_stopping_patience": None}
    return _train("shuffled_label_models", key, fingerprint, model, train, None, settings, progress)


def planted_films(P: Mapping[str, Any], prepared: Any, split: str, signal: PlantedSignal = PLANTED_SIGNAL) -> PlantedFilms:
    """Return one split's films with the planted disc, its labels and masks, seeded by the data seed and the split (notebook 05)."""
    _, films = prepared.subset(split)
    return plant_signal(films, int(P.get("data_seed", CLASS["data_seed"])), split, signal)


def planted_control_model(P: Mapping[str, Any], prepared: Any = None, *, signal: PlantedSignal = PLANTED_SIGNAL,
                          progress: bool = True, force: bool = False) -> ControlModel:
    """Return notebook 02's network trained with notebook 02's recipe on the planted disc as its only label (notebook 05).

    Training and validation films carry the disc in about half of them (:func:`planted_films`); the recipe is
    :func:`~cxrkit.recipes.image.image_fit_settings` with one output, for ``P["control_epochs"]`` epochs. Cached
    like every model.
    """
    prepared = _prepared(P, prepared, progress)
    loaders = image_loaders(dict(P), prepared)
    planted = {s: planted_films(P, prepared, s, signal) for s in ("train", "validate")}
    epochs = int(P.get("control_epochs", CLASS["control_epochs"]))
    key = control_key(P, "planted_models", signal=signal.as_dict(), epochs=epochs)
    fingerprint = _fingerprint(loaders.rows["train"], planted["train"].labels)
    model = new_image_model(dict(P), num_outputs=1)
    if not force and (found := _load("planted_models", key, fingerprint, model)) is not None:
        return found
    train = BatchLoader(ImageDataset(planted["train"].films, planted["train"].labels[:, None], augment=loaders.augment),
                        batch_size=loaders.train.batch_size, shuffle=True, seed=loaders.train.seed,
                        drop_last=loaders.train.drop_last)
    validate = BatchLoader(ImageDataset(planted["validate"].films, planted["validate"].labels[:, None]),
                           batch_size=loaders.validate.batch_size)
    settings = {**image_fit_settings(dict(P)), "epochs": epochs}
    return _train("planted_models", key, fingerprint, model, train, validate, settings, progress)


def planted_probabilities(control: ControlModel, planted: PlantedFilms) -> np.ndarray:
    """Return the planted model's probability of "disc present" for each film of ``planted`` (notebook 05)."""
    loader = BatchLoader(ImageDataset(planted.films, planted.labels[:, None]), batch_size=256)
    return predict(control.model, loader)[:, 0]
