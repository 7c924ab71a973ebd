"""Comparing single-modality and fused models honestly: choose on validation, report test AUROC with patient-level CIs (notebook 04).

:func:`comparison_table` scores every model's test probabilities with bootstrap CIs;
:func:`choose_best` picks the best single modality and the best fusion on **validation** (late
stacking rules scored out of fold, so they do not grade themselves); :func:`fusion_gain` is the
paired bootstrap of the best fusion minus the best single model on test; :func:`comparison_figure`
draws the table; :func:`changed_calls` lists films whose call the fusion changed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.model_selection import GroupKFold

from cxrkit.fusion.late import fit_late_fusion
from cxrkit.metrics import bootstrap_ci, macro_auroc, paired_bootstrap_diff, per_label_metric
from cxrkit.predictions import Predictions

__all__ = ["align", "comparison_table", "macro_auroc_of", "out_of_fold_late", "choose_best", "fusion_gain",
           "comparison_figure", "changed_calls"]


def align(probs: Mapping[str, Predictions | pd.DataFrame], rows: pd.DataFrame, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Return each model's ``N×K`` probabilities on the same rows, in ``rows``' image_id order (notebook 04).

    A model's probabilities are its :class:`~cxrkit.predictions.Predictions` or one split of them (a frame indexed by
    ``image_id``, as ``Predictions.split`` returns).
    """
    out = {}
    for name, p in probs.items():
        predictions = p if isinstance(p, Predictions) else Predictions(p.rename_axis("image_id").reset_index().assign(split=""))
        try:
            out[name] = predictions.on(rows, labels)
        except KeyError as exc:
            raise KeyError(f"model {name!r}: {exc.args[0]}") from None
    return out


def comparison_table(probs: Mapping[str, pd.DataFrame], rows: pd.DataFrame, targets: np.ndarray, labels: Sequence[str],
                     n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Return one row per model: macro AUROC with its 95% patient-level bootstrap CI, then each label's AUROC (notebook 04)."""
    groups = rows["subject_id"].to_numpy()
    records = []
    for name, p in align(probs, rows, labels).items():
        ci = bootstrap_ci(targets, p, groups, "auroc", n_boot=n_boot, seed=seed)
        record = {"model": name, "auroc": ci.estimate, "auroc_lo": ci.lo, "auroc_hi": ci.hi}
        record.update(zip(labels, per_label_metric(targets, p)))
        records.append(record)
    return pd.DataFrame(records).set_index("model")


def out_of_fold_late(method: str, probs: Mapping[str, pd.DataFrame], targets: pd.DataFrame, groups: pd.Series,
                     folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Return out-of-fold validation probabilities of a late-fusion rule: each fold predicted by a rule fitted on the others (notebook 04).

    This is how a stacking rule fitted on validation can still be *compared* on validation without
    grading itself on its own training rows. Folds never split a patient.
    """
    index = targets.index
    out = pd.DataFrame(np.nan, index=index, columns=targets.columns)
    splitter = GroupKFold(n_splits=min(folds, groups.nunique()))
    for fit_rows, held_rows in splitter.split(np.zeros(len(index)), groups=groups.to_numpy()):
        fit_ids, held_ids = index[fit_rows], index[held_rows]
        rule = fit_late_fusion(method, {n: p.loc[fit_ids] for n, p in probs.items()}, targets.loc[fit_ids],
                               pd.Series("validate", index=fit_ids), groups.loc[fit_ids], seed)
        out.loc[held_ids] = rule.predict({n: p.loc[held_ids] for n, p in probs.items()}).to_numpy()
    return out


def choose_best(validation_auroc: Mapping[str, float], singles: Sequence[str], fusions: Sequence[str]) -> tuple[str, str]:
    """Return (best single model, best fusion) by **validation** macro AUROC — never by test (notebook 04)."""
    missing = [n for n in list(singles) + list(fusions) if n not in validation_auroc]
    if missing:
        raise KeyError(f"no validation AUROC for {missing}")
    best_single = max(singles, key=lambda n: validation_auroc[n])
    best_fusion = max(fusions, key=lambda n: validation_auroc[n])
    return best_single, best_fusion


def fusion_gain(probs: Mapping[str, pd.DataFrame], rows: pd.DataFrame, targets: np.ndarray, labels: Sequence[str],
                single: str, fused: str, n_boot: int = 500, seed: int = 0) -> dict[str, float]:
    """Return test macro AUROC of ``fused`` minus ``single`` with a paired patient-level bootstrap 95% CI and p-value (notebook 04)."""
    aligned = align({single: probs[single], fused: probs[fused]}, rows, labels)
    diff = paired_bootstrap_diff(targets, aligned[single], aligned[fused], rows["subject_id"].to_numpy(), list(labels),
                                 n_boot=n_boot, seed=seed).set_index("label").loc["macro"]
    return {"gain": float(diff["diff"]), "lo": float(diff["diff_lo"]), "hi": float(diff["diff_hi"]),
            "p_value": float(diff["p_value"])}


def comparison_figure(table: pd.DataFrame, labels: Sequence[str], title: str = "Test AUROC by model") -> go.Figure:
    """Draw macro AUROC with 95% CIs (left) and the per-label AUROC heatmap (right) of a :func:`comparison_table` (notebook 04)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65], horizontal_spacing=0.18,
                        subplot_titles=("macro AUROC, 95% CI", "per-label AUROC"))
    names = list(table.index)[::-1]
    t = table.loc[names]
    fig.add_trace(go.Scatter(x=t["auroc"], y=names, mode="markers", marker=dict(size=9, color="#1f77b4"),
                             error_x=dict(type="data", symmetric=False, array=t["auroc_hi"] - t["auroc"],
                                          arrayminus=t["auroc"] - t["auroc_lo"]),
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>", showlegend=False), row=1, col=1)
    fig.add_vline(x=0.5, line_dash="dot", line_color="grey", row=1, col=1)
    z = t[list(labels)].to_numpy()
    fig.add_trace(go.Heatmap(z=z, x=list(labels), y=names, zmin=0.5, zmax=1.0, colorscale="Viridis",
                             text=np.round(z, 2), texttemplate="%{text}", colorbar=dict(title="AUROC"),
                             hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"), row=1, col=2)
    fig.update_layout(title=title, height=120 + 34 * len(names), width=1050, margin=dict(l=10, r=10, t=70, b=10))
    fig.update_xaxes(tickangle=35, row=1, col=2)
    return fig


def changed_calls(rows: pd.DataFrame, targets: np.ndarray, label_index: int, single: np.ndarray, fused: np.ndarray,
                  threshold_single: float, threshold_fused: float) -> pd.DataFrame:
    """Return the films whose call on one label the fusion changed, with whether the change was a fix or a new error (notebook 04)."""
    y = targets[:, label_index]
    call_s = single[:, label_index] >= threshold_single
    call_f = fused[:, label_index] >= threshold_fused
    known = ~np.isnan(y)
    changed = known & (call_s != call_f)
    out = rows.loc[changed, ["image_id", "subject_id", "indication"]].copy()
    out["truth"] = y[changed].astype(int)
    out["p_single"] = single[changed, label_index]
    out["p_fused"] = fused[changed, label_index]
    out["verdict"] = np.where(call_f[changed] == (y[changed] == 1), "fixed by fusion", "broken by fusion")
    return out.sort_values("verdict", ascending=False).reset_index(drop=True)


def macro_auroc_of(probs: pd.DataFrame, rows: pd.DataFrame, targets: np.ndarray, labels: Sequence[str]) -> float:
    """Return the macro AUROC of one model's probabilities on ``rows`` (notebook 04)."""
    return macro_auroc(targets, align({"m": probs}, rows, labels)["m"])
