"""Resumable training (cxrkit.train.resume): a run interrupted after any epoch resumes and ends as an uninterrupted one.

"The same" is bit for bit on one machine: weights, batch-norm statistics, history and best epoch — which needs the
optimiser's moments, the schedule, the loader's epoch (its shuffle) and the random state (augmentation) restored.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.models.image import build_image_model
from cxrkit.train import BatchLoader, ImageAugment, ImageDataset, TrainingPaused, TrainingStateMismatch, fit
from cxrkit.train.resume import save_training_state

REPO = Path(__file__).parent.parent
RNG = np.random.default_rng(0)
FILMS = RNG.integers(0, 255, (150, 32, 32), dtype=np.uint8)
LABELS = (RNG.random((150, 3)) < 0.3).astype(np.float32)
SETTINGS = dict(epochs=5, schedule="onecycle", pos_weight="balanced", seed=5, progress=False)
TIMING = ["seconds", "train_images_per_s"]


class InterruptedLoader(BatchLoader):
    """A training loader whose ``stop_at``-th epoch dies after one batch, as a killed job would."""

    stop_at = 3

    def indexed(self):
        epoch = self.epoch
        for k, item in enumerate(super().indexed()):
            if epoch + 1 == self.stop_at and k == 1:
                raise KeyboardInterrupt
            yield item


def _train(state: Path | None = None, loader_class=BatchLoader, **options):
    torch.manual_seed(1)
    model = build_image_model("small_cnn", 3, width=8)
    train = loader_class(ImageDataset(FILMS[:100], LABELS[:100], augment=ImageAugment()), batch_size=16, shuffle=True,
                         seed=3, drop_last=True)
    validate = BatchLoader(ImageDataset(FILMS[100:], LABELS[100:]), batch_size=64)
    history = fit(model, train, validate, state_path=state, **{**SETTINGS, **options})
    return model, history


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted():
    return _train()


def test_a_paused_run_resumes_and_ends_with_the_uninterrupted_weights_and_history(tmp_path, uninterrupted):
    state = tmp_path / "state.pt"
    with pytest.raises(TrainingPaused, match="paused after epoch 2 of 5"):
        _train(state, pause_after=2)
    assert state.is_file()
    model, history = _train(state)
    expected_model, expected = uninterrupted
    assert _same(model.state_dict(), expected_model.state_dict())  # weights and batch-norm statistics, bit for bit
    assert history.best_epoch == expected.best_epoch
    assert history.table.drop(columns=TIMING).equals(expected.table.drop(columns=TIMING))


def test_a_run_killed_mid_epoch_resumes_from_its_last_finished_epoch(tmp_path, uninterrupted):
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(state, InterruptedLoader)
    assert torch.load(state, weights_only=True)["epoch"] == 2  # epoch 3 died half-way; its batches are not kept
    model, history = _train(state)
    assert _same(model.state_dict(), uninterrupted[0].state_dict()) and len(history.table) == 5


def test_a_finished_state_trains_nothing_more(tmp_path, uninterrupted):
    state = tmp_path / "state.pt"
    _train(state)
    model, history = _train(state, epochs=5)
    assert _same(model.state_dict(), uninterrupted[0].state_dict()) and len(history.table) == 5


def test_a_state_of_another_run_is_refused_naming_the_file_and_what_differs(tmp_path):
    state = tmp_path / "state.pt"
    with pytest.raises(TrainingPaused):
        _train(state, pause_after=1)
    with pytest.raises(TrainingStateMismatch, match=r"state.pt was written by another run \(epochs: 5 there, 6 now"):
        _train(state, epochs=6)
    state.write_bytes(b"not a state")
    with pytest.raises(TrainingStateMismatch, match="cannot be read"):
        _train(state)


def test_pause_after_needs_a_state_file():
    with pytest.raises(ValueError, match="pause_after needs a state_path"):
        _train(None, pause_after=1)


def test_a_failed_state_write_leaves_the_previous_state_and_no_temporary_file(tmp_path, monkeypatch):
    state = tmp_path / "state.pt"
    save_training_state(state, {"epoch": 1})

    def broken(obj, f, *a, **k):
        Path(f).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        save_training_state(state, {"epoch": 2})
    monkeypatch.undo()
    assert torch.load(state, weights_only=True)["epoch"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def _cxrkit_train(home: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CXRKIT_HOME": str(home), "CXRKIT_DEVICE": "cpu"}
    return subprocess.run([sys.executable, "-m", "cxrkit", "train", "--profile", "smoke", "-p", "epochs", "3", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_an_interrupted_cxrkit_train_resumes_and_ends_identical_to_an_uninterrupted_one(tmp_path):
    whole = _cxrkit_train(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    paused = _cxrkit_train(tmp_path / "resumed", "--stop-after", "1")
    assert paused.returncode == 75 and "paused after epoch 1 of 3" in paused.stderr, paused.stderr[-2000:]
    resumed = _cxrkit_train(tmp_path / "resumed")
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-2000:]
    weights = [torch.load(next((tmp_path / run / "image_models").glob("*/model.pt")), weights_only=True)
               for run in ("whole", "resumed")]
    assert _same(*weights)
    again = _cxrkit_train(tmp_path / "resumed")
    assert again.returncode == 0 and "already trained, nothing to do" in again.stdout


def test_cxrkit_train_refuses_a_stop_after_that_is_not_a_positive_number():
    done = subprocess.run([sys.executable, "-m", "cxrkit", "train", "--stop-after", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "expected a positive number of epochs, got '0'" in done.stderr
    assert "Traceback" not in done.stderr
