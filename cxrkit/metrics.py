"""Evaluation of multi-label predictions: AUROC and average precision with patient-level bootstrap CIs,
paired model comparisons, operating thresholds chosen on validation data, calibration, and the
predictions table every model writes.

Conventions: ``y_true`` is ``N×K`` with 1/0 and NaN for unknown (masked per label); ``y_prob`` is
``N×K`` probabilities; ``groups`` holds one patient id per row — the bootstrap resamples patients,
not images, because images of one patient are not independent. Taught in notebook 02 (image CNN).
"""
from __future__ import annotations

import warnings
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

__all__ = [
    "METRICS",
    "CI",
    "macro_auroc",
    "per_label_metric",
    "bootstrap_ci",
    "evaluate",
    "paired_bootstrap_diff",
    "choose_thresholds",
    "apply_thresholds",
    "calibration_figure",
    "predictions_table",
]

MetricFn = Callable[[np.ndarray, np.ndarray], float]

#: The per-label metrics :func:`evaluate` and :func:`paired_bootstrap_diff` know by name.
METRICS: dict[str, MetricFn] = {"auroc": roc_auc_score, "ap": average_precision_score}


class CI(NamedTuple):
    """A point estimate with its bootstrap confidence interval and how many replicates were usable."""

    estimate: float
    lo: float
    hi: float
    n_boot_used: int


def _as_2d(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    t, p = (t[:, None] if t.ndim == 1 else t), (p[:, None] if p.ndim == 1 else p)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"y_true {t.shape} and y_prob {p.shape} must both be N×K (or both length N)")
    return t, p


def _label_metric(t: np.ndarray, p: np.ndarray, metric_fn: MetricFn) -> float:
    known = ~np.isnan(t)
    t, p = t[known], p[known]
    if t.size == 0 or t.min() == t.max():  # one class absent: undefined
        return float("nan")
    return float(metric_fn(t, p))


def per_label_metric(y_true: np.ndarray, y_prob: np.ndarray, metric_fn: MetricFn = roc_auc_score) -> np.ndarray:
    """Return ``metric_fn`` for each label on its known rows; NaN where a label lacks a positive or a negative (notebook 02)."""
    t, p = _as_2d(y_true, y_prob)
    return np.array([_label_metric(t[:, k], p[:, k], metric_fn) for k in range(t.shape[1])])


def macro_auroc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Return the mean AUROC over labels that have both classes among their known rows (NaN if none) (notebook 02).

    Vectorised (the training loop calls it every epoch); equal to scikit-learn's ``roc_auc_score`` per label.
    """
    t, p = _as_2d(y_true, y_prob)
    values = np.full(t.shape[1], np.nan)
    for k in range(t.shape[1]):
        known = ~np.isnan(t[:, k])
        if known.any():
            values[k] = _weighted_auroc_ap(t[known, k], p[known, k], np.ones((1, int(known.sum()))))[0][0]
    return _macro(values)


def _macro(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _group_codes(groups: np.ndarray | Sequence, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must hold one patient id per row: expected length {n}, got shape {g.shape}")
    if pd.isna(g).any():
        raise ValueError("groups contains missing patient ids; every row needs one")
    uniques, codes = np.unique(g, return_inverse=True)
    return codes.ravel(), len(uniques)


def _patient_draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot × n_groups`` counts: how often each patient is drawn (with replacement) in each replicate."""
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, n_groups), dtype=np.int32)
    for b in range(n_boot):
        counts[b] = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
    return counts


def _resolve_metric(metric: str | MetricFn) -> tuple[str | None, MetricFn]:
    """Return (fast-path name or None, function) for a metric given by name or function."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)} or pass a function")
        return metric, METRICS[metric]
    for name, fn in METRICS.items():
        if metric is fn:
            return name, fn
    return None, metric


def _weighted_auroc_ap(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP of one label for many replicates at once; row weights (draw counts) stand in for
    duplicated rows, so the values equal scikit-learn's on the resampled data (ties included)."""
    order = np.argsort(-p, kind="stable")
    ps, ys, w = p[order], y[order], weights[:, order].astype(float)
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # blocks of tied scores
    tp = np.add.reduceat(w * ys, starts, axis=1)
    fp = np.add.reduceat(w * (1 - ys), starts, axis=1)
    tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    pos, neg = tp_cum[:, -1], fp_cum[:, -1]
    valid = (pos > 0) & (neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (fp * (tp_cum - tp / 2)).sum(axis=1) / (pos * neg)
        precision = tp_cum / np.maximum(tp_cum + fp_cum, 1e-300)
        ap = (tp * precision).sum(axis=1) / pos
    return np.where(valid, auroc, np.nan), np.where(valid, ap, np.nan)


def _bootstrap_values(
    t: np.ndarray, scores: list[np.ndarray], groups: np.ndarray | Sequence, metric: str | MetricFn, n_boot: int, seed: int,
) -> list[np.ndarray]:
    """For each score matrix in ``scores``, the ``n_boot × K`` per-label metric over the same patient-level replicates
    (NaN where a replicate lacks one class of a label)."""
    codes, n_groups = _group_codes(groups, len(t))
    draws = _patient_draws(n_groups, n_boot, seed)
    name, fn = _resolve_metric(metric)
    out = [np.full((n_boot, t.shape[1]), np.nan) for _ in scores]
    chunk = max(1, 2_000_000 // max(len(t), 1))
    for lo in range(0, n_boot, chunk):
        weights = draws[lo:lo + chunk][:, codes]  # rows inherit their patient's draw count
        for k in range(t.shape[1]):
            known = ~np.isnan(t[:, k])
            if name is not None:
                for values, p in zip(out, scores):
                    values[lo:lo + chunk, k] = _weighted_auroc_ap(t[known, k], p[known, k], weights[:, known])[name == "ap"]
                continue
            for r, w in enumerate(weights):
                idx = np.repeat(np.flatnonzero(known), w[known])
                for values, p in zip(out, scores):
                    values[lo + r, k] = _label_metric(t[idx, k], p[idx, k], fn)
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi), int(finite.size)


def _macro_rows(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(finite.any(axis=1), np.where(finite, values, 0).sum(axis=1) / finite.sum(axis=1), np.nan)


def bootstrap_ci(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    groups: np.ndarray | Sequence,
    metric_fn: str | MetricFn = "auroc",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> CI:
    """Return the metric (macro over labels for N×K input) and its percentile CI from a patient-level bootstrap (notebook 02).

    Each replicate draws patients (``groups``) with replacement and keeps all of their images;
    unknown targets are masked per label and a label lacking one class in a replicate is skipped.
    ``metric_fn`` is ``"auroc"``, ``"ap"`` (fast, vectorised) or any ``fn(y_true, y_prob) -> float``.
    """
    t, p = _as_2d(y_true, y_prob)
    _, fn = _resolve_metric(metric_fn)
    estimate = _macro(per_label_metric(t, p, fn))
    (values,) = _bootstrap_values(t, [p], groups, metric_fn, n_boot, seed)
    lo, hi, used = _interval(_macro_rows(values), level)
    return CI(estimate, lo, hi, used)


def evaluate(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    groups: np.ndarray | Sequence,
    label_names: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Return per-label and macro AUROC and AP with patient-level bootstrap CIs, plus positives and known counts (notebook 02)."""
    t, p = _as_2d(y_true, y_prob)
    if len(label_names) != t.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {t.shape[1]} label columns")
    names = list(METRICS)
    point = {m: per_label_metric(t, p, METRICS[m]) for m in names}
    boots = {m: _bootstrap_values(t, [p], groups, m, n_boot, seed)[0] for m in names}  # same seed: same replicates
    rows = []
    for k, label in enumerate(label_names):
        row: dict[str, object] = {"label": label}
        for m in names:
            lo, hi, _ = _interval(boots[m][:, k], level)
            row.update({m: point[m][k], f"{m}_lo": lo, f"{m}_hi": hi})
        known = ~np.isnan(t[:, k])
        row.update(n_pos=int((t[known, k] == 1).sum()), n=int(known.sum()))
        rows.append(row)
    macro: dict[str, object] = {"label": "macro"}
    for m in names:
        lo, hi, _ = _interval(_macro_rows(boots[m]), level)
        macro.update({m: _macro(point[m]), f"{m}_lo": lo, f"{m}_hi": hi})
    macro.update(n_pos=int(np.nansum(t == 1)), n=len(t))
    return pd.DataFrame(rows + [macro])


def paired_bootstrap_diff(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    groups: np.ndarray | Sequence,
    label_names: Sequence[str] | None = None,
    metric: str | MetricFn = "auroc",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Compare two models on the same rows: metric of B minus A per label and macro, with a paired patient-level CI (notebook 02).

    Both models are scored on the same resampled patients in every replicate, so the interval
    reflects the difference, not two independent uncertainties. ``p_value`` is the two-sided
    bootstrap p-value of "no difference" (twice the smaller tail fraction around 0).
    """
    _, metric_fn = _resolve_metric(metric)
    t, a = _as_2d(y_true, prob_a)
    _, b = _as_2d(y_true, prob_b)
    if a.shape != b.shape:
        raise ValueError(f"prob_a {a.shape} and prob_b {b.shape} must score the same rows and labels")
    names = list(label_names) if label_names is not None else [f"label_{k}" for k in range(t.shape[1])]
    if len(names) != t.shape[1]:
        raise ValueError(f"{len(names)} label names for {t.shape[1]} label columns")
    va, vb = _bootstrap_values(t, [a, b], groups, metric, n_boot, seed)
    diffs = np.column_stack([vb - va, _macro_rows(vb - va)])  # a label undefined for one is undefined for both
    pa, pb = per_label_metric(t, a, metric_fn), per_label_metric(t, b, metric_fn)
    rows = []
    for k, label in enumerate(names + ["macro"]):
        ea, eb = (pa[k], pb[k]) if k < len(names) else (_macro(pa), _macro(pb))
        lo, hi, used = _interval(diffs[:, k], level)
        finite = diffs[:, k][np.isfinite(diffs[:, k])]
        p_value = min(1.0, 2 * min((finite <= 0).mean(), (finite >= 0).mean())) if used else float("nan")
        rows.append({"label": label, "a": ea, "b": eb, "diff": eb - ea, "diff_lo": lo, "diff_hi": hi, "p_value": p_value})
    return pd.DataFrame(rows)


def _threshold_for(t: np.ndarray, p: np.ndarray, rule: str | float) -> float:
    if isinstance(rule, float):
        fpr, tpr, thr = roc_curve(t, p, drop_intermediate=False)
        reaching = np.flatnonzero(tpr >= rule)  # tpr rises as the threshold falls: take the highest threshold that reaches it
        return float(min(thr[reaching[0]], 1.0))
    if rule == "youden":
        fpr, tpr, thr = roc_curve(t, p, drop_intermediate=False)
        return float(min(thr[np.argmax(tpr - fpr)], 1.0))
    precision, recall, thr = precision_recall_curve(t, p)
    f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
    return float(thr[np.argmax(f1)])


def _parse_rule(rule: str | float) -> str | float:
    if isinstance(rule, str) and rule.startswith("sensitivity"):
        rule = float(rule.split("=", 1)[1]) if "=" in rule else float("nan")
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        if not 0 < float(rule) <= 1:
            raise ValueError(f"a sensitivity target must be in (0, 1], got {rule}")
        return float(rule)
    if rule not in ("youden", "f1"):
        raise ValueError(f"unknown threshold rule {rule!r}; use 'youden', 'f1', or a sensitivity target like 0.9 or 'sensitivity=0.9'")
    return rule


def choose_thresholds(
    y_val: np.ndarray,
    p_val: np.ndarray,
    rule: str | float = "youden",
    label_names: Sequence[str] | None = None,
) -> pd.Series:
    """Choose one operating threshold per label from **validation** targets and probabilities only (notebook 02).

    ``rule`` is ``"youden"`` (max sensitivity + specificity − 1), ``"f1"`` (max F1), or a sensitivity
    target (``0.9`` or ``"sensitivity=0.9"``: the highest threshold reaching it). The function takes
    no test data by design: thresholds tuned on test rows make test metrics optimistic. A label
    without both classes in validation gets 0.5, with a warning.
    """
    rule = _parse_rule(rule)
    t, p = _as_2d(y_val, p_val)
    names = list(label_names) if label_names is not None else list(range(t.shape[1]))
    if len(names) != t.shape[1]:
        raise ValueError(f"{len(names)} label names for {t.shape[1]} label columns")
    out = {}
    for k, name in enumerate(names):
        known = ~np.isnan(t[:, k])
        tk, pk = t[known, k], p[known, k]
        if tk.size == 0 or tk.min() == tk.max():
            warnings.warn(f"label {name!r} lacks positives or negatives in validation; threshold set to 0.5", stacklevel=2)
            out[name] = 0.5
        else:
            out[name] = _threshold_for(tk, pk, rule)
    return pd.Series(out, name="threshold", dtype=float)


def apply_thresholds(probs: np.ndarray, thresholds: pd.Series | np.ndarray | Sequence[float]) -> np.ndarray:
    """Return 0/1 decisions ``probs >= threshold`` per label column (notebook 02)."""
    p = np.asarray(probs, dtype=float)
    thr = np.asarray(thresholds, dtype=float)
    if p.ndim != 2 or thr.shape != (p.shape[1],):
        raise ValueError(f"need N×K probabilities and K thresholds, got {p.shape} and {thr.shape}")
    return (p >= thr[None, :]).astype(np.int8)


def calibration_figure(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    label_names: Sequence[str],
    n_bins: int = 10,
    strategy: str = "quantile",
) -> go.Figure:
    """Return a plotly reliability diagram (observed frequency vs mean predicted probability) per label (notebook 02)."""
    t, p = _as_2d(y_true, y_prob)
    if len(label_names) != t.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {t.shape[1]} label columns")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(dash="dash", color="gray")))
    for k, name in enumerate(label_names):
        known = ~np.isnan(t[:, k])
        tk, pk = t[known, k], p[known, k]
        if tk.size == 0 or tk.min() == tk.max():
            continue
        frac_pos, mean_pred = calibration_curve(tk, pk, n_bins=n_bins, strategy=strategy)
        fig.add_trace(go.Scatter(x=mean_pred, y=frac_pos, mode="lines+markers", name=name))
    fig.update_layout(title="Calibration (reliability) curves", xaxis_title="mean predicted probability",
                      yaxis_title="observed fraction positive", xaxis_range=[0, 1], yaxis_range=[0, 1],
                      width=650, height=500)
    return fig


def predictions_table(
    ids: np.ndarray | Sequence,
    split: np.ndarray | Sequence | str,
    probs: np.ndarray,
    label_names: Sequence[str],
    id_column: str = "image_id",
) -> pd.DataFrame:
    """Return a predictions table in the kit's contract format: ``id_column``, ``split``, one probability column per label (notebook 02)."""
    if id_column not in ("image_id", "study_id"):
        raise ValueError(f"id_column must be 'image_id' or 'study_id', got {id_column!r}")
    p = np.asarray(probs, dtype=float)
    ids = np.asarray(ids)
    if p.ndim != 2 or p.shape[0] != len(ids):
        raise ValueError(f"probs must be N×K with N={len(ids)} rows (one per id), got {p.shape}")
    if len(label_names) != p.shape[1] or len(set(label_names)) != len(label_names):
        raise ValueError(f"need {p.shape[1]} distinct label names, got {list(label_names)}")
    if pd.Series(ids).duplicated().any():
        raise ValueError(f"{id_column} values must be unique; duplicated: {pd.Series(ids)[pd.Series(ids).duplicated()].tolist()[:5]}")
    finite = p[np.isfinite(p)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"probs must be probabilities in [0, 1] (apply a sigmoid to logits); got range [{finite.min():.3g}, {finite.max():.3g}]")
    split_col = np.full(len(ids), split, dtype=object) if isinstance(split, str) else np.asarray(split, dtype=object)
    if split_col.shape != (len(ids),):
        raise ValueError(f"split must be a string or one value per row, got shape {split_col.shape}")
    table = pd.DataFrame({id_column: ids, "split": split_col})
    return pd.concat([table, pd.DataFrame(p, columns=list(label_names))], axis=1)
