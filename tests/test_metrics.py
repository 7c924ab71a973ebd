"""Evaluation: patient-level bootstrap CIs, evaluate/paired comparisons, validation-only thresholds,
calibration figure and the predictions-table contract."""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrkit.metrics import (
    apply_thresholds,
    bootstrap_ci,
    calibration_figure,
    choose_thresholds,
    evaluate,
    macro_auroc,
    paired_bootstrap_diff,
    predictions_table,
)

NAN = np.nan


def _cohort(patients: int, per_patient: int = 2, labels: int = 2, signal: float = 1.0, seed: int = 0):
    """Patients with ``per_patient`` images sharing the patient's labels; scores = signal·label + noise."""
    rng = np.random.default_rng(seed)
    y_patient = (rng.random((patients, labels)) < 0.4).astype(float)
    y = np.repeat(y_patient, per_patient, axis=0)
    groups = np.repeat(np.arange(patients), per_patient)
    logits = signal * y + rng.normal(size=y.shape)
    return y, 1 / (1 + np.exp(-logits)), groups


def test_bootstrap_ci_contains_estimate_and_shrinks_with_more_data():
    small = bootstrap_ci(*_cohort(60), metric_fn=roc_auc_score, n_boot=200, seed=0)
    large = bootstrap_ci(*_cohort(600), metric_fn=roc_auc_score, n_boot=200, seed=0)
    for ci in (small, large):
        assert ci.lo <= ci.estimate <= ci.hi and ci.n_boot_used == 200
    assert (large.hi - large.lo) < 0.6 * (small.hi - small.lo)
    y, p, g = _cohort(600)
    assert large.estimate == pytest.approx(macro_auroc(y, p))


def test_vectorised_bootstrap_equals_scikit_learn_on_resampled_rows():
    """The fast AUROC/AP path (draw counts as row weights) gives scikit-learn's values, ties and NaNs included."""
    y, p, groups = _cohort(50, per_patient=3, labels=2, seed=7)
    p = np.round(p, 1)  # many tied scores
    y[::7, 1] = NAN
    for name, fn in (("auroc", roc_auc_score), ("ap", average_precision_score)):
        fast = bootstrap_ci(y, p, groups, name, n_boot=60, seed=2)
        generic = bootstrap_ci(y, p, groups, lambda t, s, fn=fn: fn(t, s), n_boot=60, seed=2)
        assert tuple(fast) == pytest.approx(tuple(generic), rel=1e-12, abs=1e-12)
        assert fast.lo < fast.hi


def test_macro_auroc_matches_scikit_learn():
    y, p, _ = _cohort(100, labels=4, seed=8)
    p = np.round(p, 1)
    y[::5, 0] = NAN
    y[:, 3] = NAN  # no known rows: skipped
    expected = np.mean([roc_auc_score(y[~np.isnan(y[:, k]), k], p[~np.isnan(y[:, k]), k]) for k in range(3)])
    assert macro_auroc(y, p) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(macro_auroc(np.zeros((4, 2)), p[:4, :2]))


def test_bootstrap_resamples_patients_not_images():
    """Each replicate holds whole patients: a patient's rows appear together, equally often."""
    y, _, groups = _cohort(30, per_patient=3, labels=1)
    row_id = np.arange(len(y), dtype=float)
    seen = []

    def recorder(t, p):
        seen.append(p.astype(int))
        return 0.5

    bootstrap_ci(y, row_id, groups, recorder, n_boot=20, seed=1)
    assert len(seen) == 21  # the point estimate + 20 replicates
    for rows in seen[1:]:
        counts = np.bincount(rows, minlength=len(y)).reshape(30, 3)  # rows of a patient are contiguous here
        assert (counts == counts[:, :1]).all()  # all images of a patient drawn the same number of times
        assert len(rows) == 90


def test_patient_level_ci_wider_than_image_level_for_duplicated_images():
    y, p, _ = _cohort(80, per_patient=1, labels=1, seed=3)
    y, p, groups = np.repeat(y, 4, axis=0), np.repeat(p, 4, axis=0), np.repeat(np.arange(80), 4)  # 4 copies each
    patient = bootstrap_ci(y, p, groups, roc_auc_score, n_boot=300, seed=0)
    naive = bootstrap_ci(y, p, np.arange(len(y)), roc_auc_score, n_boot=300, seed=0)
    assert (patient.hi - patient.lo) > 1.4 * (naive.hi - naive.lo)


def test_unknown_targets_are_masked_and_one_class_labels_skipped():
    y, p, groups = _cohort(100, labels=3)
    y[:50, 0] = NAN
    y[:, 2] = 0.0  # no positives: AUROC undefined
    table = evaluate(y, p, groups, ["a", "b", "c"], n_boot=50)
    known = ~np.isnan(y[:, 0])
    row = table.set_index("label")
    assert row.loc["a", "auroc"] == pytest.approx(roc_auc_score(y[known, 0], p[known, 0]))
    assert row.loc["a", "ap"] == pytest.approx(average_precision_score(y[known, 0], p[known, 0]))
    assert row.loc["a", "n"] == known.sum() and row.loc["a", "n_pos"] == (y[known, 0] == 1).sum()
    assert np.isnan(row.loc["c", "auroc"]) and np.isnan(row.loc["c", "auroc_lo"])
    assert row.loc["macro", "auroc"] == pytest.approx(np.mean([row.loc["a", "auroc"], row.loc["b", "auroc"]]))


def test_evaluate_table_format():
    y, p, groups = _cohort(120)
    table = evaluate(y, p, groups, ["Edema", "Cardiomegaly"], n_boot=100, seed=0)
    assert list(table.columns) == ["label", "auroc", "auroc_lo", "auroc_hi", "ap", "ap_lo", "ap_hi", "n_pos", "n"]
    assert table["label"].tolist() == ["Edema", "Cardiomegaly", "macro"]
    assert ((table["auroc_lo"] <= table["auroc"]) & (table["auroc"] <= table["auroc_hi"])).all()
    assert ((table["ap_lo"] <= table["ap"]) & (table["ap"] <= table["ap_hi"])).all()
    again = evaluate(y, p, groups, ["Edema", "Cardiomegaly"], n_boot=100, seed=0)
    pd.testing.assert_frame_equal(table, again)  # seeded
    with pytest.raises(ValueError, match="label names"):
        evaluate(y, p, groups, ["Edema"], n_boot=10)
    with pytest.raises(ValueError, match="one patient id per row"):
        evaluate(y, p, groups[:-1], ["Edema", "Cardiomegaly"], n_boot=10)


def test_paired_bootstrap_diff():
    y, weak, groups = _cohort(150, signal=0.5, seed=4)
    _, strong, _ = _cohort(150, signal=3.0, seed=4)
    same = paired_bootstrap_diff(y, weak, weak, groups, ["a", "b"], n_boot=100)
    assert (same["diff"] == 0).all() and (same["diff_lo"] == 0).all() and (same["diff_hi"] == 0).all()
    better = paired_bootstrap_diff(y, weak, strong, groups, ["a", "b"], n_boot=200).set_index("label")
    assert (better["diff_lo"] > 0).all() and (better["p_value"] < 0.05).all()
    assert better.loc["a", "diff"] == pytest.approx(roc_auc_score(y[:, 0], strong[:, 0]) - roc_auc_score(y[:, 0], weak[:, 0]))
    ap = paired_bootstrap_diff(y, weak, strong, groups, metric="ap", n_boot=20)
    assert ap["label"].tolist() == ["label_0", "label_1", "macro"]


def test_thresholds_take_only_validation_data():
    params = list(inspect.signature(choose_thresholds).parameters)
    assert params == ["y_val", "p_val", "rule", "label_names"]
    y_val, p_val, _ = _cohort(100, seed=5)
    y_test, p_test, _ = _cohort(100, seed=6)
    before = choose_thresholds(y_val, p_val, "youden", ["a", "b"])
    p_test[:] = np.random.default_rng(0).random(p_test.shape)  # perturbing test rows...
    y_test[:] = 1 - y_test
    after = choose_thresholds(y_val, p_val, "youden", ["a", "b"])
    pd.testing.assert_series_equal(before, after)  # ...cannot move validation-chosen thresholds
    shifted = choose_thresholds(y_val, np.clip(p_val + 0.1, 0, 1), "youden", ["a", "b"])
    assert (shifted.to_numpy() > before.to_numpy()).all()  # but validation data does


def test_threshold_rules():
    y = np.array([[0], [0], [0], [1], [1], [1], [0], [1]], dtype=float)
    p = np.array([[0.1], [0.2], [0.3], [0.6], [0.7], [0.8], [0.65], [0.4]])
    youden = choose_thresholds(y, p, "youden").iloc[0]
    assert youden == pytest.approx(0.4)  # sensitivity 1, specificity 3/4
    assert apply_thresholds(p, [youden])[:, 0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    sens = choose_thresholds(y, p, 1.0).iloc[0]
    assert sens == pytest.approx(0.4)  # the highest threshold that catches every positive
    assert choose_thresholds(y, p, "sensitivity=0.75").iloc[0] == pytest.approx(0.6)
    assert choose_thresholds(y, p, "f1").iloc[0] == pytest.approx(0.4)  # precision 4/5, recall 1
    with pytest.raises(ValueError, match="'best'"):
        choose_thresholds(y, p, "best")
    with pytest.warns(UserWarning, match="lacks positives"):
        assert choose_thresholds(np.zeros((4, 1)), np.random.default_rng(0).random((4, 1))).iloc[0] == 0.5
    with pytest.raises(ValueError, match="thresholds"):
        apply_thresholds(p, [0.5, 0.5])


def test_calibration_figure():
    y, p, _ = _cohort(200, labels=3)
    y[:, 2] = 0
    fig = calibration_figure(y, p, ["a", "b", "c"], n_bins=5)
    assert isinstance(fig, go.Figure)
    names = [trace.name for trace in fig.data]
    assert names == ["perfectly calibrated", "a", "b"]  # 'c' has one class only
    assert all(0 <= v <= 1 for trace in fig.data[1:] for v in trace.y)


def test_predictions_table_contract():
    probs = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.3]])
    table = predictions_table(["i1", "i2", "i3"], ["train", "validate", "test"], probs, ["No Finding", "Edema"])
    assert list(table.columns) == ["image_id", "split", "No Finding", "Edema"]
    assert table["Edema"].tolist() == [0.9, 0.2, 0.3] and table["split"].tolist() == ["train", "validate", "test"]
    studies = predictions_table(np.array([10, 11, 12]), "test", probs, ["No Finding", "Edema"], id_column="study_id")
    assert list(studies.columns)[:2] == ["study_id", "split"] and set(studies["split"]) == {"test"}
    with pytest.raises(ValueError, match="2 distinct label names"):
        predictions_table(["i1", "i2", "i3"], "test", probs, ["Edema"])
    with pytest.raises(ValueError, match="unique"):
        predictions_table(["i1", "i1", "i3"], "test", probs, ["No Finding", "Edema"])
    with pytest.raises(ValueError, match="sigmoid"):
        predictions_table(["i1", "i2", "i3"], "test", probs * 5 - 1, ["No Finding", "Edema"])
    with pytest.raises(ValueError, match="id_column"):
        predictions_table(["i1", "i2", "i3"], "test", probs, ["No Finding", "Edema"], id_column="patient")
