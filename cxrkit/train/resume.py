"""The training state :func:`cxrkit.train.fit` writes after every epoch, so a long run that is interrupted resumes.

One file holds everything the next epoch depends on: the weights, the optimiser's moments, the learning-rate
scheduler and gradient scaler, the loader's epoch (which seeds its shuffle and the ``DistributedSampler``), every
rank's random-number state (augmentation draws from it), and the early-stopping state with the best weights so
far and the history rows. It is written atomically (a temporary file, then one rename), by rank 0 only, and read
with ``torch.load(weights_only=True)``, so no pickled code runs. A state written by a different run (other
epochs, learning rate, batch, world size, data) is refused by name rather than silently mixed in. Taught in
notebook 02 (image CNN: "Past one laptop"); README "Training on GPUs".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from cxrkit.atomic import replacing
from cxrkit.errors import CxrkitError

__all__ = ["STATE_FORMAT", "TrainingPaused", "TrainingStateMismatch", "save_training_state", "load_training_state",
           "rng_state", "set_rng_state"]

#: Version of the state file's layout; a file of another version is refused.
STATE_FORMAT = 1


class TrainingPaused(CxrkitError):
    """``fit(pause_after=N)`` trained its N epochs and left a resumable state: run the same call (or command) again to go on."""

    def __init__(self, path: str | Path, epoch: int, epochs: int):
        self.path, self.epoch, self.epochs = Path(path), epoch, epochs
        super().__init__(f"paused after epoch {epoch} of {epochs}; the training state is in {path} — "
                         "run the same command again to resume")


class TrainingStateMismatch(CxrkitError, ValueError):
    """A training state file belongs to another run than the one asked for; the message names the file and what differs."""


def rng_state() -> dict[str, Any]:
    """This process's torch random-number state (CPU, and the current CUDA device's when there is one)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore a state :func:`rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader (or a resumed run) sees the old file or the new one, never half of one."""
    with replacing(path) as tmp:
        torch.save({"format": STATE_FORMAT, **state}, tmp)


def load_training_state(path: str | Path, run: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the training state at ``path`` (None when there is none), after checking it was written by ``run``'s settings."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainingStateMismatch(f"training state {path} cannot be read ({type(err).__name__}: {err}); "
                                    "delete it to start the run afresh") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingStateMismatch(f"training state {path} has another format than {STATE_FORMAT}; delete it to start afresh")
    saved = state.get("run", {})
    differs = [f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in run.items() if saved.get(k) != v]
    if differs:
        raise TrainingStateMismatch(f"training state {path} was written by another run ({'; '.join(differs)}); "
                                    "delete it, or give this run another state file")
    return state
