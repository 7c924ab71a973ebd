"""Saving a recipe's artifact folder so that a reader never sees half of it (notebooks 02–06 load these)."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


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


def history_meta(history: Any) -> dict[str, Any]:
    """The facts of a training ``History`` that a recipe stores in its ``meta.json``."""
    return {"best_epoch": history.best_epoch, "monitor": history.monitor, "stopped_early": history.stopped_early,
            "device": history.device, "settings": history.settings}


def write_training_files(tmp: Path, model: Any, history: Any, predictions: Any) -> None:
    """Write what every trained model's folder holds: ``model.pt`` (a CPU ``state_dict``), history and predictions."""
    import torch

    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
    history.table.to_csv(tmp / "history.csv", index=False)
    predictions.to_csv(tmp / "predictions.csv", index=False)


def write_meta(tmp: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` (the artifact's key, data fingerprint and training facts)."""
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


def read_training_files(folder: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Read back what :func:`write_training_files` wrote: the ``History`` (facts from ``meta``) and the predictions table."""
    import pandas as pd

    from cxrkit.train import History

    history = History(pd.read_csv(folder / "history.csv"), meta.get("best_epoch"), meta.get("monitor", "val_auroc"),
                      bool(meta.get("stopped_early")), meta.get("device", "unknown"), str(folder / "model.pt"),
                      meta.get("settings") or {})
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"image_id": str, "split": str},
                              float_precision="round_trip")
    return history, predictions


def split_probabilities(predictions: Any, labels: list[str], split: str) -> Any:
    """Return one split's rows of a stored predictions table (``"validate"`` or ``"test"``), indexed by ``image_id``."""
    part = predictions[predictions["split"] == split]
    if part.empty:
        raise ValueError(f"no predictions for split {split!r}; the recipes store validate and test")
    return part.set_index("image_id")[labels]
