"""The data, model and settings tests/test_distributed.py trains both in one process and on two torchrun ranks."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cxrkit.train import BatchLoader, ImageDataset

#: Global batch; under torchrun each of the 2 ranks trains on half of it.
BATCH = 8
#: Training, validation and test films: 40 fills whole batches; 23 and 19 do not divide by 2, so the sampler pads.
N_TRAIN, N_VAL, N_TEST = 40, 23, 19
FIT = dict(epochs=3, lr=1e-2, seed=0, progress=False, early_stopping_patience=None, channels_last=False, schedule="onecycle")


def _data(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(offset)
    films = rng.integers(0, 120, (n, 12, 12), dtype=np.uint8)
    labels = (rng.random((n, 3)) < 0.5).astype(np.float32)
    films[labels[:, 0] == 1, 3:7, 3:7] = 250  # something to learn
    return films, labels


def net(batch_norm: bool) -> nn.Module:
    """A tiny CNN; with ``batch_norm`` its buffers test that every rank ends with rank 0's statistics."""
    torch.manual_seed(1)
    norm = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
    return nn.Sequential(nn.Conv2d(1, 4, 3), norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def case(world_size: int = 1, rank: int = 0, batch_norm: bool = False, sampler: bool = False):
    """(model, train, validate, test); ``sampler=True`` orders one process's training batches as a 1-replica
    ``DistributedSampler`` would, the order whose global batches 2 ranks split between them."""
    films, labels = _data(N_TRAIN, 0)
    dataset = ImageDataset(films, labels)
    order = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=7) if sampler else None
    train = BatchLoader(dataset, batch_size=BATCH, shuffle=True, seed=7, drop_last=True, sampler=order)
    validate = BatchLoader(ImageDataset(*_data(N_VAL, 1)), batch_size=4)
    test = BatchLoader(ImageDataset(*_data(N_TEST, 2)), batch_size=4)
    return net(batch_norm), train, validate, test
