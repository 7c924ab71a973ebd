"""The pointing-game protocol of notebooks 05/06: tolerance, no-evidence maps counted, per-finding tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrkit.explain.pointing import per_finding_table, pointing_rows, pointing_summary, pointing_tolerance_px


def _mask(shape=(20, 20), box=(5, 10, 5, 10)):
    m = np.zeros(shape, bool)
    m[box[0]:box[1], box[2]:box[3]] = True
    return m


def test_hit_needs_the_peak_within_the_tolerance():
    masks = np.stack([_mask(), _mask()])
    near, far = np.zeros((2, 20, 20)), np.zeros((2, 20, 20))
    near[:, 11, 7] = 1.0  # two pixels below the mask
    far[:, 18, 18] = 1.0
    rows = pointing_rows({"near": near, "far": far}, masks, "Effusion", tolerance=2.0)
    assert rows.set_index("method").loc["near", "hit"].all() and not rows.set_index("method").loc["far", "hit"].any()
    assert not pointing_rows({"near": near}, masks, "Effusion", tolerance=0.0)["hit"].any()
    assert pointing_tolerance_px((128, 128)) == pytest.approx(3.84)


def test_each_row_says_where_the_peak_lies_and_how_far_from_the_mask():
    near = np.zeros((1, 20, 20))
    near[0, 11, 7] = 1.0  # two pixels below the mask (rows 5-9)
    row = pointing_rows({"near": near}, np.stack([_mask()]), "Effusion", tolerance=1.0).iloc[0]
    assert (row["row"], row["col"], row["distance"]) == (11, 7, 2.0) and not row["hit"]


def test_a_map_without_positive_evidence_is_a_counted_miss_never_a_dropped_nan():
    masks = np.stack([_mask(), _mask(), _mask()])
    maps = np.zeros((3, 20, 20))
    maps[0, 7, 7] = 2.0  # evidence on the finding
    maps[2] = -1.0  # only negative evidence
    rows = pointing_rows({"gradcam": maps}, masks, "Lesion")
    assert rows["hit"].tolist() == [True, False, False]
    assert rows["no_evidence"].tolist() == [False, True, True]
    summary = pointing_summary(rows).loc[("Lesion", "gradcam")]
    assert summary["films"] == 3 and summary["hit_rate"] == pytest.approx(1 / 3)
    assert summary["no_evidence"] == pytest.approx(2 / 3)
    assert summary["mass_inside"] == 1.0 and summary["mass_inside_n"] == 1  # one defined value, and its count
    assert summary["mask_share"] == pytest.approx(25 / 400)


def test_per_finding_table_means_over_findings_not_films():
    a = pointing_rows({"m": np.stack([_mask().astype(float)] * 3)}, np.stack([_mask()] * 3), "A")
    b = pointing_rows({"m": np.zeros((1, 20, 20))}, np.stack([_mask()]), "B")
    table = per_finding_table(pd.concat([a, b]), ["A", "B"], ["m"])
    assert table.loc["m", "A"] == 1.0 and table.loc["m", "B"] == 0.0 and table.loc["m", "mean"] == 0.5


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="non-empty"):
        pointing_rows({"m": np.zeros((1, 5, 5))}, np.zeros((1, 5, 5), bool), "A")
    with pytest.raises(ValueError, match="maps of shape"):
        pointing_rows({"m": np.zeros((2, 5, 5))}, np.stack([_mask((5, 5), (1, 3, 1, 3))]), "A")
