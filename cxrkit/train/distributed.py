"""Data-parallel training with PyTorch's own engine: ``torchrun`` starts the processes, this module joins them.

``torchrun --standalone --nproc_per_node=N -m cxrkit train …`` starts N processes and gives each ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and a rendezvous address in its environment. :func:`init_distributed` reads them
(never a ``--local_rank`` flag: that was the deprecated ``torch.distributed.launch``), joins the process group —
NCCL when every process has its own GPU, gloo on CPUs — and pins each process to ``cuda:LOCAL_RANK``. Without
those variables it is a no-op and every helper here behaves as for one process, so :func:`cxrkit.train.fit`
runs unchanged on one device. The rest is what the loop needs: who is rank 0 (:func:`is_main`, the only rank
that writes files or shows a progress bar), a barrier, and :func:`gather_rows`, which collects every rank's
``(index, values)`` rows and drops the duplicates ``DistributedSampler`` padded in, so an AUROC sees each
sample exactly once. Taught in notebook 02 (image CNN: "Past one laptop"); README "Training on GPUs".
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["World", "init_distributed", "world", "is_main", "barrier", "gather_rows", "broadcast_buffers",
           "all_gather_objects", "close_distributed"]

#: The environment variables torchrun sets for every process it starts.
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` processes, its rank on this node, the backend and its device (notebook 02)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str | None = None
    device: torch.device | None = None

    @property
    def distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.size > 1

    def describe(self) -> str:
        """One line for a run report: world size, backend and this rank's device."""
        if not self.distributed:
            return "1 process (not distributed)"
        return f"{self.size} processes ({self.backend}), rank {self.rank} on {self.device}"


def _from_env() -> tuple[int, int, int] | None:
    if not all(name in os.environ for name in TORCHRUN_ENV):
        return None
    return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])


def init_distributed(device: str | None = None, *, timeout_s: float = 1800.0) -> World:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPUs) and return this process's :class:`World` (notebook 02).

    Outside torchrun (no ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``) nothing is initialised and the world is one
    process. ``device="cpu"`` (or ``CXRKIT_DEVICE=cpu``) forces gloo on CPUs even where GPUs are present. Calling it
    again returns the world already joined.
    """
    if dist.is_available() and dist.is_initialized():
        return world()
    ranks = _from_env()
    if ranks is None or ranks[2] <= 1:
        return World()
    rank, local_rank, size = ranks
    wanted = device or os.environ.get("CXRKIT_DEVICE") or None
    use_cuda = torch.cuda.is_available() and (wanted is None or str(wanted).startswith("cuda"))
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                               "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return world()


def world() -> World:
    """Return this process's :class:`World`: the joined process group's, or one process when there is none (notebook 02)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    backend = dist.get_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return World(dist.get_rank(), local_rank, dist.get_world_size(), backend, device)


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that writes artifacts, logs and progress bars (notebook 02)."""
    return world().rank == 0


def barrier() -> None:
    """Wait until every rank gets here (a no-op in a single process)."""
    if world().distributed:
        dist.barrier()


def close_distributed() -> None:
    """Leave the process group, if one was joined (the end of ``cxrkit train``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(value: Any) -> list[Any]:
    """Return every rank's ``value`` (picklable), in rank order; ``[value]`` in a single process."""
    w = world()
    if not w.distributed:
        return [value]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, value)
    return out


def gather_rows(index: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Collect every rank's ``(index, values)`` rows, keep the first row of each index, and return them sorted by index (notebook 02).

    ``DistributedSampler`` pads the last ranks with repeats so every rank runs the same number of batches; those
    repeats carry an index already seen and are dropped here, so each sample is counted exactly once. Every rank
    must pass the same number of rows (the sampler guarantees it). In a single process the rows come back sorted.
    """
    index = index.long()
    w = world()
    if w.distributed:
        device = w.device if w.backend == "nccl" else torch.device("cpu")
        idx, vals = index.to(device), values.to(device)
        idx_all = [torch.empty_like(idx) for _ in range(w.size)]
        vals_all = [torch.empty_like(vals) for _ in range(w.size)]
        dist.all_gather(idx_all, idx)
        dist.all_gather(vals_all, vals)
        index, values = torch.cat(idx_all).cpu(), torch.cat(vals_all).cpu()
    index, values = index.cpu(), values.cpu()
    order = torch.argsort(index, stable=True)
    index, values = index[order], values[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return index[keep], values[keep]


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, so all ranks hold one model (notebook 02).

    DDP broadcasts buffers at the start of each forward pass, but the last batch of an epoch then updates each
    rank's running statistics from its own shard; this makes them equal again before evaluation or a checkpoint.
    """
    w = world()
    if not w.distributed:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point() or buffer.dtype in (torch.int64, torch.int32):
            dist.broadcast(buffer.data, src=0)
