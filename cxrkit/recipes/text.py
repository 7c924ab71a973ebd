"""The text-model recipe of notebook 03, as one train-or-load call: :func:`trained_text_model`.

Notebook 03 (text CNN) teaches every step — which report text a model reads, the vocabulary fitted on
the training split only, ``max_len`` from the training lengths, the Kim-style CNN over word embeddings
(random, or transferred from MiniLM's word-pieces), ``fit``, predictions — with the helpers below;
notebooks 04 and 06 call ``trained_text_model(P)`` to get the same model without re-running notebook 03.
The weights (``state_dict``), vocabulary, history and predictions are loaded from
``CXRKIT_HOME/text_models/<key>`` when present and rebuilt with the same recipe when absent. The key
holds every parameter that changes the model (:data:`TEXT_MODEL_KNOBS`, the text source, pretrained or
not, the architecture and :data:`RECIPE_VERSION`); a fingerprint of the training data guards against
reusing a model trained on other reports.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from cxrkit import store
from cxrkit.artifacts import artifact_code_version, data_code_version
from cxrkit.devices import pick_device
from cxrkit.labels import MODEL_LABELS, SPLITS, training_targets
from cxrkit.models.text import MiniLMClassifier, TextCNN
from cxrkit.paths import artifact_dir
from cxrkit.predictions import Predictions
from cxrkit.prep import prepare
from cxrkit.recipes.config import RecipeConfig
from cxrkit.text import PAD_ID, Vocabulary, choose_max_len, fit_vocabulary, text_for_source
from cxrkit.text.pretrained import (
    encode_wordpieces,
    init_embedding_from_pretrained,
    load_pretrained_tokenizer,
    principal_embedding_matrix,
)
from cxrkit.text.sources import DEFAULT_TEXT_SOURCE, TEXT_SOURCES
from cxrkit.train import BatchLoader, History, TensorDictDataset, fit, predict

__all__ = [
    "ARCHITECTURES",
    "CNN_SETTINGS",
    "EMBED_INIT_STD",
    "MAX_LEN_QUANTILE",
    "MINILM_SETTINGS",
    "RECIPE_VERSION",
    "TEXT_MODEL_KNOBS",
    "TextRecipe",
    "TextData",
    "TextDataset",
    "TrainedTextModel",
    "fit_text_encoder",
    "load_text_model",
    "new_text_model",
    "save_text_model",
    "single_thread",
    "text_data",
    "text_fit_settings",
    "text_inputs",
    "text_model_dir",
    "text_model_key",
    "text_predictions",
    "trained_text_model",
]


@dataclass(frozen=True)
class TextRecipe(RecipeConfig):
    """Notebook 03's recipe settings, read once from a profile's parameters: ``TextRecipe.read(P)`` (notebook 03).

    ``text_source`` is the default source; the other fields are :data:`TEXT_MODEL_KNOBS`, which key the model.
    """

    dataset: str
    data_root: str | None
    patients: int
    difficulty: float
    confounders: bool
    data_seed: int
    seed: int
    text_epochs: int
    text_lr: float
    batch_size: int
    patience: int
    uncertainty: str
    text_source: str


#: Profile knobs that change a trained text model; with the source, ``pretrained`` and the architecture they key its folder.
TEXT_MODEL_KNOBS: tuple[str, ...] = tuple(f.name for f in fields(TextRecipe) if f.name != "text_source")

#: Bumped whenever the recipe itself changes (targets, encoding, architecture, fit settings), so old artifacts are not reused.
RECIPE_VERSION = 1

#: The Kim-style CNN of notebook 03: 64-d word embeddings, 32 filters each of widths 3, 4 and 5, dropout 0.5 before
#: the head. 64 dimensions, not MiniLM's 384: the transferred vectors are MiniLM's projected onto their 64 principal
#: components (:func:`~cxrkit.text.pretrained.principal_embedding_matrix`), which keeps training a few seconds on a
#: laptop CPU (a convolution's cost grows with the embedding width).
CNN_SETTINGS: dict[str, Any] = {"embed_dim": 64, "widths": (3, 4, 5), "channels": 32, "dropout": 0.5}

#: Standard deviation of the random word vectors: about the spread of those 64 principal components (0.091), so the
#: random and the transferred arms differ in *what* the vectors say, not in their scale (Kim 2014 does the same).
EMBED_INIT_STD = 0.09

#: Fine-tuning the whole MiniLM (optional, ``finetune_minilm``): a short run at a transformer-sized learning rate.
MINILM_SETTINGS: dict[str, Any] = {"max_epochs": 3, "lr": 5e-5, "pooling": "mean", "dropout": 0.1}

#: ``max_len`` covers this fraction of the training reports (notebook 03).
MAX_LEN_QUANTILE = 0.95

#: Weight decay of AdamW for text models; batch size for prediction-only passes.
TEXT_WEIGHT_DECAY, EVAL_BATCH_SIZE = 1e-4, 512

#: ``"cnn"``: the word-vocabulary TextCNN (``pretrained`` = MiniLM word-piece vectors transferred into it);
#: ``"minilm"``: the whole MiniLM fine-tuned with a linear head (always pretrained).
ARCHITECTURES: tuple[str, ...] = ("cnn", "minilm")


def _check_source(source: str) -> str:
    if source not in TEXT_SOURCES:
        raise ValueError(f"unknown text source {source!r}; choose one of {list(TEXT_SOURCES)}")
    return source


def _check_arch(arch: str, pretrained: bool) -> str:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown text architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    if arch == "minilm" and not pretrained:
        raise ValueError("the MiniLM is always pretrained: call with pretrained=True (or use arch='cnn')")
    return arch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, restoring the thread count after (notebook 03).

    A text CNN's tensors are too small to gain from more threads — on a busy machine extra threads
    mostly wait for each other — and one thread makes its numbers independent of the core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------- text, targets

def fit_text_encoder(table: pd.DataFrame, source: str, *, arch: str = "cnn",
                     quantile: float = MAX_LEN_QUANTILE) -> tuple[Vocabulary | Any, int]:
    """Fit what turns reports into ids on the **training rows only** and choose ``max_len`` from their lengths (notebook 03).

    ``arch="cnn"``: a word :class:`~cxrkit.text.Vocabulary` (negation words kept, ``___`` one token);
    ``arch="minilm"``: MiniLM's own word-piece tokenizer (nothing to fit; lengths count ``[CLS]``/``[SEP]``).
    """
    texts = text_for_source(table, _check_source(source))
    train = texts[(table["split"] == "train").to_numpy()]
    if arch == "minilm":
        tokenizer = load_pretrained_tokenizer()
        lengths = [len(ids) for ids in tokenizer(list(train), truncation=False)["input_ids"]]
        return tokenizer, choose_max_len(lengths, quantile, minimum=2)
    vocab = fit_vocabulary(table, texts)
    return vocab, choose_max_len(vocab.lengths(train), quantile)


def text_inputs(table: pd.DataFrame, source: str, vocab: Vocabulary | Any, max_len: int) -> dict[str, Tensor]:
    """Encode the ``source`` text of each row exactly as the recipe does: ``{"input_ids": N×max_len}`` (+ ``attention_mask`` for word-pieces) (notebook 03).

    Feed the result to a text model as ``model(**inputs)``; notebooks 04 and 06 use it for new rows.
    """
    texts = text_for_source(table, _check_source(source))
    if isinstance(vocab, Vocabulary):
        return {"input_ids": vocab.encode(texts, int(max_len))}
    return encode_wordpieces(vocab, texts, int(max_len))


class TextDataset(TensorDictDataset):
    """Encoded reports (a dict of ``N×L`` tensors, ``input_ids`` at least) and their ``N×K`` targets, in whole batches (notebook 03)."""

    def __init__(self, inputs: dict[str, Tensor], labels: np.ndarray | Tensor):
        if not inputs or "input_ids" not in inputs:
            raise ValueError("inputs must be a dict holding at least 'input_ids'")
        super().__init__(inputs, labels)


@dataclass
class TextData:
    """One text source of a prepared dataset, encoded: rows, texts, inputs, targets and loaders per split (notebook 03)."""

    source: str
    vocab: Vocabulary | Any
    max_len: int
    rows: dict[str, pd.DataFrame]
    texts: dict[str, pd.Series]
    inputs: dict[str, dict[str, Tensor]]
    targets: dict[str, np.ndarray]
    loaders: dict[str, BatchLoader]
    labels: list[str]


def text_data(P: Mapping[str, Any] | TextRecipe, prepared: Any, source: str, *, arch: str = "cnn",
              labels: Sequence[str] = MODEL_LABELS) -> TextData:
    """Encode one text source of ``prepared`` for training: encoder fitted on train only, loaders per split (notebook 03).

    One text per image (its study's report), so predictions join the image model's on ``image_id``.
    The training loader reshuffles each epoch, seeded by ``P["seed"]``; validate and test keep table order.
    """
    recipe, labels = TextRecipe.read(P), list(labels)
    table = prepared.table
    vocab, max_len = fit_text_encoder(table, source, arch=arch)
    batch_size, seed = recipe.batch_size, recipe.seed
    rows, texts, inputs, targets, loaders = {}, {}, {}, {}, {}
    for split in SPLITS:
        split_rows = table[table["split"] == split].reset_index(drop=True)
        if len(split_rows) == 0:
            raise ValueError(f"the prepared dataset has no {split} rows; the recipe needs all three splits")
        rows[split] = split_rows
        texts[split] = text_for_source(split_rows, source)
        inputs[split] = text_inputs(split_rows, source, vocab, max_len)
        targets[split] = training_targets(split_rows, labels)
        dataset = TextDataset(inputs[split], targets[split])
        loaders[split] = (BatchLoader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
                          if split == "train" else BatchLoader(dataset, batch_size=EVAL_BATCH_SIZE))
    return TextData(source, vocab, max_len, rows, texts, inputs, targets, loaders, labels)


# ------------------------------------------------------------------------------------------- model

def new_text_model(P: Mapping[str, Any] | TextRecipe, vocab: Vocabulary | Any, *, pretrained: bool = False, arch: str = "cnn",
                   num_outputs: int = len(MODEL_LABELS)) -> tuple[nn.Module, Any]:
    """Build notebook 03's text model, seeded by ``P["seed"]``; return it and what the embedding transfer copied (or None) (notebook 03).

    ``arch="cnn"``: a :class:`~cxrkit.models.text.TextCNN` (:data:`CNN_SETTINGS`) whose word vectors start
    random (``N(0, EMBED_INIT_STD)``) and, with ``pretrained=True``, are then overwritten by MiniLM's
    word-piece vectors on their principal components (a word split into pieces gets their mean). ``arch="minilm"``: the whole MiniLM,
    to be fine-tuned, with a linear head.
    """
    _check_arch(arch, pretrained)
    torch.manual_seed(TextRecipe.read(P).seed)
    if arch == "minilm":
        return MiniLMClassifier(num_outputs=num_outputs, freeze=False, pooling=MINILM_SETTINGS["pooling"],
                                dropout=MINILM_SETTINGS["dropout"]), None
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"the CNN reads a word Vocabulary, got {type(vocab).__name__}")
    model = TextCNN(len(vocab), num_outputs=num_outputs, padding_idx=PAD_ID, **CNN_SETTINGS)
    with torch.no_grad():
        nn.init.normal_(model.embedding.weight, 0.0, EMBED_INIT_STD)
        model.embedding.weight[PAD_ID].zero_()
    report = None
    if pretrained:
        vectors = principal_embedding_matrix(int(CNN_SETTINGS["embed_dim"])).matrix
        report = init_embedding_from_pretrained(model, vocab, matrix=vectors)
    return model, report


def text_fit_settings(P: Mapping[str, Any] | TextRecipe, *, arch: str = "cnn") -> dict[str, Any]:
    """Return the keyword arguments notebook 03 passes to :func:`cxrkit.train.fit` for profile ``P`` (notebook 03)."""
    recipe = TextRecipe.read(P)
    epochs, lr = recipe.text_epochs, recipe.text_lr
    if arch == "minilm":
        epochs, lr = min(epochs, int(MINILM_SETTINGS["max_epochs"])), float(MINILM_SETTINGS["lr"])
    return dict(
        epochs=epochs,
        lr=lr,
        weight_decay=TEXT_WEIGHT_DECAY,
        uncertainty=recipe.uncertainty,
        early_stopping_patience=recipe.patience,
        seed=recipe.seed,
    )


def text_predictions(model: nn.Module, data: TextData, splits: Sequence[str] = ("validate", "test")) -> Predictions:
    """Return the model's :class:`~cxrkit.predictions.Predictions` on the rows of ``splits``, one per image (notebook 03)."""
    return Predictions.concat(Predictions.of(data.rows[s]["image_id"], s, predict(model, data.loaders[s]), data.labels)
                              for s in splits)


# ------------------------------------------------------------------------------------------ artifacts

def text_model_key(P: Mapping[str, Any] | TextRecipe, source: str | None = None, pretrained: bool = False, *,
                   arch: str = "cnn") -> dict[str, Any]:
    """Return what identifies a trained text model: :data:`TEXT_MODEL_KNOBS`, source, pretrained, architecture, recipe version, code versions of the recipe and its data (notebook 03)."""
    recipe = TextRecipe.read(P)
    source = _check_source(source if source is not None else recipe.text_source)
    _check_arch(arch, bool(pretrained))
    key = {name: getattr(recipe, name) for name in TEXT_MODEL_KNOBS}
    settings = dict(MINILM_SETTINGS) if arch == "minilm" else {**CNN_SETTINGS, "embed_init_std": EMBED_INIT_STD}
    return {**key, "source": source, "pretrained": bool(pretrained), "arch": arch, "settings": settings,
            "max_len_quantile": MAX_LEN_QUANTILE, "labels": list(MODEL_LABELS), "recipe": RECIPE_VERSION,
            "code": artifact_code_version("text_models"), "data_code": data_code_version(key)}


def text_model_dir(P: Mapping[str, Any] | TextRecipe, source: str | None = None, pretrained: bool = False, *,
                   arch: str = "cnn") -> Path:
    """Return ``CXRKIT_HOME/text_models/<key>``, where that text model lives (notebook 03)."""
    return artifact_dir("text_models", text_model_key(P, source, pretrained, arch=arch))


def text_data_fingerprint(table: pd.DataFrame, source: str) -> str:
    """Return a short hash of the rows, splits, texts and targets a model is trained and scored on, so stale models are never reused (notebook 03)."""
    text = text_for_source(table, source).fillna("").astype(str)
    y = pd.DataFrame(training_targets(table), columns=list(MODEL_LABELS)).astype(str).agg(",".join, axis=1)
    return store.fingerprint(table["image_id"].astype(str) + "|" + table["split"].astype(str) + "|" + text.to_numpy()
                             + "|" + y.to_numpy())


@dataclass
class TrainedTextModel:
    """What the text recipe returns: the model (eval mode), its vocabulary (or word-piece tokenizer) and ``max_len``,
    training history, validation + test predictions, labels and artifact folder (notebook 03)."""

    model: nn.Module
    vocab: Vocabulary | Any
    max_len: int
    history: History
    predictions: Predictions
    labels: list[str]
    folder: Path
    source: str = DEFAULT_TEXT_SOURCE
    pretrained: bool = False
    arch: str = "cnn"
    loaded: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Vocabulary | Any:
        """The same object as :attr:`vocab` (a word-piece tokenizer for the MiniLM)."""
        return self.vocab

    def texts(self, table: pd.DataFrame) -> pd.Series:
        """Return the text this model reads for each row of a study table."""
        return text_for_source(table, self.source)

    def inputs(self, table: pd.DataFrame) -> dict[str, Tensor]:
        """Encode rows of a study table for this model (:func:`text_inputs` with its source, vocabulary and ``max_len``)."""
        return text_inputs(table, self.source, self.vocab, self.max_len)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Return ``N×K`` probabilities for rows of a study table (eval mode, no gradients)."""
        inputs = self.inputs(table)
        dummy = np.zeros((len(table), len(self.labels)), dtype=np.float32)
        with single_thread() if self.arch == "cnn" else contextlib.nullcontext():
            return predict(self.model, BatchLoader(TextDataset(inputs, dummy), batch_size=EVAL_BATCH_SIZE))

    def probabilities(self, split: str) -> pd.DataFrame:
        """Return the stored predictions of one split (``"validate"`` or ``"test"``), indexed by ``image_id`` (``predictions.split``)."""
        return self.predictions.split(split)


def _write_encoder(vocab: Vocabulary | Any, folder: Path) -> dict[str, Any]:
    if isinstance(vocab, Vocabulary):
        vocab.save(folder / "vocab.json")
        return {"kind": "vocabulary", "file": "vocab.json"}
    return {"kind": "wordpiece", "path": str(getattr(vocab, "name_or_path", ""))}


def _read_encoder(info: dict[str, Any], folder: Path) -> Vocabulary | Any:
    if info.get("kind") == "vocabulary":
        return Vocabulary.load(folder / info["file"])
    path = info.get("path") or None
    return load_pretrained_tokenizer(path if path and Path(path).is_dir() else None)


def _opened(stored: store.Stored, loaded: bool) -> TrainedTextModel:
    """The trained text model a stored folder holds, on the kit's device in eval mode."""
    meta = stored.meta
    labels, vocab = list(meta["labels"]), _read_encoder(meta["encoder"], stored.folder)
    if meta["arch"] == "minilm":
        model: nn.Module = MiniLMClassifier(num_outputs=len(labels), freeze=False, pooling=MINILM_SETTINGS["pooling"],
                                            dropout=MINILM_SETTINGS["dropout"])
    else:
        model = TextCNN(len(vocab), num_outputs=len(labels), padding_idx=PAD_ID, **CNN_SETTINGS)
    store.load_state(model, stored).to(pick_device()).eval()
    return TrainedTextModel(model, vocab, int(meta["max_len"]), store.read_history(stored), store.read_predictions(stored),
                            labels, stored.folder, meta["source"], bool(meta["pretrained"]), meta["arch"], loaded, meta)


def save_text_model(P: Mapping[str, Any] | TextRecipe, prepared: Any, source: str, pretrained: bool, model: nn.Module,
                    vocab: Vocabulary | Any, max_len: int, history: History, predictions: Predictions, *,
                    arch: str = "cnn", embedding_init: Any = None, folder: str | Path | None = None) -> TrainedTextModel:
    """Save a trained text model (``state_dict``), its vocabulary, history and predictions atomically, and return it as read back (notebook 03)."""

    def write(tmp: Path) -> dict[str, Any]:
        return {
            "source": source,
            "pretrained": bool(pretrained),
            "arch": arch,
            "labels": list(predictions.labels),
            "max_len": int(max_len),
            "encoder": _write_encoder(vocab, tmp),
            "vocab_size": len(vocab),
            "embedding_init": None if embedding_init is None else {
                "summary": str(embedding_init), "coverage": embedding_init.coverage,
                "exact_coverage": embedding_init.exact_coverage, "missing": list(embedding_init.missing)},
            **store.write_model_files(tmp, model, history, predictions),
        }

    stored = store.save("text_models", text_model_key(P, source, pretrained, arch=arch),
                        text_data_fingerprint(prepared.table, source), write, folder=folder)
    return _opened(stored, loaded=False)


def load_text_model(P: Mapping[str, Any] | TextRecipe, source: str | None = None, pretrained: bool = False,
                    prepared: Any = None, *, arch: str = "cnn", folder: str | Path | None = None) -> TrainedTextModel | None:
    """Load a saved text model (``torch.load(weights_only=True)``), or return None when absent, incomplete or stale (notebook 03).

    Looks in ``CXRKIT_HOME``, then among the course models the kit ships. Stale means its key differs, or (when
    ``prepared`` is given) it was trained on other rows, texts or labels.
    """
    recipe = TextRecipe.read(P)
    source = _check_source(source if source is not None else recipe.text_source)
    stored = store.find("text_models", text_model_key(recipe, source, pretrained, arch=arch),
                        None if prepared is None else text_data_fingerprint(prepared.table, source), folder=folder)
    return None if stored is None else _opened(stored, loaded=True)


def trained_text_model(P: Mapping[str, Any], source: str | None = None, pretrained: bool = False, prepared: Any = None, *,
                       arch: str = "cnn", progress: bool = True, force: bool = False) -> TrainedTextModel:
    """Return notebook 03's text model for profile ``P`` and a text source: loaded from ``CXRKIT_HOME`` or the shipped course models when saved, else trained and saved (notebook 03).

    ``source`` is a key of :data:`~cxrkit.text.TEXT_SOURCES` (default ``P["text_source"]``, the indication);
    ``pretrained=True`` transfers MiniLM's word-piece vectors into the CNN's embedding (``arch="minilm"``
    fine-tunes the whole MiniLM instead). Training is exactly what notebook 03 does: :func:`text_data` →
    :func:`new_text_model` → ``fit(model, train, validate, **text_fit_settings(P))`` →
    :func:`text_predictions` on the validation and test rows. ``force=True`` retrains even when saved.
    """
    recipe = TextRecipe.read(P)
    source = _check_source(source if source is not None else recipe.text_source)
    _check_arch(arch, bool(pretrained))
    if not force and (found := load_text_model(recipe, source, pretrained, prepared, arch=arch)) is not None:
        return found
    prepared = prepared if prepared is not None else prepare(dict(P), progress=progress)
    data = text_data(recipe, prepared, source, arch=arch)
    model, report = new_text_model(recipe, data.vocab, pretrained=pretrained, arch=arch, num_outputs=len(data.labels))
    with single_thread() if arch == "cnn" else contextlib.nullcontext():
        history = fit(model, data.loaders["train"], data.loaders["validate"], progress=progress,
                      **text_fit_settings(recipe, arch=arch))
        predictions = text_predictions(model, data)
    return save_text_model(recipe, prepared, source, pretrained, model, data.vocab, data.max_len, history,
                           predictions, arch=arch, embedding_init=report)
