"""Saving a recipe's artifact folder so that a reader never sees half of it (notebooks 02–06 load these)."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any


def publish(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by the finished ``tmp`` folder: move the old one aside, move the new one in, delete the old."""
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def history_meta(history: Any) -> dict[str, Any]:
    """The facts of a training ``History`` that a recipe stores in its ``meta.json``."""
    return {"best_epoch": history.best_epoch, "monitor": history.monitor, "stopped_early": history.stopped_early,
            "device": history.device, "settings": history.settings}
