"""Saliency family: from-scratch gradient vs captum, linear models, IG completeness, Grad-CAM, eval mode."""
from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from cxrkit.explain import (
    METHODS,
    LogitOf,
    attribute,
    completeness_error,
    gradcam,
    gradient_saliency,
    gradient_x_input,
    integrated_gradients,
    make_baseline,
    smoothgrad,
    vanilla_gradient,
)

torch.set_num_threads(1)
H = W = 16
K = 3


class Probe(nn.Module):
    """Identity that records the training flag it saw in each forward."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


class TinyCNN(nn.Module):
    def __init__(self, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.probe = Probe()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), act(), nn.Conv2d(4, 6, 3, padding=1), act())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(24, K))

    def forward(self, x):
        return self.head(self.features(self.probe(x)))


class FlatLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(H * W, K)

    def forward(self, x):
        return self.fc(x.flatten(1))


class PixelWeights(nn.Module):
    """A conv-free linear model: logit k = sum(x * weight[k]) + bias[k]."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.randn(K, 2, H, W, generator=g))
        self.bias = nn.Parameter(torch.randn(K, generator=g))

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.weight) + self.bias


def _model(act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    m = TinyCNN(act)
    with torch.no_grad():  # non-trivial BatchNorm statistics so eval and train differ
        m.features[1].running_mean.uniform_(-0.2, 0.2)
        m.features[1].running_var.uniform_(0.5, 2.0)
    return m


def _x(b=2, c=1, seed=1):
    return torch.rand(b, c, H, W, generator=torch.Generator().manual_seed(seed))


def test_from_scratch_gradient_equals_captum_saliency():
    model, x = _model(), _x()
    ours = gradient_saliency(model, x, 1)
    model.eval()
    theirs = Saliency(model).attribute(x.clone().requires_grad_(True), target=1, abs=False)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6, rtol=0)
    assert ours.abs().sum() > 0


def test_per_image_targets():
    model, x = _model(), _x(b=2)
    both = gradient_saliency(model, x, [0, 2])
    torch.testing.assert_close(both[0], gradient_saliency(model, x[:1], 0)[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(both[1], gradient_saliency(model, x[1:], 2)[0], atol=1e-6, rtol=0)


def test_vanilla_gradient_of_linear_models_equals_weights():
    flat = FlatLinear()
    for k in range(K):
        g = vanilla_gradient(flat, _x(), k)
        assert torch.equal(g, flat.fc.weight[k].detach().reshape(1, 1, H, W).expand(2, 1, H, W))
        assert torch.equal(gradient_saliency(flat, _x(), k), g)
    pix = PixelWeights()
    x2 = _x(c=2)
    for k in range(K):
        assert torch.equal(vanilla_gradient(pix, x2, k), pix.weight[k].detach().expand(2, 2, H, W))
        summed = attribute("vanilla_gradient", pix, x2, k)
        torch.testing.assert_close(summed, pix.weight[k].detach().sum(0).expand(2, H, W))


def test_gradient_x_input_of_linear_model():
    pix, x2 = PixelWeights(), _x(c=2)
    torch.testing.assert_close(gradient_x_input(pix, x2, 0), x2 * pix.weight[0].detach())


def test_ig_completeness_black_and_blurred():
    model, x = _model(act=nn.Softplus), _x()
    for baseline in ("black", "blurred"):
        attr, delta = integrated_gradients(model, x, 2, baseline=baseline, steps=64)
        assert attr.shape == x.shape and delta.shape == (2,)
        err = completeness_error(model, x, attr, 2, baseline=baseline)
        assert (err < 1e-2).all(), err
        absolute = completeness_error(model, x, attr, 2, baseline=baseline, relative=False)
        torch.testing.assert_close(absolute, delta.abs(), atol=1e-4, rtol=1e-3)
    # a poor approximation is reported as such: two left-Riemann steps are far from complete
    attr1 = integrated_gradients(model, x, 2, steps=2, return_delta=False, method="riemann_left")
    attr64 = integrated_gradients(model, x, 2, steps=64, return_delta=False)
    assert completeness_error(model, x, attr1, 2).min() > 10 * completeness_error(model, x, attr64, 2).max()


def test_ig_baselines():
    x = _x()
    assert torch.equal(make_baseline(x, "black"), torch.zeros_like(x))
    blurred = make_baseline(x, "blurred", blur_sigma=2.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    torch.testing.assert_close(blurred.mean(), x.mean(), atol=0.02, rtol=0)
    assert torch.equal(make_baseline(x, 0.5), torch.full_like(x, 0.5))
    with pytest.raises(ValueError, match="'grey'"):
        make_baseline(x, "grey")


def test_ig_on_linear_model_is_exact_gradient_times_input():
    pix, x2 = PixelWeights(), _x(c=2)
    attr, delta = integrated_gradients(pix, x2, 1, steps=8)
    torch.testing.assert_close(attr, x2 * pix.weight[1].detach(), atol=1e-5, rtol=1e-5)
    assert delta.abs().max() < 1e-4


def test_gradcam_shape_nonnegative_and_layer_choice():
    model, x = _model(), _x()
    cam = gradcam(model, x, 0)  # default: the last Conv2d
    assert cam.shape == (2, 1, H, W) and (cam >= 0).all()
    by_name = gradcam(model, x, 0, layer="features.3")
    torch.testing.assert_close(cam, by_name)
    model.last_conv = model.features  # the exposed "last conv block" convention of cxrkit's image models
    block = gradcam(model, x, 0)
    torch.testing.assert_close(block, gradcam(model, x, 0, layer=model.features))
    maps = attribute("gradcam", model, x, 0)
    assert maps.shape == (2, H, W) and (maps >= 0).all()
    with pytest.raises(ValueError, match="nope"):
        gradcam(model, x, 0, layer="nope")


def test_every_method_runs_in_eval_mode_and_restores_mode():
    model, x = _model(), _x()
    model.train()
    model.head[2].eval()  # a mixed state must be restored exactly
    before = {n: m.training for n, m in model.named_modules()}
    for name in METHODS:
        model.probe.seen.clear()
        maps = attribute(name, model, x, 1)
        assert maps.shape == (2, H, W), name
        assert not maps.requires_grad and torch.isfinite(maps).all(), name
        assert model.probe.seen and not any(model.probe.seen), name
        assert {n: m.training for n, m in model.named_modules()} == before, name
    gradient_saliency(model, x, 1)
    assert {n: m.training for n, m in model.named_modules()} == before


def test_smoothgrad_seeded_and_zero_noise_is_gradient():
    model, x = _model(), _x()
    a = smoothgrad(model, x, 0, n_samples=4, seed=7)
    b = smoothgrad(model, x, 0, n_samples=4, seed=7)
    c = smoothgrad(model, x, 0, n_samples=4, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(smoothgrad(model, x, 0, noise_level=0.0, n_samples=3), vanilla_gradient(model, x, 0), atol=1e-6, rtol=1e-5)


def test_logit_of_and_target_errors():
    model, x = _model(), _x()
    model.eval()
    torch.testing.assert_close(LogitOf(model, 2)(x), model(x)[:, 2])
    with pytest.raises(ValueError, match="out of range"):
        attribute("vanilla_gradient", model, x, K)
    with pytest.raises(ValueError, match="'saliency_v2'"):
        attribute("saliency_v2", model, x, 0)
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\)"):
        vanilla_gradient(model, torch.rand(H, W), 0)
