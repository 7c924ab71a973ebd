"""Clustered localization: two known blobs, empty results, purity, shapes, the single-linkage fast path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrkit.explain import Regions, localize
from cxrkit.explain.localize import CLUSTER_METHODS, grid_single_linkage_labels, single_linkage_labels

BLOBS = [(30.0, 40.0, 6.0, 1.0), (90.0, 95.0, 8.0, 0.8)]  # (row, col, sigma, height)


def _two_blobs(noise=0.05, seed=0, size=128):
    yy, xx = np.mgrid[:size, :size]
    a = sum(h * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * s**2)) for r, c, s, h in BLOBS)
    return a + np.random.default_rng(seed).normal(0, noise, a.shape)


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_two_blobs_give_two_regions_in_the_right_places(method):
    regions = localize(_two_blobs(), method=method, threshold=0.6, smooth_sigma=1.0)
    assert isinstance(regions, Regions) and len(regions) == 2
    found = sorted(zip(regions.cy, regions.cx))
    for (cy, cx), (r, c, _, _) in zip(found, sorted(BLOBS)):
        assert abs(cy - r) < 2 and abs(cx - c) < 2, (method, cy, cx)
    assert regions.score[0] >= regions.score[1] > 0
    assert np.all(regions.radius >= 5.0)  # padding included
    masks = regions.masks()
    assert masks.shape == (2, 128, 128)
    for m, (r, c, _, _) in zip(masks, sorted(BLOBS, key=lambda b: -b[3])):
        assert m[int(r), int(c)]
    frame = regions.to_frame()
    assert list(frame.columns[:10]) == ["cx", "cy", "radius", "x0", "y0", "x1", "y1", "score", "peak", "n_pixels"]
    assert len(frame) == 2 and (frame["n_pixels"] >= 5).all()


@pytest.mark.parametrize("mode,threshold", [("quantile", 0.98), ("absolute", 0.6)])
def test_threshold_modes_and_negative_maps(mode, threshold):
    a = _two_blobs(noise=0.0)
    r = localize(a, threshold=threshold, threshold_mode=mode)
    assert len(r) == 2
    if mode == "quantile":
        assert r.n_surviving == pytest.approx(0.02 * a.size, abs=8)  # symmetric blobs tie at the cut
    assert len(localize(-a, threshold=threshold, threshold_mode=mode)) == 0  # no positive attribution
    assert len(localize(-a, threshold=threshold, threshold_mode=mode, sign="absolute")) == 2


def test_nothing_survives_gives_an_empty_result():
    for empty in (np.zeros((32, 32)), -np.ones((32, 32))):
        r = localize(empty)
        assert len(r) == 0 and r.n_surviving == 0
        assert r.masks().shape == (0, 32, 32) and r.to_frame().empty
        assert not r.union_mask().any()
    spike = np.zeros((32, 32))
    spike[5, 5] = 1.0
    assert len(localize(spike, min_cluster_size=2)) == 0  # a lone pixel is too small a cluster
    assert len(localize(spike, min_cluster_size=1, padding=0.0)) == 1


def test_inputs_are_never_modified():
    a = _two_blobs()
    a.setflags(write=False)
    before = a.copy()
    for method in CLUSTER_METHODS:
        localize(a, method=method, smooth_sigma=2.0, normalise="max")
        localize(a, method=method, sign="absolute", normalise="none", threshold=0.5)
    assert np.array_equal(a, before)
    t = torch.from_numpy(before.copy())
    r = localize(t)
    assert torch.equal(t, torch.from_numpy(before)) and len(r) == 2


def test_box_versus_circle():
    a = _two_blobs(noise=0.0)
    circles = localize(a, shape="circle", padding=2.0)
    boxes = localize(a, shape="box", padding=2.0)
    assert np.allclose(circles.cx, boxes.cx) and np.allclose(circles.score, boxes.score)
    b = boxes.masks()[0]
    rows, cols = np.nonzero(b)
    assert (rows.min(), rows.max()) == (boxes.y0[0], boxes.y1[0])
    assert (cols.min(), cols.max()) == (boxes.x0[0], boxes.x1[0])
    assert b.sum() == (boxes.y1[0] - boxes.y0[0] + 1) * (boxes.x1[0] - boxes.x0[0] + 1)  # a full rectangle
    c = circles.masks()[0]
    assert c.sum() < b.sum()  # the inscribed circle covers less than its bounding box
    assert not c[int(boxes.y0[0]), int(boxes.x0[0])]  # corners are outside the circle
    # drawn at a higher resolution the regions scale with the film
    big = circles.masks((256, 256))[0]
    assert abs(big.sum() / c.sum() - 4) < 0.3
    assert big[int(2 * BLOBS[0][0]), int(2 * BLOBS[0][1])]


def test_fast_single_linkage_equals_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        keep = rng.random((40, 40)) < rng.uniform(0.02, 0.5)
        distance = float(rng.choice([0.9, 1.0, 1.3, 1.5, 2.5, 4.0]))
        a = single_linkage_labels(np.argwhere(keep).astype(float), distance)
        b = grid_single_linkage_labels(keep, distance)
        # the same partition: labels map one-to-one
        pairs = set(zip(a.tolist(), b.tolist()))
        assert len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))
    noisy = _two_blobs(noise=0.2)
    slow = localize(noisy, threshold=0.3, max_linkage_points=10**6)
    fast = localize(noisy, threshold=0.3, max_linkage_points=10)
    assert slow.n_surviving > 10
    assert np.allclose(slow.to_frame().drop(columns="shape"), fast.to_frame().drop(columns="shape"))


def test_distance_controls_merging():
    a = np.zeros((20, 40))
    a[8:12, 5:9] = 1.0
    a[8:12, 16:20] = 1.0  # 8 pixels apart (columns 8 → 16)
    assert len(localize(a, distance=10.0, min_cluster_size=1)) == 1
    assert len(localize(a, distance=5.0, min_cluster_size=1)) == 2
    assert len(localize(a, method="components", min_cluster_size=1)) == 2


def test_bad_arguments_name_the_value():
    a = _two_blobs()
    for kw, bad in [("sign", "negative"), ("normalise", "zscore"), ("method", "kmeans"), ("shape", "star"), ("threshold_mode", "top")]:
        with pytest.raises(ValueError, match=repr(bad)):
            localize(a, **{kw: bad})
    with pytest.raises(ValueError, match="1.5"):
        localize(a, threshold=1.5, threshold_mode="quantile")
    with pytest.raises(ValueError, match="2-D"):
        localize(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        localize(np.full((4, 4), np.nan))
