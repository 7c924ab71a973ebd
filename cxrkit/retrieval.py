"""Case retrieval for notebook 07 ("one space for films and reports"): rank a gallery by cosine similarity to each
query, score the rankings against shared findings, and put a chance level beside every number.

**Protocol (test→test).** Every test film is a query and the gallery is the test set itself, so a query must never
retrieve itself nor any other film of its own patient (:func:`exclusion_mask`): a patient's other films share their
findings and would make retrieval look easy. Excluded items leave the ranking before anything is scored: they are
never returned (:func:`exact_search`) and count neither as hits nor in recall's denominator nor in the ideal DCG.
Scores are cosine similarities (:func:`cosine_scores`); rankings are exact and deterministic (descending score,
ties to the lower gallery index). Relevance is binary for P@k, R@k, AP and RR (:func:`binary_relevance`: the two
films share at least one positive finding) and graded for nDCG@k (:func:`jaccard_relevance`), with linear gains,
DCG@k = sum(rel_i / log2(i + 1)) for i = 1..k, as scikit-learn's ``ndcg_score``. A query with no relevant item left
in its gallery has no defined recall, AP, RR or nDCG: :func:`retrieval_report` skips it by default and counts it in
``queries_skipped``; ``negative_queries="zero"`` scores it 0 on every metric instead.

**The seed project's two classic mistakes**, kept reachable so that :func:`mistake_inflation` can measure them:

1. *the ideal DCG from the retrieved list* (``ideal="retrieved"``): normalising by the re-sorted top-k instead of
   the top-k of ALL relevance values in the gallery, so that a top-k holding one weak hit scores as if it were
   perfect (three relevant items, one of them at rank 2 of a top-3: 0.63 instead of 0.30);
2. *the query left in its own gallery* (``exclude=None`` on test→test): each query finds itself at rank 1 with
   cosine 1, which inflates P@1, MRR and mAP.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["METRICS", "cosine_scores", "exact_search", "exclusion_mask", "binary_relevance", "jaccard_relevance",
           "ranked_relevance", "precision_at_k", "recall_at_k", "average_precision", "reciprocal_rank", "ndcg_at_k",
           "query_metrics", "retrieval_report", "chance_report", "mistake_inflation"]

#: The report's metrics, each the mean over queries of the per-query column it names.
METRICS: dict[str, str] = {"P@k": "P@k", "R@k": "R@k", "mAP": "AP", "MRR": "RR", "nDCG@k": "nDCG@k"}
IDEALS = ("full", "retrieved")
NEGATIVE_QUERIES = ("skip", "zero")


def _matrix(values: np.ndarray, name: str, finite: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {array.shape}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _relevance(values: np.ndarray, name: str, shape: tuple[int, int]) -> np.ndarray:
    array = _matrix(values, name, True)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but scores have shape {shape}")
    if (array < 0).any():
        raise ValueError(f"{name} holds negative values (relevance must be >= 0)")
    return array


def _check_count(value: int, name: str = "k") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _allowed(exclude: Optional[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    if exclude is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(exclude)
    if mask.dtype != bool:
        raise ValueError(f"exclude must be a boolean mask, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"exclude has shape {mask.shape} but scores have shape {shape}")
    return ~mask


def _unit_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    zero_rows = np.flatnonzero(norms == 0)
    if zero_rows.size:
        raise ValueError(f"{name} has a zero vector at row {zero_rows[0]}, whose cosine is undefined")
    return vectors / norms[:, None]


def cosine_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Q×G cosine similarity of every query to every gallery item, one product of unit rows (notebook 07)."""
    query_vectors, gallery_vectors = _matrix(queries, "queries", True), _matrix(gallery, "gallery", True)
    if query_vectors.shape[1] != gallery_vectors.shape[1]:
        raise ValueError(f"queries have {query_vectors.shape[1]} dimensions, gallery {gallery_vectors.shape[1]}")
    return _unit_rows(query_vectors, "queries") @ _unit_rows(gallery_vectors, "gallery").T


def _ranking(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Q×G gallery indices in rank order: allowed items first, by descending score, ties to the lower index."""
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((index, -scores, ~allowed), axis=-1)


def exact_search(scores: np.ndarray, k: int, exclude: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Q×k top gallery indices and scores by descending score, ties to the lower index, never an ``exclude``-d
    (True) item, padded with index -1 and score NaN where fewer than k remain (notebook 07)."""
    score_matrix, k = _matrix(scores, "scores", True), _check_count(k)
    allowed = _allowed(exclude, score_matrix.shape)
    top = _ranking(score_matrix, allowed)[:, :k]
    kept = np.take_along_axis(allowed, top, axis=1)
    indices = np.where(kept, top, -1)
    top_scores = np.where(kept, np.take_along_axis(score_matrix, top, axis=1), np.nan)
    padding = ((0, 0), (0, k - top.shape[1]))
    return np.pad(indices, padding, constant_values=-1), np.pad(top_scores, padding, constant_values=np.nan)


def _ids(ids: Sequence, patients: Sequence, side: str) -> tuple[np.ndarray, np.ndarray]:
    id_array, patient_array = np.asarray(ids, dtype=object), np.asarray(patients, dtype=object)
    if id_array.ndim != 1 or id_array.shape != patient_array.shape:
        raise ValueError(f"{side}_ids has shape {id_array.shape} but {side}_patients has shape {patient_array.shape}")
    return id_array, patient_array


def exclusion_mask(query_ids: Sequence, query_patients: Sequence, gallery_ids: Sequence,
                   gallery_patients: Sequence) -> np.ndarray:
    """Q×G test→test mask, True where the gallery film is the query itself or its patient's (notebook 07)."""
    query_id, query_patient = _ids(query_ids, query_patients, "query")
    gallery_id, gallery_patient = _ids(gallery_ids, gallery_patients, "gallery")
    return (query_id[:, None] == gallery_id[None, :]) | (query_patient[:, None] == gallery_patient[None, :])


def _positives(labels: np.ndarray, name: str) -> np.ndarray:
    array = _matrix(labels, name)
    known = array[~np.isnan(array)]
    bad = known[(known != 0) & (known != 1)]
    if bad.size:
        raise ValueError(f"{name} must hold 0, 1 or NaN (unknown), found {bad[0]:g}; map uncertain labels first")
    return (array == 1).astype(float)


def _label_pair(query_labels: np.ndarray, gallery_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    query_pos, gallery_pos = _positives(query_labels, "query_labels"), _positives(gallery_labels, "gallery_labels")
    if query_pos.shape[1] != gallery_pos.shape[1]:
        raise ValueError(f"query_labels have {query_pos.shape[1]} findings, gallery_labels {gallery_pos.shape[1]}")
    return query_pos, gallery_pos


def binary_relevance(query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Q×G relevance, 1 where the two films share at least one positive finding, NaN counted as 0 (notebook 07)."""
    query_pos, gallery_pos = _label_pair(query_labels, gallery_labels)
    return (query_pos @ gallery_pos.T > 0).astype(float)


def jaccard_relevance(query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Q×G graded relevance |A∩B| / |A∪B| of the positive findings, 0 when both films have none (notebook 07)."""
    query_pos, gallery_pos = _label_pair(query_labels, gallery_labels)
    shared = query_pos @ gallery_pos.T
    union = query_pos.sum(axis=1)[:, None] + gallery_pos.sum(axis=1)[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def _ranked_values(values: np.ndarray, allowed: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.take_along_axis(np.where(allowed, values, 0.0), order, axis=1)


def ranked_relevance(scores: np.ndarray, relevance: np.ndarray, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Each query's relevance values in rank order, the excluded items last with relevance 0 (notebook 07)."""
    score_matrix = _matrix(scores, "scores", True)
    allowed = _allowed(exclude, score_matrix.shape)
    values = _relevance(relevance, "relevance", score_matrix.shape)
    return _ranked_values(values, allowed, _ranking(score_matrix, allowed))


def _hits(ranked: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.asarray(ranked, dtype=float)) > 0


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def precision_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Per query, the relevant items among the top k divided by k, from a ranked relevance matrix (notebook 07)."""
    return _hits(ranked)[:, :_check_count(k)].sum(axis=1) / k


def recall_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Per query, relevant items in the top k over all relevant items left in its gallery, 0 if none (notebook 07)."""
    hits = _hits(ranked)
    return _ratio(hits[:, :_check_count(k)].sum(axis=1), hits.sum(axis=1))


def average_precision(ranked: np.ndarray) -> np.ndarray:
    """Per query, the mean precision at each relevant item's rank in the full ranking, 0 if none (notebook 07)."""
    hits = _hits(ranked)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return _ratio((precision * hits).sum(axis=1), hits.sum(axis=1))


def reciprocal_rank(ranked: np.ndarray) -> np.ndarray:
    """Per query, 1 / the rank of the first relevant item, 0 if there is none (notebook 07)."""
    hits = _hits(ranked)
    return np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0)


def ndcg_at_k(ranked_gains: np.ndarray, k: int, ideal: str = "full") -> np.ndarray:
    """Per query, DCG@k over the ideal DCG@k of all its gallery's gains (``"full"``) or, the seed project's
    mistake, of the re-sorted top k only (``"retrieved"``), 0 where the ideal is 0 (notebook 07)."""
    gains, k = np.atleast_2d(np.asarray(ranked_gains, dtype=float)), _check_count(k)
    top = gains[:, :k]
    pool = gains if _check_choice(ideal, "ideal", IDEALS) == "full" else top
    best = -np.sort(-pool, axis=1)[:, :k]
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    return _ratio(top @ discount, best @ discount)


def query_metrics(scores: np.ndarray, relevance: np.ndarray, graded: Optional[np.ndarray], k: int,
                  exclude: Optional[np.ndarray] = None, ideal: str = "full") -> pd.DataFrame:
    """One row per query: P@k, R@k, AP, RR from ``relevance`` (> 0 = relevant), nDCG@k from ``graded`` (None: from
    ``relevance``) and ``n_relevant``, the relevant items left in its gallery (notebook 07)."""
    score_matrix, k, ideal = _matrix(scores, "scores", True), _check_count(k), _check_choice(ideal, "ideal", IDEALS)
    shape = score_matrix.shape
    allowed = _allowed(exclude, shape)
    order = _ranking(score_matrix, allowed)
    hits = _ranked_values(_relevance(relevance, "relevance", shape), allowed, order)
    gains = hits if graded is None else _ranked_values(_relevance(graded, "graded", shape), allowed, order)
    return pd.DataFrame({"P@k": precision_at_k(hits, k), "R@k": recall_at_k(hits, k), "AP": average_precision(hits),
                         "RR": reciprocal_rank(hits), "nDCG@k": ndcg_at_k(gains, k, ideal),
                         "n_relevant": (hits > 0).sum(axis=1)})


def retrieval_report(scores: np.ndarray, relevance: np.ndarray, graded: Optional[np.ndarray], k: int,
                     exclude: Optional[np.ndarray] = None, negative_queries: str = "skip",
                     ideal: str = "full") -> dict[str, float]:
    """Mean P@k, R@k, mAP, MRR and nDCG@k over queries (notebook 07), where a query with no relevant item left in its
    gallery is skipped and counted in ``queries_skipped`` (``"skip"``) or scored 0 on every metric (``"zero"``)."""
    _check_choice(negative_queries, "negative_queries", NEGATIVE_QUERIES)
    per_query = query_metrics(scores, relevance, graded, k, exclude, ideal)
    negative = per_query["n_relevant"].to_numpy() == 0
    columns = list(METRICS.values())
    if negative_queries == "zero":
        per_query.loc[negative, columns] = 0.0
    scored = per_query[~negative] if negative_queries == "skip" else per_query
    report = {name: float(scored[column].mean()) if len(scored) else np.nan for name, column in METRICS.items()}
    skipped = int(negative.sum()) if negative_queries == "skip" else 0
    return {**report, "k": k, "queries_scored": len(scored), "queries_skipped": skipped}


def chance_report(relevance: np.ndarray, graded: Optional[np.ndarray], k: int, exclude: Optional[np.ndarray] = None,
                  n_permutations: int = 200, seed: int = 0, negative_queries: str = "skip") -> dict[str, float]:
    """The chance level: :func:`retrieval_report` of seeded uniformly random rankings, averaged (notebook 07)."""
    values = _matrix(relevance, "relevance")
    n_permutations = _check_count(n_permutations, "n_permutations")
    rng = np.random.default_rng(seed)
    reports = [retrieval_report(rng.random(values.shape), values, graded, k, exclude, negative_queries)
               for _ in range(n_permutations)]
    chance = {name: float(np.mean([report[name] for report in reports])) for name in METRICS}
    counts = {key: reports[0][key] for key in ("k", "queries_scored", "queries_skipped")}
    return {**chance, **counts, "n_permutations": n_permutations}


def mistake_inflation(scores: np.ndarray, relevance: np.ndarray, graded: Optional[np.ndarray], k: int,
                      exclude: np.ndarray) -> pd.DataFrame:
    """The correct report beside each classic mistake's inflated one, a row each (notebook 07)."""
    if exclude is None:
        raise ValueError("exclude must be the protocol's mask (exclusion_mask), got None")
    rows = {"correct": retrieval_report(scores, relevance, graded, k, exclude),
            "ideal DCG from the retrieved list": retrieval_report(scores, relevance, graded, k, exclude,
                                                                  ideal="retrieved"),
            "query left in its own gallery": retrieval_report(scores, relevance, graded, k, None)}
    return pd.DataFrame(rows).T
