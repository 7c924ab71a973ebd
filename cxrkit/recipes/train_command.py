"""``cxrkit train``: notebook 02's image model trained outside a notebook — on one device, or on several under ``torchrun``.

    cxrkit train --profile class                                   # one process: CPU, or the GPU when there is one
    torchrun --standalone --nproc_per_node=4 -m cxrkit train --profile full -p dataset mimic-cxr-jpg -p data_root /data/mimic

It runs the same recipe as notebook 02 (:func:`cxrkit.recipes.image.trained_image_model`) and saves into
``CXRKIT_HOME`` under the same key, so a notebook opened afterwards loads the model instead of training it. Under
torchrun (:mod:`cxrkit.train.distributed`) rank 0 prepares the dataset while the others wait, every rank trains its
share of each global batch (``batch_size`` stays the recipe's global batch), and only rank 0 writes the model, the
training state and the log. The training state is kept after every epoch: run the same command again after an
interruption and it resumes where the last finished epoch left it (``--stop-after N`` pauses on purpose, for jobs
with a time limit; exit code 75). Taught in notebook 02 ("Past one laptop"); README "Training on GPUs".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch

from cxrkit.devices import describe_device, pick_device, resolve_amp
from cxrkit.labels import evaluation_targets
from cxrkit.metrics import macro_auroc
from cxrkit.prep import prepare
from cxrkit.profiles import PROFILES, get_profile, validate_params
from cxrkit.recipes.image import ImageRecipe, image_state_path, load_image_model, trained_image_model
from cxrkit.runner import parse_overrides
from cxrkit.train import TrainingPaused
from cxrkit.train.distributed import World, all_gather_objects, barrier, close_distributed, init_distributed

__all__ = ["PAUSED_EXIT", "run_report", "train_image_model"]

#: Exit code of a run paused by ``--stop-after`` (EX_TEMPFAIL: "try again"), so a job script can tell it from done.
PAUSED_EXIT = 75


def _say(w: World, message: str) -> None:
    if w.rank == 0:
        print(message, flush=True)


def run_report(w: World, device: torch.device) -> dict[str, Any]:
    """What this run trains on: world size, backend, every rank's device (as that rank describes it), the precision (notebook 02)."""
    dtype = resolve_amp(device, None)
    devices = all_gather_objects(describe_device(device))
    return {"world_size": w.size, "backend": w.backend or "none (one process)", "devices": devices,
            "precision": f"{str(dtype).removeprefix('torch.')} autocast" if dtype else "float32"}


def train_image_model(P: dict[str, Any], *, pause_after: int | None = None, force: bool = False) -> dict[str, Any]:
    """Train (or resume, or load) notebook 02's image model for ``P`` on this process's share of the world; return a summary (notebook 02)."""
    w = init_distributed()
    device = w.device if w.distributed else pick_device()
    report = run_report(w, device)
    _say(w, "cxrkit train: " + "; ".join(f"{k} {v if not isinstance(v, list) else ', '.join(dict.fromkeys(v))}"
                                          for k, v in report.items()))
    if w.rank == 0:  # one rank builds the cohort and the image cache; the others then read them
        prepared = prepare(P, progress=True)
    barrier()
    if w.rank != 0:
        prepared = prepare(P, progress=False)
    recipe = ImageRecipe.read(P)
    if not force and (found := load_image_model(recipe, prepared)) is not None:
        _say(w, f"cxrkit train: already trained, nothing to do: {found.folder}")
        return {"folder": str(found.folder), "trained": False, "rank": w.rank, **report}
    state = image_state_path(recipe)
    if state.is_file():
        _say(w, f"cxrkit train: resuming from {state}")
    start = time.perf_counter()
    trained = trained_image_model(P, prepared, progress=w.rank == 0, force=True, resumable=True, pause_after=pause_after)
    rows, _ = prepared.subset("test")
    best = trained.history.best()
    summary = {"folder": str(trained.folder), "trained": True, "rank": w.rank,
               "seconds": round(time.perf_counter() - start, 1), "best_epoch": trained.history.best_epoch,
               "val_auroc": round(float(best["val_auroc"]), 4),
               "test_auroc": round(macro_auroc(evaluation_targets(rows, trained.labels),
                                               trained.predictions.on(rows, trained.labels)), 4),
               "train_images_per_s": round(trained.history.images_per_s, 1), **report}
    return summary


def _cmd_train(args: argparse.Namespace) -> int:
    P = get_profile(args.profile, **validate_params(parse_overrides(args.param or []), args.profile))
    try:
        summary = train_image_model(P, pause_after=args.stop_after, force=args.force)
    except TrainingPaused as paused:
        print(f"cxrkit train: {paused}", file=sys.stderr)
        return PAUSED_EXIT
    finally:
        close_distributed()
    if summary.pop("trained") and summary.pop("rank") == 0:
        print(json.dumps(summary, indent=1))
    return 0


def _epochs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of epochs, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add ``cxrkit train`` to the command line."""
    p = subparsers.add_parser("train", help="train notebook 02's image model (one device, or several under torchrun)")
    p.add_argument("--profile", default="class", choices=sorted(PROFILES), help="parameter set (default: class)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override one parameter (repeatable), e.g. -p dataset mimic-cxr-jpg -p data_root /data/mimic")
    p.add_argument("--stop-after", type=_epochs, default=None, metavar="N",
                   help=f"pause after N epochs of this run, keeping the state to resume from (exit {PAUSED_EXIT})")
    p.add_argument("--force", action="store_true", help="train again even when a saved model matches")
    p.set_defaults(func=_cmd_train)
