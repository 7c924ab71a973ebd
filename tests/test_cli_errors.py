"""Expected errors on the command line: one message, exit 2, no traceback, nothing left behind (#17 items 5, 7, 8)."""
import json

import pytest

from cxrkit import cli, runner
from cxrkit.datasets import DatasetRootError, resolve_root
from cxrkit.errors import ParameterError
from notebook_factory import standard_cells, write_notebook


@pytest.fixture()
def notebooks(tmp_path, monkeypatch):
    """Two numbered notebooks and an executor that only records what it was asked to run (no kernel starts)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("01_first", "02_second"):
        write_notebook(folder / f"{name}.ipynb", standard_cells(["x = 1"]))
    calls = []
    monkeypatch.setattr(runner, "execute_notebook", lambda src, *a, **k: calls.append(src.name))
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CXRKIT_DEBUG", raising=False)
    return folder, calls


def one_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cxrkit {command}: "), err
    return lines[0]


BAD_RUNS = {
    "unknown knob": (["-p", "unknown_knob", "3"], "unknown parameter 'unknown_knob'"),
    "typo": (["-p", "sed", "7"], "did you mean 'seed'?"),
    "negative epochs": (["-p", "epochs", "-1"], "epochs=-1"),
    "7 px films": (["-p", "image_size", "7"], "image_size=7"),
    "every bad knob at once": (["-p", "sed", "7", "-p", "lr", "fast"], "lr='fast'"),
    "empty data_root": (["-p", "data_root", ""], "data_root=''"),
    "missing data_root": (["-p", "data_root", "/no/such/cxr"], "no such folder"),
    "no notebook 99": (["--only", "99"], "no notebook numbered 99"),
    "empty --only": (["--only", ""], "the numbers are 01, 02"),
}


@pytest.mark.parametrize("args, expected", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_run_refuses_bad_input_before_any_notebook_or_folder(notebooks, tmp_path, capsys, args, expected):
    folder, calls = notebooks
    runs = tmp_path / "runs"
    code = cli.main(["run", "--notebooks", str(folder), "--runs", str(runs), "--name", "x", "--no-report", *args])
    assert code == 2
    assert expected in one_error(capsys, "run")
    assert not runs.exists() and calls == []


def test_no_notebook_99_lists_the_numbers_there_are(notebooks, tmp_path):
    folder, _ = notebooks
    with pytest.raises(ValueError, match=r"no notebook numbered 99 .*the numbers are 01, 02"):
        runner.run_notebooks(notebooks_dir=folder, runs_dir=tmp_path / "runs", only=["99"], echo=lambda *a, **k: None)
    assert not (tmp_path / "runs").exists()


def test_a_missing_notebook_folder_is_one_message(notebooks, tmp_path, capsys):
    code = cli.main(["run", "--notebooks", str(tmp_path / "nope"), "--runs", str(tmp_path / "runs")])
    assert code == 2 and "nope does not exist" in one_error(capsys, "run") and not (tmp_path / "runs").exists()


def test_valid_parameters_run_typed(notebooks, tmp_path, capsys):
    folder, calls = notebooks
    code = cli.main(["run", "--notebooks", str(folder), "--runs", str(tmp_path / "runs"), "--name", "ok",
                     "--no-report", "-p", "seed", "3", "-p", "lr", "1e-3", "--only", "2"])
    assert code == 0 and calls == ["02_second.ipynb"]
    summary = json.loads((tmp_path / "runs" / "ok" / "summary.json").read_text())
    assert summary["parameters"] == {"profile": "class", "seed": 3, "lr": 0.001}


def test_an_unwritable_runs_folder_is_one_message(notebooks, tmp_path, capsys):
    folder, calls = notebooks
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = cli.main(["run", "--notebooks", str(folder), "--runs", str(blocker / "runs"), "--no-report"])
    assert code == 2 and str(blocker) in one_error(capsys, "run") and calls == []


def test_debug_shows_the_traceback_and_bugs_keep_theirs(notebooks, tmp_path, monkeypatch):
    folder, _ = notebooks
    bad = ["--notebooks", str(folder), "--runs", str(tmp_path / "runs"), "-p", "sed", "7"]
    with pytest.raises(ParameterError):
        cli.main(["--debug", "run", *bad])
    with pytest.raises(ParameterError):
        cli.main(["run", "--debug", *bad])
    monkeypatch.setenv("CXRKIT_DEBUG", "1")
    with pytest.raises(ParameterError):
        cli.main(["run", *bad])
    monkeypatch.delenv("CXRKIT_DEBUG")

    def bug(**kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(runner, "run_notebooks", bug)
    with pytest.raises(ZeroDivisionError):  # not the user's fault: the traceback stays
        cli.main(["run", "--notebooks", str(folder)])


def test_spread_refuses_a_bad_parameter_before_making_its_folder(notebooks, tmp_path, capsys):
    folder, calls = notebooks
    out = tmp_path / "spread"
    code = cli.main(["spread", "--notebooks", str(folder), "--out", str(out), "--seeds", "0-1", "-p", "epohcs", "2"])
    assert code == 2 and "did you mean 'epochs'?" in one_error(capsys, "spread")
    assert not out.exists() and calls == []
    code = cli.main(["spread", "--notebooks", str(folder), "--out", str(out), "--only", "99"])
    assert code == 2 and "no notebook numbered 99" in one_error(capsys, "spread") and not out.exists()


def test_reproduce_refuses_a_reference_with_bad_parameters(notebooks, tmp_path, capsys):
    folder, calls = notebooks
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "summary.json").write_text(json.dumps({
        "run": "r", "profile": "class", "seed": 0, "parameters": {"profile": "class", "epochs": -1},
        "notebooks": [{"notebook": "01_first", "status": "ok", "seconds": 1.0, "metrics": {}}]}))
    (ref / "01_first.record.json").write_text(json.dumps({"seed": 0, "metrics": {"score": 1.0}}))
    runs = tmp_path / "runs"
    code = cli.main(["reproduce", str(ref), "--exact", "--notebooks", str(folder), "--runs", str(runs)])
    assert code == 2 and "epochs=-1" in one_error(capsys, "reproduce")
    assert not runs.exists() and calls == []


def test_course_models_refuses_an_unknown_profile_or_seed(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # argparse: usage and exit 2
        cli.main(["course-models", "--profile", "bogus", "--check"])
    assert info.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    assert cli.main(["course-models", "--seed", "-1", "--check"]) == 2
    assert "seed=-1" in one_error(capsys, "course-models")


def test_an_empty_root_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_CHEXPERT_ROOT", str(tmp_path))
    assert resolve_root("chexpert") == tmp_path.resolve()
    for empty in ("", "  "):
        with pytest.raises(DatasetRootError, match="empty root folder for dataset 'chexpert'"):
            resolve_root("chexpert", empty)
    with pytest.raises(DatasetRootError, match="empty root"):
        resolve_root("synthetic", "")


def test_fetch_refuses_an_empty_destination(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fetch", "iu-xray", "", "--quiet"]) == 2
    assert "destination folder is empty" in one_error(capsys, "fetch") and list(tmp_path.iterdir()) == []


def test_an_unknown_dataset_is_one_message_with_a_suggestion(tmp_path, capsys):
    """``cxrkit prep --dataset mimic-cxr-jgp``: one line naming the near name, exit 2, no traceback."""
    from cxrkit.cli import main

    code = main(["prep", "--dataset", "mimic-cxr-jgp", "--root", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "did you mean 'mimic-cxr-jpg'" in err
