"""The one predictions contract: every model, fusion and baseline of the kit returns a :class:`Predictions` (notebooks 02–06).

A :class:`Predictions` holds one row per scored film — its ``image_id``, its ``split`` and one probability per label
(the table :func:`cxrkit.metrics.predictions_table` builds and ``predictions.csv`` stores) — and answers the three
questions the notebooks ask of it, so none of them realigns an index by hand:

* ``.split("test")`` — one split's probabilities, indexed by ``image_id``;
* ``.on(rows)`` — an ``N×K`` array in the order of a study table's rows (or of a list of image ids), with a clear
  error naming the films it never scored;
* ``.wide()`` — every scored film's probabilities, indexed by ``image_id``.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrkit.metrics import predictions_table

__all__ = ["Predictions", "film_positions"]


def film_positions(known: Sequence[str] | pd.Index, rows: pd.DataFrame | Sequence | np.ndarray, *, what: str,
                   hint: str) -> np.ndarray:
    """Return where each of ``rows``' films (a study table with ``image_id``, or image ids) sits among ``known`` ids (notebooks 04, 07).

    A film not among them raises one ``KeyError``: "no <what> for n of the N films (e.g. '<id>'); <hint>".
    """
    ids = (rows["image_id"] if isinstance(rows, pd.DataFrame) else pd.Series(list(rows))).astype(str)
    position = pd.Series(np.arange(len(known)), index=pd.Index(known).astype(str))
    missing = ids[~ids.isin(position.index)]
    if len(missing):
        raise KeyError(f"no {what} for {len(missing)} of the {len(ids)} films (e.g. {missing.iloc[0]!r}); {hint}")
    return position.loc[ids].to_numpy()


class Predictions:
    """A model's probabilities for the films it scored: ``image_id``, ``split``, one column per label (notebook 02)."""

    def __init__(self, table: pd.DataFrame, labels: Sequence[str] | None = None):
        missing = [c for c in ("image_id", "split") if c not in table.columns]
        if missing:
            raise ValueError(f"a predictions table needs the columns 'image_id' and 'split'; missing {missing}")
        self.labels = [str(c) for c in table.columns if c not in ("image_id", "split")] if labels is None else list(labels)
        absent = [c for c in self.labels if c not in table.columns]
        if absent:
            raise ValueError(f"the predictions table has no column for {absent}")
        ids = table["image_id"].astype(str)
        if ids.duplicated().any():
            raise ValueError(f"image ids must be unique in a predictions table; repeated: {ids[ids.duplicated()].tolist()[:5]}")
        self.table = table.assign(image_id=ids)[["image_id", "split", *self.labels]].reset_index(drop=True)

    @classmethod
    def of(cls, ids: Sequence | np.ndarray, split: str | Sequence | np.ndarray, probs: np.ndarray,
           labels: Sequence[str]) -> Predictions:
        """Return the predictions of ``probs`` (``N×K``) for films ``ids`` of ``split`` (notebook 02)."""
        return cls(predictions_table(np.asarray(ids).astype(str), split, probs, list(labels)), labels)

    @classmethod
    def concat(cls, parts: Iterable[Predictions]) -> Predictions:
        """Return the predictions of several parts (e.g. one per split) as one; every part must predict the same labels."""
        parts = list(parts)
        if not parts:
            raise ValueError("concat needs at least one Predictions")
        if any(p.labels != parts[0].labels for p in parts):
            raise ValueError(f"the parts predict different labels: {[p.labels for p in parts]}")
        return cls(pd.concat([p.table for p in parts], ignore_index=True), parts[0].labels)

    @classmethod
    def read_csv(cls, path: str | Path, labels: Sequence[str] | None = None) -> Predictions:
        """Read a stored ``predictions.csv``, every float exactly as written."""
        table = pd.read_csv(path, dtype={"image_id": str, "split": str}, float_precision="round_trip")
        return cls(table, labels)

    def to_csv(self, path: str | Path) -> None:
        """Write the table as ``predictions.csv`` (what the artifact store keeps)."""
        self.table.to_csv(path, index=False)

    @property
    def splits(self) -> list[str]:
        """The splits scored, in table order."""
        return list(dict.fromkeys(self.table["split"]))

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        counts = self.table["split"].value_counts().reindex(self.splits).to_dict()
        return f"Predictions({len(self)} films {counts}, {len(self.labels)} labels)"

    def split(self, name: str) -> pd.DataFrame:
        """Return one split's probabilities (``"validate"`` or ``"test"``), indexed by ``image_id`` (notebook 02)."""
        part = self.table[self.table["split"] == name]
        if part.empty:
            raise ValueError(f"no predictions for split {name!r}; these predictions hold {self.splits}")
        return part.set_index("image_id")[self.labels]

    def wide(self) -> pd.DataFrame:
        """Return every scored film's probabilities, indexed by ``image_id`` (one column per label)."""
        return self.table.set_index("image_id")[self.labels]

    def on(self, rows: pd.DataFrame | Sequence | np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
        """Return the ``N×K`` probabilities of ``rows`` (a study table with ``image_id``, or image ids), in their order (notebook 04)."""
        wide = self.wide()
        rows_at = film_positions(wide.index, rows, what="prediction", hint=f"these predictions hold {self.splits}")
        return wide.iloc[rows_at][list(labels) if labels is not None else self.labels].to_numpy(dtype=float)
