"""Notebook 07's alignment recipe, as one train-or-load call: :func:`trained_alignment_model`.

A film and its report's impression are pulled together in one space by the symmetric InfoNCE loss
(:mod:`cxrkit.models.alignment`): notebook 02's CNN trunk, started from scratch, and a projection of the frozen
MiniLM impression vectors (:mod:`cxrkit.sentence_embeddings`), trained with the kit's one loop on the training
films only and chosen by the validation films' contrastive loss. Two ``pairs`` settings:

* ``"aligned"`` — each film with its own report: the model notebook 07 reads;
* ``"shuffled"`` — each film with another film's report (a permutation seeded by ``P["seed"]``): the same model,
  the same data, no film–report link. Whatever it still scores is the **measured chance level** every zero-shot
  and retrieval number of notebook 07 stands beside.

Both are cached like every model under ``CXRKIT_HOME/alignment_models/<key>`` and shipped as course models
(``cxrkit course-models``). The key holds the recipe's knobs, the trunk's architecture knobs, the report vectors'
key (so their texts and MiniLM version), the pairing, and the code versions of the recipe and of its data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrkit import store
from cxrkit.artifacts import artifact_code_version, data_code_version
from cxrkit.devices import pick_device
from cxrkit.models.alignment import AlignmentModel, contrastive_loss
from cxrkit.prep import prepare
from cxrkit.recipes.config import RecipeConfig
from cxrkit.recipes.image import ImageRecipe, new_image_model
from cxrkit.sentence_embeddings import SentenceEmbeddings, sentence_embedding_key, sentence_embeddings
from cxrkit.train import BatchLoader, History, TensorDictDataset, fit

__all__ = ["PAIRINGS", "REPORT_FIELDS", "AlignmentRecipe", "TrainedAlignment", "report_vectors_key", "report_vectors",
           "alignment_key", "new_alignment_model",
           "alignment_datasets", "alignment_fit_settings", "trained_alignment_model"]

#: How films are paired with reports: their own (the model), or a seeded permutation of them (the chance level).
PAIRINGS: tuple[str, ...] = ("aligned", "shuffled")
#: The report section the text side reads: the impression, the radiologist's summary.
REPORT_FIELDS: tuple[str, ...] = ("impression",)
#: Files of one stored alignment model.
FILES: tuple[str, ...] = ("model.pt", "history.csv", "meta.json")
#: The validation films are scored in one pass of this many (the contrastive loss is taken over all of them at once).
EVAL_BATCH_SIZE = 512

Pairing = Literal["aligned", "shuffled"]


@dataclass(frozen=True)
class AlignmentRecipe(RecipeConfig):
    """Notebook 07's alignment settings, read once from a profile's parameters (notebook 07)."""

    align_epochs: int
    align_lr: float
    align_dim: int
    batch_size: int
    seed: int
    # the trunk: notebook 02's architecture, started from scratch
    image_model: str
    image_width: int
    image_head: str
    # the data it reads
    dataset: str
    data_root: str | None
    patients: int
    difficulty: float
    confounders: bool
    image_size: int
    data_seed: int

    def reports(self) -> dict[str, Any]:
        """The knobs that fix the reports (the dataset, or the generated cohort's settings): what keys their vectors."""
        return {k: getattr(self, k) for k in ("dataset", "data_root", "patients", "difficulty", "confounders",
                                              "data_seed")}

    @property
    def trunk(self) -> ImageRecipe:
        """The image recipe whose architecture (and seed) builds the trunk."""
        return ImageRecipe.read({**self.knobs()})


@dataclass
class TrainedAlignment:
    """What the alignment recipe returns: the model (eval mode), its history, its pairing, where it lives and whether it came from disk (notebook 07)."""

    model: AlignmentModel
    history: History
    pairs: str
    folder: Path
    loaded: bool
    meta: dict[str, Any]


def _check_pairs(pairs: str) -> str:
    if pairs not in PAIRINGS:
        raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
    return pairs


def report_vectors_key(P: Mapping[str, Any] | AlignmentRecipe) -> dict[str, Any]:
    """Return the key of the report vectors the recipe reads: the impressions of the dataset ``P`` names (notebook 07)."""
    return sentence_embedding_key(REPORT_FIELDS, dataset=AlignmentRecipe.read(P).reports())


def report_vectors(P: Mapping[str, Any] | AlignmentRecipe, prepared: Any, *, progress: bool = True,
                   force: bool = False) -> SentenceEmbeddings:
    """Return the frozen MiniLM vectors of every film's impression, stored once per dataset (shipped for the class cohort) (notebook 07)."""
    return sentence_embeddings(prepared.table, REPORT_FIELDS, dataset=AlignmentRecipe.read(P).reports(),
                               progress=progress, force=force)


def alignment_key(P: Mapping[str, Any] | AlignmentRecipe, pairs: Pairing = "aligned") -> dict[str, Any]:
    """Return what identifies an alignment model: the recipe's knobs, the report vectors' key, the pairing and the code versions (notebook 07)."""
    recipe = AlignmentRecipe.read(P)
    return {**recipe.knobs(), "report_vectors": report_vectors_key(recipe),
            "report_vectors_code": artifact_code_version("sentence_embeddings"), "pairs": _check_pairs(pairs),
            "code": artifact_code_version("alignment_models"), "data_code": data_code_version(recipe.knobs())}


def new_alignment_model(P: Mapping[str, Any] | AlignmentRecipe, text_dim: int) -> AlignmentModel:
    """Build the alignment model with every weight (trunk and both projections) drawn from ``P["seed"]``; the global random state is left as it was (notebook 07)."""
    recipe = AlignmentRecipe.read(P)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        return AlignmentModel(new_image_model(recipe.trunk, num_outputs=1), text_dim=text_dim, dim=recipe.align_dim)


def _pairing(n: int, seed: int, split: str, pairs: str) -> np.ndarray:
    """The report row each film of a split is paired with: itself, or a permutation seeded by the seed and the split."""
    if pairs == "aligned":
        return np.arange(n)
    return np.random.default_rng([seed, ("train", "validate", "test").index(split)]).permutation(n)


def alignment_datasets(P: Mapping[str, Any] | AlignmentRecipe, prepared: Any, vectors: SentenceEmbeddings,
                       pairs: Pairing = "aligned", splits: tuple[str, ...] = ("train", "validate")
                       ) -> dict[str, tuple[pd.DataFrame, TensorDictDataset]]:
    """Return each split's rows and its (film, report vector) pairs as a dataset ``fit`` reads (``images``, ``text_vectors``) (notebook 07)."""
    recipe = AlignmentRecipe.read(P)
    out = {}
    for split in splits:
        rows, films = prepared.subset(split)
        text = vectors.on(rows)[_pairing(len(rows), recipe.seed, split, _check_pairs(pairs))]
        images = torch.from_numpy(films).unsqueeze(1).float().div(255)
        out[split] = rows, TensorDictDataset({"images": images, "text_vectors": torch.from_numpy(text)},
                                             np.zeros((len(rows), 1), np.float32))
    return out


def alignment_fit_settings(P: Mapping[str, Any] | AlignmentRecipe) -> dict[str, Any]:
    """Return the keyword arguments the recipe passes to :func:`cxrkit.train.fit`: InfoNCE, one-cycle, every epoch run, best validation loss kept (notebook 07)."""
    recipe = AlignmentRecipe.read(P)
    return dict(epochs=recipe.align_epochs, lr=recipe.align_lr, loss=contrastive_loss, monitor="val_loss",
                schedule="onecycle", early_stopping_patience=None, seed=recipe.seed)


def _fingerprint(datasets: Mapping[str, tuple[pd.DataFrame, TensorDictDataset]], vectors: SentenceEmbeddings,
                 pairs: str, seed: int) -> str:
    """The data fingerprint of an alignment model: its films per split, in order, the report vectors and the pairing."""
    lines = [f"{split}\t{i}" for split, (rows, _) in datasets.items() for i in rows["image_id"].astype(str)]
    lines += [f"report_vectors\t{vectors.fingerprint}", f"pairs\t{pairs}\t{seed}"]
    return store.fingerprint(lines, ordered=True)


def trained_alignment_model(P: Mapping[str, Any], prepared: Any = None, *, pairs: Pairing = "aligned",
                            vectors: SentenceEmbeddings | None = None, progress: bool = True,
                            force: bool = False) -> TrainedAlignment:
    """Return notebook 07's alignment model for profile ``P`` (``pairs="shuffled"``: its chance-level control), loaded when stored, else trained on the training films and stored (notebook 07).

    Training is what notebook 07 shows: :func:`alignment_datasets` → :func:`new_alignment_model` →
    ``fit(model, train, validate, **alignment_fit_settings(P))``. ``force=True`` retrains.
    """
    recipe = AlignmentRecipe.read(P)
    prepared = prepared if prepared is not None else prepare(dict(P), progress=progress)
    vectors = vectors if vectors is not None else report_vectors(recipe, prepared, progress=progress)
    key = alignment_key(recipe, pairs)
    datasets = alignment_datasets(recipe, prepared, vectors, pairs)
    fingerprint = _fingerprint(datasets, vectors, pairs, recipe.seed)
    stored = None if force else store.find("alignment_models", key, fingerprint, files=FILES)
    loaded = stored is not None
    if stored is None:
        model = new_alignment_model(recipe, vectors.vectors.shape[1])
        train, validate = datasets["train"][1], datasets["validate"][1]
        history = fit(model, BatchLoader(train, batch_size=recipe.batch_size, shuffle=True, seed=recipe.seed,
                                         drop_last=True),
                      BatchLoader(validate, batch_size=EVAL_BATCH_SIZE), progress=progress,
                      **alignment_fit_settings(recipe))
        stored = store.save("alignment_models", key, fingerprint,
                            lambda tmp: {"pairs": pairs, **store.write_model_files(tmp, model, history)})
    model = store.load_state(new_alignment_model(recipe, vectors.vectors.shape[1]), stored)
    return TrainedAlignment(model.to(pick_device()).eval(), store.read_history(stored), pairs, stored.folder, loaded,
                            stored.meta)
