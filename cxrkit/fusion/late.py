"""Late fusion: combine two models' predicted probabilities — by their mean, a linear regression, or an elastic-net logistic regression (notebook 04).

The stacked methods learn how much to trust each model, so they are fitted on the **validation**
predictions only and then applied to the test predictions. Fitting them on test predictions — one
source project's mistake — grades the meta-model on its own training rows. :func:`fit_late_fusion`
refuses any row whose ``split`` is not ``"validate"``; :func:`late_fusion_predictions` does the
selection for you and returns a predictions table in the kit's contract format.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegressionCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxrkit.labels import evaluation_targets
from cxrkit.metrics import macro_auroc
from cxrkit.predictions import Predictions

__all__ = ["LATE_METHODS", "LateFusion", "auroc_scorer", "fit_late_fusion", "late_fusion_predictions", "logit"]

#: The late-fusion methods by name: no fit, least squares, elastic-net logistic regression (cross-validated).
LATE_METHODS: tuple[str, ...] = ("mean", "linear", "elastic_net")
#: Elastic-net mixing values and inverse strengths searched by cross-validation.
L1_RATIOS: tuple[float, ...] = (0.1, 0.5, 0.9)
CS: tuple[float, ...] = tuple(np.logspace(-1.5, 2, 8))
#: The penalty option an elastic-net ``LogisticRegressionCV`` needs on this scikit-learn: from 1.8 ``l1_ratios``
#: alone selects it (and ``penalty`` is deprecated); before, ``penalty="elasticnet"`` must be said.
ELASTIC_NET_PENALTY: dict[str, str] = ({} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8)
                                       else {"penalty": "elasticnet"})
#: A label needs at least this many validation positives (and negatives) to be stacked; otherwise it is averaged.
MIN_CLASS_ROWS = 8


def logit(p: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Return log(p / (1 − p)) with p clipped to [eps, 1 − eps] — the scale stacking models read (notebook 04)."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p / (1 - p))


@dataclass
class LateFusion:
    """A fitted late-fusion rule: the method, the input models' names, one fitted model per label, and the rows it was fitted on (notebook 04)."""

    method: str
    inputs: list[str]
    labels: list[str]
    models: dict[str, Any] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)
    fitted_on: list[str] = field(default_factory=list)

    def features(self, probs: Mapping[str, pd.DataFrame], label: str) -> np.ndarray:
        """Return the ``N×M`` stacking features of one label: each input model's logit for it."""
        return np.column_stack([logit(probs[name][label].to_numpy()) for name in self.inputs])

    def predict(self, probs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Return fused probabilities (a frame indexed like the inputs, one column per label) from each input model's probabilities."""
        _check_aligned(probs, self.inputs, self.labels)
        index = probs[self.inputs[0]].index
        out = {}
        for label in self.labels:
            if self.method == "mean" or label in self.fallback:
                out[label] = np.mean([probs[name][label].to_numpy(dtype=float) for name in self.inputs], axis=0)
            elif self.method == "linear":
                out[label] = np.clip(self.models[label].predict(self.features(probs, label)), 0.0, 1.0)
            else:
                out[label] = self.models[label].predict_proba(self.features(probs, label))[:, 1]
        return pd.DataFrame(out, index=index)[self.labels]

    def weights(self) -> pd.DataFrame:
        """Return each label's fitted coefficient per input model (on the logit scale; standardised for elastic net)."""
        rows = []
        for label, model in self.models.items():
            est = model[-1] if hasattr(model, "steps") else model
            coef = np.ravel(est.coef_)
            rows.append({"label": label, **{name: float(c) for name, c in zip(self.inputs, coef)}})
        return pd.DataFrame(rows).set_index("label") if rows else pd.DataFrame(columns=self.inputs)


def _check_aligned(probs: Mapping[str, pd.DataFrame], names: Sequence[str], labels: Sequence[str]) -> None:
    missing = [n for n in names if n not in probs]
    if missing:
        raise KeyError(f"no probabilities for input model(s) {missing}; got {list(probs)}")
    index = probs[names[0]].index
    for name in names:
        frame = probs[name]
        if not frame.index.equals(index):
            raise ValueError(f"the rows of {name!r} are not the rows of {names[0]!r}: align them on image_id first")
        lacking = [lab for lab in labels if lab not in frame.columns]
        if lacking:
            raise KeyError(f"{name!r} has no column for label(s) {lacking}")


def auroc_scorer(estimator: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Score a fitted classifier by AUROC of its decision function — scikit-learn's ``"roc_auc"`` scorer, without its per-call checks (notebook 04).

    The elastic-net search scores 8 strengths × 3 mixes × 5 folds per label and per outer fold; scikit-learn's
    scorer spent ~8 ms a call validating its inputs (measured: 64 of notebook 04's 79 profiled seconds in one
    cell), this one ~0.4 ms. The value is :func:`cxrkit.metrics.macro_auroc` of one label, which equals
    ``roc_auc_score`` (tested), so the chosen ``C`` and mix are the same; a fold with one class scores NaN, as there.
    """
    if hasattr(estimator, "coef_"):  # a linear model: its decision_function, X·wᵀ + b, without the input checks
        scores = (np.asarray(x, dtype=float) @ estimator.coef_.T + estimator.intercept_).ravel()
    else:
        scores = np.asarray(estimator.decision_function(x))
    return macro_auroc(np.asarray(y, dtype=float)[:, None], scores[:, None])


def _elastic_net(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> Any:
    """An unfitted scaler + elastic-net LogisticRegressionCV whose folds never split a patient."""
    folds = min(5, len(np.unique(groups)))
    splits = list(GroupKFold(n_splits=folds).split(x, y, groups))
    return make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=list(CS), l1_ratios=list(L1_RATIOS), solver="saga", scoring=auroc_scorer, max_iter=5000, random_state=seed,
        cv=splits, **ELASTIC_NET_PENALTY))


def fit_late_fusion(method: str, probs: Mapping[str, pd.DataFrame], targets: pd.DataFrame, split: pd.Series,
                    groups: pd.Series | None = None, seed: int = 0) -> LateFusion:
    """Fit a late-fusion rule on **validation** rows: ``probs`` maps model name → probabilities (rows × labels) (notebook 04).

    ``targets`` holds the 0/1 labels (NaN = unknown) of the same rows, ``split`` their split (every
    one must be ``"validate"`` — test rows raise), ``groups`` their patient ids (cross-validation
    folds never split a patient). ``"mean"`` fits nothing; ``"linear"`` is least squares on the logits;
    ``"elastic_net"`` is a logistic regression with an elastic-net penalty whose strength and mix are
    chosen by patient-grouped cross-validation on AUROC. Labels with fewer than
    :data:`MIN_CLASS_ROWS` validation positives or negatives, and labels whose fitted coefficients are
    all zero (a constant prediction), fall back to the mean; ``fused.fallback`` lists them.
    """
    if method not in LATE_METHODS:
        raise ValueError(f"unknown late-fusion method {method!r}; choose one of {LATE_METHODS}")
    names, labels = list(probs), list(targets.columns)
    _check_aligned(probs, names, labels)
    index = probs[names[0]].index
    if not targets.index.equals(index) or not split.index.equals(index):
        raise ValueError("targets and split must have the same rows (index) as the probabilities")
    outside = split[split != "validate"]
    if len(outside):
        raise ValueError(f"late fusion is fitted on validation predictions only; got {len(outside)} rows from "
                         f"split(s) {sorted(set(outside.astype(str)))} (e.g. {outside.index[0]!r})")
    fused = LateFusion(method, names, labels, fitted_on=[str(i) for i in index])
    if method == "mean":
        return fused
    group_values = np.asarray(groups.loc[index] if groups is not None else np.arange(len(index)))
    for label in labels:
        y = targets[label].to_numpy(dtype=float)
        known = ~np.isnan(y)
        n_pos, n_neg = int((y[known] == 1).sum()), int((y[known] == 0).sum())
        if min(n_pos, n_neg) < MIN_CLASS_ROWS:
            fused.fallback.append(label)
            continue
        x = fused.features({n: probs[n].loc[known] for n in names}, label)
        if method == "linear":
            fused.models[label] = LinearRegression().fit(x, y[known])
        else:
            model = _elastic_net(x, y[known], group_values[known], seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)
                fitted = model.fit(x, y[known].astype(int))
            if np.allclose(fitted[-1].coef_, 0.0):  # the penalty removed both models: a constant says nothing
                fused.fallback.append(label)
            else:
                fused.models[label] = fitted
    return fused


def late_fusion_predictions(method: str, predictions: Mapping[str, Predictions | pd.DataFrame], rows: pd.DataFrame,
                            labels: Sequence[str], seed: int = 0) -> tuple[LateFusion, Predictions]:
    """Fit ``method`` on the validation rows of each model's predictions and return it with the fused :class:`~cxrkit.predictions.Predictions` (validate + test; notebook 04).

    ``predictions`` maps model name → a model's :class:`~cxrkit.predictions.Predictions` (or its table: ``image_id``,
    ``split``, one column per label); ``rows`` is the study table (``image_id``, ``subject_id``, labels). Only
    ``split == "validate"`` rows reach the fit; test rows are only ever predicted.
    """
    labels = list(labels)
    models = {name: p if isinstance(p, Predictions) else Predictions(p) for name, p in predictions.items()}
    by_split: dict[str, dict[str, pd.DataFrame]] = {}
    for split in ("validate", "test"):
        ids = next(iter(models.values())).split(split).index  # every model on the first one's rows
        by_split[split] = {name: pd.DataFrame(p.on(ids, labels), index=ids, columns=labels) for name, p in models.items()}
    val = by_split["validate"]
    ids = next(iter(val.values())).index
    info = rows.assign(image_id=rows["image_id"].astype(str)).set_index("image_id").loc[ids]
    targets = pd.DataFrame(evaluation_targets(info, labels), index=ids, columns=labels)
    split = pd.Series("validate", index=ids)
    fused = fit_late_fusion(method, val, targets, split, info["subject_id"], seed)
    return fused, Predictions.concat(Predictions.of(next(iter(parts.values())).index, s, fused.predict(parts).to_numpy(),
                                                    labels) for s, parts in by_split.items())
