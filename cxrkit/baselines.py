"""The global-cue baseline: how far AUROC gets *without looking for any finding* (notebook 02).

A logistic regression per label on what every film carries whatever it shows — the view (AP films are the
portable films of sicker patients), the site, age and sex from the study table, and a few statistics of the
film's grey values (brightness and contrast, which follow the view, the patient's size and the exposure).
None of these features says where anything is. When a CNN's AUROC is not clearly above this baseline, its
ROC curve may come from sickness and view cues rather than from the findings themselves.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxrkit.labels import MODEL_LABELS, training_targets
from cxrkit.predictions import Predictions

__all__ = ["GLOBAL_CUE_QUANTILES", "global_cue_features", "global_cue_predictions"]

#: Quantiles of a film's grey values used as features (besides its mean and standard deviation).
GLOBAL_CUE_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


def global_cue_features(rows: pd.DataFrame, films: np.ndarray, sites: Sequence[str] | None = None) -> pd.DataFrame:
    """Return one row of location-free features per film: AP view, site, age, sex and grey-value statistics (notebook 02).

    ``films`` are the ``N×H×W`` cached films of ``rows`` (same order). ``sites`` fixes the site columns
    (pass the training rows' sites so every split gets the same columns); unknown ages take the median.
    """
    if len(rows) != len(films):
        raise ValueError(f"{len(rows)} rows but {len(films)} films: pass the films of these rows, in their order")
    grey = np.asarray(films, dtype=np.float32).reshape(len(films), -1) / 255.0
    features = pd.DataFrame(index=rows.index)
    features["view_ap"] = (rows["view"].astype(str).str.upper() == "AP").astype(float).to_numpy()
    age = pd.to_numeric(rows.get("age", pd.Series(np.nan, index=rows.index)), errors="coerce")
    features["age"] = age.fillna(age.median() if age.notna().any() else 0.0).to_numpy()
    features["female"] = (rows.get("sex", pd.Series("", index=rows.index)).astype(str).str.upper().str[:1] == "F").astype(float).to_numpy()
    site = rows.get("site", pd.Series("", index=rows.index)).astype(str)
    for name in (sorted(site.unique()) if sites is None else list(sites))[1:]:  # one-hot, first site as reference
        features[f"site={name}"] = (site == name).astype(float).to_numpy()
    features["grey_mean"] = grey.mean(1)
    features["grey_sd"] = grey.std(1)
    for q, values in zip(GLOBAL_CUE_QUANTILES, np.quantile(grey, GLOBAL_CUE_QUANTILES, axis=1)):
        features[f"grey_q{int(q * 100):02d}"] = values
    return features


def global_cue_predictions(prepared, labels: Sequence[str] = MODEL_LABELS,
                           splits: Sequence[str] = ("validate", "test")) -> Predictions:
    """Fit one standardised logistic regression per label on the training films' global cues; return their :class:`~cxrkit.predictions.Predictions` (notebook 02).

    Targets are every model's (:func:`cxrkit.labels.training_targets`: blank → 0, uncertain left
    out). A label without both classes in training predicts its training prevalence.
    """
    train_rows, train_films = prepared.subset("train")
    sites = sorted(train_rows.get("site", pd.Series("", index=train_rows.index)).astype(str).unique())
    x_train = global_cue_features(train_rows, train_films, sites).to_numpy()
    y_train = training_targets(train_rows, labels)
    held_out = {s: prepared.subset(s) for s in splits}
    features = {s: global_cue_features(r, f, sites).to_numpy() for s, (r, f) in held_out.items()}
    probs = {s: np.zeros((len(r), len(labels))) for s, (r, _) in held_out.items()}
    for k in range(len(labels)):
        known = y_train[:, k] >= 0
        t = y_train[known, k]
        if len(np.unique(t)) < 2:
            for s in splits:
                probs[s][:, k] = t.mean() if t.size else 0.0
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x_train[known], t)
        for s in splits:
            probs[s][:, k] = model.predict_proba(features[s])[:, 1]
    return Predictions.concat(Predictions.of(rows["image_id"], s, probs[s], labels) for s, (rows, _) in held_out.items())
