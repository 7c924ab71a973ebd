"""Sanity checks (Adebayo et al. 2018): cascading randomisation, map similarity, the verdict."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from cxrkit.explain import attribute, cascading_randomization, map_similarity, randomization_test, sanity_verdict
from cxrkit.explain.sanity import parameter_layers

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16 * 16, 2)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(h)).flatten(1))


def _setup():
    torch.manual_seed(0)
    model = Net().eval()
    yy, xx = np.mgrid[:16, :16]
    img = ((yy - 8) ** 2 + (xx - 6) ** 2 < 20).astype(np.float32) + 0.1 * np.random.default_rng(0).random((16, 16), dtype=np.float32)
    return model, torch.from_numpy(img)[None, None].repeat(2, 1, 1, 1)


def test_parameter_layers_top_down():
    assert parameter_layers(Net()) == ["fc", "conv2", "bn", "conv1"]


def test_cascading_randomization_is_cumulative_and_copies():
    model, _ = _setup()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    steps = list(cascading_randomization(model, seed=1))
    assert [name for name, _ in steps] == ["fc", "conv2", "bn", "conv1"]
    for k, v in model.state_dict().items():  # the original model is untouched
        assert torch.equal(v, original[k]), k
    ids = {id(m) for _, m in steps}
    assert len(ids) == 4 and id(model) not in ids
    for i, (_, randomized) in enumerate(steps):
        assert not randomized.training
        for j, layer in enumerate(["fc", "conv2", "bn", "conv1"]):
            same = torch.equal(randomized.get_submodule(layer).weight, model.get_submodule(layer).weight)
            assert same == (j > i), (i, layer)  # layers up to step i are re-initialised, the rest kept
    again = list(cascading_randomization(model, seed=1))
    assert torch.equal(again[0][1].fc.weight, steps[0][1].fc.weight)  # seeded
    with pytest.raises(ValueError, match="'head'"):
        list(cascading_randomization(model, ["head"]))


def test_map_similarity():
    a = np.random.default_rng(0).normal(size=(8, 8))
    s = map_similarity(a, a)
    assert s["spearman"] == pytest.approx(1.0) and s["spearman_abs"] == pytest.approx(1.0)
    s = map_similarity(a, -a)
    assert s["spearman"] == pytest.approx(-1.0) and s["spearman_abs"] == pytest.approx(1.0)
    assert map_similarity(np.zeros(4), np.zeros(4))["spearman"] == 1.0
    assert map_similarity(np.zeros(4), np.arange(4))["spearman"] == 0.0
    with pytest.raises(ValueError, match="differ"):
        map_similarity(np.zeros(4), np.zeros(5))


def test_gradient_maps_change_under_randomisation_and_pass():
    model, x = _setup()
    table = randomization_test(lambda m: attribute("vanilla_gradient", m, x, 1), model, seed=0)
    assert list(table["layer"]) == ["fc", "conv2", "bn", "conv1"]
    assert table["spearman_abs"].iloc[-1] < 0.5
    assert sanity_verdict(table, threshold=0.5)


def test_input_independent_method_fails():
    model, x = _setup()

    def edge_detector(m: nn.Module) -> torch.Tensor:  # ignores the model: a "method" that cannot explain it
        img = x[:, 0].numpy()
        return torch.from_numpy(np.hypot(ndimage.sobel(img, axis=1), ndimage.sobel(img, axis=2)))

    table = randomization_test(edge_detector, model)
    assert np.allclose(table["spearman_abs"], 1.0)
    assert not sanity_verdict(table, threshold=0.5)
    assert not sanity_verdict([{"spearman_abs": 0.9}, {"spearman_abs": 0.8}], 0.5)
    assert sanity_verdict([0.9, 0.2], 0.5)
    with pytest.raises(ValueError, match="no similarities"):
        sanity_verdict([], 0.5)


def test_data_randomization_test_compares_two_models():
    from cxrkit.explain import data_randomization_test

    model, x = _setup()
    explain = lambda m: attribute("vanilla_gradient", m, x, 0).abs()  # noqa: E731
    same = data_randomization_test(explain, model, model)
    assert same == {"spearman": pytest.approx(1.0), "spearman_abs": pytest.approx(1.0)}
    torch.manual_seed(7)
    other = Net().eval()
    differs = data_randomization_test(explain, model, other)
    assert differs["spearman_abs"] < 0.9
    assert sanity_verdict([differs], threshold=0.95) and not sanity_verdict([same], threshold=0.95)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        data_randomization_test(lambda m: torch.zeros(2, 16), model, other)
