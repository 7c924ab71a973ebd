"""Cheap data loading for the whole in-memory uint8 image cache: a dataset that cuts whole batches by
fancy indexing, and a batch iterator that can live on the training device.

Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import copy
import queue
import threading
from typing import Any, Iterable, Iterator, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageDataset", "TensorDictDataset", "BatchLoader", "BatchSource", "prefetch", "pinned"]

T = TypeVar("T")


class BatchSource(Protocol):
    """What :class:`BatchLoader` needs from a dataset: a length and ``batch(index) -> (inputs, targets)``."""

    def __len__(self) -> int: ...

    def batch(self, index: Tensor) -> tuple[Any, Tensor]: ...


class ImageDataset(torch.utils.data.Dataset):
    """Images (``N×H×W`` uint8) and labels (``N×K`` float, NaN = unknown) served as floats in [0, 1] (notebook 02).

    Inputs are ``1×H×W`` float tensors scaled to [0, 1] — not standardised; the models' batch norm
    after the first convolution absorbs the scale. ``augment`` (e.g. :class:`ImageAugment`) is applied
    to whole batches by :meth:`batch` (and to single images by ``dataset[i]``) while it is in training mode.
    The uint8 array is shared, not copied, so the whole cache stays in memory once.
    """

    def __init__(self, images_uint8: np.ndarray | Tensor, labels: np.ndarray | Tensor, augment: torch.nn.Module | None = None):
        images = images_uint8 if isinstance(images_uint8, Tensor) else torch.from_numpy(_writable(np.asarray(images_uint8)))
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"images_uint8 must be an N×H×W (or N×C×H×W) uint8 array, got {tuple(images.shape)} {images.dtype}")
        targets = torch.as_tensor(np.asarray(labels, dtype=np.float32)) if not isinstance(labels, Tensor) else labels.float()
        if targets.ndim == 1:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be N×K with N={images.shape[0]} rows (one per image), got {tuple(targets.shape)}")
        self.images, self.labels, self.augment = images, targets, augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, y = self.batch(torch.tensor([i], device=self.images.device))
        return x[0], y[0]

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(B×1×H×W float in [0, 1], B×K targets)`` for the rows in ``index``, augmented if enabled."""
        x = self.images[index]
        x = (x.unsqueeze(1) if x.ndim == 3 else x).float().div_(255)
        if self.augment is not None and self.augment.training:
            x = self.augment(x)
        return x, self.labels[index]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "ImageDataset":
        """Return a copy whose image cache and labels live on ``device`` (the original is untouched)."""
        clone = copy.copy(self)
        clone.images, clone.labels = self.images.to(device), self.labels.to(device)
        return clone


class TensorDictDataset:
    """Named ``N×…`` input tensors and ``N×K`` targets served in whole batches as ``({name: B×…}, B×K)`` (notebooks 03, 04).

    The model is called as ``model(**inputs)``: encoded reports (``input_ids``) for a text model,
    cached encoder outputs for a fusion head.
    """

    def __init__(self, inputs: dict[str, Tensor], labels: np.ndarray | Tensor):
        if not inputs:
            raise ValueError("inputs must be a non-empty dict of tensors")
        targets = torch.as_tensor(np.asarray(labels, dtype=np.float32)) if not isinstance(labels, Tensor) else labels.float()
        if targets.ndim != 2:
            raise ValueError(f"labels must be N×K, got shape {tuple(targets.shape)}")
        bad = {k: tuple(v.shape) for k, v in inputs.items() if v.shape[0] != targets.shape[0]}
        if bad:
            raise ValueError(f"every input tensor needs {targets.shape[0]} rows (one per target row), got {bad}")
        self.inputs, self.labels = dict(inputs), targets

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batch(self, index: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Return ``({name: rows of that tensor}, targets)`` for the rows in ``index``."""
        return {k: v[index] for k, v in self.inputs.items()}, self.labels[index]

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def to(self, device: torch.device | str) -> "TensorDictDataset":
        """Return a copy whose tensors live on ``device`` (the original is untouched)."""
        clone = copy.copy(self)
        clone.inputs = {k: v.to(device) for k, v in self.inputs.items()}
        clone.labels = self.labels.to(device)
        return clone


def _writable(array: np.ndarray) -> np.ndarray:
    return array if array.flags.writeable else array.copy()


class BatchLoader:
    """Iterate ``(inputs, targets)`` batches of a dataset with a ``batch(index)`` method, seeded and reshuffled each epoch (notebook 02).

    A drop-in for ``DataLoader(num_workers=0)`` without per-sample Python work: each batch is one
    fancy-indexing call. ``fit``/``predict`` move it to the training device (``loader.to(device)``),
    so indexing and augmentation then run there. A ``sampler`` (an iterable of dataset rows, e.g. torch's
    ``DistributedSampler``; told each epoch through ``set_epoch`` when it has one) replaces the loader's own order;
    under ``torchrun`` ``fit`` gives each rank its share with :meth:`sharded`.
    """

    def __init__(self, dataset: BatchSource, batch_size: int = 64, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 sampler: Any = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not hasattr(dataset, "batch"):
            raise TypeError(f"{type(dataset).__name__} has no batch(index) method; use ImageDataset or torch's DataLoader")
        self.dataset, self.batch_size, self.shuffle, self.seed, self.drop_last = dataset, batch_size, shuffle, seed, drop_last
        self.sampler = sampler
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> Tensor:
        """This epoch's sample order: the sampler's (told the epoch, as ``DistributedSampler.set_epoch`` needs), else seeded."""
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(self.epoch)
            return torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        n = len(self.dataset)
        if self.shuffle:
            return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        return torch.arange(n)

    def indexed(self) -> Iterator[tuple[Tensor, tuple[Any, Tensor]]]:
        """Iterate ``(dataset rows, (inputs, targets))``: each batch with the dataset indices it holds (what :func:`~cxrkit.train.distributed.gather_rows` keys by)."""
        order = self._order()
        self.epoch += 1
        device = getattr(self.dataset, "device", torch.device("cpu"))
        order = order.to(device)
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            rows = order[start:start + self.batch_size]
            yield rows, self.dataset.batch(rows)

    def __iter__(self) -> Iterator[tuple[Any, Tensor]]:
        for _, batch in self.indexed():
            yield batch

    def sharded(self, rank: int, size: int, *, split_batch: bool) -> "BatchLoader":
        """Return this loader's share for ``rank`` of ``size`` processes, drawn by a ``DistributedSampler`` (notebook 02).

        The sampler shuffles as this loader does (seeded by ``seed`` + epoch, via ``set_epoch``) and pads with repeats so
        every rank runs the same number of batches. ``split_batch=True`` (training) gives each rank ``batch_size // size``
        samples, so the global batch stays ``batch_size`` and the recipe's optimisation is the same on any number of
        devices; it must divide evenly.
        """
        batch_size = self.batch_size
        if split_batch:
            if self.batch_size % size:
                raise ValueError(f"the global batch size {self.batch_size} does not divide among {size} processes; "
                                 f"choose a multiple of {size} (e.g. -p batch_size {size * max(self.batch_size // size, 1)})")
            batch_size = self.batch_size // size
        clone = copy.copy(self)
        clone.batch_size = batch_size
        clone.sampler = torch.utils.data.DistributedSampler(self.dataset, num_replicas=size, rank=rank,  # type: ignore[arg-type]
                                                            shuffle=self.shuffle, seed=self.seed, drop_last=False)
        return clone

    def to(self, device: torch.device | str) -> "BatchLoader":
        """Return a copy of this loader whose dataset lives on ``device`` (if the dataset can move)."""
        if not hasattr(self.dataset, "to") or getattr(self.dataset, "device", None) == torch.device(device):
            return self
        clone = copy.copy(self)
        clone.dataset = self.dataset.to(device)
        return clone


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a background thread prepares up to ``depth`` ahead (notebook 02).

    On a GPU whose memory cannot hold the image cache, batches are cut (and augmented, and pinned) on the host:
    this overlaps that work with the GPU's, as a ``DataLoader``'s workers would, without per-sample processes. An
    error in the thread is raised here; leaving the loop early stops the thread.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put(_Failed(err))
        put(done)

    thread = threading.Thread(target=work, name="cxrkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def pinned(batches: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Yield ``(rows, (inputs, targets))`` with every CPU tensor in page-locked memory, so its copy to a GPU overlaps compute (notebook 02)."""
    def pin(value: Any) -> Any:
        if isinstance(value, Tensor) and value.device.type == "cpu":
            return value.pin_memory()
        if isinstance(value, dict):
            return {k: pin(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(pin(v) for v in value)
        return value

    for rows, batch in batches:
        yield rows, pin(batch)
