"""Regions against ground truth: per-region hits, per-film and pooled scores, a random baseline, threshold sweeps.

Truth is whatever :func:`cxrkit.explain.truth.truth_objects` reads — masks (any resolution) or NIH-style
boxes — so synthetic masks and real NIH boxes share this code. Thresholds are chosen on *validation*
films (the API only uses what it is given; notebook 06 passes validation films). Taught in notebook 06.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .localize import Regions, localize
from .truth import Truth, _shape, as_map, truth_objects

CHOICE_RULES = ("max_f1", "max_hit_rate", "max_recall", "max_precision")


def _flat(m: np.ndarray) -> np.ndarray:
    return m.reshape(m.shape[0], m.shape[1] * m.shape[2])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every mask in ``a`` (n, H, W) with every mask in ``b`` (m, H, W) → (n, m)."""
    fa, fb = _flat(a).astype(np.float64), _flat(b).astype(np.float64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_regions(regions: Regions, truth: Truth, *, source_shape: Sequence[int] | None = None, min_overlap: float = 0.0) -> pd.DataFrame:
    """Return one row per region: pixels, overlap with the truth, best-matching truth object and IoU, and ``hit`` (overlap share > ``min_overlap``) (notebook 06)."""
    if not 0.0 <= min_overlap < 1.0:
        raise ValueError(f"min_overlap must lie in [0, 1), got {min_overlap!r}")
    objects = truth_objects(truth, regions.map_shape, source_shape)
    masks = regions.masks()
    area = _flat(masks).sum(1)
    overlap = _flat(masks & objects.any(axis=0)).sum(1)
    iou = _iou(masks, objects)
    share = np.divide(overlap, area, out=np.zeros(len(masks)), where=area > 0)
    return pd.DataFrame({
        "region": np.arange(len(masks)),
        "pixels": area,
        "overlap": overlap,
        "overlap_share": share,
        "object": iou.argmax(1) if iou.shape[1] else np.full(len(masks), -1),
        "iou": iou.max(1) if iou.shape[1] else np.zeros(len(masks)),
        "hit": (overlap > 0) & (share > min_overlap),
    })


def film_scores(regions: Regions, truth: Truth, *, source_shape: Sequence[int] | None = None, min_overlap: float = 0.0) -> dict[str, float]:
    """Return one film's counts: regions, true and false regions, truth objects found, whether it was hit, and the IoU of the unions (notebook 06)."""
    objects = truth_objects(truth, regions.map_shape, source_shape)
    table = match_regions(regions, objects, min_overlap=min_overlap)
    masks = regions.masks()
    inter = _flat(masks).astype(np.int64) @ _flat(objects).T.astype(np.int64)
    found = int((inter[table["hit"].to_numpy()] > 0).any(axis=0).sum())
    union_r, union_t = masks.any(axis=0), objects.any(axis=0)
    both = (union_r | union_t).sum()
    n_hits = int(table["hit"].sum())
    return {
        "n_regions": len(regions), "n_true_regions": n_hits, "n_false_regions": len(regions) - n_hits,
        "n_objects": len(objects), "n_found": found,
        "has_truth": bool(len(objects)), "hit": float(n_hits > 0) if len(objects) else float("nan"),
        "iou": float((union_r & union_t).sum() / both) if len(objects) and both else float("nan"),
        "surviving_pixels": regions.n_surviving,
    }


def _per_film(source_shape: object, n: int) -> list:
    if source_shape is not None and np.ndim(source_shape) == 2:
        if len(source_shape) != n:  # type: ignore[arg-type]
            raise ValueError(f"{len(source_shape)} source shapes for {n} films")  # type: ignore[arg-type]
        return list(source_shape)  # type: ignore[arg-type]
    return [source_shape] * n


def film_table(regions: Regions | Sequence[Regions], truths: Truth | Sequence[Truth], *, source_shape: object = None, min_overlap: float = 0.0) -> pd.DataFrame:
    """Return :func:`film_scores` for every film as a table (one row per film; ``truths`` None for a film without finding) (notebook 06)."""
    if isinstance(regions, Regions):
        regions, truths = [regions], [truths]
    truths = list(truths)  # type: ignore[arg-type]
    if len(truths) != len(regions):
        raise ValueError(f"{len(regions)} films of regions but {len(truths)} truths")
    shapes = _per_film(source_shape, len(regions))
    rows = [film_scores(r, t, source_shape=s, min_overlap=min_overlap) for r, t, s in zip(regions, truths, shapes)]
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> dict[str, float]:
    """Pool a :func:`film_table`: hit rate, region precision, object recall, mean IoU and false regions per film (notebook 06)."""
    n_regions, n_objects = int(table["n_regions"].sum()), int(table["n_objects"].sum())
    tp, fp = int(table["n_true_regions"].sum()), int(table["n_false_regions"].sum())
    with_truth = table["has_truth"].astype(bool)
    return {
        "n_films": len(table), "n_films_with_truth": int(with_truth.sum()),
        "hit_rate": float(table.loc[with_truth, "hit"].mean()) if with_truth.any() else float("nan"),
        "precision": tp / n_regions if n_regions else float("nan"),
        "recall": float(table["n_found"].sum()) / n_objects if n_objects else float("nan"),
        "mean_iou": float(table.loc[with_truth, "iou"].mean()) if with_truth.any() else float("nan"),
        "false_regions_per_film": fp / len(table) if len(table) else float("nan"),
        "true_regions_per_film": tp / len(table) if len(table) else float("nan"),
        "n_regions": n_regions, "n_true_regions": tp, "n_false_regions": fp,
        "surviving_pixels": int(table["surviving_pixels"].sum()),
    }


def localization_scores(regions: Regions | Sequence[Regions], truths: Truth | Sequence[Truth], *, source_shape: object = None, min_overlap: float = 0.0) -> dict[str, float]:
    """Return pooled localization scores over films: hit rate, precision and recall of regions, mean IoU, false regions per film (notebook 06)."""
    return summarise(film_table(regions, truths, source_shape=source_shape, min_overlap=min_overlap))


def random_regions(map_shape: Sequence[int], rng: np.random.Generator | int | None = None, *, like: Regions | None = None, n: int = 1, radius: float = 10.0, shape: str = "circle") -> Regions:
    """Return regions at uniformly random centres — ``like``'s count, sizes and shape when given — the chance baseline (notebook 06)."""
    h, w = _shape(map_shape)
    rng = np.random.default_rng(rng)
    if like is not None:
        n, shape = len(like), like.shape
        radii = like.radius.astype(float)
        half_w, half_h = (like.x1 - like.x0) / 2, (like.y1 - like.y0) / 2
    else:
        if n < 0 or radius < 0:
            raise ValueError(f"n and radius must be >= 0, got {n!r} and {radius!r}")
        radii = np.full(n, float(radius))
        half_w = half_h = radii
    cx, cy = rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n)
    return Regions(
        cx=cx, cy=cy, radius=radii, x0=cx - half_w, y0=cy - half_h, x1=cx + half_w, y1=cy + half_h,
        score=np.zeros(n), peak=np.zeros(n), n_pixels=np.zeros(n, dtype=np.int64),
        shape=shape, map_shape=(h, w), n_surviving=0,
    )


def threshold_sweep(attr_maps: Sequence[object], truth: Sequence[Truth], thresholds: Sequence[float], *, source_shape: object = None, min_overlap: float = 0.0, **localize_kw) -> pd.DataFrame:
    """Return one row of pooled scores per threshold — the curve of true vs false regions as the threshold moves (notebook 06)."""
    maps = [as_map(m) for m in attr_maps]
    truth = list(truth)
    if len(truth) != len(maps):
        raise ValueError(f"{len(maps)} attribution maps but {len(truth)} truths")
    if "threshold" in localize_kw:
        raise ValueError("pass thresholds=[...], not threshold=, to threshold_sweep")
    rows = []
    for t in thresholds:
        regions = [localize(m, threshold=float(t), **localize_kw) for m in maps]
        rows.append({"threshold": float(t), **localization_scores(regions, truth, source_shape=source_shape, min_overlap=min_overlap)})
    return pd.DataFrame(rows)


def choose_threshold(sweep_df: pd.DataFrame, rule: str = "max_f1", false_region_budget: float | None = None) -> float:
    """Return the threshold of a :func:`threshold_sweep` (run on validation films) that is best by ``rule`` within ``false_region_budget`` false regions per film (notebook 06).

    Ties go to the highest threshold (the fewest regions).
    """
    if rule not in CHOICE_RULES:
        raise ValueError(f"rule={rule!r} is not one of {CHOICE_RULES}")
    df = sweep_df
    if false_region_budget is not None:
        df = df[df["false_regions_per_film"] <= false_region_budget]
        if df.empty:
            raise ValueError(f"no threshold keeps false regions per film <= {false_region_budget}; "
                             f"the fewest reached is {sweep_df['false_regions_per_film'].min():.3g}")
    p, r = df["precision"].fillna(0.0), df["recall"].fillna(0.0)
    value = {
        "max_f1": np.divide(2 * p * r, p + r, out=np.zeros(len(df)), where=(p + r).to_numpy() > 0),
        "max_hit_rate": df["hit_rate"].fillna(-np.inf).to_numpy(),
        "max_recall": r.to_numpy(),
        "max_precision": df["precision"].fillna(-np.inf).to_numpy(),
    }[rule]
    value = np.asarray(value, dtype=float)
    best = np.flatnonzero(value == value.max())
    return float(df["threshold"].to_numpy()[best].max())
