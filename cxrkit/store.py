"""The one artifact store: where every trained model's folder is written, found and checked (notebooks 02–06 load these).

An artifact is a folder ``<kind>/<key hash>`` under ``CXRKIT_HOME`` (or among the course models the kit ships,
:data:`cxrkit.paths.SHIPPED_ROOT`). Its key is the artifact's kind + its parameters + its inputs' keys + a code
version (:func:`cxrkit.paths.artifact_key`); its ``meta.json`` records that key and a fingerprint of the data it was
trained on. This module owns the rest of the contract, so no recipe repeats it:

* :func:`find` — the folder of a key whose files are all there, whose stored key equals the key asked for (after the
  JSON round trip the key went through) and whose data fingerprint matches; else None;
* :func:`save` — a staged write and an atomic publish (:func:`staged_folder`), so a reader never sees half a folder;
* :func:`fingerprint` — the one way a recipe hashes the data it trained on;
* the files every trained model's folder holds (:data:`MODEL_FILES`): weights, history, predictions and meta.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from cxrkit.paths import artifact_dir, find_artifact
from cxrkit.predictions import Predictions
from cxrkit.train import History
from cxrkit.train.distributed import barrier, is_main

__all__ = ["MODEL_FILES", "CONTROL_FILES", "Stored", "jsonable", "fingerprint", "find", "save", "staged_folder",
           "publish", "write_model_files", "read_history", "read_predictions", "load_state"]

#: The files of a trained model's folder: its weights, training history, validation + test predictions, meta.
MODEL_FILES: tuple[str, ...] = ("model.pt", "history.csv", "predictions.csv", "meta.json")
#: The files of a control model's folder (notebook 05's controls store no predictions table).
CONTROL_FILES: tuple[str, ...] = ("model.pt", "history.csv", "meta.json")


@dataclass(frozen=True)
class Stored:
    """One artifact folder the store found or wrote, with its ``meta.json`` (notebook 02)."""

    folder: Path
    meta: dict[str, Any]


def jsonable(value: Any) -> Any:
    """Return ``value`` as it reads back from ``meta.json`` (tuples become lists, paths and other objects strings)."""
    return json.loads(json.dumps(value, default=str))


def fingerprint(lines: Iterable[str], *, ordered: bool = False) -> str:
    """Return a short sha256 of the data an artifact was made from, one line per item, sorted unless ``ordered`` (notebook 02)."""
    items = list(lines) if ordered else sorted(lines)
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def find(kind: str, key: Mapping[str, Any], data_fingerprint: str | None = None, *,
         files: Iterable[str] = MODEL_FILES, folder: str | Path | None = None) -> Stored | None:
    """Return the stored artifact of ``key`` — ``CXRKIT_HOME`` first, then what the kit ships — or None when absent, incomplete or stale (notebook 02).

    Stale means its ``meta.json`` records another key, or (when ``data_fingerprint`` is given) another data
    fingerprint. ``folder`` checks one given folder instead of looking the key up.
    """
    files = tuple(files)
    found = Path(folder) if folder is not None else find_artifact(kind, dict(key), files)
    if found is None or not all((found / name).is_file() for name in files):
        return None
    meta = json.loads((found / "meta.json").read_text())
    if meta.get("key") != jsonable(dict(key)):
        return None
    if data_fingerprint is not None and meta.get("data_fingerprint") != data_fingerprint:
        return None
    return Stored(found, meta)


def save(kind: str, key: Mapping[str, Any], data_fingerprint: str, write: Callable[[Path], Mapping[str, Any]], *,
         folder: str | Path | None = None) -> Stored:
    """Write an artifact of ``key`` atomically: ``write(tmp)`` fills a staged folder and returns its meta facts (notebook 02).

    The folder is ``CXRKIT_HOME/<kind>/<key hash>`` unless ``folder`` is given; ``meta.json`` holds ``key``,
    ``data_fingerprint`` and what ``write`` returned. The finished folder replaces any older one in one rename. Under
    ``torchrun`` only rank 0 writes; every rank waits for it and returns the published folder.
    """
    target = Path(folder) if folder is not None else artifact_dir(kind, dict(key))
    if not is_main():  # under torchrun only rank 0 writes; the others read what it published
        barrier()
        return Stored(target, json.loads((target / "meta.json").read_text()))
    with staged_folder(target) as tmp:
        meta = {"key": dict(key), "data_fingerprint": data_fingerprint, **write(tmp)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    barrier()
    return Stored(target, jsonable(meta))


def publish(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by the finished ``tmp`` folder: move the old one aside, move the new one in, delete the old."""
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


@contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``folder``; publish it on success, delete it on any failure."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        publish(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_model_files(tmp: Path, model: nn.Module, history: History, predictions: Predictions | None = None) -> dict[str, Any]:
    """Write a trained model's files into ``tmp`` (a CPU ``state_dict``, the history, the predictions if any) and return the history's meta facts."""
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
    history.table.to_csv(tmp / "history.csv", index=False)
    if predictions is not None:
        predictions.to_csv(tmp / "predictions.csv")
    return {"best_epoch": history.best_epoch, "monitor": history.monitor, "stopped_early": history.stopped_early,
            "device": history.device, "settings": history.settings}


def read_history(stored: Stored) -> History:
    """Read back the ``History`` :func:`write_model_files` wrote (its facts from ``meta.json``)."""
    meta = stored.meta
    return History(pd.read_csv(stored.folder / "history.csv"), meta.get("best_epoch"), meta.get("monitor", "val_auroc"),
                   bool(meta.get("stopped_early")), meta.get("device", "unknown"), str(stored.folder / "model.pt"),
                   meta.get("settings") or {})


def read_predictions(stored: Stored) -> Predictions:
    """Read back the stored :class:`~cxrkit.predictions.Predictions` (the labels ``meta.json`` names), every float exactly."""
    return Predictions.read_csv(stored.folder / "predictions.csv", stored.meta.get("labels"))


def load_state(model: nn.Module, stored: Stored) -> nn.Module:
    """Load the stored weights into ``model`` (``torch.load(weights_only=True)``, on the CPU) and return it."""
    model.load_state_dict(torch.load(stored.folder / "model.pt", map_location="cpu", weights_only=True))
    return model
