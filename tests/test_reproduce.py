"""`cxrkit reproduce`: the comparison table on fabricated records, and re-execution on tiny and smoke notebooks."""
import json
from pathlib import Path

import pytest

from cxrkit.cli import main
from cxrkit.reproduce import (FAIL, MISSING, NEW, PASS, SAME_MACHINE_ABS, TIMING, compare_metric, compare_runs,
                              format_table, load_run, passed, reproduce, tolerance_for)
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
    assert lines[-1] == "1/4 metrics reproduced; 3 did not"
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
    assert not (runs / "again" / "02_other.record.json").exists()  # only the reference's notebooks re-ran
    assert (runs / "again" / "reproduction.txt").read_text().startswith("notebook")

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
