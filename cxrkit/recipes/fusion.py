"""The fusion recipes of notebook 04, as one train-or-load call: :func:`trained_fusion_model`.

Each layer-level fusion model (``"early"``, ``"joint"``, ``"attention"``; :mod:`cxrkit.models.fusion`)
is built from notebook 02's image model and notebook 03's text model for the same profile, trained
with :func:`cxrkit.train.fit` on the training split (validation for early stopping), and saved under
``CXRKIT_HOME/fusion_models/<key>`` with its predictions, so notebook 06 can explain the fused model
without re-training it. Frozen-encoder methods (early, attention) train their head on encoder outputs
computed once; joint fusion fine-tunes both encoders on the films and reports end to end.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from cxrkit import store
from cxrkit.artifacts import artifact_code_version
from cxrkit.devices import pick_device
from cxrkit.labels import SPLITS, training_targets
from cxrkit.models.fusion import FUSION_MODELS, CrossAttentionFusion, EarlyFusion, JointFusion
from cxrkit.paths import artifact_dir
from cxrkit.predictions import Predictions
from cxrkit.prep import prepare
from cxrkit.recipes.config import RecipeConfig
from cxrkit.recipes.image import (
    BN_REFRESH_BATCHES,
    EVAL_BATCH_SIZE,
    TrainedImageModel,
    image_model_key,
    trained_image_model,
)
from cxrkit.recipes.text import TrainedTextModel, text_model_key, trained_text_model
from cxrkit.train import BatchLoader, History, ImageAugment, TensorDictDataset, fit, predict

__all__ = ["FUSION_SETTINGS", "RECIPE_VERSION", "FusionRecipe", "FusionDataset", "TrainedFusionModel", "fusion_model_key",
           "fusion_model_dir", "new_fusion_model", "encoder_outputs", "trained_fusion_model", "load_fusion_model"]

#: Bumped whenever the recipe changes, so old artifacts are not reused.
RECIPE_VERSION = 1
#: Sizes and learning rates of the fusion recipes: heads on frozen features learn fast; fine-tuning goes gently.
FUSION_SETTINGS: dict[str, Any] = {"hidden": 64, "dropout": 0.3, "head_lr": 3e-3, "joint_lr": 5e-4,
                                   "attention_dim": 64, "attention_heads": 4, "grid": 8}


@dataclass(frozen=True)
class FusionRecipe(RecipeConfig):
    """Notebook 04's fusion settings, read once from a profile's parameters: ``FusionRecipe.read(P)`` (notebook 04)."""

    text_source: str
    fusion_epochs: int
    joint_epochs: int
    seed: int
    batch_size: int
    weight_decay: float
    uncertainty: str
    patience: int
    augment: bool


class FusionDataset:
    """Films (uint8), encoded reports and targets served as ``({"images", "input_ids", ...}, targets)`` batches (notebook 04)."""

    def __init__(self, images_uint8: np.ndarray | Tensor, text_inputs: dict[str, Tensor], labels: np.ndarray | Tensor,
                 augment: nn.Module | None = None):
        images = images_uint8 if isinstance(images_uint8, Tensor) else torch.from_numpy(np.ascontiguousarray(images_uint8))
        targets = torch.as_tensor(np.asarray(labels, dtype=np.float32)) if not isinstance(labels, Tensor) else labels.float()
        n = images.shape[0]
        if images.dtype != torch.uint8 or images.ndim != 3:
            raise ValueError(f"images must be an N×H×W uint8 array, got {tuple(images.shape)} {images.dtype}")
        if any(v.shape[0] != n for v in text_inputs.values()) or targets.shape[0] != n:
            raise ValueError(f"images ({n}), text inputs ({ {k: v.shape[0] for k, v in text_inputs.items()} }) and "
                             f"labels ({targets.shape[0]}) must have one row per film")
        self.images, self.text, self.labels, self.augment = images, dict(text_inputs), targets, augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, index: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Return the inputs of a fusion model's forward (``images`` in [0, 1], augmented in training) and targets."""
        x = self.images[index].unsqueeze(1).float().div_(255)
        if self.augment is not None and self.augment.training:
            x = self.augment(x)
        return {"images": x, **{k: v[index] for k, v in self.text.items()}}, self.labels[index]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "FusionDataset":
        """Return a copy whose tensors live on ``device``."""
        clone = copy.copy(self)
        clone.images, clone.labels = self.images.to(device), self.labels.to(device)
        clone.text = {k: v.to(device) for k, v in self.text.items()}
        return clone


class _HeadOnly(nn.Module):
    """Train a frozen-encoder fusion model's head on cached encoder outputs: ``forward(**cached) = model.head_forward(**cached)``."""

    def __init__(self, model: EarlyFusion | CrossAttentionFusion):
        super().__init__()
        self.model = model

    def forward(self, **cached: Tensor) -> Tensor:
        return self.model.head_forward(**cached)


def new_fusion_model(method: str, image: TrainedImageModel, text: TrainedTextModel) -> nn.Module:
    """Build fusion ``method`` (``"early"``, ``"joint"``, ``"attention"``) from the trained submodels, seeded by nothing but their weights and torch's RNG (notebook 04)."""
    if method not in FUSION_MODELS:
        raise ValueError(f"unknown fusion method {method!r}; choose one of {list(FUSION_MODELS)}")
    if list(image.labels) != list(text.labels):
        raise ValueError(f"the image model predicts {image.labels}, the text model {text.labels}: fusion needs the same labels")
    if text.arch != "cnn":
        raise ValueError("layer-level fusion uses the text CNN (arch='cnn'); late fusion works with any text model")
    s, k = FUSION_SETTINGS, len(image.labels)
    if method == "early":
        return EarlyFusion(image.model, text.model, k, hidden=s["hidden"], dropout=s["dropout"])
    if method == "joint":
        return JointFusion(image.model, text.model)
    return CrossAttentionFusion(image.model, text.model, k, dim=s["attention_dim"], heads=s["attention_heads"],
                                grid=s["grid"], dropout=s["dropout"])


@torch.no_grad()
def encoder_outputs(model: EarlyFusion | CrossAttentionFusion, images_uint8: np.ndarray, text_inputs: dict[str, Tensor],
                    batch_size: int = EVAL_BATCH_SIZE) -> dict[str, Tensor]:
    """Run the frozen encoders of an early or cross-attention fusion model once over films + reports (notebook 04).

    The encoders run in the default (contiguous) memory layout whatever layout training left the image model in
    (``fit`` leaves it channels-last on a CPU, a loaded model is contiguous): the two layouts round differently
    (measured: 3e-7 in the features, 1e-6 in the fusion's probabilities), and a fusion must not depend on whether
    its image model was trained in this process or loaded.
    """
    device = next(model.parameters()).device
    model.to(memory_format=torch.contiguous_format).eval()
    chunks: list[Any] = []
    for start in range(0, len(images_uint8), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images_uint8[start:start + batch_size])).to(device)
        x = x.unsqueeze(1).float().div_(255)
        t = {k: v[start:start + batch_size].to(device) for k, v in text_inputs.items()}
        out = model.encode(x, **t)
        chunks.append(out if isinstance(out, dict) else {"features": out})
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def fusion_model_key(P: Mapping[str, Any], method: str, source: str | None = None, *,
                     image_key: dict[str, Any] | None = None, text_key: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return what identifies a trained fusion model: the method, both submodels' keys, the fusion knobs, the recipe and code versions (notebook 04).

    ``image_key``/``text_key`` are the submodels' own stored keys (``model.meta["key"]``), so a fusion built on the
    MiniLM-initialised text CNN never shares a folder with one built on the plain CNN; without them, the keys of
    ``P``'s image model and of its plain text CNN on ``source`` are used.
    """
    recipe = FusionRecipe.read(P)
    source = source if source is not None else recipe.text_source
    return {"method": method, "image": image_key if image_key is not None else image_model_key(P),
            "text": text_key if text_key is not None else text_model_key(P, source),
            "fusion_epochs": recipe.fusion_epochs,
            "joint_epochs": recipe.joint_epochs if method == "joint" else None,
            "settings": FUSION_SETTINGS, "recipe": RECIPE_VERSION, "code": artifact_code_version("fusion_models")}


def _key_of(P: Mapping[str, Any], method: str, image: TrainedImageModel, text: TrainedTextModel) -> dict[str, Any]:
    """The key of the fusion of these two trained submodels, built from their stored keys."""
    return fusion_model_key(P, method, text.source, image_key=image.meta.get("key"), text_key=text.meta.get("key"))


def fusion_model_dir(P: Mapping[str, Any], method: str, source: str | None = None) -> Path:
    """Return ``CXRKIT_HOME/fusion_models/<key>`` for one method and text source, on ``P``'s own submodels (notebook 04)."""
    return artifact_dir("fusion_models", fusion_model_key(P, method, source))


def fusion_data_fingerprint(image: TrainedImageModel, text: TrainedTextModel) -> str:
    """Return the data fingerprint of a fusion: its two submodels' (notebook 04)."""
    return store.fingerprint([str(image.meta.get("data_fingerprint")), str(text.meta.get("data_fingerprint"))],
                             ordered=True)


@dataclass
class TrainedFusionModel:
    """What the fusion recipe returns: the model (eval mode), history, validation + test predictions, the submodels, folder (notebook 04)."""

    method: str
    model: nn.Module
    history: History
    predictions: Predictions
    labels: list[str]
    image: TrainedImageModel
    text: TrainedTextModel
    folder: Path
    loaded: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, split: str) -> pd.DataFrame:
        """Return the stored predictions of one split (``"validate"`` or ``"test"``), indexed by ``image_id`` (``predictions.split``)."""
        return self.predictions.split(split)

    def inputs(self, rows: pd.DataFrame, images_uint8: np.ndarray) -> dict[str, Tensor]:
        """Return the forward inputs for study-table rows and their films: ``{"images": B×1×H×W, "input_ids": …}``."""
        x = torch.from_numpy(np.ascontiguousarray(images_uint8)).unsqueeze(1).float().div_(255)
        return {"images": x, **self.text.inputs(rows)}


def _opened(method: str, image: TrainedImageModel, text: TrainedTextModel, stored: store.Stored,
            loaded: bool) -> TrainedFusionModel:
    """The trained fusion model a stored folder holds, on its submodels, on the kit's device in eval mode."""
    model = store.load_state(new_fusion_model(method, image, text), stored).to(pick_device()).eval()
    return TrainedFusionModel(method, model, store.read_history(stored), store.read_predictions(stored),
                              list(stored.meta["labels"]), image, text, stored.folder, loaded, stored.meta)


def load_fusion_model(P: Mapping[str, Any], method: str, image: TrainedImageModel, text: TrainedTextModel, *,
                      folder: str | Path | None = None) -> TrainedFusionModel | None:
    """Load a saved fusion model built on these submodels, or None when absent, incomplete or stale (notebook 04)."""
    stored = store.find("fusion_models", _key_of(P, method, image, text), fusion_data_fingerprint(image, text),
                        folder=folder)
    return None if stored is None else _opened(method, image, text, stored, loaded=True)


class _SplitData(NamedTuple):
    rows: pd.DataFrame
    films: np.ndarray
    text: dict[str, Tensor]
    targets: np.ndarray


def _split_data(prepared: Any, text: TrainedTextModel, labels: Sequence[str]) -> dict[str, _SplitData]:
    """Each split's rows, films, encoded reports and training targets."""
    data = {}
    for split in SPLITS:
        rows, films = prepared.subset(split)
        rows = rows.reset_index(drop=True)
        data[split] = _SplitData(rows, films, text.inputs(rows), training_targets(rows, labels))
    return data


def trained_fusion_model(P: Mapping[str, Any], method: str, prepared: Any = None, *, source: str | None = None,
                         image: TrainedImageModel | None = None, text: TrainedTextModel | None = None,
                         progress: bool = True, force: bool = False) -> TrainedFusionModel:
    """Return fusion ``method`` for profile ``P``: loaded from ``CXRKIT_HOME`` or the shipped course models when saved, else trained on the train split and saved (notebook 04).

    The submodels are notebook 02's image model and notebook 03's text CNN on ``source`` (default
    ``P["text_source"]``, the indication), trained first when absent. ``"early"`` and ``"attention"``
    train a head for ``fusion_epochs`` on frozen-encoder outputs computed once; ``"joint"`` fine-tunes
    everything for ``joint_epochs`` (each costs an image-model epoch) at a gentler learning rate, with the image augmentation of notebook 02.
    Early stopping and the best epoch use validation macro AUROC, as for every model in the kit.
    """
    if method not in FUSION_MODELS:
        raise ValueError(f"unknown fusion method {method!r}; choose one of {list(FUSION_MODELS)}")
    recipe = FusionRecipe.read(P)
    prepared = prepared if prepared is not None else prepare(dict(P), progress=progress)
    image = image if image is not None else trained_image_model(P, prepared, progress=progress)
    source = text.source if text is not None else (source if source is not None else recipe.text_source)
    text = text if text is not None else trained_text_model(P, source, prepared=prepared, progress=progress)
    if not force and (found := load_fusion_model(P, method, image, text)) is not None:
        return found
    labels = list(image.labels)
    data = _split_data(prepared, text, labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = new_fusion_model(method, image, text).to(pick_device())
    settings = dict(epochs=recipe.fusion_epochs, weight_decay=recipe.weight_decay, uncertainty=recipe.uncertainty,
                    early_stopping_patience=recipe.patience, seed=recipe.seed)
    if method == "joint":
        augment = ImageAugment() if recipe.augment else None
        sets = {s: FusionDataset(d.films, d.text, d.targets, augment=augment if s == "train" else None)
                for s, d in data.items()}
        trainee: nn.Module = model
        settings.update(epochs=recipe.joint_epochs, lr=FUSION_SETTINGS["joint_lr"], bn_refresh_batches=BN_REFRESH_BATCHES)
    else:
        cached = {s: encoder_outputs(model, d.films, d.text) for s, d in data.items()}
        scaled = cached["train"]["features"] if method == "early" else cached["train"]["pooled"]
        model.scaler.fit(scaled)
        sets = {s: TensorDictDataset(cached[s], data[s].targets) for s in data}
        trainee = _HeadOnly(model)
        settings.update(lr=FUSION_SETTINGS["head_lr"])
    batch_size = recipe.batch_size
    loaders = {s: BatchLoader(ds, batch_size=batch_size, shuffle=True, seed=recipe.seed, drop_last=len(ds) > batch_size)
               if s == "train" else BatchLoader(ds, batch_size=EVAL_BATCH_SIZE) for s, ds in sets.items()}
    history = fit(trainee, loaders["train"], loaders["validate"], progress=progress, **settings)
    predictions = Predictions.concat(Predictions.of(data[s].rows["image_id"], s, predict(trainee, loaders[s]), labels)
                                     for s in ("validate", "test"))

    def write(tmp: Path) -> dict[str, Any]:
        return {"labels": labels, **store.write_model_files(tmp, model, history, predictions)}

    stored = store.save("fusion_models", _key_of(P, method, image, text), fusion_data_fingerprint(image, text), write)
    return _opened(method, image, text, stored, loaded=False)
