"""How fast is the kit's loop? Training throughput (images/s) of :func:`fit` against a bare PyTorch loop
with the same model, data, batch size, optimizer, precision and memory format.

Taught in notebook 02 (image CNN); ``benchmarks/train_throughput.py`` runs it from the command line.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import default_channels_last, pick_device, resolve_amp, synchronize
from .data import BatchLoader, ImageDataset
from .loop import _autocast, fit

__all__ = ["bare_loop_images_per_s", "kit_loop_images_per_s", "benchmark_throughput"]


def bare_loop_images_per_s(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    epochs: int = 2,
    seed: int = 0,
) -> float:
    """Train with the plainest PyTorch loop and return the last epoch's images/s (the first warms up) (notebook 02)."""
    dtype = resolve_amp(device, None)  # what fit uses by default
    channels_last = default_channels_last(device)  # what fit uses by default
    model.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    x_all, y_all = torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.float32)).to(device)
    n = len(x_all) - len(x_all) % batch_size
    rate = float("nan")
    for epoch in range(epochs):
        synchronize(device)
        start = time.perf_counter()
        order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed + epoch)).to(device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            x, y = x_all[idx].unsqueeze(1).float().div_(255), y_all[idx]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, dtype):
                logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        synchronize(device)
        rate = n / (time.perf_counter() - start)
    return rate


def kit_loop_images_per_s(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    epochs: int = 2,
    seed: int = 0,
) -> float:
    """Train with :func:`fit` (no validation set) and return its last epoch's recorded images/s (notebook 02)."""
    loader = BatchLoader(ImageDataset(images, labels), batch_size=batch_size, shuffle=True, seed=seed, drop_last=True)
    history = fit(model, loader, None, epochs=epochs, lr=lr, weight_decay=weight_decay, device=device, progress=False)
    return float(history.table["train_images_per_s"].iloc[-1])


def benchmark_throughput(
    model_fn: Callable[[], nn.Module],
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 64,
    steps: int | None = None,
    *,
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Measure training images/s of the kit's ``fit`` and of a bare loop, alternating ``repeats`` times, each on a fresh ``model_fn()`` (notebook 02).

    Each measurement runs two epochs of ``steps`` batches (default: all of ``images``) and times the
    second. Returns ``kit`` and ``bare`` images/s (best of the repeats — the least disturbed by other
    load on the machine) and ``ratio = kit / bare``; also the medians, the median of the back-to-back
    ratios (``paired_ratio_median``), and images per CPU-second of each whole run (``kit_cpu``,
    ``bare_cpu``, ``cpu_ratio``), which other processes on a shared CPU disturb much less.
    """
    device = pick_device(device)
    if steps is not None:
        images, labels = images[: steps * batch_size], labels[: steps * batch_size]
    if len(images) < batch_size:
        raise ValueError(f"need at least one batch of {batch_size} images, got {len(images)}")
    n = len(images) - len(images) % batch_size
    wall: dict[str, list[float]] = {"kit": [], "bare": []}
    cpu: dict[str, list[float]] = {"kit": [], "bare": []}
    for r in range(repeats):
        for name, runner in (("kit", kit_loop_images_per_s), ("bare", bare_loop_images_per_s)):
            torch.manual_seed(seed + r)
            model = model_fn()
            start = time.process_time()
            wall[name].append(runner(model, images, labels, batch_size, device, seed=seed + r))
            cpu[name].append(2 * n / max(time.process_time() - start, 1e-9))  # both epochs, per CPU-second
    kit, bare = max(wall["kit"]), max(wall["bare"])
    return dict(
        kit=kit, bare=bare, ratio=kit / bare,
        kit_median=statistics.median(wall["kit"]), bare_median=statistics.median(wall["bare"]),
        paired_ratio_median=statistics.median(k / b for k, b in zip(wall["kit"], wall["bare"])),
        kit_cpu=max(cpu["kit"]), bare_cpu=max(cpu["bare"]), cpu_ratio=max(cpu["kit"]) / max(cpu["bare"]),
        batch_size=batch_size, images=n, repeats=repeats, device=str(device),
    )
