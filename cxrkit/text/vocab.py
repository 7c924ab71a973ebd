"""A word vocabulary fitted on the training split only, and the encoder that turns reports into padded id tensors.

Taught in notebook 03 (text CNN): a tokenizer fitted on test data leaks, so the fit takes training text explicitly.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrkit.text.tokenize import DEID_TOKEN, REDACTED_TOKEN, kept_word_spans, tokenize

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
#: Reserved entries at the start of every vocabulary: padding is id 0, unknown words id 1.
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, DEID_TOKEN, REDACTED_TOKEN)
PAD_ID, UNK_ID = 0, 1


def _as_text_list(texts: Iterable[str] | pd.Series, what: str) -> list[str]:
    """Return ``texts`` as a list of strings (missing values become ``""``); a bare string is refused."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a collection of reports, not one string: {texts[:60]!r}")
    out = []
    for t in texts:
        if isinstance(t, str):
            out.append(t)
        elif t is None or (np.ndim(t) == 0 and pd.isna(t)):
            out.append("")
        else:
            raise TypeError(f"{what} must hold strings; found {type(t).__name__}: {t!r}")
    return out


@dataclass
class Vocabulary:
    """Word ↔ id mapping with ``[PAD]`` = 0 and ``[UNK]`` = 1; build it with :meth:`fit` (notebook 03)."""

    itos: list[str]
    remove_stop_words: bool = False
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.itos[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with {SPECIAL_TOKENS}; got {self.itos[:len(SPECIAL_TOKENS)]}")
        if len(set(self.itos)) != len(self.itos):
            dupes = sorted(w for w, n in Counter(self.itos).items() if n > 1)
            raise ValueError(f"vocabulary entries must be unique; repeated: {dupes[:10]}")
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def fit(
        cls,
        train_texts: Iterable[str] | pd.Series,
        min_freq: int = 1,
        max_size: int | None = None,
        remove_stop_words: bool = False,
    ) -> "Vocabulary":
        """Fit a vocabulary on training reports only: words seen ``min_freq`` times, the most frequent first (notebook 03).

        ``max_size`` caps the total number of entries, the special tokens included; ties in frequency
        are broken alphabetically so the same texts always give the same ids.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_size}")
        texts = _as_text_list(train_texts, "train_texts")
        if not texts:
            raise ValueError("train_texts is empty: a vocabulary needs training reports")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, remove_stop_words=remove_stop_words))
        words = sorted(
            (w for w, n in counts.items() if n >= min_freq and w not in SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + words, remove_stop_words=remove_stop_words)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    @property
    def words(self) -> list[str]:
        """The fitted words, special tokens excluded."""
        return self.itos[len(SPECIAL_TOKENS):]

    def tokens(self, text: str) -> list[str]:
        """Tokenize one report exactly as :meth:`encode` does."""
        return tokenize(text, remove_stop_words=self.remove_stop_words)

    def ids(self, text: str) -> list[int]:
        """Return the ids of one report's tokens, unknown words as ``[UNK]`` (1), untruncated."""
        return [self.stoi.get(tok, UNK_ID) for tok in self.tokens(text)]

    def token_spans(self, text: str, max_len: int | None = None) -> list[tuple[int, int]]:
        """Return the character span in ``text`` of each encoded position (before padding, after truncation)."""
        spans = [(a, b) for _, a, b in kept_word_spans(text, self.remove_stop_words)]
        return spans if max_len is None else spans[:max_len]

    def lengths(self, texts: Iterable[str] | pd.Series) -> np.ndarray:
        """Return the number of tokens of each report (for :func:`choose_max_len`)."""
        return np.array([len(self.tokens(t)) for t in _as_text_list(texts, "texts")], dtype=np.int64)

    def encode(self, texts: Iterable[str] | pd.Series, max_len: int) -> torch.Tensor:
        """Encode reports as an ``N × max_len`` LongTensor: truncated on the right, padded with 0 (notebook 03)."""
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        texts = _as_text_list(texts, "texts")
        out = torch.full((len(texts), int(max_len)), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.ids(text)[:max_len]
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Return the tokens of an id sequence, padding dropped."""
        return [self.itos[int(i)] for i in ids if int(i) != PAD_ID]

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON, so a checkpoint can be reloaded with the ids it was trained on."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"itos": self.itos, "remove_stop_words": self.remove_stop_words}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        return cls(list(data["itos"]), remove_stop_words=bool(data.get("remove_stop_words", False)))


def fit_vocabulary(
    table: pd.DataFrame,
    text_column: str | pd.Series,
    min_freq: int = 1,
    max_size: int | None = None,
    remove_stop_words: bool = False,
) -> Vocabulary:
    """Fit a :class:`Vocabulary` on the ``split == "train"`` rows of a study table, so other splits cannot leak (notebook 03).

    ``text_column`` is a column name, or a Series aligned with ``table`` (e.g. from :func:`text_for_source`).
    """
    if "split" not in table.columns:
        raise KeyError(f"the table has no 'split' column; columns are {list(table.columns)}")
    if isinstance(text_column, pd.Series):
        if not text_column.index.equals(table.index):
            raise ValueError("the text Series is not aligned with the table (their indexes differ)")
        texts = text_column
    elif text_column in table.columns:
        texts = table[text_column]
    else:
        raise KeyError(f"text column {text_column!r} not in the table; columns are {list(table.columns)}")
    is_train = (table["split"] == "train").to_numpy()
    if not is_train.any():
        raise ValueError(f"no 'train' rows to fit on; the split column holds {sorted(table['split'].astype(str).unique())}")
    return Vocabulary.fit(texts[is_train], min_freq=min_freq, max_size=max_size, remove_stop_words=remove_stop_words)


def choose_max_len(train_lengths: Iterable[int] | np.ndarray, quantile: float = 0.95, minimum: int = 1) -> int:
    """Return the sequence length covering ``quantile`` of the training reports (rounded up, at least ``minimum``) (notebook 03)."""
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    lengths = np.asarray(list(train_lengths) if not isinstance(train_lengths, np.ndarray) else train_lengths)
    if lengths.size == 0:
        raise ValueError("train_lengths is empty: choose max_len from the training reports' lengths")
    return max(int(minimum), int(math.ceil(float(np.quantile(lengths, quantile)))))
