"""One training loop for every model in the kit: masked multi-label BCE, AdamW, a per-epoch progress bar,
early stopping on validation macro AUROC, best-weights restore, state_dict checkpoints, and a history.

Batches are ``(inputs, targets)``: ``inputs`` a tensor (``model(inputs)``) or a dict of tensors
(``model(**inputs)``), ``targets`` a float ``B×K`` tensor with NaN where a label is unknown and -1
where it is uncertain (mapped by the uncertainty policy). Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import collections
import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np
import pandas as pd
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import replacing
from ..devices import default_channels_last, describe_device, pick_device, resolve_amp, synchronize
from ..metrics import macro_auroc
from .data import BatchLoader, pinned, prefetch
from .distributed import all_gather_objects, broadcast_buffers, gather_rows, world
from .resume import TrainingPaused, load_training_state, rng_state, save_training_state, set_rng_state
from .losses import apply_uncertainty_policy, balanced_pos_weight, masked_bce_with_logits

__all__ = ["History", "SCHEDULES", "lr_schedule", "fit", "predict", "load_checkpoint", "refresh_batch_norm", "HISTORY_COLUMNS"]

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Columns of :attr:`History.table`, one row per epoch.
#: What ``fit`` may choose its best epoch by.
MONITORS: tuple[str, ...] = ("val_auroc", "val_loss")
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_auroc", "val_auroc", "seconds", "train_images_per_s")


@dataclass
class History:
    """What :func:`fit` did: one table row per epoch, the best epoch (whose weights the model now holds), and where (notebook 02)."""

    table: pd.DataFrame
    best_epoch: int | None
    monitor: str
    stopped_early: bool
    device: str
    checkpoint_path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        """Median training throughput in images/s, leaving out the warm-up first epoch when there are more."""
        values = self.table["train_images_per_s"]
        return float(values.iloc[1:].median() if len(values) > 1 else values.median())

    def best(self) -> pd.Series:
        """The table row of the best epoch (the weights the model was restored to)."""
        if self.best_epoch is None:
            return self.table.iloc[-1]
        return self.table.loc[self.table["epoch"] == self.best_epoch].iloc[0]

    def figure(self):
        """Return a plotly learning-curve figure: loss and AUROC per epoch, train vs validation, best epoch marked.

        Overfitting shows as the validation loss turning up (and validation AUROC flattening or falling)
        while the training loss keeps falling.
        """
        t = self.table
        fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (masked BCE)", "macro AUROC"))
        styles = {"train": dict(color="#1f77b4"), "val": dict(color="#d62728")}
        for col, metric in enumerate(("loss", "auroc"), start=1):
            for split, name in (("train", "train"), ("val", "validation")):
                fig.add_scatter(x=t["epoch"], y=t[f"{split}_{metric}"], mode="lines+markers", name=name,
                                line=styles[split], legendgroup=split, showlegend=col == 1, row=1, col=col)
        if self.best_epoch is not None:
            for col in (1, 2):
                fig.add_vline(x=self.best_epoch, line_dash="dot", line_color="gray", row=1, col=col)
            fig.add_annotation(x=self.best_epoch, y=1, yref="paper", text=f"best (restored): epoch {self.best_epoch}",
                               showarrow=False, yanchor="bottom", xref="x2")
        fig.update_xaxes(title_text="epoch", dtick=1 if len(t) <= 20 else None)
        fig.update_layout(title="Learning curves", height=380, width=900, legend=dict(orientation="h", y=-0.25))
        return fig

    def __repr__(self) -> str:
        best = self.best()
        return (f"History({len(self.table)} epochs on {self.device}, best epoch {self.best_epoch}: "
                f"val_auroc={best['val_auroc']:.3f}, val_loss={best['val_loss']:.3f}; "
                f"{self.images_per_s:.0f} train images/s{', stopped early' if self.stopped_early else ''})")


# ------------------------------------------------------------------------------------------ helpers

def _to_device(inputs: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(inputs, Tensor):
        if device.type == "cuda" and inputs.device.type == "cpu" and not inputs.is_pinned():
            inputs = inputs.pin_memory()  # page-locked, so the copy below overlaps with compute
        inputs = inputs.to(device, non_blocking=True)
        if channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs
    if isinstance(inputs, dict):
        return {k: _to_device(v, device, channels_last) for k, v in inputs.items()}
    return inputs


def _forward(model: nn.Module, inputs: Any) -> Tensor:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _split_batch(batch: Any) -> tuple[Any, Tensor | None]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


#: Share of a GPU's free memory a whole in-memory dataset may take before it stays in (pinned) host memory instead.
DEVICE_DATASET_SHARE = 0.5


def _nbytes(dataset: Any) -> int:
    tensors = [getattr(dataset, "images", None), getattr(dataset, "labels", None),
               *getattr(dataset, "inputs", {}).values()]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))


def _place(loader: Iterable, device: torch.device) -> Iterable:
    """Move a :class:`BatchLoader`'s dataset onto ``device`` — on CUDA only when it fits in part of the free memory."""
    if not isinstance(loader, BatchLoader):
        return loader
    if device.type == "cuda" and getattr(loader.dataset, "device", device) != device:
        free, _ = torch.cuda.mem_get_info(device)
        if _nbytes(loader.dataset) > DEVICE_DATASET_SHARE * free:
            return loader  # batches are cut on the host and copied from pinned memory (_to_device)
    return loader.to(device)


def _sharded(loader: Iterable, *, split_batch: bool) -> BatchLoader:
    """This rank's share of a loader under torchrun (a :class:`BatchLoader` only: it knows each batch's dataset rows)."""
    if not isinstance(loader, BatchLoader):
        raise TypeError(f"under torchrun, fit and predict need cxrkit.train.BatchLoader loaders (they know each batch's "
                        f"dataset rows, so evaluation can drop the sampler's padding); got {type(loader).__name__}")
    w = world()
    return loader.sharded(w.rank, w.size, split_batch=split_batch)


def _indexed(loader: Iterable, with_rows: bool, device: torch.device) -> Iterator[tuple[Tensor | None, Any]]:
    """Iterate ``(dataset rows or None, batch)``; batches cut on the host for a GPU are pinned and prefetched in a thread."""
    batches = loader.indexed() if with_rows else ((None, batch) for batch in loader)  # type: ignore[attr-defined]
    on_host = device.type == "cuda" and getattr(getattr(loader, "dataset", None), "device", device) != device
    yield from prefetch(pinned(batches)) if on_host else batches


def _gathered(index: Tensor, logits: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Every rank's (logits, targets) rows, each dataset row once, in row order (:func:`gather_rows`)."""
    packed = logits.float().reshape(len(logits), -1)
    k = packed.shape[1]
    if targets is not None:
        packed = torch.cat([packed, targets.float().reshape(len(targets), -1).to(packed.device)], dim=1)
    _, packed = gather_rows(index, packed)
    out = packed[:, :k].reshape(-1, *logits.shape[1:])
    return out, (packed[:, k:].reshape(-1, *targets.shape[1:]) if targets is not None else None)


def _wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` (batch norm synchronised across GPUs; on CPUs rank 0's buffers are broadcast)."""
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


@contextlib.contextmanager
def _augment_mode(loader: Iterable, training: bool) -> Iterator[None]:
    """Switch a loader's dataset augmentation (an nn.Module, like ImageAugment) on or off for one pass."""
    augment = getattr(getattr(loader, "dataset", None), "augment", None)
    if not isinstance(augment, nn.Module):
        yield
        return
    before = augment.training
    augment.train(training)
    try:
        yield
    finally:
        augment.train(before)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else pick_device()


@torch.no_grad()
def _collect_logits(model: nn.Module, loader: Iterable, device: torch.device, dtype: torch.dtype | None,
                    channels_last: bool) -> tuple[Tensor, Tensor | None]:
    distributed = world().distributed
    if distributed:
        loader = _sharded(loader, split_batch=False)
    model.eval()
    logits, targets, rows = [], [], []
    with _augment_mode(loader, False):
        for index, batch in _indexed(loader, distributed, device):
            inputs, y = _split_batch(batch)
            with _autocast(device, dtype):
                out = _forward(model, _to_device(inputs, device, channels_last))
            logits.append(out.float())
            if y is not None:
                targets.append(torch.as_tensor(y, dtype=torch.float32))
            if index is not None:
                rows.append(index)
    if not logits:
        raise ValueError("the loader yielded no batches")
    out, tgt = torch.cat(logits).cpu(), (torch.cat([t.cpu() for t in targets]) if targets else None)
    if distributed:  # every rank's rows, the sampler's padding dropped: each sample evaluated once
        out, tgt = _gathered(torch.cat(rows), out, tgt)
    return out, tgt


def _auroc(targets: Tensor, logits: Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return macro_auroc(apply_uncertainty_policy(targets, "ignore").numpy(), torch.sigmoid(logits).numpy())


def _loader_targets(loader: Iterable) -> Tensor:
    labels = getattr(getattr(loader, "dataset", None), "labels", None)
    if isinstance(labels, Tensor) and labels.ndim == 2:
        return labels.detach().cpu()
    return torch.cat([torch.as_tensor(_split_batch(b)[1], dtype=torch.float32).cpu() for b in loader])


def refresh_batch_norm(model: nn.Module, batches: Iterable[Any], device: torch.device | None = None,
                       dtype: torch.dtype | None = None) -> int:
    """Re-estimate every batch-norm layer's running mean and variance from ``batches`` of inputs under the current weights (notebook 02).

    Batch norm normalises with batch statistics while training but with a running average of them in
    eval mode; early in training, at a high learning rate, that average lags the changing weights and
    eval-mode outputs drift from what training saw. A no-gradient pass over a few batches, with each
    layer's running statistics reset and averaged cumulatively, fixes that. Returns the number of
    layers refreshed (0 when there are no inputs or no batch-norm layers with running statistics).
    """
    inputs = list(batches)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not inputs or not norms:
        return 0
    device = _model_device(model) if device is None else device
    momenta, was_training = [m.momentum for m in norms], model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches below
    model.train()
    try:
        with torch.no_grad():
            for x in inputs:
                with _autocast(device, dtype):
                    _forward(model, x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


#: The learning-rate schedules :func:`fit` knows.
SCHEDULES = ("constant", "onecycle", "cosine")


def _steps_per_epoch(loader: Iterable) -> int:
    try:
        return max(len(loader), 1)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("a learning-rate schedule needs a loader with a length (len(loader) batches per epoch)") from None


def lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, *, lr: float, total_steps: int,
                warmup: float = 0.25) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Return the per-batch learning-rate scheduler of ``schedule`` (None for ``"constant"``) over ``total_steps`` (notebook 02).

    ``"onecycle"`` is torch's ``OneCycleLR`` (peak ``lr`` after ``warmup`` of the steps, cosine annealing, Adam's
    first momentum cycled inversely); ``"cosine"`` warms up linearly over ``warmup`` of the steps, then follows a
    half cosine to 0 — also what ``"onecycle"`` falls back to for runs of a handful of steps.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup is a share of the steps in [0, 1), got {warmup!r}")
    if schedule == "constant":
        return None
    total_steps = max(int(total_steps), 1)
    ramp = max(int(round(warmup * total_steps)), 1)
    if schedule == "onecycle" and 2 <= ramp <= total_steps - 2:  # torch needs two non-empty phases
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                                   pct_start=ramp / total_steps, anneal_strategy="cos")

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        return 0.5 * (1.0 + math.cos(math.pi * min(step - ramp, total_steps - ramp) / max(total_steps - ramp, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------------------- fit

def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: LossFn | None = None,
    pos_weight: Literal["balanced", "sqrt_balanced"] | Tensor | np.ndarray | None = None,
    uncertainty: str = "ignore",
    early_stopping_patience: int | None = 3,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    seed: int | None = None,
    amp: bool | str | None = None,
    channels_last: bool | None = None,
    bn_refresh_batches: int = 0,
    schedule: str = "constant",
    warmup: float = 0.25,
    monitor: str = "val_auroc",
    state_path: str | Path | None = None,
    pause_after: int | None = None,
) -> History:
    """Train ``model`` with AdamW on masked multi-label BCE, keep the epoch with the best validation macro AUROC, and return its history (notebook 02).

    * ``uncertainty`` maps -1 training targets (``"ignore"`` → unknown, ``"ones"``, ``"zeros"``);
      validation always scores certain labels only (-1 → unknown).
    * ``pos_weight="balanced"`` weighs each label's positives by its negative/positive ratio in the
      training labels, ``"sqrt_balanced"`` by its square root (:func:`balanced_pos_weight`); ``loss`` replaces the masked BCE with any ``loss(logits, targets)``.
    * Early stopping: after ``early_stopping_patience`` epochs without a better validation macro
      AUROC (labels with both classes present; ties go to the lower validation loss; validation loss
      alone if no label qualifies) training stops;
      the best epoch's weights are restored either way, and saved as a ``state_dict`` to
      ``checkpoint_path`` (load with :func:`load_checkpoint`). Without ``val_loader`` the last weights stay.
    * On CUDA: mixed precision (bf16, or fp16 with a gradient scaler); on CUDA and CPU: channels-last
      memory (:func:`~cxrkit.devices.default_channels_last`), unless ``amp`` (False/True/"bf16"/"fp16")
      or ``channels_last`` say otherwise. ``seed`` seeds torch
      (dropout, augmentation); the loaders' own seeds fix the batch order.
    * ``schedule``: ``"constant"`` (``lr`` throughout), ``"onecycle"`` (the learning rate rises from ``lr/25``
      to ``lr`` over the first ``warmup`` share of all steps, then anneals to ~0 along a cosine; Smith &
      Topin 2019) or ``"cosine"`` (a linear warm-up over ``warmup`` of the steps, then a cosine to 0). The
      schedule spans ``epochs`` epochs, stepped once per batch; early stopping may end it sooner.
    * ``bn_refresh_batches=N`` (> 0): after each training epoch, batch-norm running statistics are
      re-estimated from that epoch's last N training batches under the epoch's final weights
      (:func:`refresh_batch_norm`), so validation, the checkpoint and the returned model use
      statistics of the current weights rather than a lagging running average. Off (0) by default.
    * ``monitor``: ``"val_auroc"`` (the default: macro AUROC of the outputs as per-label logits) or ``"val_loss"``:
      the best epoch is the one with the lowest validation loss and no AUROC is computed (its history columns stay
      NaN) — for a model whose outputs are not per-label logits, such as notebook 07's contrastive alignment model,
      whose ``loss`` reads each batch's rows as pairs.
    * ``state_path``: after every epoch the whole training state (:mod:`cxrkit.train.resume`) is written there
      atomically; a call that finds one resumes after its epoch and ends with the weights an uninterrupted run ends
      with (same machine). ``pause_after=N`` stops after N epochs of this call, leaving that state, and raises
      :class:`~cxrkit.train.resume.TrainingPaused` (for jobs with a time limit).
    * Under ``torchrun`` (:mod:`cxrkit.train.distributed`; loaders must be :class:`BatchLoader`\\ s) the model is
      wrapped in ``DistributedDataParallel`` (batch norm synchronised on CUDA), each rank trains on its
      ``DistributedSampler`` share of every global batch of the loader's ``batch_size``, evaluation gathers every
      rank's rows (padding dropped) before any loss or AUROC, and only rank 0 writes files or shows a bar. A loss that
      reads a batch as pairs (notebook 07's) then sees each rank's share of the batch only.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if bn_refresh_batches < 0:
        raise ValueError(f"bn_refresh_batches must be >= 0, got {bn_refresh_batches}")
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {MONITORS}, got {monitor!r}")
    if loss is not None and pos_weight is not None:
        raise ValueError("give either a custom loss or pos_weight (which configures the default masked BCE), not both")
    if pause_after is not None and (state_path is None or pause_after < 1):
        raise ValueError("pause_after needs a state_path to resume from and a positive number of epochs")
    if seed is not None:
        torch.manual_seed(seed)
    w = world()
    main = w.rank == 0
    device = w.device if w.distributed and device is None else pick_device(device)
    dtype = resolve_amp(device, amp)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    apply_uncertainty_policy(torch.zeros(1), uncertainty)  # validates the policy name early

    model.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    train_loader = _place(train_loader, device)
    val_loader = _place(val_loader, device) if val_loader is not None else None

    if isinstance(pos_weight, str):
        powers = {"balanced": 1.0, "sqrt_balanced": 0.5}
        if pos_weight not in powers:
            raise ValueError(f"pos_weight must be one of {sorted(powers)}, a per-label tensor, or None; got {pos_weight!r}")
        pos_weight = balanced_pos_weight(apply_uncertainty_policy(_loader_targets(train_loader), uncertainty),
                                         power=powers[pos_weight])
    weight = torch.as_tensor(pos_weight, dtype=torch.float32, device=device) if pos_weight is not None else None
    loss_fn: LossFn = loss if loss is not None else (lambda logits, y: masked_bce_with_logits(logits, y, weight))

    # The default loss skips -1 like NaN, so "ignore" needs no per-batch mapping; a custom loss always gets mapped targets.
    map_targets = uncertainty != "ignore" or loss is not None
    train_batches = _sharded(train_loader, split_batch=True) if w.distributed else train_loader
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * _steps_per_epoch(train_batches) if schedule != "constant" else 1
    scheduler = lr_schedule(optimizer, schedule, lr=lr, total_steps=steps, warmup=warmup)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    if checkpoint is not None and main:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, float]] = []
    scores_auroc = monitor == "val_auroc"
    best_score, best_epoch, best_state, waited, stopped = (-math.inf, -math.inf), None, None, 0, False
    run = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, schedule=schedule, warmup=warmup, seed=seed,
               uncertainty=uncertainty, monitor=monitor, world_size=w.size, batches=getattr(train_batches, "__len__", lambda: None)(),
               pos_weight=None if weight is None else [round(v, 6) for v in weight.cpu().tolist()])
    done_epochs, finished = 0, False
    saved = load_training_state(state_path, run) if state_path is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if scaler is not None:
            scaler.load_state_dict(saved["scaler"])
        if isinstance(train_batches, BatchLoader):
            train_batches.epoch = int(saved["loader_epoch"])
        set_rng_state(saved["rng"][w.rank])
        rows, monitor, waited = list(saved["rows"]), saved["monitor"], int(saved["waited"])
        best_score, best_epoch = tuple(saved["best_score"]), saved["best_epoch"]
        best_state = {k: v.to(device) for k, v in saved["best_state"].items()} if saved["best_state"] is not None else None
        done_epochs, finished, stopped = int(saved["epoch"]), bool(saved["finished"]), bool(saved["stopped"])
        scores_auroc = monitor == "val_auroc"

    net = _wrap_distributed(model, device) if w.distributed else model

    bar = tqdm(range(done_epochs + 1, epochs + 1), desc=f"fit {type(model).__name__}", unit="epoch",
               initial=done_epochs, total=epochs, disable=not progress or not main)
    for epoch in bar:
        if finished:
            break
        start = time.perf_counter()
        net.train()
        outs, tgts, idxs, n_images = [], [], [], 0
        recent: collections.deque = collections.deque(maxlen=max(bn_refresh_batches, 1))
        with _augment_mode(train_batches, True):
            for index, batch in _indexed(train_batches, w.distributed, device):
                inputs, targets = _split_batch(batch)
                if targets is None:
                    raise ValueError("training batches must be (inputs, targets) pairs")
                inputs = _to_device(inputs, device, channels_last)
                targets = targets.to(device, non_blocking=True)
                if map_targets:
                    targets = apply_uncertainty_policy(targets, uncertainty)
                with _autocast(device, dtype):
                    logits = _forward(net, inputs)
                batch_loss = loss_fn(logits.float(), targets)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    batch_loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(batch_loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if scheduler is not None:
                    scheduler.step()
                outs.append(logits.detach())
                tgts.append(targets)
                if index is not None:
                    idxs.append(index)
                n_images += targets.shape[0]
                if bn_refresh_batches:
                    recent.append(inputs)
        if not outs:
            raise ValueError("the training loader yielded no batches")
        train_logits, train_targets = torch.cat(outs).float(), torch.cat(tgts)
        if w.distributed:  # every rank's rows, each sample once, so the history is the whole epoch's
            n_images *= w.size
            train_logits, train_targets = _gathered(torch.cat(idxs), train_logits, train_targets)
            train_logits, train_targets = train_logits.to(device), train_targets.to(device)
        with torch.no_grad():
            train_loss = float(loss_fn(train_logits, train_targets))
        if bn_refresh_batches:
            refresh_batch_norm(model, recent, device, dtype)
            recent.clear()
        broadcast_buffers(model)
        synchronize(device)
        train_auroc = _auroc(train_targets.cpu(), train_logits.cpu()) if scores_auroc else float("nan")
        train_seconds = time.perf_counter() - start

        val_loss = val_auroc = float("nan")
        if val_loader is not None:
            val_logits, val_targets = _collect_logits(model, val_loader, device, dtype, channels_last)
            if val_targets is None:
                raise ValueError("validation batches must be (inputs, targets) pairs")
            val_targets = apply_uncertainty_policy(val_targets, "ignore")
            with torch.no_grad():
                val_loss = float(loss_fn(val_logits.to(device), val_targets.to(device)))
            val_auroc = _auroc(val_targets, val_logits) if scores_auroc else float("nan")
            if scores_auroc and epoch == 1 and math.isnan(val_auroc):
                monitor = "val_loss"
                warnings.warn("no validation label has both classes; early stopping monitors validation loss", stacklevel=2)
            # Higher is better; ties on AUROC (common on small validation sets) go to the lower validation loss.
            score = (-val_loss, 0.0) if monitor == "val_loss" else (val_auroc, -val_loss)
            if score > best_score:
                best_score, best_epoch, waited = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if checkpoint is not None and main:
                    with replacing(checkpoint) as tmp:
                        torch.save({k: v.cpu() for k, v in best_state.items()}, tmp)
            else:
                waited += 1
        rows.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, train_auroc=train_auroc,
                         val_auroc=val_auroc, seconds=time.perf_counter() - start,
                         train_images_per_s=n_images / train_seconds))
        bar.set_postfix(loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}", val_auroc=f"{val_auroc:.3f}",
                        best=best_epoch, img_s=f"{n_images / train_seconds:.0f}")
        if early_stopping_patience is not None and val_loader is not None and waited >= early_stopping_patience:
            stopped = epoch < epochs
        finished = stopped or epoch == epochs
        if state_path is not None:
            _save_state(state_path, run, epoch=epoch, finished=finished, stopped=stopped, model=model, optimizer=optimizer,
                        scheduler=scheduler, scaler=scaler, loader=train_batches, rows=rows, monitor=monitor,
                        waited=waited, best_score=best_score, best_epoch=best_epoch, best_state=best_state)
        if stopped:
            break
        if pause_after is not None and epoch - done_epochs >= pause_after:
            bar.close()
            raise TrainingPaused(state_path, epoch, epochs)  # type: ignore[arg-type]
    bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    elif checkpoint is not None and main:  # no validation: the final weights are the checkpoint
        with replacing(checkpoint) as tmp:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    model.eval()
    settings = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, uncertainty=uncertainty,
                    pos_weight=None if weight is None else weight.cpu().tolist(), custom_loss=loss is not None,
                    early_stopping_patience=early_stopping_patience, seed=seed, amp=str(dtype) if dtype else None,
                    channels_last=channels_last, bn_refresh_batches=bn_refresh_batches, schedule=schedule,
                    warmup=warmup if schedule != "constant" else None, world_size=w.size)
    return History(pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)), best_epoch, monitor, stopped,
                   describe_device(device), str(checkpoint) if checkpoint else None, settings)


def _save_state(path: str | Path, run: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, scaler: Any, loader: Iterable, best_state: dict[str, Tensor] | None, **facts: Any) -> None:
    """Write the training state after an epoch (rank 0; every rank's random state gathered first)."""
    rngs = all_gather_objects(rng_state())
    if world().rank != 0:
        return
    save_training_state(path, dict(
        run=run, rng=rngs,
        model={k: v.detach().cpu() for k, v in model.state_dict().items()},
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else None,
        scaler=scaler.state_dict() if scaler is not None else None,
        loader_epoch=getattr(loader, "epoch", 0),
        best_state=None if best_state is None else {k: v.detach().cpu() for k, v in best_state.items()},
        best_score=list(facts.pop("best_score")), **facts))


def predict(model: nn.Module, loader: Iterable, device: str | torch.device | None = None, amp: bool | str | None = None) -> np.ndarray:
    """Return ``N×K`` probabilities (sigmoid of the logits) for every batch of ``loader``, in eval mode without gradients (notebook 02).

    ``device`` defaults to where the model's parameters are; augmentation is switched off.
    """
    device = _model_device(model) if device is None else pick_device(device)
    channels_last = default_channels_last(device)
    model.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    logits, _ = _collect_logits(model, _place(loader, device), device, resolve_amp(device, amp), channels_last)
    return torch.sigmoid(logits).numpy()


def load_checkpoint(model: nn.Module, path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a ``state_dict`` checkpoint written by :func:`fit` into ``model`` (``weights_only=True``: no pickled code runs) (notebook 02)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    model.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return model
