"""Image models: every backbone builds for one channel and K outputs, trains a step, loads weights
(its own, or an adapted RGB/ImageNet-style backbone), rejects weights that do not fit, and never
works in place (so captum's hooks see true activations)."""
from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from cxrkit.models import IMAGE_MODELS, SmallCNN, WeightsMismatchError, build_image_model, load_weights
from fixtures.fresh_process import assert_runs_in_a_fresh_process

torch.set_num_threads(1)
K = 3
NAMES = ["small_cnn", "resnet18", "densenet121", "vgg16"]


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_image_model(name, K) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_one_channel(models, name):
    model = models[name].train()
    x = torch.rand(2, 1, 64, 64)
    logits = model(x)
    assert logits.shape == (2, K)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    emb = model.eval().embed(x)
    assert emb.shape == (2, model.embedding_dim)
    assert isinstance(model.last_conv, nn.Module)


@pytest.mark.parametrize("name", NAMES)
def test_no_inplace_anywhere(models, name):
    """No module has inplace=True, and no module's output is modified after it is returned
    (this catches torchvision's functional F.relu(..., inplace=True) in DenseNet.forward and
    ResNet's ``out += identity``)."""
    model = models[name].eval()
    assert [m for m in model.modules() if getattr(m, "inplace", False)] == []
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, out: seen.append((mod, out, out.clone()))) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.rand(2, 1, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    mutated = sorted({type(mod).__name__ for mod, out, copy in seen if not torch.equal(out, copy)})
    assert mutated == []


def test_inplace_check_would_catch_torchvision_densenet():
    """The mutation check above is not vacuous: stock torchvision DenseNet fails it."""
    model = torchvision.models.densenet121(weights=None, num_classes=K).eval()
    seen = []
    model.features.register_forward_hook(lambda mod, i, out: seen.append((out, out.clone())))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert not torch.equal(*seen[0])


@pytest.mark.parametrize("name", NAMES)
def test_captum_gradcam_on_last_conv(models, name):
    from captum.attr import LayerGradCam

    model = models[name].eval()
    x = torch.rand(2, 1, 64, 64)
    attribution = LayerGradCam(model, model.last_conv).attribute(x, target=1)
    assert attribution.shape[:2] == (2, 1) and torch.isfinite(attribution).all()
    # Grad-CAM's activations are the unmodified output of last_conv
    captured = []
    handle = model.last_conv.register_forward_hook(lambda m, i, out: captured.append(out.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert captured[0].ndim == 4


@pytest.mark.parametrize("name", NAMES)
def test_roundtrip_state_dict(models, name, tmp_path):
    source = models[name]
    path = tmp_path / f"{name}.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(123)
    loaded = build_image_model(name, K, weights_path=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(source.eval()(x), loaded.eval()(x))


# The torchvision builders below are called with weights=None (nothing downloaded) and default
# 3-channel, 1000-class heads, exactly the shape of an ImageNet checkpoint.
RGB_BUILDERS = {
    "resnet18": (torchvision.models.resnet18, "conv1.weight", "fc.weight"),
    "densenet121": (torchvision.models.densenet121, "features.conv0.weight", "classifier.weight"),
    "vgg16": (torchvision.models.vgg16, "features.0.weight", "classifier.6.weight"),
}


@pytest.mark.parametrize("name", sorted(RGB_BUILDERS))
def test_imagenet_style_backbone_adapts(name, tmp_path):
    builder, first, head = RGB_BUILDERS[name]
    rgb = builder(weights=None).state_dict()
    path = tmp_path / "rgb.pt"
    torch.save(rgb, path)
    del rgb
    rgb = torch.load(path, weights_only=True)
    with pytest.warns(UserWarning, match="classifier left fresh"):
        model = build_image_model(name, K, weights_path=path)
    state = model.state_dict()
    assert state[first].shape[1] == 1
    assert torch.allclose(state[first], rgb[first].sum(dim=1, keepdim=True))
    assert state[head].shape[0] == K
    other = [k for k in state if k != first and not k.startswith(head.rsplit(".", 1)[0] + ".")]
    assert all(torch.equal(state[k], rgb[k]) for k in other)


def test_legacy_densenet_keys_are_renamed(tmp_path):
    rgb = torchvision.models.densenet121(weights=None).state_dict()
    legacy = {k.replace("denselayer1.norm1.", "denselayer1.norm.1.").replace("denselayer1.conv2.", "denselayer1.conv.2."): v
              for k, v in rgb.items() if not k.endswith("num_batches_tracked")}  # old files predate it
    assert legacy.keys() != rgb.keys()
    path = tmp_path / "legacy.pt"
    torch.save(legacy, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_image_model("densenet121", K, weights_path=path)
    key = "features.denseblock1.denselayer1.conv2.weight"
    assert torch.equal(model.state_dict()[key], rgb[key])


def test_mismatched_weights_raise_clear_error(tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save(SmallCNN(num_outputs=K, width=8).state_dict(), path)
    with pytest.raises(WeightsMismatchError) as info:
        build_image_model("small_cnn", K, weights_path=path)  # default width 32
    message = str(info.value)
    assert str(path) in message and "SmallCNN" in message
    assert "stem.0.weight: file (8, 1, 5, 5) vs model (32, 1, 5, 5)" in message

    torch.save(SmallCNN(num_outputs=K).state_dict(), path)
    with pytest.raises(WeightsMismatchError, match="missing from file"):
        build_image_model("resnet18", K, weights_path=path)
    # A one-channel (kit) checkpoint with another number of outputs is not silently re-headed.
    torch.save(SmallCNN(num_outputs=K + 1).state_dict(), path)
    with pytest.raises(WeightsMismatchError, match="head.weight"):
        build_image_model("small_cnn", K, weights_path=path)


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_image_model("small_cnn", K, weights_path=tmp_path / "nope.pt")
    path = tmp_path / "module.pt"
    torch.save(SmallCNN(num_outputs=K), path)  # a pickled module, not a state_dict
    with pytest.raises(WeightsMismatchError, match="weights-only"):
        load_weights(SmallCNN(num_outputs=K), path)


def test_unknown_name_and_bad_outputs():
    with pytest.raises(ValueError, match="resnet50"):
        build_image_model("resnet50", K)
    with pytest.raises(ValueError, match="num_outputs"):
        build_image_model("small_cnn", 0)
    assert set(IMAGE_MODELS) == set(NAMES)


def test_small_cnn_shapes_and_feature_map():
    model = SmallCNN(num_outputs=5, width=8).eval()
    x = torch.rand(2, 1, 128, 128)
    maps = []
    model.last_conv.register_forward_hook(lambda m, i, out: maps.append(out))
    assert model(x).shape == (2, 5)
    assert maps[0].shape == (2, 32, 16, 16)  # 128 / 8, 4 × width channels
    assert torch.allclose(model.features(x), maps[0].mean(dim=(2, 3)))


# ------------------------------------------------------------------------------------ SmallCNN heads

@pytest.mark.parametrize("head", ["gap", "gapmax", "lse"])
def test_small_cnn_heads_share_the_interface(head):
    from cxrkit.models.image import SmallCNN

    model = SmallCNN(num_outputs=3, width=8, head=head).eval()
    x = torch.rand(2, 1, 64, 64)
    assert model(x).shape == (2, 3) and model.embed(x).shape == (2, model.embedding_dim)
    assert isinstance(model.last_conv, torch.nn.Conv2d if head == "lse" else torch.nn.Sequential)
    with pytest.raises(ValueError, match="head must be one of"):
        SmallCNN(num_outputs=3, head="attention")


def test_lse_pooling_runs_from_the_mean_to_the_maximum_of_the_class_map():
    from cxrkit.models.image import SmallCNN

    torch.manual_seed(0)
    x = torch.rand(2, 1, 64, 64, dtype=torch.float64)
    soft = SmallCNN(num_outputs=3, width=8, head="lse", lse_r=1e-3).double().eval()
    assert torch.allclose(soft(x), soft.class_map(x).mean((2, 3)), atol=1e-6)
    hard = SmallCNN(num_outputs=3, width=8, head="lse", lse_r=1e4).double().eval()
    assert torch.allclose(hard(x), hard.class_map(x).amax((2, 3)), atol=1e-3)
    with pytest.raises(TypeError, match="lse"):
        SmallCNN(num_outputs=3, width=8).class_map(x.float())



def test_weights_path_with_a_tilde_is_the_users_home(tmp_path, monkeypatch):
    """``weights_path="~/…"`` as notebook 02 documents it: ``~`` is expanded; a missing file is a kit error naming it."""
    from cxrkit.errors import CxrkitError

    monkeypatch.setenv("HOME", str(tmp_path))
    torch.save(build_image_model("small_cnn", K).state_dict(), tmp_path / "mine.pt")
    build_image_model("small_cnn", K, weights_path="~/mine.pt")  # loads: no "~/mine.pt does not exist"
    with pytest.raises(CxrkitError, match=r"nope\.pt does not exist"):
        build_image_model("small_cnn", K, weights_path="~/nope.pt")


def test_the_small_cnn_path_never_imports_torchvision():
    """torchvision (~2.7 s to import here) loads only when a torchvision architecture is asked for."""
    code = ("import sys; import cxrkit.models, cxrkit.recipes.image, cxrkit.explain; "
            "from cxrkit.models import build_image_model; build_image_model('small_cnn', 2); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'; "
            "from cxrkit.models import VGG16; assert 'torchvision' in sys.modules; "
            "assert VGG16.__module__ == 'cxrkit.models.torchvision_nets'")
    assert_runs_in_a_fresh_process(code)
