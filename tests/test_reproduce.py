"""`cxrkit reproduce`: the comparison table on fabricated records, and re-execution on tiny and smoke notebooks."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from cxrkit.cli import main
from cxrkit.reproduce import (FAIL, MISSING, NEW, PASS, SAME_MACHINE_ABS, SPREAD_K, TIMING, TOLERANCES, compare_metric,
                              compare_runs, format_table, load_run, load_run_metrics, metric_rule, passed, reproduce,
                              spread_tolerance, tolerance_for)
from cxrkit.spread import load_spread, summarize
from cxrkit.runner import run_notebooks
from notebook_factory import standard_cells, write_notebook

REPO = Path(__file__).parent.parent


@pytest.mark.parametrize("metric, reference, now, verdict", [
    ("image_test_macro_auroc", 0.81234567, 0.81234567, PASS),
    ("image_test_macro_auroc", 0.8123, 0.8123 + SAME_MACHINE_ABS / 2, PASS),
    ("image_test_macro_auroc", 0.8123, 0.8124, FAIL),
    ("image_test_macro_auroc", 0.8123, None, FAIL),          # became NaN (recorded as null)
    ("image_test_macro_auroc", None, None, PASS),            # NaN then, NaN now
    ("n_train", 700, 700, PASS),
    ("n_train", 700, 701, FAIL),
    ("setup_checks_passed", 4, 4.0, PASS),                    # an int recorded as a float is the same count
    ("sanity_failed_methods", "gradient,smoothgrad", "gradient,smoothgrad", PASS),
    ("sanity_failed_methods", "gradient", "gradient,smoothgrad", FAIL),
    ("some_flag", True, 1, FAIL),                             # a bool is not a number
    ("train_images_per_s", 900.0, 120.0, TIMING),
    ("loc_ms_per_map", 3.1, 9.7, TIMING),
    ("ig_s_per_film", 0.4, 0.9, TIMING),
    ("loc_false_per_film", 0.4, 0.9, FAIL),                  # a count per film, not a timing
])
def test_each_metric_gets_its_verdict(metric, reference, now, verdict):
    assert compare_metric("02_image_cnn", metric, reference, now).verdict == verdict


def test_tolerances_live_in_one_table_and_can_be_loosened():
    assert str(tolerance_for("x_auroc", 0.5)) == f"±{SAME_MACHINE_ABS:g}"
    assert str(tolerance_for("n_test", 3)) == "exact" and str(tolerance_for("name", "a")) == "exact"
    assert tolerance_for("x_auroc", 0.5, loosen=0.02).value == 0.02
    assert compare_metric("nb", "x_auroc", 0.80, 0.81, loosen=0.02).verdict == PASS
    assert compare_metric("nb", "n_test", 3, 4, loosen=10).verdict == FAIL  # counts stay exact


def test_missing_and_new_metrics_and_the_table():
    reference = {"01_a": {"n_train": 10, "auroc": 0.75, "gone": 1.0}, "02_b": {"x": 1.0}}
    now = {"01_a": {"n_train": 10, "auroc": 0.70, "extra": 3}}
    rows = compare_runs(reference, now)
    verdicts = {(r.notebook, r.metric): r.verdict for r in rows}
    assert verdicts == {("01_a", "n_train"): PASS, ("01_a", "auroc"): FAIL, ("01_a", "gone"): MISSING,
                        ("01_a", "extra"): NEW, ("02_b", "x"): MISSING}
    assert not passed(rows)
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "metric", "reference", "now", "difference", "tolerance", "verdict"]
    auroc = next(ln for ln in lines if " auroc " in ln)
    assert "0.75" in auroc and "0.7" in auroc and "-0.05" in auroc and "FAIL" in auroc
    assert lines[-1].startswith("1/4 metrics reproduced; 3 did not (numbers within 1e-06 of the reference")
    assert passed(compare_runs({"01_a": {"n": 1}}, {"01_a": {"n": 1, "new_one": 2}}))


def _fake_run(folder: Path, metrics: dict, seed=0, status="ok") -> Path:
    folder.mkdir(parents=True)
    summary = {"run": folder.name, "profile": "smoke", "seed": seed, "parameters": {"profile": "smoke"},
               "notebooks": [{"notebook": nb, "status": status, "seconds": 1.0, "metrics": m}
                             for nb, m in metrics.items()]}
    (folder / "summary.json").write_text(json.dumps(summary))
    for nb, m in metrics.items():
        (folder / f"{nb}.record.json").write_text(json.dumps({"notebook": nb, "seed": seed, "metrics": m}))
    return folder


def test_load_run_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"summary.json: no such file"):
        load_run(tmp_path)
    ref = _fake_run(tmp_path / "r", {"01_a": {"n": 1}})
    (ref / "01_a.record.json").unlink()
    with pytest.raises(ValueError, match=r"01_a.record.json: no such file"):
        load_run(ref)
    with pytest.raises(ValueError, match="status 'failed'"):
        load_run(_fake_run(tmp_path / "f", {"01_a": {"n": 1}}, status="failed"))
    assert load_run(_fake_run(tmp_path / "ok", {"01_a": {"n": 1}}, seed=3)).metrics == {"01_a": {"n": 1}}


TINY = ('P = use_profile(profile, seed=seed)\nrecord = start_run("{name}", P)\n'
        'total = sum(i * seed for i in range(10))\n'
        'record.metric("n_items", 10)\nrecord.metric("value", float(total) / 7)\nrecord.save()')


@pytest.fixture
def tiny_notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("01_tiny", "02_other"):
        write_notebook(folder / f"{name}.ipynb", standard_cells([TINY.format(name=name)]))
    return folder


def test_reproduce_reruns_with_the_recorded_seed_and_fails_on_a_changed_number(tiny_notebooks, tmp_path, capsys):
    runs = tmp_path / "runs"
    run_notebooks(notebooks_dir=tiny_notebooks, runs_dir=runs, name="ref", profile="smoke", overrides={"seed": 3},
                  only=["01"], echo=lambda *a, **k: None)
    ref = runs / "ref"
    assert json.loads((ref / "01_tiny.record.json").read_text())["metrics"]["value"] == pytest.approx(135 / 7)

    args = [str(ref), "--runs", str(runs), "--notebooks", str(tiny_notebooks), "--name", "again"]
    assert main(["reproduce", *args]) == 0
    out = capsys.readouterr().out
    assert "profile smoke, seed 3, notebooks 01_tiny" in out and "2/2 metrics reproduced" in out
    assert "note: " in out and "has no spread.json; comparing exactly" in out  # no spread: exact, said once
    assert not (runs / "again" / "02_other.record.json").exists()  # only the reference's notebooks re-ran
    assert "\nnotebook  metric" in (runs / "again" / "reproduction.txt").read_text()

    record = json.loads((ref / "01_tiny.record.json").read_text())
    record["metrics"]["value"] += 1e-3
    (ref / "01_tiny.record.json").write_text(json.dumps(record))
    assert main(["reproduce", *args[:-1], "again2"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["reproduce", *args[:-1], "again3", "--tolerance", "0.01"]) == 0


def test_smoke_run_of_notebooks_00_and_01_reproduces_exactly(tmp_path):
    """Same machine + same seed → identical metrics: run 00 and 01 on smoke, then reproduce that run."""
    runs = tmp_path / "runs"
    run_notebooks(notebooks_dir=REPO / "notebooks", runs_dir=runs, name="first", profile="smoke",
                  only=["00", "01"], echo=lambda *a, **k: None)
    rows, _ = reproduce(runs / "first", name="second", runs_dir=runs, echo=lambda *a, **k: None)
    compared = [r for r in rows if r.verdict != TIMING]
    assert len(compared) >= 5 and {r.notebook for r in compared} == {"00_setup", "01_data_prep"}
    assert passed(rows), format_table(rows)
    assert all(r.difference in (None, 0.0) for r in compared), format_table(rows)  # identical, not merely close


def test_committed_reference_is_a_complete_class_run():
    ref = load_run(REPO / "reference" / "class")
    assert ref.profile == "class"
    assert {"00_setup", "01_data_prep", "02_image_cnn", "03_text_cnn", "04_fusion", "05_saliency_derivation",
            "06_clustered_ig_localization"} <= set(ref.metrics)
    assert all(ref.metrics.values())


# ------------------------------------------------------------------------------- tolerances from the spread

AUROC = summarize([0.80, 0.81, 0.79, 0.80, 0.82])  # SD 0.0114, range 0.03


@pytest.mark.parametrize("metric, stats, reference, now, verdict", [
    ("image_auroc", AUROC, 0.80, 0.80, PASS),
    ("image_auroc", AUROC, 0.80, 0.80 + 0.04, PASS),                       # within 4 SD (0.046)
    ("image_auroc", AUROC, 0.80, 0.804 + 0.05, FAIL),                      # beyond 4 SD of the mean 0.804
    ("image_auroc", AUROC, 0.80, None, FAIL),                              # became NaN
    ("image_auroc", summarize([0.9, 0.9, 0.9]), 0.9, 0.904, PASS),         # no spread: the AUROC floor 0.005
    ("image_auroc", summarize([0.9, 0.9, 0.9]), 0.9, 0.906, FAIL),
    ("labeler_f1_min", summarize([1.0] * 5), 1.0, 0.9995, PASS),           # the default floor 0.001
    ("labeler_f1_min", summarize([1.0] * 5), 1.0, 0.998, FAIL),
    ("n_train", summarize([81, 70, 75]), 81, 81, PASS),                    # a count: the reference run's value
    ("n_train", summarize([81, 70, 75]), 81, 75, FAIL),
    ("setup_checks_passed", summarize([4, 4]), 4, 4.0, PASS),              # an int is a count
    ("fusion_best_method", summarize(["attention", "joint"]), "attention", "joint", PASS),  # among the seeds'
    ("fusion_best_method", summarize(["attention", "joint"]), "attention", "early", FAIL),
    ("sanity_failed_methods", summarize(["gradient", ""]), "gradient", "", PASS),
    ("ci_excludes_zero", summarize([True, False]), True, False, PASS),
    ("ci_excludes_zero", summarize([True, True]), True, False, FAIL),
    ("ci_excludes_zero", summarize([True, True]), True, 1, FAIL),          # a bool is not a number
    ("gain", summarize([0.01, None, 0.02]), 0.01, None, PASS),             # a seed gave NaN too
    ("train_images_per_s", summarize([60.0, 61.0], timing=True), 60.0, 5.0, TIMING),
])
def test_each_metric_is_compared_with_its_spread(metric, stats, reference, now, verdict):
    assert compare_metric("nb", metric, reference, now, spread=stats).verdict == verdict


def test_the_tolerance_is_the_largest_of_k_sd_range_and_floor_and_says_which():
    sd_wins = summarize([0.70, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80])  # 4 SD 0.126 > range 0.1
    tol = spread_tolerance("image_auroc", sd_wins)
    assert tol.value == pytest.approx(SPREAD_K * sd_wins["sd"]) and str(tol).endswith(f"({SPREAD_K:g} SD)")
    two = summarize([0.70, 0.80])  # SD 0.0707, 4 SD 0.28 > range 0.1
    assert spread_tolerance("image_auroc", two).source == f"{SPREAD_K:g} SD"
    uniform = {"mean": 0.5, "sd": 0.001, "min": 0.45, "max": 0.55, "values": [0.45, 0.55]}
    assert spread_tolerance("image_auroc", uniform).value == pytest.approx(0.1) and \
        spread_tolerance("image_auroc", uniform).source == "range"
    assert str(spread_tolerance("loc_hit_rate", summarize([0.3, 0.3]))) == "±0.025 (floor)"
    assert spread_tolerance("image_auroc", summarize([0.3, 0.3]), loosen=0.2).source == "--tolerance"
    assert str(spread_tolerance("n_test", summarize([3, 4]))) == "exact"
    assert str(spread_tolerance("best", summarize(["a"]))) == "a seed's value"


def test_the_table_of_floors_covers_every_recorded_metric_kind():
    assert TOLERANCES[-1][0] == "*"  # every metric gets a rule
    assert metric_rule("ptx_auroc_with_tube") == ("number", 0.005)
    assert metric_rule("pointing_game_gradcam") == ("number", 0.05)
    assert metric_rule("loc_ms_per_map")[0] == "timing" and metric_rule("n_validate")[0] == "exact"
    assert metric_rule("loc_false_per_film") == ("number", 0.05)  # a count per film, not a timing


def test_compare_runs_against_a_spread_prints_mean_and_tolerance_beside_every_row():
    reference = {"02_a": {"auroc": 0.80, "n_test": 40, "best": "joint", "rate_per_s": 9.0}}
    spread = {"02_a": {"auroc": AUROC, "n_test": summarize([40, 40]), "best": summarize(["joint", "early"]),
                       "rate_per_s": summarize([9.0, 8.0], timing=True), "only_in_spread": summarize([1.0, 1.0])}}
    now = {"02_a": {"auroc": 0.81, "n_test": 40, "best": "early", "rate_per_s": 3.0}}
    rows = compare_runs(reference, now, spread=spread)
    assert {r.metric: r.verdict for r in rows} == {"auroc": PASS, "n_test": PASS, "best": PASS, "rate_per_s": TIMING,
                                                   "only_in_spread": MISSING}
    table = format_table(rows).splitlines()
    assert table[0].split()[:5] == ["notebook", "metric", "reference", "spread", "mean"]
    auroc = next(line for line in table if " auroc " in line)
    assert "0.804" in auroc and "±0.0456 (4 SD)" in auroc and "+0.006" in auroc
    assert table[-1].startswith("3/4 metrics reproduced; 1 did not (numbers within max(4 SD, range, floor)")


# ----------------------------------------------------------- re-runs against a recorded spread (tiny notebooks)

SEEDED = ('P = use_profile(profile, seed=seed)\nrecord = start_run("{name}", P)\nimport numpy as np\n'
          'noise = np.random.default_rng(seed).standard_normal()\n'
          'record.metric("n_items", 10)\nrecord.metric("score", 0.8 + 0.01 * noise)\n'
          'record.metric("best", ["a", "b"][seed % 2])\nrecord.metric("work_per_s", 100.0 + seed)\nrecord.save()')


@pytest.fixture(scope="module")
def recorded_spread(tmp_path_factory):
    """A tiny notebook run for seeds 0-1 by `cxrkit spread --record`: the reference a reviewer would get."""
    from cxrkit.spread import run_spread, record_spread

    tmp = tmp_path_factory.mktemp("spread")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_tiny.ipynb", standard_cells([SEEDED.format(name="01_tiny")]))
    run_spread(profile="smoke", seeds=[0, 1], out=tmp / "spread", notebooks_dir=notebooks, echo=lambda *a, **k: None)
    record_spread(tmp / "spread", tmp / "reference", echo=lambda *a, **k: None)
    return tmp, notebooks, tmp / "reference"


def _reproduce_cli(reference, notebooks, runs, name, *extra):
    return main(["reproduce", str(reference), "--runs", str(runs), "--notebooks", str(notebooks), "--name", name,
                 *extra])


def test_a_rerun_within_the_spread_passes_and_prints_the_environment(recorded_spread, capsys):
    tmp, notebooks, reference = recorded_spread
    assert _reproduce_cli(reference, notebooks, tmp / "runs", "same") == 0
    out = capsys.readouterr().out
    assert "tolerances from the spread over seeds [0, 1]" in out and "environment: same as the reference" in out
    assert out.index("environment:") < out.index("notebook  ")  # the environment comes before the table
    score = next(line for line in out.splitlines() if " score " in line)
    assert score.rstrip().endswith("ok") and any(term in score for term in ("(4 SD)", "(range)", "(floor)"))
    assert "3/3 metrics reproduced" in out and "timing (not compared)" in out
    assert (tmp / "runs" / "same" / "reproduction.txt").read_text().startswith("environment")


def test_a_metric_moved_far_outside_its_spread_fails_and_is_named(recorded_spread, tmp_path, capsys):
    tmp, notebooks, reference = recorded_spread
    edited = tmp_path / "edited"
    shutil.copytree(reference, edited)
    spread = json.loads((edited / "spread.json").read_text())
    stats = spread["metrics"]["01_tiny"]["score"]
    tol = spread_tolerance("score", stats).value
    stats["mean"] += 10 * tol  # a regression: the recorded spread now sits 10 tolerances away from the code
    (edited / "spread.json").write_text(json.dumps(spread))
    assert _reproduce_cli(edited, notebooks, tmp / "runs", "moved") == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(fails) == 1 and " score " in fails[0]
    assert "2/3 metrics reproduced; 1 did not" in out


def test_exact_mode_catches_a_small_drift_that_the_spread_forgives(recorded_spread, tmp_path, capsys):
    tmp, notebooks, reference = recorded_spread
    edited = tmp_path / "drift"
    shutil.copytree(reference, edited)
    record = json.loads((edited / "01_tiny.record.json").read_text())
    record["metrics"]["score"] += 1e-3
    other = "AVX2" if torch.backends.cpu.get_cpu_capability() == "AVX512" else "AVX512"  # never this machine's own
    record["environment"]["cpu_capability"] = other
    (edited / "01_tiny.record.json").write_text(json.dumps(record))
    assert _reproduce_cli(edited, notebooks, tmp / "runs", "exact", "--exact") == 1
    out = capsys.readouterr().out
    assert "tolerances from the spread" not in out
    assert f"cpu_capability: {other} (reference) vs {torch.backends.cpu.get_cpu_capability()} (now)" in out
    assert " score " in next(line for line in out.splitlines() if line.rstrip().endswith("FAIL"))
    rows = compare_runs(load_run(edited).metrics, load_run_metrics(tmp / "runs" / "exact"),
                        spread=load_spread(edited / "spread.json")["metrics"])
    assert passed(rows)  # the same re-run, compared with the spread: within it, it reproduces


def test_a_bad_spread_file_is_named(recorded_spread, tmp_path, capsys):
    tmp, notebooks, reference = recorded_spread
    edited = tmp_path / "bad"
    shutil.copytree(reference, edited)
    (edited / "spread.json").write_text('{"profile": "smoke", "seeds": [0], "metrics": {"01_tiny": {"score": 3}}}')
    assert _reproduce_cli(edited, notebooks, tmp / "runs", "bad") == 2
    assert "spread.json: 01_tiny.score needs a list of values" in capsys.readouterr().err
