"""Data-parallel training (cxrkit.train.distributed): sharded loaders, gathering, and two gloo ranks under torchrun.

The torchrun tests start real processes (``torchrun --standalone --nproc_per_node=2``) on the CPU with gloo, as a
GPU machine would start them with NCCL: rank parameters must be identical, a 2-rank run must match a 1-process run
with the same global batch, every validation and test film must be scored exactly once, and only rank 0 may write.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ddp_case
from cxrkit.train import BatchLoader, ImageDataset, fit, predict
from cxrkit.train.distributed import World, gather_rows, init_distributed, world

REPO = Path(__file__).parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    return {**env, "CXRKIT_HOME": str(home), "CXRKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}


def test_outside_torchrun_the_world_is_one_process_and_nothing_is_initialised(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == World() == world()
    assert not world().distributed and world().describe() == "1 process (not distributed)"
    assert not torch.distributed.is_initialized()


def test_gather_rows_in_one_process_sorts_by_index_and_keeps_each_index_once():
    index = torch.tensor([3, 0, 2, 0, 1])
    values = torch.tensor([[30.0], [0.0], [20.0], [99.0], [10.0]])
    kept, rows = gather_rows(index, values)
    assert kept.tolist() == [0, 1, 2, 3]
    assert rows[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0]  # the first row of a repeated index is kept


@pytest.mark.parametrize("size", [2, 3])
def test_sharded_loaders_give_every_rank_as_many_rows_and_together_every_row(size):
    n = 23
    loader = BatchLoader(ImageDataset(np.zeros((n, 4, 4), np.uint8), np.zeros((n, 1))), batch_size=4)
    shares = [torch.cat([rows for rows, _ in loader.sharded(r, size, split_batch=False).indexed()]) for r in range(size)]
    assert len({len(s) for s in shares}) == 1  # the sampler pads, so every rank runs as many batches
    together = torch.cat(shares)
    assert sorted(set(together.tolist())) == list(range(n)) and len(together) == size * -(-n // size)


def test_a_training_batch_that_does_not_divide_among_the_ranks_is_refused_by_name():
    loader = BatchLoader(ImageDataset(np.zeros((9, 4, 4), np.uint8), np.zeros((9, 1))), batch_size=9, shuffle=True)
    with pytest.raises(ValueError, match="global batch size 9 does not divide among 2 processes"):
        loader.sharded(0, 2, split_batch=True)
    assert loader.sharded(1, 3, split_batch=True).batch_size == 3


def test_a_sampler_orders_a_loader_and_is_told_each_epoch():
    dataset = ImageDataset(np.zeros((10, 4, 4), np.uint8), np.zeros((10, 1)))
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    loader = BatchLoader(dataset, batch_size=5, sampler=sampler)
    first, second = (sum([r.tolist() for r, _ in loader.indexed()], []) for _ in range(2))
    expected = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        expected.append(list(iter(sampler)))
    assert len(loader) == 2 and [first, second] == expected and first != second


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[dict, dict, Path]:
    """Run tests/fixtures/ddp_worker.py on two gloo ranks once; return each rank's report and the shared home."""
    out, home = tmp_path_factory.mktemp("ddp_out"), tmp_path_factory.mktemp("ddp_home")
    done = subprocess.run([*TORCHRUN, str(REPO / "tests" / "fixtures" / "ddp_worker.py"), str(out), str(home)],
                          cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return (torch.load(out / "rank0.pt", weights_only=False), torch.load(out / "rank1.pt", weights_only=False), home)


def test_two_ranks_end_with_identical_parameters_and_buffers(two_ranks):
    rank0, rank1, _ = two_ranks
    assert rank0["world"] == rank1["world"] == 2
    for name in ("state", "bn_state"):  # bn_state: batch-norm running statistics are rank 0's on both
        assert rank0[name].keys() == rank1[name].keys()
        assert all(torch.equal(rank0[name][k], rank1[name][k]) for k in rank0[name]), name


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks):
    rank0, _, _ = two_ranks
    model, train, validate, test = ddp_case.case(sampler=True)
    history = fit(model, train, validate, **ddp_case.FIT)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(rank0["state"][k], v, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(rank0["probs"].numpy(), predict(model, test), atol=1e-5)
    columns = ["train_loss", "val_loss", "val_auroc", "train_auroc"]
    np.testing.assert_allclose(rank0["history"][columns].to_numpy(), history.table[columns].to_numpy(), atol=1e-5)
    # … and not by accident: the loader's own (single-process) order trains another model
    other, train, validate, _ = ddp_case.case()
    fit(other, train, validate, **ddp_case.FIT)
    assert max((other.state_dict()[k] - v).abs().max().item() for k, v in rank0["state"].items()) > 1e-3


def test_every_validation_and_test_film_is_scored_exactly_once(two_ranks):
    rank0, rank1, _ = two_ranks
    assert rank0["probs"].shape == rank1["probs"].shape == (ddp_case.N_TEST, 3)  # 19 films, 20 slots on 2 ranks
    assert torch.equal(rank0["probs"], rank1["probs"])
    # in dataset order: the rank-0 weights, run in one process, score the test films the same way
    model, _, _, test = ddp_case.case()
    model.load_state_dict(rank0["state"])
    np.testing.assert_allclose(rank0["probs"].numpy(), predict(model, test), atol=1e-6)


def test_only_rank_0_writes_files(two_ranks):
    rank0, rank1, home = two_ranks
    assert rank1["writes"] == []
    written = " ".join(rank0["writes"])
    assert "best.pt" in written and "state.pt" in written and "artifact" in written
    assert (home / "artifact" / "meta.json").is_file() and rank1["meta"] == rank0["meta"]


def test_cxrkit_train_under_torchrun_trains_the_class_recipe_on_two_gloo_ranks(tmp_path):
    home = tmp_path / "home"
    done = subprocess.run([*TORCHRUN, "-m", "cxrkit", "train", "--profile", "class", "-p", "patients", "80",
                           "-p", "image_size", "64", "-p", "epochs", "2"], cwd=REPO, env=_env(home),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cxrkit train: world_size 2; backend gloo" in done.stdout and done.stdout.count("world_size 2;") == 1
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["world_size"] == 2 and summary["precision"] == "float32" and 0 <= summary["test_auroc"] <= 1
    folder = Path(summary["folder"])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["settings"]["world_size"] == 2 and meta["settings"]["schedule"] == "onecycle"
    assert all((folder / f).is_file() for f in ("model.pt", "history.csv", "predictions.csv"))
    assert not (home / "training_states").exists()  # the resumable state goes once the model is saved
    shutil.rmtree(home)
