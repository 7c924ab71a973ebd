"""The planted-signal control (notebook 05): seeded, never touches its input, the disc is where its mask says."""
from __future__ import annotations

import numpy as np
import pytest

from cxrkit.controls import PlantedSignal, plant_signal


def _films(n=40, size=64, seed=0):
    return np.random.default_rng(seed).integers(40, 120, size=(n, size, size), dtype=np.uint8)


def test_same_seed_same_discs_other_stream_other_discs():
    films = _films()
    a, b = plant_signal(films, 3, "train"), plant_signal(films, 3, "train")
    assert np.array_equal(a.films, b.films) and np.array_equal(a.labels, b.labels) and np.array_equal(a.masks, b.masks)
    c = plant_signal(films, 3, "test")
    assert not np.array_equal(a.masks, c.masks)


def test_input_untouched_and_only_disc_pixels_change():
    films = _films()
    before = films.copy()
    out = plant_signal(films, 0)
    assert np.array_equal(films, before)
    changed = out.films != films
    for i in range(len(films)):
        if out.labels[i] == 0:
            assert not changed[i].any() and not out.masks[i].any()
        else:
            m = out.masks[i]
            rise = out.films[i][m].astype(int) - films[i][m]
            assert m.any() and rise.min() >= 31 and rise.mean() >= 50  # +0.25 of 255 inside, half of it on the rim
            # outside the disc at most its one-pixel soft edge moves
            from scipy import ndimage
            ring = ndimage.binary_dilation(m, iterations=2)
            assert not changed[i][~ring].any()


def test_share_radius_and_box_are_honoured():
    sig = PlantedSignal(radius=(0.05, 0.08), share=0.5, box=(0.25, 0.75, 0.25, 0.75))
    out = plant_signal(_films(n=400, size=100), 1, signal=sig)
    assert 0.4 < out.labels.mean() < 0.6
    for i in out.positives:
        rows, cols = np.nonzero(out.masks[i])
        assert rows.min() >= 25 and rows.max() < 75 and cols.min() >= 25 and cols.max() < 75
        radius = np.sqrt(out.masks[i].sum() / np.pi)
        assert 4.0 <= radius <= 8.6


def test_both_classes_present_and_bad_input_named():
    assert set(plant_signal(_films(n=2), 0).labels) == {0.0, 1.0}
    with pytest.raises(ValueError, match="uint8"):
        plant_signal(_films().astype(np.float32), 0)
    for bad in (dict(radius=(0.1, 0.05)), dict(contrast=0), dict(share=1.0), dict(box=(0.8, 0.2, 0, 1))):
        with pytest.raises(ValueError):
            PlantedSignal(**bad)
