"""Case retrieval (cxrkit.retrieval, notebook 07): cosine scores, exact tie-broken search, the test→test exclusion
protocol, the metrics against scikit-learn and by hand, negative queries, chance levels and the two mistakes."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from cxrkit.retrieval import (
    METRICS,
    average_precision,
    binary_relevance,
    chance_report,
    cosine_scores,
    exact_search,
    exclusion_mask,
    jaccard_relevance,
    mistake_inflation,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
    ranked_relevance,
    recall_at_k,
    reciprocal_rank,
    retrieval_report,
)

NAN = np.nan


def _test_set(patients: int = 40, per_patient: int = 2, findings: int = 4, seed: int = 0):
    """A test set of films, ``per_patient`` per patient sharing the patient's findings; embeddings = findings + patient
    + noise, so that a patient's other films sit close by."""
    rng = np.random.default_rng(seed)
    labels = np.repeat((rng.random((patients, findings)) < 0.35).astype(float), per_patient, axis=0)
    patient = np.repeat([f"p{i}" for i in range(patients)], per_patient)
    patient_effect = np.repeat(rng.normal(size=(patients, 16)), per_patient, axis=0)
    embeddings = labels @ rng.normal(size=(findings, 16)) + patient_effect + 0.5 * rng.normal(size=(len(labels), 16))
    ids = np.array([f"film{i}" for i in range(len(labels))])
    return embeddings, labels, ids, patient


def test_cosine_scores_equal_a_hand_computation_and_reject_zero_vectors_and_mismatched_dimensions():
    queries = np.array([[3.0, 4.0], [2.0, 0.0]])
    gallery = np.array([[4.0, 3.0], [0.0, 5.0], [-1.0, 0.0]])
    expected = np.array([[0.96, 0.8, -0.6], [0.8, 0.0, -1.0]])  # (0.6, 0.8)·(0.8, 0.6) = 0.96, …
    np.testing.assert_allclose(cosine_scores(queries, gallery), expected, atol=1e-12)
    with pytest.raises(ValueError, match="gallery has a zero vector at row 1"):
        cosine_scores(queries, np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="queries have 2 dimensions, gallery 3"):
        cosine_scores(queries, np.ones((2, 3)))
    with pytest.raises(ValueError, match="queries holds NaN"):
        cosine_scores(np.array([[NAN, 1.0]]), gallery)


def test_exact_search_orders_by_score_and_breaks_ties_by_the_lower_gallery_index():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    indices, top_scores = exact_search(scores, k=4)
    np.testing.assert_array_equal(indices, [[1, 3, 0, 2], [0, 1, 2, 3]])
    np.testing.assert_array_equal(top_scores, [[0.9, 0.9, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    many_ties = np.full((1, 500), 0.25)  # large enough that an unstable sort would reorder the ties
    np.testing.assert_array_equal(exact_search(many_ties, k=50)[0], [np.arange(50)])


def test_excluded_items_are_never_returned_and_fewer_than_k_are_padded():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random((6, 10)), 1)  # many ties
    exclude = rng.random((6, 10)) < 0.4
    exclude[0] = True
    exclude[0, [7, 2]] = False  # only two items left for query 0
    indices, top_scores = exact_search(scores, k=4, exclude=exclude)
    for q in range(6):
        allowed = [g for g in range(10) if not exclude[q, g]]
        expected = sorted(allowed, key=lambda g: (-scores[q, g], g))[:4]
        kept = indices[q][indices[q] >= 0]
        assert list(kept) == expected and not exclude[q, kept].any()
        np.testing.assert_array_equal(top_scores[q][: len(kept)], scores[q, kept])
    np.testing.assert_array_equal(indices[0, 2:], [-1, -1])
    assert np.isnan(top_scores[0, 2:]).all()
    assert exact_search(scores, k=15)[0].shape == (6, 15)  # k beyond the gallery: padded too


def test_excluded_items_leave_the_ranking_and_the_recall_denominator():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevance = np.array([[1.0, 0.0, 1.0, 0.0, 1.0]])
    exclude = np.array([[True, False, False, False, False]])  # e.g. the query itself, relevant to itself
    np.testing.assert_array_equal(ranked_relevance(scores, relevance, exclude), [[0, 1, 0, 1, 0]])
    per_query = query_metrics(scores, relevance, None, k=2, exclude=exclude)
    assert per_query.loc[0, "R@k"] == 1 / 2 and per_query.loc[0, "n_relevant"] == 2  # not 1/3 of 3
    assert per_query.loc[0, "RR"] == 1 / 2 and per_query.loc[0, "AP"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_exclusion_mask_removes_the_query_itself_and_every_film_of_its_patient():
    ids, patients = ["a", "b", "c", "d"], ["p1", "p1", "p2", "p3"]
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(exclusion_mask(ids, patients, ids, patients), expected)
    np.testing.assert_array_equal(exclusion_mask(["b"], ["p1"], ids, patients), [[1, 1, 0, 0]])
    with pytest.raises(ValueError, match="gallery_ids has shape \\(4,\\) but gallery_patients has shape \\(3,\\)"):
        exclusion_mask(ids, patients, ids, patients[:3])


def test_binary_and_jaccard_relevance_by_hand_with_unknown_labels_counted_as_negative():
    queries = np.array([[1, 1, 0], [0, NAN, 0]])
    gallery = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [NAN, 1, 0]])
    np.testing.assert_array_equal(binary_relevance(queries, gallery), [[1, 1, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_allclose(jaccard_relevance(queries, gallery), [[1 / 2, 1 / 3, 0, 1 / 2], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="gallery_labels must hold 0, 1 or NaN \\(unknown\\), found -1"):
        binary_relevance(queries, np.array([[-1, 0, 0]]))
    with pytest.raises(ValueError, match="query_labels have 3 findings, gallery_labels 2"):
        jaccard_relevance(queries, np.ones((1, 2)))


def test_ndcg_with_the_full_ideal_equals_scikit_learn_row_by_row():
    rng = np.random.default_rng(0)
    graded = rng.integers(0, 4, size=(12, 25)).astype(float)
    graded[:, 0] = np.maximum(graded[:, 0], 1)  # every query has something relevant
    scores = rng.random((12, 25))  # distinct scores
    ranked = ranked_relevance(scores, graded)
    for k in (1, 3, 10, 25):
        ours = ndcg_at_k(ranked, k)
        for q in range(12):
            assert ours[q] == pytest.approx(ndcg_score(graded[q:q + 1], scores[q:q + 1], k=k), abs=1e-12), (k, q)
    jaccard = rng.random((12, 25)) * (rng.random((12, 25)) < 0.5)
    per_query = query_metrics(scores, jaccard > 0, jaccard, k=5)
    np.testing.assert_allclose(per_query["nDCG@k"], [ndcg_score(jaccard[q:q + 1], scores[q:q + 1], k=5)
                                                     for q in range(12)], atol=1e-12)


def test_average_precision_equals_scikit_learn_per_query():
    rng = np.random.default_rng(1)
    relevant = (rng.random((15, 30)) < 0.3).astype(float)
    relevant[:, 5] = 1.0
    scores = rng.random((15, 30))
    ours = average_precision(ranked_relevance(scores, relevant))
    np.testing.assert_allclose(ours, [average_precision_score(relevant[q], scores[q]) for q in range(15)], atol=1e-12)


def test_reciprocal_rank_precision_and_recall_by_hand_on_a_tiny_case():
    ranked = np.array([[0, 0, 1, 0, 1], [1, 0, 0, 0, 0], [0, 1, 1, 1, 0]])
    np.testing.assert_allclose(reciprocal_rank(ranked), [1 / 3, 1, 1 / 2])
    np.testing.assert_allclose(precision_at_k(ranked, 2), [0, 1 / 2, 1 / 2])
    np.testing.assert_allclose(recall_at_k(ranked, 2), [0, 1, 1 / 3])
    np.testing.assert_allclose(average_precision(ranked), [(1 / 3 + 2 / 5) / 2, 1, (1 / 2 + 2 / 3 + 3 / 4) / 3])
    scores = np.array([[0.5, 0.4, 0.3, 0.2, 0.1]] * 3)  # ranking = gallery order
    report = retrieval_report(scores, ranked, None, k=2)
    assert report["MRR"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)
    assert report["P@k"] == pytest.approx(1 / 3) and report["R@k"] == pytest.approx(4 / 9)
    assert report["queries_scored"] == 3 and report["queries_skipped"] == 0


def test_the_ideal_from_the_retrieved_list_inflates_ndcg_on_the_worked_case():
    """7-item gallery, 3 relevant items (ranks 2, 5, 7), top-3 holds only the one at rank 2. The correct ideal DCG@3
    is that of the 3 relevant items, 1 + 1/log2(3) + 1/2; the retrieved list's re-sorted [1, 0, 0] gives 1 — it
    reproduces the issue's numbers exactly: 0.63 with the retrieved ideal, 0.30 with the full one."""
    ranked = np.array([[0, 1, 0, 0, 1, 0, 1]], dtype=float)
    full, retrieved = ndcg_at_k(ranked, 3)[0], ndcg_at_k(ranked, 3, ideal="retrieved")[0]
    assert round(full, 2) == 0.30 and round(retrieved, 2) == 0.63
    assert full == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3) + 1 / 2))
    scores = np.linspace(1, 0, 7)[None, :]  # the same case through scores: ranking = gallery order
    report = retrieval_report(scores, ranked, None, k=3)
    assert round(report["nDCG@k"], 2) == 0.30
    assert round(retrieval_report(scores, ranked, None, k=3, ideal="retrieved")["nDCG@k"], 2) == 0.63


def test_both_mistakes_inflate_the_numbers_on_a_test_to_test_set():
    embeddings, labels, ids, patients = _test_set()
    scores = cosine_scores(embeddings, embeddings)
    exclude = exclusion_mask(ids, patients, ids, patients)
    relevance, graded = binary_relevance(labels, labels), jaccard_relevance(labels, labels)
    self_found, self_score = exact_search(scores, k=1)
    np.testing.assert_array_equal(self_found[:, 0], np.arange(len(ids)))  # without the mask, rank 1 is the query
    np.testing.assert_allclose(self_score[:, 0], 1.0)
    masked_found = exact_search(scores, k=5, exclude=exclude)[0]
    assert (patients[masked_found] != patients[:, None]).all()  # with it, never the query nor its patient's films
    table = mistake_inflation(scores, relevance, graded, k=5, exclude=exclude)
    correct, in_gallery = table.loc["correct"], table.loc["query left in its own gallery"]
    assert in_gallery["MRR"] == 1.0 and in_gallery["P@k"] > correct["P@k"]
    assert correct["MRR"] < 0.9 and in_gallery["mAP"] > correct["mAP"]
    assert retrieval_report(scores, relevance, graded, k=1)["P@k"] == 1.0 > \
        retrieval_report(scores, relevance, graded, k=1, exclude=exclude)["P@k"]
    retrieved_ideal = table.loc["ideal DCG from the retrieved list"]
    assert retrieved_ideal["nDCG@k"] > correct["nDCG@k"] + 0.05
    assert (retrieved_ideal[["P@k", "R@k", "mAP", "MRR"]] == correct[["P@k", "R@k", "mAP", "MRR"]]).all()
    per_query = [query_metrics(scores, relevance, graded, 5, exclude, ideal)["nDCG@k"]
                 for ideal in ("full", "retrieved")]
    assert (per_query[1] >= per_query[0] - 1e-12).all()
    with pytest.raises(ValueError, match="exclude must be the protocol's mask"):
        mistake_inflation(scores, relevance, graded, k=5, exclude=None)


def test_negative_queries_are_skipped_and_counted_or_scored_zero():
    scores = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.9, 0.8, 0.7]])
    relevance = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=float)
    exclude = np.zeros((4, 3), dtype=bool)
    exclude[3, 1] = True  # query 3's only relevant item is excluded: it is negative too
    skip = retrieval_report(scores, relevance, None, k=1, exclude=exclude)
    assert skip["queries_scored"] == 2 and skip["queries_skipped"] == 2
    assert skip["MRR"] == pytest.approx((1 + 1 / 3) / 2) and skip["P@k"] == pytest.approx(1 / 2)
    zero = retrieval_report(scores, relevance, relevance + 0.5, k=1, exclude=exclude, negative_queries="zero")
    assert zero["queries_scored"] == 4 and zero["queries_skipped"] == 0
    assert zero["MRR"] == pytest.approx((1 + 1 / 3) / 4) and zero["P@k"] == pytest.approx(1 / 4)
    assert all(zero[name] == pytest.approx(skip[name] / 2) for name in METRICS if name != "nDCG@k")
    nothing = retrieval_report(scores, np.zeros((4, 3)), None, k=1)
    assert nothing["queries_scored"] == 0 and nothing["queries_skipped"] == 4 and np.isnan(nothing["mAP"])


def test_chance_report_is_seeded_and_its_precision_is_the_share_of_relevant_items():
    embeddings, labels, ids, patients = _test_set(patients=30, seed=4)
    exclude = exclusion_mask(ids, patients, ids, patients)
    relevance, graded = binary_relevance(labels, labels), jaccard_relevance(labels, labels)
    chance = chance_report(relevance, graded, k=5, exclude=exclude, n_permutations=200, seed=0)
    assert chance == chance_report(relevance, graded, k=5, exclude=exclude, n_permutations=200, seed=0)
    assert chance != chance_report(relevance, graded, k=5, exclude=exclude, n_permutations=200, seed=1)
    allowed_relevant = np.where(exclude, 0, relevance).sum(axis=1)
    share = allowed_relevant / (~exclude).sum(axis=1)
    assert chance["P@k"] == pytest.approx(share[allowed_relevant > 0].mean(), abs=0.015)
    assert chance["queries_skipped"] == (allowed_relevant == 0).sum() and chance["n_permutations"] == 200
    model = retrieval_report(cosine_scores(embeddings, embeddings), relevance, graded, k=5, exclude=exclude)
    assert model["queries_scored"] == chance["queries_scored"] and model["nDCG@k"] > chance["nDCG@k"]


def test_bad_inputs_raise_errors_that_name_the_problem():
    scores, relevance = np.random.default_rng(0).random((3, 4)), np.ones((3, 4))
    with pytest.raises(ValueError, match="relevance has shape \\(3, 5\\) but scores have shape \\(3, 4\\)"):
        retrieval_report(scores, np.ones((3, 5)), None, k=2)
    with pytest.raises(ValueError, match="graded has shape \\(2, 4\\)"):
        retrieval_report(scores, relevance, np.ones((2, 4)), k=2)
    for k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=f"k must be an integer >= 1, got {k!r}"):
            exact_search(scores, k=k)
    with pytest.raises(ValueError, match="ideal must be one of 'full', 'retrieved', got 'best'"):
        retrieval_report(scores, relevance, None, k=2, ideal="best")
    with pytest.raises(ValueError, match="ideal must be one of"):
        ndcg_at_k(relevance, 2, ideal="retrieved-list")
    with pytest.raises(ValueError, match="negative_queries must be one of 'skip', 'zero', got 'drop'"):
        retrieval_report(scores, relevance, None, k=2, negative_queries="drop")
    with pytest.raises(ValueError, match="exclude must be a boolean mask, got dtype int64"):
        exact_search(scores, 2, exclude=np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="exclude has shape \\(4, 3\\) but scores have shape \\(3, 4\\)"):
        exact_search(scores, 2, exclude=np.zeros((4, 3), dtype=bool))
    with pytest.raises(ValueError, match="scores must be a 2-D array, got shape \\(4,\\)"):
        exact_search(scores[0], 2)
    with pytest.raises(ValueError, match="relevance holds negative values"):
        retrieval_report(scores, -relevance, None, k=2)
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 1, got 0"):
        chance_report(relevance, None, k=2, n_permutations=0)
