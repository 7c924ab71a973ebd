"""Notebook 03's coded exercise: a vocabulary fitted on training reports only."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from cxrkit.exercises import Case, exercise
from cxrkit.text.vocab import SPECIAL_TOKENS, Vocabulary

NOTEBOOK = "03_text_cnn"


def _vocabulary_cases() -> Iterator[Case]:
    texts = np.array(["No pleural effusion.", "Small left pleural effusion.", "No pneumothorax.",
                      "Large right pneumothorax, chest tube."], dtype=object)
    yield Case((texts, np.array([True, True, True, False]), 1),
               description="the last report is a test report: its words must not enter the vocabulary")
    yield Case((texts, np.array([True, True, True, True]), 2),
               description="min_freq=2 keeps only words seen at least twice")
    yield Case((np.array(["b a", "a b c", "c"], dtype=object), np.array([True, True, True]), 1),
               description="ties in frequency are broken alphabetically")


@exercise("nb03_train_vocabulary", NOTEBOOK, _vocabulary_cases,
          hint="count tokenize(text) over texts[is_train] only, keep words with count >= min_freq, "
               "sort by (-count, word)")
def train_vocabulary(texts: np.ndarray, is_train: np.ndarray, min_freq: int) -> list[str]:
    """Reference: training-report words seen ``min_freq`` times, most frequent first, ties alphabetical (notebook 03, exercise)."""
    vocab = Vocabulary.fit(list(np.asarray(texts, dtype=object)[np.asarray(is_train, dtype=bool)]), min_freq=min_freq)
    return vocab.itos[len(SPECIAL_TOKENS):]
