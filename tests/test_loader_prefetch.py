"""Host-side batches for a GPU (cxrkit.train.data.prefetch / pinned): same batches, same order, errors surface, threads end."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from cxrkit.train import BatchLoader, ImageDataset
from cxrkit.train.data import pinned, prefetch


def _loader() -> BatchLoader:
    rng = np.random.default_rng(0)
    return BatchLoader(ImageDataset(rng.integers(0, 255, (50, 8, 8), dtype=np.uint8), rng.random((50, 2))),
                       batch_size=8, shuffle=True, seed=4)


def test_prefetch_yields_the_loaders_batches_in_order():
    plain = [(rows, x, y) for rows, (x, y) in _loader().indexed()]
    ahead = [(rows, x, y) for rows, (x, y) in prefetch(_loader().indexed(), depth=3)]
    assert len(plain) == len(ahead) == 7
    for (r1, x1, y1), (r2, x2, y2) in zip(plain, ahead):
        assert torch.equal(r1, r2) and torch.equal(x1, x2) and torch.equal(y1, y2)


def test_an_error_while_preparing_a_batch_is_raised_to_the_consumer():
    def broken():
        yield 1
        raise OSError("cannot read films.npy")

    got = []
    with pytest.raises(OSError, match="cannot read films.npy"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]


def test_leaving_the_loop_early_stops_the_thread():
    def endless():
        k = 0
        while True:
            yield k
            k += 1

    for k in prefetch(endless(), depth=2):
        if k == 3:
            break
    time.sleep(0.3)
    assert not any(t.name == "cxrkit-prefetch" for t in threading.enumerate())


def test_pinned_keeps_the_batches_and_pins_only_where_a_gpu_driver_can():
    rows, (x, y) = next(iter(pinned(_loader().indexed()))) if torch.cuda.is_available() else next(iter(_loader().indexed()))
    reference_rows, (reference_x, _) = next(iter(_loader().indexed()))
    assert torch.equal(rows, reference_rows) and torch.equal(x, reference_x)
    if torch.cuda.is_available():
        assert x.is_pinned() and y.is_pinned()


def test_prefetch_refuses_a_depth_below_one():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        list(prefetch([1], depth=0))
