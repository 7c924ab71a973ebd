"""``cxrkit spread``: seeds, the spread of every metric, resuming, never touching foreign folders, recording a reference."""
import json
import os
from pathlib import Path

import nbformat
import pytest

from cxrkit import runner
from cxrkit.checked_outputs import frozen_differences
from cxrkit.cli import main
from cxrkit.nbstandard import freeze_checked_outputs
from cxrkit.spread import (CHECKED_FILE, SEED_MARKER, SPREAD_FILE, SPREAD_TABLE, load_spread, merge_spread, parse_seeds,
                           record_spread, run_spread, summarize)
from notebook_factory import standard_cells, write_notebook

REPO = Path(__file__).parent.parent
QUIET = dict(echo=lambda *a, **k: None)


def test_seeds_are_ranges_or_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("3, 0-1,1") == [0, 1, 3]
    for bad in ("4-0", "a", "1-", "", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_summarize_numbers_text_and_timings():
    s = summarize([0.7, 0.8, 0.9])
    assert s["mean"] == pytest.approx(0.8) and s["sd"] == pytest.approx(0.1) and (s["min"], s["max"]) == (0.7, 0.9)
    assert s["values"] == [0.7, 0.8, 0.9] and "timing" not in s
    assert summarize([3]) == {"mean": 3.0, "sd": 0.0, "min": 3, "max": 3, "values": [3]}
    assert summarize(["attention", "joint"]) == {"values": ["attention", "joint"]}
    assert summarize([True, False]) == {"values": [True, False]}  # booleans are not numbers
    assert summarize([0.5, None, 0.7])["mean"] == pytest.approx(0.6)  # a NaN seed is kept in the values
    assert summarize([1.0, "x"]) == {"values": [1.0, "x"]}
    assert summarize([10.0, 12.0], timing=True)["timing"] is True


# ------------------------------------------------------------------- resuming, with a recorded fake runner

@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    """Replace papermill with a writer of run folders; seed 3 fails when ``fail`` holds it."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("01_a", "02_b"):
        write_notebook(notebooks / f"{name}.ipynb", standard_cells(["# NBVAL_CHECK_OUTPUT\nprint(seed)"]))
    calls, fail, homes = [], set(), []

    def fake(*, notebooks_dir, runs_dir, name, profile, overrides, only, timeout, echo, report):
        seed = overrides["seed"]
        calls.append(seed)
        homes.append(os.environ.get("CXRKIT_HOME"))
        folder = Path(runs_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for nb in ("01_a", "02_b"):
            if seed in fail and nb == "02_b":
                entries.append({"notebook": nb, "status": "failed", "seconds": 1.0, "metrics": {}})
                (folder / "summary.json").write_text(json.dumps({"notebooks": entries}))
                raise runner.NotebookFailed(f"{nb} failed in cell 3: ValueError: seed {seed}")
            metrics = {"auroc": 0.8 + seed / 100, "n_test": 40, "best": "ab"[seed % 2], "x_per_s": 9.0}
            (folder / f"{nb}.record.json").write_text(json.dumps({"seed": seed, "metrics": metrics,
                                                                  "environment": {"cpu_capability": "AVX2"}}))
            executed = nbformat.read(str(Path(notebooks_dir) / f"{nb}.ipynb"), as_version=4)
            executed.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{seed % 2}\n")]
            nbformat.write(executed, str(folder / f"{nb}.ipynb"))
            entries.append({"notebook": nb, "status": "ok", "seconds": 30.0, "metrics": metrics})
        (folder / "summary.json").write_text(json.dumps({"run": name, "profile": profile, "seed": seed,
                                                         "notebooks": entries}))
        (folder / "summary.md").write_text("# run\n")

    monkeypatch.setattr(runner, "run_notebooks", fake)
    fake.homes = homes
    return notebooks, calls, fail


def test_spread_json_has_the_issues_shape_and_the_cost(fake_runner, tmp_path):
    notebooks, calls, _ = fake_runner
    result = run_spread(profile="smoke", seeds=[0, 1, 2], out=tmp_path / "out", notebooks_dir=notebooks, **QUIET)
    data = json.loads((tmp_path / "out" / SPREAD_FILE).read_text())
    assert data == result.spread and calls == [0, 1, 2]
    assert data["profile"] == "smoke" and data["seeds"] == [0, 1, 2] and list(data["metrics"]) == ["01_a", "02_b"]
    auroc = data["metrics"]["01_a"]["auroc"]
    assert set(auroc) == {"mean", "sd", "min", "max", "values"} and auroc["mean"] == pytest.approx(0.81)
    assert data["metrics"]["02_b"]["best"] == {"values": ["a", "b", "a"]}
    assert data["metrics"]["01_a"]["x_per_s"]["timing"] is True
    assert data["cost"]["seconds_per_seed"] == {"0": 60.0, "1": 60.0, "2": 60.0}
    assert data["cost"]["minutes_per_seed"] == 1.0 and data["cost"]["total_minutes"] == 3.0
    assert data["environment"] == {"cpu_capability": "AVX2"}
    table = (tmp_path / "out" / SPREAD_TABLE).read_text()
    assert "| auroc | 0.81 ± 0.01 | 0.8 – 0.82 | 0.8 |" in table and "1.0 min per seed, 3.0 min in all" in table
    assert "values: a, b, a" in table and "timing, not compared" in table
    checked = json.loads((tmp_path / "out" / CHECKED_FILE).read_text())
    assert checked["seeds"] == [0, 1, 2] and set(checked["notebooks"]) == {"01_a", "02_b"}
    (cell, by_seed), = checked["notebooks"]["01_a"].items()
    assert by_seed == {"0": {"stdout": ["0\n"]}, "1": {"stdout": ["1\n"]}, "2": {"stdout": ["0\n"]}}
    assert any(f"01_a cell {cell}: differs between seeds (seed 0,2: '[stdout] 0'; seed 1: '[stdout] 1')" == line
               for line in result.seed_dependent)
    assert load_spread(tmp_path / "out" / SPREAD_FILE)["seeds"] == [0, 1, 2]


def test_a_complete_seed_is_not_run_again_unless_forced_or_stale(fake_runner, tmp_path):
    notebooks, calls, _ = fake_runner
    out = tmp_path / "out"
    lines = []
    run_spread(profile="smoke", seeds=[0, 1], out=out, notebooks_dir=notebooks, **QUIET)
    run_spread(profile="smoke", seeds=[0, 1, 2], out=out, notebooks_dir=notebooks, echo=lambda *a, **k: lines.append(a[0]))
    assert calls == [0, 1, 2]  # only the new seed ran
    assert any(line.startswith("seed 0 [1/3]: complete in") and "skipped" in line for line in lines)
    assert any(line.startswith("seed 2 [3/3]: running 2 notebook(s)") for line in lines)
    run_spread(profile="smoke", seeds=[0], out=out, notebooks_dir=notebooks, force=True, **QUIET)
    assert calls == [0, 1, 2, 0]
    run_spread(profile="smoke", seeds=[1], out=out, notebooks_dir=notebooks, overrides={"epochs": 2}, **QUIET)
    assert calls[-1] == 1  # other parameters: stale, re-run
    marker = json.loads((out / "seed-2" / SEED_MARKER).read_text())
    (out / "seed-2" / SEED_MARKER).write_text(json.dumps({**marker, "complete": False}))  # as if interrupted
    run_spread(profile="smoke", seeds=[2], out=out, notebooks_dir=notebooks, **QUIET)
    assert calls[-1] == 2
    (notebooks / "02_b.ipynb").write_text((notebooks / "02_b.ipynb").read_text().replace("print(seed)", "print(seed + 1)"))
    run_spread(profile="smoke", seeds=[0], out=out, notebooks_dir=notebooks, **QUIET)
    assert calls[-1] == 0 and len(calls) == 7  # an edited notebook makes every seed's run stale


def test_the_runs_build_their_artifacts_in_the_spreads_own_home_unless_told_to_reuse(fake_runner, tmp_path,
                                                                                      monkeypatch):
    notebooks, calls, _ = fake_runner
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "mine"))
    run_spread(profile="smoke", seeds=[0], out=tmp_path / "out", notebooks_dir=notebooks, **QUIET)
    run_spread(profile="smoke", seeds=[1], out=tmp_path / "out", notebooks_dir=notebooks, reuse_home=True, **QUIET)
    assert runner.run_notebooks.homes == [str(tmp_path / "out" / "cxrkit_home"), str(tmp_path / "mine")]
    assert os.environ["CXRKIT_HOME"] == str(tmp_path / "mine")  # restored


def test_folders_the_command_did_not_make_are_refused_and_left_alone(fake_runner, tmp_path):
    notebooks, calls, _ = fake_runner
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="was not made by `cxrkit spread`"):
        run_spread(profile="smoke", seeds=[0], out=mine, notebooks_dir=notebooks, **QUIET)
    out = tmp_path / "out"
    run_spread(profile="smoke", seeds=[0], out=out, notebooks_dir=notebooks, **QUIET)
    (out / "seed-2").mkdir(parents=True)
    (out / "seed-2" / "results.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"seed-2 exists but was not written by `cxrkit spread`"):
        run_spread(profile="smoke", seeds=[1, 2], out=out, notebooks_dir=notebooks, **QUIET)
    assert calls == [0]  # refused before any seed ran
    assert (mine / "notes.txt").read_text() == "keep me" and (out / "seed-2" / "results.csv").exists()
    with pytest.raises(ValueError, match="do not pass -p seed"):
        run_spread(profile="smoke", seeds=[0], out=out, notebooks_dir=notebooks, overrides={"seed": 3}, **QUIET)


def test_a_failing_seed_is_left_out_named_and_blocks_recording(fake_runner, tmp_path, capsys):
    notebooks, calls, fail = fake_runner
    fail.add(1)
    out, ref = tmp_path / "out", tmp_path / "ref"
    code = main(["spread", "--profile", "smoke", "--seeds", "0-2", "--out", str(out), "--notebooks", str(notebooks),
                 "--record", str(ref)])
    assert code == 1 and calls == [0, 1, 2]  # the other seeds still ran
    assert "seed(s) [1] failed" in capsys.readouterr().err and not ref.exists()
    data = json.loads((out / SPREAD_FILE).read_text())
    assert data["seeds"] == [0, 2] and "ValueError: seed 1" in data["failed"]["1"]
    with pytest.raises(ValueError, match=r"seed\(s\) \['1'\] failed"):
        record_spread(out, ref)
    fail.clear()
    assert main(["spread", "--profile", "smoke", "--seeds", "0-2", "--out", str(out), "--notebooks", str(notebooks),
                 "--record", str(ref)]) == 0
    assert calls[3:] == [1]  # only the failed seed ran again


def test_record_copies_the_spread_and_the_first_seeds_run_and_overwrites_only_its_own_files(fake_runner, tmp_path):
    notebooks, _, _ = fake_runner
    out, ref = tmp_path / "out", tmp_path / "reference" / "class"
    run_spread(profile="smoke", seeds=[0, 1], out=out, notebooks_dir=notebooks, **QUIET)
    written = record_spread(out, ref, **QUIET)
    assert sorted(p.name for p in written) == sorted(["spread.json", "spread.md", CHECKED_FILE, "summary.json",
                                                      "summary.md", "01_a.record.json", "02_b.record.json"])
    assert json.loads((ref / "summary.json").read_text())["seed"] == 0
    assert (ref / "spread.json").read_bytes() == (out / "spread.json").read_bytes()
    record_spread(out, ref, **QUIET)  # re-recording replaces its own files
    (ref / "02_old.record.json").write_text("{}")
    with pytest.raises(ValueError, match=r"records of notebooks this spread did not run \(\['02_old.record.json'\]\)"):
        record_spread(out, ref, **QUIET)
    (ref / "02_old.record.json").unlink()
    (ref / "README.md").write_text("mine")
    with pytest.raises(ValueError, match=r"holds \['README.md'\], which --record did not write"):
        record_spread(out, ref, **QUIET)


def test_merge_adds_a_new_notebooks_spread_to_a_recorded_reference(fake_runner, tmp_path):
    """A notebook added later joins the reference without re-running the others: metrics, checked cells, record, cost."""
    notebooks, _, _ = fake_runner
    ref = tmp_path / "reference"
    run_spread(profile="smoke", seeds=[0, 1], out=tmp_path / "first", notebooks_dir=notebooks, only=["01"], **QUIET)
    record_spread(tmp_path / "first", ref, **QUIET)
    assert load_spread(ref / SPREAD_FILE)["notebooks"] == ["01_a"] and not (ref / "02_b.record.json").exists()
    run_spread(profile="smoke", seeds=[0, 1], out=tmp_path / "added", notebooks_dir=notebooks, only=["02"], **QUIET)
    before = load_spread(ref / SPREAD_FILE)
    merge_spread(tmp_path / "added", ref, **QUIET)
    merged, added = load_spread(ref / SPREAD_FILE), load_spread(tmp_path / "added" / SPREAD_FILE)
    assert merged["notebooks"] == ["01_a", "02_b"]
    assert merged["metrics"]["01_a"] == before["metrics"]["01_a"] and merged["metrics"]["02_b"] == added["metrics"]["02_b"]
    assert merged["cost"]["seconds_per_seed"]["0"] == pytest.approx(before["cost"]["seconds_per_seed"]["0"]
                                                                    + added["cost"]["seconds_per_seed"]["0"])
    assert merged["cost"]["merged"] == ["02_b"]
    checked = json.loads((ref / CHECKED_FILE).read_text())
    assert set(checked["notebooks"]) == {"01_a", "02_b"} and (ref / "02_b.record.json").is_file()
    summary = json.loads((ref / "summary.json").read_text())
    assert [nb["notebook"] for nb in summary["notebooks"]] == ["01_a", "02_b"]
    assert "## 02_b" in (ref / SPREAD_TABLE).read_text() and "02_b" in (ref / "summary.md").read_text()
    run_spread(profile="smoke", seeds=[0, 2], out=tmp_path / "other", notebooks_dir=notebooks, only=["02"], **QUIET)
    with pytest.raises(ValueError, match="its seeds .* differ from the reference's"):
        merge_spread(tmp_path / "other", ref, **QUIET)


def test_load_spread_names_what_is_wrong(tmp_path):
    path = tmp_path / "spread.json"
    with pytest.raises(ValueError, match="no such file"):
        load_spread(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_spread(path)
    path.write_text('{"profile": "class", "seeds": [0]}')
    with pytest.raises(ValueError, match="needs the keys profile, seeds and metrics"):
        load_spread(path)
    path.write_text('{"profile": "class", "seeds": [0], "metrics": {"02": {"a": {"mean": 1, "values": [1]}}}}')
    with pytest.raises(ValueError, match=r"02.a has a mean but not numeric sd, min and max"):
        load_spread(path)


# ------------------------------------------------------------------------ real runs (papermill, tiny + smoke)

def test_a_tiny_spread_end_to_end_reports_a_seed_dependent_checked_cell_against_the_frozen_one(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    body = ['P = use_profile(profile, seed=seed)\nrecord = start_run("01_tiny", P)\n'
            'record.metric("value", seed * 0.5)\nrecord.save()',
            "# NBVAL_CHECK_OUTPUT\nprint('always', 2 + 2)", "# NBVAL_CHECK_OUTPUT\nprint('seed is', seed)"]
    path = write_notebook(notebooks / "01_tiny.ipynb", standard_cells(body))
    out = tmp_path / "out"
    assert main(["spread", "--profile", "smoke", "--seeds", "0,1", "--out", str(out), "--notebooks", str(notebooks)]) == 0
    printed = capsys.readouterr().out
    assert "seed 0 [1/2]: running 1 notebook(s)" in printed and "seed 1 [2/2]: done in" in printed
    assert "1 differ between seeds" in printed
    # freeze seed 0's outputs into the notebook, as scripts/freeze_outputs.py would: seed 1 then disagrees
    frozen = freeze_checked_outputs(json.loads(path.read_text()), json.loads((out / "seed-0" / "01_tiny.ipynb").read_text()))
    path.write_text(json.dumps(frozen))
    record = json.loads((out / CHECKED_FILE).read_text())
    problems = frozen_differences(notebooks, record)
    assert len(problems) == 1 and ", seed 1: output differs from the frozen one" in problems[0]
    assert "seed is 0" in problems[0] and "seed is 1" in problems[0]
    assert json.loads((out / SPREAD_FILE).read_text())["metrics"]["01_tiny"]["value"]["values"] == [0.0, 0.5]


def test_a_smoke_spread_of_notebook_00_matches_its_frozen_checked_outputs(tmp_path, monkeypatch):
    """The real notebook 00 on two seeds: a temporary record that the committed-record comparison accepts."""
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    result = run_spread(profile="smoke", seeds=[0, 1], out=tmp_path / "out", only=["00"], **QUIET)
    assert result.spread["metrics"]["00_setup"]["setup_checks_passed"]["values"] == [4, 4]
    assert len(result.checked["notebooks"]["00_setup"]) == 3 and result.seed_dependent == []
    assert frozen_differences(REPO / "notebooks", result.checked, notebooks=["00_setup"]) == []
    assert result.frozen_mismatches == []
