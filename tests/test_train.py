"""The training loop and its parts: masked loss, uncertainty policy, data loading, augmentation,
fit (learning, early stopping, best-weights restore, checkpoints), predict, sanity checks, devices."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cxrkit.devices import amp_dtype, pick_device
from cxrkit.metrics import macro_auroc
from cxrkit.models import SmallCNN
from cxrkit.train import (
    HISTORY_COLUMNS,
    BatchLoader,
    ImageAugment,
    ImageDataset,
    apply_uncertainty_policy,
    balanced_pos_weight,
    benchmark_throughput,
    fit,
    load_checkpoint,
    masked_bce_with_logits,
    overfit_one_batch,
    predict,
    shuffled_labels,
)

torch.set_num_threads(1)
NAN = float("nan")


# ------------------------------------------------------------------------------------------ loss

def test_masked_bce_equals_manual_bce_on_known_entries():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    targets = torch.tensor([[1, 0, NAN], [NAN, 1, 0], [0, NAN, NAN], [1, 1, 1]], dtype=torch.float32)
    known = ~torch.isnan(targets)
    manual = F.binary_cross_entropy_with_logits(logits[known], targets[known])
    assert torch.allclose(masked_bce_with_logits(logits, targets), manual)
    weight = torch.tensor([2.0, 0.5, 3.0])
    manual_w = F.binary_cross_entropy_with_logits(logits[known], targets[known], pos_weight=weight.expand(4, 3)[known])
    assert torch.allclose(masked_bce_with_logits(logits, targets, weight), manual_w)


def test_masked_bce_gives_zero_gradient_for_unknown_targets():
    logits = torch.randn(3, 2, requires_grad=True)
    targets = torch.tensor([[1, NAN], [NAN, 0], [0, 1]], dtype=torch.float32)
    masked_bce_with_logits(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()
    uncertain = torch.randn(3, 2, requires_grad=True)
    masked_bce_with_logits(uncertain, torch.nan_to_num(targets, nan=-1.0)).backward()  # unmapped -1 is unknown too
    assert torch.equal(uncertain.grad == 0, torch.isnan(targets))
    assert (logits.grad[torch.isnan(targets)] == 0).all()
    assert (logits.grad[~torch.isnan(targets)] != 0).all()


def test_masked_bce_all_unknown_and_shape_errors():
    logits = torch.randn(2, 2, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.full((2, 2), NAN))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(ValueError, match="softmax"):
        masked_bce_with_logits(torch.randn(2, 1), torch.zeros(2, 3))


def test_uncertainty_policy_mapping():
    raw = np.array([[1, 0, -1, NAN]], dtype=np.float32)
    np.testing.assert_array_equal(apply_uncertainty_policy(raw, "ones"), [[1, 0, 1, NAN]])
    np.testing.assert_array_equal(apply_uncertainty_policy(raw, "zeros"), [[1, 0, 0, NAN]])
    np.testing.assert_array_equal(apply_uncertainty_policy(raw, "ignore"), [[1, 0, NAN, NAN]])
    assert raw[0, 2] == -1  # input untouched
    t = apply_uncertainty_policy(torch.tensor(raw), "ones")
    assert isinstance(t, torch.Tensor) and t[0, 2] == 1 and torch.isnan(t[0, 3])
    df = apply_uncertainty_policy(pd.DataFrame(raw, columns=list("abcd")), "zeros")
    assert isinstance(df, pd.DataFrame) and df.loc[0, "c"] == 0 and np.isnan(df.loc[0, "d"])
    with pytest.raises(ValueError, match="'u-ones'"):
        apply_uncertainty_policy(raw, "u-ones")


def test_balanced_pos_weight():
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 0, NAN], [0, 1, 1]], dtype=np.float32)
    w = balanced_pos_weight(labels)
    assert torch.allclose(w, torch.tensor([3.0, 3.0, 1.0]))  # col 2 has no negative → 1
    assert balanced_pos_weight(np.array([[1.0], [0.0], [0.0]]), max_weight=1.5).item() == 1.5
    assert torch.allclose(balanced_pos_weight(labels, power=0.5), torch.tensor([3.0 ** 0.5, 3.0 ** 0.5, 1.0]))
    with pytest.raises(ValueError, match="power"):
        balanced_pos_weight(labels, power=-1)


# ------------------------------------------------------------------------------ data and augment

def test_image_dataset_and_batch_loader():
    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    labels = np.arange(20, dtype=np.float32).reshape(10, 2)
    ds = ImageDataset(images, labels)
    x, y = ds[3]
    assert x.shape == (1, 4, 4) and x.dtype == torch.float32
    assert torch.allclose(x * 255, torch.from_numpy(images[3]).float()[None]) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(y, torch.tensor([6.0, 7.0]))
    loader = BatchLoader(ds, batch_size=4, shuffle=True, seed=1)
    assert len(loader) == 3
    epoch1 = torch.cat([y for _, y in loader])[:, 0]
    epoch2 = torch.cat([y for _, y in loader])[:, 0]
    assert sorted(epoch1.tolist()) == sorted(labels[:, 0].tolist())  # every row once
    assert not torch.equal(epoch1, epoch2)  # reshuffled each epoch
    again = torch.cat([y for _, y in BatchLoader(ds, batch_size=4, shuffle=True, seed=1)])[:, 0]
    assert torch.equal(again, epoch1)  # seeded
    assert [len(y) for _, y in BatchLoader(ds, batch_size=4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="N=10"):
        ImageDataset(images, labels[:5])


def test_augment_identity_in_eval_and_changes_in_train():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 32, 32)
    aug = ImageAugment()
    assert not aug.hflip  # off by default (laterality)
    assert ImageAugment.__doc__ and "dextrocardia" in ImageAugment.__doc__
    assert torch.equal(aug.eval()(x), x)
    out = aug.train()(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out, x, atol=1e-3)
    still = ImageAugment(degrees=0, translate=0, scale=0, brightness=0, contrast=0)(x)
    assert torch.allclose(still, x, atol=1e-5)


def test_augment_flip_only_flips():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    out = ImageAugment(degrees=0, translate=0, scale=0, brightness=0, contrast=0, hflip=True)(x)
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    assert all(s or f for s, f in zip(same, flipped)) and any(flipped) and any(same)


# ------------------------------------------------------------------------------------------- fit

def _square_images(n: int, seed: int, size: int = 24, uncertain: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Label k is positive when a bright square sits in quadrant k (k = 0, 1); some labels unknown or uncertain."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n, size, size)).astype(np.uint8)
    labels = (rng.random((n, 2)) < 0.5).astype(np.float32)
    h = size // 2
    for i in range(n):
        for k, (r, c) in enumerate([(2, 2), (h + 2, h + 2)]):
            if labels[i, k]:
                images[i, r:r + 6, c:c + 6] = 230
    labels[rng.random((n, 2)) < 0.1] = NAN
    labels[rng.random((n, 2)) < uncertain] = -1.0
    return images, labels


def test_fit_learns_separable_images(tmp_path):
    train, val = _square_images(192, 0, uncertain=0.1), _square_images(64, 1)
    train_loader = BatchLoader(ImageDataset(*train, augment=ImageAugment(degrees=3, translate=0.02)), 32, shuffle=True)
    val_loader = BatchLoader(ImageDataset(*val), 64)
    model = SmallCNN(num_outputs=2, width=8)
    history = fit(model, train_loader, val_loader, epochs=6, lr=1e-2, weight_decay=0.0, early_stopping_patience=3,
                  device="cpu", checkpoint_path=tmp_path / "ckpt" / "best.pt", progress=False, seed=0)
    assert list(history.table.columns) == list(HISTORY_COLUMNS)
    assert history.best()["val_auroc"] > 0.95
    table = history.table
    top = table[table["val_auroc"] == table["val_auroc"].max()]
    assert history.best_epoch == top.loc[top["val_loss"].idxmin(), "epoch"]  # AUROC ties go to the lower loss
    assert history.table["train_loss"].iloc[-1] < history.table["train_loss"].iloc[0]
    assert history.images_per_s > 0 and history.device.startswith("cpu")
    probs = predict(model, val_loader)
    assert probs.shape == (64, 2) and 0 <= probs.min() and probs.max() <= 1
    assert macro_auroc(val[1], probs) == pytest.approx(history.best()["val_auroc"], abs=1e-6)
    state = torch.load(tmp_path / "ckpt" / "best.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    fresh = load_checkpoint(SmallCNN(num_outputs=2, width=8), tmp_path / "ckpt" / "best.pt").eval()
    assert np.allclose(predict(fresh, val_loader), probs, atol=1e-6)
    assert isinstance(history.figure(), go.Figure) and len(history.figure().data) == 4


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_fit_mixed_precision_and_channels_last_paths(amp):
    """The CUDA code paths (autocast, fp16 gradient scaler, channels-last) run on the CPU too."""
    train, val = _square_images(64, 4, size=16), _square_images(32, 5, size=16)
    model = SmallCNN(num_outputs=2, width=4)
    history = fit(model, BatchLoader(ImageDataset(*train), 16, shuffle=True), BatchLoader(ImageDataset(*val), 32),
                  epochs=3, lr=1e-2, amp=amp, channels_last=True, device="cpu", progress=False, seed=0)
    assert history.settings["amp"] == {"fp16": "torch.float16", "bf16": "torch.bfloat16"}[amp]
    assert history.settings["channels_last"]
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(history.table[["train_loss", "val_loss"]].to_numpy()).all()
    assert history.table["train_loss"].iloc[-1] < history.table["train_loss"].iloc[0]
    probs = predict(model, BatchLoader(ImageDataset(*val), 32), amp=amp)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    with pytest.raises(ValueError, match="'fp8'"):
        fit(model, [], None, amp="fp8", device="cpu", progress=False)


class _FlippingLoader:
    """2-D points labelled by sign of x0 for the first epochs, then with inverted labels — validation
    AUROC peaks and then collapses, so the best epoch is known to be early."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, flip_after: int):
        self.x, self.y, self.flip_after, self.epoch = x, y, flip_after, 0

    def __iter__(self):
        self.epoch += 1
        y = self.y if self.epoch <= self.flip_after else 1 - self.y
        for i in range(0, len(self.x), 16):
            yield self.x[i:i + 16], y[i:i + 16]


def test_early_stopping_restores_best_epoch(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    y, yv = (x[:, :1] > 0).float(), (xv[:, :1] > 0).float()
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    path = tmp_path / "best.pt"
    history = fit(model, _FlippingLoader(x, y, flip_after=2), [(xv, yv)], epochs=20, lr=1.0, weight_decay=0.0,
                  early_stopping_patience=2, device="cpu", checkpoint_path=path, progress=False, seed=0)
    table = history.table
    assert history.stopped_early and len(table) < 20
    assert history.best_epoch == int(table.loc[table["val_auroc"].idxmax(), "epoch"]) <= 3
    assert table["val_auroc"].iloc[-1] < history.best()["val_auroc"] - 0.1
    assert len(table) == history.best_epoch + 2  # patience epochs after the best
    restored = macro_auroc(yv.numpy(), predict(model, [(xv, yv)]))
    assert restored == pytest.approx(history.best()["val_auroc"])
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["weight"], model.weight.detach())


class _TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(1, 2)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.a(image) + self.b(extra)


def test_fit_dict_inputs_policy_and_balanced_weights():
    g = torch.Generator().manual_seed(0)
    x, extra = torch.randn(32, 2, generator=g), torch.randn(32, 1, generator=g)
    y = torch.stack([(x[:, 0] > 0).float(), (extra[:, 0] > 0).float()], dim=1)
    y[:4, 1] = -1.0  # uncertain
    batches = [({"image": x[i:i + 8], "extra": extra[i:i + 8]}, y[i:i + 8]) for i in range(0, 32, 8)]
    seen = []

    def recording_loss(logits, targets):
        seen.append(targets.clone())
        return masked_bce_with_logits(logits, targets)

    fit(_TwoInput(), batches, batches, epochs=1, loss=recording_loss, uncertainty="ones", device="cpu", progress=False)
    train_targets = torch.cat(seen[:4])
    assert (train_targets[:4, 1] == 1).all() and not (train_targets == -1).any()
    assert torch.isnan(seen[-1][:4, 1]).all()  # validation scores certain labels only

    history = fit(_TwoInput(), batches, batches, epochs=2, pos_weight="balanced", uncertainty="zeros", device="cpu",
                  progress=False)
    assert history.settings["pos_weight"] == pytest.approx(balanced_pos_weight(apply_uncertainty_policy(y, "zeros")).tolist())
    half = fit(_TwoInput(), batches, None, epochs=1, pos_weight="sqrt_balanced", uncertainty="zeros", device="cpu",
               progress=False)
    assert half.settings["pos_weight"] == pytest.approx(np.sqrt(history.settings["pos_weight"]).tolist())
    with pytest.raises(ValueError, match="pos_weight must be one of"):
        fit(_TwoInput(), batches, None, pos_weight="inverse", device="cpu", progress=False)
    with pytest.raises(ValueError, match="not both"):
        fit(_TwoInput(), batches, None, loss=recording_loss, pos_weight="balanced", device="cpu", progress=False)
    with pytest.raises(ValueError, match="uncertainty policy"):
        fit(_TwoInput(), batches, None, uncertainty="maybe", device="cpu", progress=False)


def test_predict_switches_augmentation_off():
    images, labels = _square_images(16, 2)
    aug = ImageAugment(degrees=20, brightness=0.3)
    loader = BatchLoader(ImageDataset(images, labels, augment=aug), 8)
    model = SmallCNN(num_outputs=2, width=4)
    first, second = predict(model, loader), predict(model, loader)
    assert np.array_equal(first, second)
    assert aug.training  # restored afterwards


# ------------------------------------------------------------------------------- sanity checks

def test_overfit_one_batch_catches_one_unit_softmax():
    images, labels = _square_images(16, 3, size=32)
    rng = np.random.default_rng(0)
    labels = (rng.random((16, 1)) < 0.5).astype(np.float32)  # random labels: only memorisation fits them
    x, y = ImageDataset(images, labels).batch(torch.arange(16))
    healthy = overfit_one_batch(SmallCNN(num_outputs=1, width=8), (x, y), steps=80, device="cpu")
    softmax_head = nn.Sequential(SmallCNN(num_outputs=1, width=8), nn.Softmax(dim=1))
    broken = overfit_one_batch(softmax_head, (x, y), steps=80, device="cpu")
    assert healthy < 0.1
    assert broken > 0.3  # a one-unit softmax always outputs 1: nothing to learn


def test_shuffled_labels():
    labels = np.arange(40, dtype=np.float32).reshape(20, 2)
    shuffled = shuffled_labels(labels, seed=0)
    assert not np.array_equal(shuffled, labels)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, labels))  # whole rows kept together
    assert np.array_equal(shuffled_labels(labels, seed=0), shuffled)
    df = shuffled_labels(pd.DataFrame(labels, columns=["a", "b"]), seed=0)
    assert np.array_equal(df.to_numpy(), shuffled)
    assert torch.equal(shuffled_labels(torch.from_numpy(labels), seed=0), torch.from_numpy(shuffled))


# ------------------------------------------------------------------------------- throughput, devices

def test_benchmark_throughput_reports_both_loops():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 16, 16), dtype=np.uint8)
    labels = (rng.random((16, 2)) < 0.5).astype(np.float32)
    result = benchmark_throughput(lambda: SmallCNN(num_outputs=2, width=4), images, labels, batch_size=8, steps=2,
                                  repeats=1, device="cpu")
    assert result["kit"] > 0 and result["bare"] > 0
    assert result["ratio"] == pytest.approx(result["kit"] / result["bare"])
    assert result["images"] == 16


def test_pick_device(monkeypatch):
    monkeypatch.delenv("CXRKIT_DEVICE", raising=False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cpu", "cuda", "mps")
    monkeypatch.setenv("CXRKIT_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="'cuda'"):
            pick_device("cuda")
    assert amp_dtype(torch.device("cpu")) is None


# ------------------------------------------------------------------------------- learning-rate schedules

def _lrs(schedule: str, steps: int = 40, lr: float = 0.1, warmup: float = 0.25) -> list[float]:
    from cxrkit.train import lr_schedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = lr_schedule(opt, schedule, lr=lr, total_steps=steps, warmup=warmup)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return seen


def test_onecycle_warms_up_to_the_peak_then_anneals_to_almost_zero():
    lrs = _lrs("onecycle")
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert 8 <= peak <= 11  # after a quarter of the 40 steps
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:])) and lrs[-1] < 1e-3


def test_cosine_warms_up_linearly_and_constant_never_moves():
    lrs = _lrs("cosine", steps=20, warmup=0.25)
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.01
    assert _lrs("constant") == [0.1] * 40
    with pytest.raises(ValueError, match="schedule must be one of"):
        _lrs("linear")
    with pytest.raises(ValueError, match="warmup"):
        _lrs("cosine", warmup=1.0)


def test_fit_steps_the_schedule_once_per_batch_and_records_it(monkeypatch):
    import cxrkit.train.loop as loop

    steps, made = [], []
    real = loop.lr_schedule

    def spy(*args, **kwargs):
        made.append(kwargs["total_steps"])
        sched = real(*args, **kwargs)
        original = sched.step
        sched.step = lambda *a: (steps.append(1), original(*a))
        return sched

    monkeypatch.setattr(loop, "lr_schedule", spy)
    torch.manual_seed(0)
    x = torch.rand(64, 1, 16, 16)
    y = (x.mean((1, 2, 3)) > 0.5).float()[:, None]
    loader = BatchLoader(ImageDataset((x[:, 0] * 255).to(torch.uint8), y), batch_size=16, shuffle=True)
    model = SmallCNN(1, 1, width=4)
    history = fit(model, loader, None, epochs=3, lr=0.01, schedule="onecycle", warmup=0.3, progress=False)
    assert history.settings["schedule"] == "onecycle" and history.settings["warmup"] == 0.3
    assert made == [3 * 4] and len(steps) == 3 * 4  # 64 films / 16 per batch = 4 batches per epoch
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit(SmallCNN(1, 1, width=4), loader, None, epochs=1, schedule="step", progress=False)
