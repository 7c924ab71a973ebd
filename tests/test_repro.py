"""Seeding, the environment report and the run record (cxrkit.repro)."""
import json
import math

import numpy as np
import pytest
import torch

from cxrkit import repro
from fixtures.fresh_process import assert_runs_in_a_fresh_process


def _draw():
    import random

    return random.random(), np.random.rand(5), torch.randn(8), torch.nn.Linear(4, 3).weight.detach().clone()


def test_same_seed_gives_identical_numbers():
    repro.seed_everything(123)
    a = _draw()
    repro.seed_everything(123)
    b = _draw()
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_different_seed_gives_different_numbers():
    repro.seed_everything(1)
    a = _draw()
    repro.seed_everything(2)
    b = _draw()
    assert not torch.equal(a[2], b[2])


def test_same_seed_gives_identical_training_step():
    def step():
        repro.seed_everything(7)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
        x = torch.randn(4, 1, 8, 8)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(x).sum().backward()
        opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for p, q in zip(step(), step()):
        assert torch.equal(p, q)


def test_seed_everything_sets_threads_and_determinism():
    before = torch.get_num_threads()
    try:
        info = repro.seed_everything(0, threads=1)
        assert info == {"seed": 0, "threads": 1, "deterministic": True}
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)


def test_determinism_is_asked_for_without_importing_the_compiler():
    """seed_everything sets torch's deterministic flag (warn-only) in a fresh process without importing torch._inductor (2.6 s)."""
    code = ("import sys, torch; from cxrkit.repro import seed_everything; seed_everything(0); "
            "assert torch.are_deterministic_algorithms_enabled(); "
            "assert torch.is_deterministic_algorithms_warn_only_enabled(); "
            "assert 'torch._inductor' not in sys.modules and 'torch._dynamo' not in sys.modules, 'compiler imported'; "
            "import torch._inductor.config as c; torch.use_deterministic_algorithms(False); seed_everything(0); "
            "assert c.deterministic and torch.are_deterministic_algorithms_enabled()")
    assert_runs_in_a_fresh_process(code)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError):
        repro.seed_everything(bad)


def test_rng_streams_are_independent_of_order():
    a1 = repro.rng(5, "patients").random(3)
    repro.rng(5, "other").random(10)
    a2 = repro.rng(5, "patients").random(3)
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(repro.rng(5, "patients").random(3), repro.rng(5, "reports").random(3))


def test_environment_report_names_the_essentials():
    facts = repro.environment_report().as_dict()
    for key in ("python", "torch", "device", "threads", "cxrkit", "git_commit"):
        assert key in facts
    assert facts["device"] in {"cuda", "mps", "cpu"}
    assert "torch" in str(repro.environment_report())


def test_environment_report_records_what_moves_the_last_digits(monkeypatch):
    import numpy

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    facts = repro.environment_report().as_dict()
    assert facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["numpy"] == numpy.__version__ and facts["torch"] == torch.__version__
    assert facts["threads"] == torch.get_num_threads() and facts["interop_threads"] == torch.get_num_interop_threads()
    assert facts["ATEN_CPU_CAPABILITY"] == "default" and "MKL_NUM_THREADS" not in facts
    blas = torch.__config__.show()
    assert facts["torch_blas"].split()[0].lower() in blas.lower() and facts["numpy_blas"]
    assert facts["openmp"].startswith("OpenMP") == ("OpenMP" in blas)
    assert facts["cpu_model"] and all("\n" not in str(v) for v in facts.values())  # one line each
    assert len(str(repro.environment_report()).splitlines()) == len(facts)


def test_environment_differences_name_each_fact_that_differs():
    ref = {"cpu_capability": "AVX512", "threads": 2, "torch": "2.4", "git_commit": "a"}
    now = {"cpu_capability": "AVX2", "threads": 2, "torch": "2.4", "git_commit": "b", "OMP_NUM_THREADS": "1"}
    assert repro.environment_differences(ref, now) == ["cpu_capability: AVX512 (reference) vs AVX2 (now)",
                                                       "OMP_NUM_THREADS: — (reference) vs 1 (now)"]
    assert repro.environment_differences(ref, dict(ref)) == []


def test_run_record_content(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    monkeypatch.setenv(repro.RUN_DIR_ENV, str(tmp_path))
    record = repro.start_run("02_image_cnn", {"seed": 4, "patients": 60})
    record.metric("image_test_macro_auroc", np.float32(0.75))
    record.metric("fusion_best_method", "late_elasticnet")
    record.metric("broken", float("nan"))
    record.figure("curve", go.Figure(go.Scatter(x=[0, 1], y=[1, 2])))
    path = record.save()
    assert path == tmp_path / "02_image_cnn.record.json"
    data = json.loads(path.read_text())
    assert data["notebook"] == "02_image_cnn"
    assert data["seed"] == 4 and data["params"]["patients"] == 60
    assert math.isclose(data["metrics"]["image_test_macro_auroc"], 0.75, rel_tol=1e-6)
    assert data["metrics"]["fusion_best_method"] == "late_elasticnet"
    assert data["metrics"]["broken"] is None  # JSON has no NaN
    assert data["environment"]["torch"] == torch.__version__
    assert (tmp_path / data["figures"]["curve"]).exists()
    assert data["seconds"] >= 0
    assert repro.load_record(path) == data


def test_metric_names_must_be_identifiers(tmp_path):
    record = repro.RunRecord("00_setup", {}, folder=tmp_path, environment={})
    with pytest.raises(ValueError, match="metric names"):
        record.metric("bad name!", 1)
