"""Coded exercises of notebooks 05 and 06: each reference passes its own check; wrong answers and stubs fail."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from cxrkit.exercises import check, registry
from cxrkit.exercises.nb05 import gradient_x_input
from cxrkit.exercises.nb06 import canonical_labels, cluster_pixels, threshold_for_budget
from cxrkit.explain import attribute
from cxrkit.explain.localize import single_linkage_labels

torch.set_num_threads(1)


def _stub(*args, **kwargs):
    raise NotImplementedError


def test_registered_with_their_notebooks():
    found = registry()
    assert found["nb05_gradient_x_input"].notebook == "05_saliency_derivation"
    assert found["nb06_cluster_pixels"].notebook == "06_clustered_ig_localization"
    assert found["nb06_threshold_for_budget"].notebook == "06_clustered_ig_localization"


def test_gradient_x_input_reference_passes_and_wrong_answers_fail():
    assert check("nb05_gradient_x_input", gradient_x_input, verbose=False)

    def plain_gradient(model, x, k):  # forgets to multiply by the input
        x = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(model(x)[:, k].sum(), x)[0]

    wrong = check("nb05_gradient_x_input", plain_gradient, verbose=False)
    assert not wrong and "differ" in wrong.message
    stub = check("nb05_gradient_x_input", _stub, verbose=False)
    assert not stub and "not written yet" in stub.message


def test_gradient_x_input_reference_agrees_with_captum():
    ex = registry()["nb05_gradient_x_input"]
    for case in ex.cases():
        model, x, k = case.args
        ours = gradient_x_input(model, x, k)
        theirs = attribute("gradient_x_input", model, x, k)  # (B, H, W), summed over the one channel
        assert torch.allclose(ours.sum(1), theirs, atol=1e-6)


def test_cluster_pixels_reference_passes_and_wrong_answers_fail():
    assert check("nb06_cluster_pixels", cluster_pixels, verbose=False)
    four_connected = lambda keep, d: ndimage.label(keep)[0][keep] - 1  # noqa: E731 - ignores the distance
    assert not check("nb06_cluster_pixels", four_connected, verbose=False)
    one_cluster = lambda keep, d: np.zeros(int(keep.sum()), int)  # noqa: E731
    assert "clusters" in check("nb06_cluster_pixels", one_cluster, verbose=False).message
    assert "not written yet" in check("nb06_cluster_pixels", _stub, verbose=False).message


def test_cluster_pixels_matches_the_library_and_numbering_does_not_matter():
    keep = np.random.default_rng(0).random((20, 20)) > 0.8
    ref = cluster_pixels(keep, 2.5)
    lib = single_linkage_labels(np.argwhere(keep).astype(float), 2.5)
    assert np.array_equal(canonical_labels(ref), canonical_labels(lib))
    renumbered = lambda keep, d: 100 - cluster_pixels(keep, d)  # noqa: E731 - same partition, other names
    assert check("nb06_cluster_pixels", renumbered, verbose=False)
    assert list(canonical_labels([7, 7, 3, 9, 3])) == [0, 0, 1, 2, 1]


def test_threshold_for_budget_reference_passes_and_wrong_answers_fail():
    assert check("nb06_threshold_for_budget", threshold_for_budget, verbose=False)

    def lowest_tie(sweep, budget):  # breaks ties towards the lowest threshold
        ok = sweep[sweep["false_regions_per_film"] <= budget]
        if ok.empty:
            return None
        return float(ok[ok["recall"] == ok["recall"].max()]["threshold"].min())

    def strict(sweep, budget):  # < instead of <=
        ok = sweep[sweep["false_regions_per_film"] < budget]
        return None if ok.empty else float(ok.sort_values(["recall", "threshold"]).iloc[-1]["threshold"])

    assert not check("nb06_threshold_for_budget", lowest_tie, verbose=False)
    assert not check("nb06_threshold_for_budget", strict, verbose=False)
    assert not check("nb06_threshold_for_budget", _stub, verbose=False)
