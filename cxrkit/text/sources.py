"""Which report text a model reads — the switch between the arms of the leakage lesson.

Taught in notebook 03 (text CNN): the indication is written before the image is read; findings and
impression are where the labels were extracted from, so a model reading them is graded on its own input.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cxrkit.text.redact import redact_label_terms

#: Report sections each text source joins. ``"redacted"`` reads findings + impression with label terms redacted.
TEXT_SOURCES: dict[str, tuple[str, ...]] = {
    "indication": ("indication",),
    "findings_impression": ("findings", "impression"),
    "redacted": ("findings", "impression"),
}
#: Sources whose text passes through :func:`~cxrkit.text.redact.redact_label_terms`.
REDACTED_SOURCES: frozenset[str] = frozenset({"redacted"})
#: The text fusion reads by default: the indication, which the labels were not extracted from.
DEFAULT_TEXT_SOURCE = "indication"


def report_text(table: pd.DataFrame, fields: Sequence[str] = ("indication",), sep: str = " ") -> pd.Series:
    """Join the report sections ``fields`` of each row into one string, skipping missing sections (notebook 03)."""
    if isinstance(fields, str):
        fields = (fields,)
    if not fields:
        raise ValueError("fields is empty: name at least one report section, e.g. ('indication',)")
    missing = [f for f in fields if f not in table.columns]
    if missing:
        raise KeyError(f"report section(s) {missing} not in the table; columns are {list(table.columns)}")

    def join(row: pd.Series) -> str:
        parts = [str(row[f]).strip() for f in fields if isinstance(row[f], str) and row[f].strip()]
        return sep.join(parts)

    if len(table) == 0:
        return pd.Series([], index=table.index, dtype=object, name="text")
    return table[list(fields)].apply(join, axis=1).astype(object).rename("text")


def text_for_source(table: pd.DataFrame, source: str = DEFAULT_TEXT_SOURCE) -> pd.Series:
    """Return the text of each row for one arm of the leakage lesson: a key of :data:`TEXT_SOURCES` (notebook 03)."""
    if source not in TEXT_SOURCES:
        raise ValueError(f"unknown text source {source!r}; choose one of {list(TEXT_SOURCES)}")
    text = report_text(table, TEXT_SOURCES[source])
    if source in REDACTED_SOURCES:
        text = text.map(redact_label_terms)
    return text.rename(source)
