"""Localization metrics: region hits, pooled scores, random baseline, threshold sweep and choice."""
from __future__ import annotations

import numpy as np
import pytest

from cxrkit.explain import choose_threshold, film_table, localization_scores, localize, match_regions, random_regions, threshold_sweep


def _film(size=64, truth_at=(20, 20), decoy_at=(45, 48), seed=0):
    """An attribution map with a blob on the finding and a decoy blob elsewhere; truth is a square mask."""
    yy, xx = np.mgrid[:size, :size]
    blob = lambda r, c, h: h * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 3.0**2))  # noqa: E731
    a = blob(*truth_at, 1.0) + blob(*decoy_at, 0.7) + np.random.default_rng(seed).normal(0, 0.02, (size, size))
    mask = np.zeros((size, size), bool)
    mask[truth_at[0] - 5 : truth_at[0] + 5, truth_at[1] - 5 : truth_at[1] + 5] = True
    return a, mask


def test_one_hit_one_false_region():
    a, mask = _film()
    regions = localize(a, threshold=0.5, padding=2.0)
    assert len(regions) == 2
    table = match_regions(regions, mask)
    assert table["hit"].tolist() == [True, False]  # the stronger region is on the finding
    assert table.loc[0, "overlap_share"] > 0.5 and table.loc[1, "overlap"] == 0
    scores = localization_scores(regions, mask)
    assert scores["hit_rate"] == 1.0
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0
    assert scores["false_regions_per_film"] == 1.0 and scores["n_true_regions"] == 1
    assert 0 < scores["mean_iou"] < 1


def test_boxes_and_high_resolution_masks_score_the_same():
    a, mask = _film()
    regions = localize(a, threshold=0.5, padding=2.0)
    box_1024 = (15 * 16, 15 * 16, 10 * 16, 10 * 16)  # the same square as an NIH box on a 1024 film
    big = np.kron(mask, np.ones((16, 16), bool))
    s_mask = localization_scores(regions, mask)
    assert localization_scores(regions, [box_1024], source_shape=(1024, 1024)) == s_mask
    assert localization_scores(regions, big) == s_mask


def test_pooling_over_films_with_a_negative_film():
    a, mask = _film()
    b, mask_b = _film(truth_at=(40, 15), decoy_at=(10, 50), seed=1)
    regions = [localize(m, threshold=0.5) for m in (a, b, a)]
    scores = localization_scores(regions, [mask, mask_b, None])  # the third film has no finding
    assert scores["n_films"] == 3 and scores["n_films_with_truth"] == 2
    assert scores["hit_rate"] == 1.0
    assert scores["n_regions"] == 6 and scores["n_true_regions"] == 2
    assert scores["false_regions_per_film"] == pytest.approx(4 / 3)
    table = film_table(regions, [mask, mask_b, None])
    assert table["n_false_regions"].tolist() == [1, 1, 2] and np.isnan(table.loc[2, "hit"])
    with pytest.raises(ValueError, match="3 films"):
        localization_scores(regions, [mask])


def test_random_regions_baseline():
    a, mask = _film()
    regions = localize(a, threshold=0.5)
    rand = random_regions(a.shape, 0, like=regions)
    assert len(rand) == len(regions) and np.allclose(rand.radius, regions.radius)
    assert not np.allclose(rand.cx, regions.cx)
    again = random_regions(a.shape, 0, like=regions)
    assert np.array_equal(rand.cx, again.cx)
    many = [random_regions(a.shape, s, n=2, radius=5.0) for s in range(200)]
    hit = localization_scores(many, [mask] * 200)["hit_rate"]
    assert 0.05 < hit < 0.6  # chance level: far below the model's 1.0


def test_threshold_sweep_is_monotone_and_choice():
    films = [_film(seed=s) for s in range(3)]
    maps, truths = [f[0] for f in films], [f[1] for f in films]
    thresholds = [0.2, 0.3, 0.5, 0.6, 0.8, 0.95]
    sweep = threshold_sweep(maps, truths, thresholds, padding=2.0)
    assert sweep["threshold"].tolist() == thresholds
    assert (np.diff(sweep["surviving_pixels"]) <= 0).all()
    assert sweep["surviving_pixels"].iloc[0] > sweep["surviving_pixels"].iloc[-1]
    # above the decoy's height (0.7) its region disappears: no false regions left
    assert sweep.set_index("threshold").loc[0.8, "n_false_regions"] == 0
    assert sweep.set_index("threshold").loc[0.5, "n_false_regions"] == 3
    # at 0.95 only a few pixels per film survive, below min_cluster_size: no regions, nothing hit
    assert sweep.set_index("threshold").loc[0.95, "hit_rate"] == 0.0
    assert choose_threshold(sweep, "max_f1") == 0.8  # precision 1, recall 1
    assert choose_threshold(sweep, "max_hit_rate") == 0.8  # ties (0.2 … 0.8) go to the highest threshold
    assert choose_threshold(sweep.iloc[:4], "max_recall") == 0.6
    assert choose_threshold(sweep, "max_recall", false_region_budget=0.0) == 0.8
    with pytest.raises(ValueError, match="-1"):
        choose_threshold(sweep, "max_f1", false_region_budget=-1)
    with pytest.raises(ValueError, match="'best'"):
        choose_threshold(sweep, "best")
