"""A word tokenizer for radiology reports that keeps negation words and folds de-identification marks.

Taught in notebook 03 (text CNN): how a model reads a report, token by token.
"""
from __future__ import annotations

import re

#: The token every de-identification mark becomes: MIMIC's ``___`` and Open-i's ``XXXX`` (also inside ``x-XXXX``).
DEID_TOKEN = "[DEID]"
#: The token :func:`cxrkit.text.redact.redact_label_terms` writes in place of a label-revealing phrase.
REDACTED_TOKEN = "[REDACTED]"

#: Words that carry negation. They must survive every preprocessing step: "no effusion" minus "no" is "effusion".
NEGATION_WORDS: frozenset[str] = frozenset(
    {
        "no", "not", "without", "negative", "none", "neither", "nor", "never", "absent",
        "absence", "free", "cannot", "can't", "isn't", "aren't", "wasn't", "weren't",
        "doesn't", "don't", "didn't", "hasn't", "haven't", "exclude", "excluded", "resolved",
    }
)

#: A short English stop-word list for the optional stop-word filter, with every negation word taken out.
STOP_WORDS: frozenset[str] = frozenset(
    {
        "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "by", "for", "with", "from",
        "as", "is", "are", "was", "were", "be", "been", "being", "this", "that", "these", "those",
        "it", "its", "there", "here", "which", "who", "whom", "has", "have", "had", "do", "does",
        "did", "but", "if", "then", "than", "so", "such", "into", "over", "under", "again",
        "further", "once", "also", "both", "each", "other", "some", "any", "only", "own", "same",
        "very", "can", "will", "just", "should", "now", "he", "she", "his", "her", "they", "them",
        "their", "we", "our", "you", "your", "i", "me", "my",
        # deliberately listed, and removed below: a generic list would delete them
        "no", "not", "nor", "none",
    }
) - NEGATION_WORDS

# One pattern, tried left to right at each position: special tokens, de-identification marks
# (with letters/digits glued to them and hyphens before them, so "x-XXXX" is one mark), numbers, words, punctuation.
_TOKEN_RE = re.compile(
    r"""
    (?P<special>\[(?:DEID|REDACTED)\])
  | (?P<deid>[A-Za-z0-9\-]*(?:X{4,}|_{2,})(?:[A-Za-z0-9_]|-(?=X{4}|__))*)
  | (?P<number>\d+(?:\.\d+)?(?![^\W_]))
  | (?P<word>[^\W_]+(?:'[^\W_]+)*)
  | (?P<punct>[^\w\s]|_)
    """,
    re.VERBOSE,
)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` into ``(token, start, end)`` triples: lower-cased words, numbers, punctuation and ``[DEID]`` (notebook 03).

    ``text[start:end]`` is always the surface form the reader sees (``"___"``, ``"x-XXXX"``, ``","``), so
    scores computed per token can be laid back onto the report without any offset.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a report string, got {type(text).__name__}: {text!r}")
    out: list[tuple[str, int, int]] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        surface = m.group()
        if kind == "special":
            token = surface
        elif kind == "deid":
            token = DEID_TOKEN
        else:
            token = surface.lower()
        out.append((token, m.start(), m.end()))
    return out


def tokenize(text: str, remove_stop_words: bool = False) -> list[str]:
    """Return the tokens of one report; the optional stop-word filter never removes a negation word (notebook 03)."""
    tokens = [tok for tok, _, _ in word_spans(text)]
    if remove_stop_words:
        tokens = [tok for tok in tokens if tok not in STOP_WORDS]
    return tokens


def kept_word_spans(text: str, remove_stop_words: bool = False) -> list[tuple[str, int, int]]:
    """Return the ``(token, start, end)`` triples :func:`tokenize` keeps, in order — the positions a model sees (notebook 03)."""
    spans = word_spans(text)
    if remove_stop_words:
        spans = [s for s in spans if s[0] not in STOP_WORDS]
    return spans
