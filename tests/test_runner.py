"""``cxrkit run``: order, parameters, failure reporting, summary (cxrkit.runner)."""
import json

import pytest

from cxrkit import cli, runner
from notebook_factory import standard_cells, write_notebook

LOG = "import pathlib\npathlib.Path({log!r}).open('a').write('{name}:' + profile + ':' + str(seed) + '\\n')"
RECORD = ("P = use_profile(profile, seed=seed)\nrec = start_run('{name}', P)\n"
          "rec.metric('answer', {value})\nrec.save()")


@pytest.fixture()
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    log = tmp_path / "order.log"
    # written out of order on purpose; a non-numbered notebook must be ignored
    for name, value in [("02_second", 2.5), ("01_first", 1)]:
        write_notebook(folder / f"{name}.ipynb",
                       standard_cells([LOG.format(log=str(log), name=name), RECORD.format(name=name, value=value)]))
    write_notebook(folder / "scratch.ipynb", standard_cells(["raise SystemExit('must not run')"]))
    return folder, log


def test_runs_in_order_injects_parameters_and_writes_summary(notebooks, tmp_path, capfd):
    folder, log = notebooks
    lines = []
    summary = runner.run_notebooks(notebooks_dir=folder, runs_dir=tmp_path / "runs", name="t1",
                                   profile="smoke", overrides={"seed": 5},
                                   echo=lambda *a, **k: lines.append("".join(map(str, a))))
    assert log.read_text().splitlines() == ["01_first:smoke:5", "02_second:smoke:5"]
    run = tmp_path / "runs" / "t1"
    assert (run / "01_first.ipynb").exists() and (run / "02_second.ipynb").exists()
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == summary
    assert on_disk["run"] == "t1" and on_disk["profile"] == "smoke" and on_disk["seed"] == 5
    assert [n["notebook"] for n in on_disk["notebooks"]] == ["01_first", "02_second"]
    assert all(n["status"] == "ok" and n["seconds"] > 0 for n in on_disk["notebooks"])
    assert on_disk["notebooks"][1]["metrics"] == {"answer": 2.5}
    assert "02_second" in (run / "summary.md").read_text()
    assert any("[1/2] 01_first" in line for line in lines)
    # the kernels ran over IPC (cxrkit.kernels): no "running over TCP without encryption" warning on the terminal
    assert "without encryption" not in capfd.readouterr().err


def test_only_runs_a_subset(notebooks, tmp_path):
    folder, log = notebooks
    runner.run_notebooks(notebooks_dir=folder, runs_dir=tmp_path / "runs", name="t2", only=["2"],
                         echo=lambda *a, **k: None)
    assert log.read_text().splitlines() == ["02_second:class:0"]
    with pytest.raises(ValueError, match="no notebook numbered"):
        runner.run_notebooks(notebooks_dir=folder, runs_dir=tmp_path / "runs", only=["07"], echo=lambda *a, **k: None)


def test_failure_names_notebook_and_cell_and_stops(notebooks, tmp_path, capsys):
    folder, log = notebooks
    write_notebook(folder / "01_first.ipynb", standard_cells(["x = 1", "raise ValueError('broken on purpose')"]))
    code = cli.main(["run", "--notebooks", str(folder), "--runs", str(tmp_path / "runs"), "--name", "bad"])
    assert code == 1
    err = capsys.readouterr().err
    assert "01_first failed in cell" in err and "ValueError: broken on purpose" in err
    assert not log.exists()  # 02 never ran
    summary = json.loads((tmp_path / "runs" / "bad" / "summary.json").read_text())
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [("01_first", "failed")]
    assert "raise ValueError" in summary["notebooks"][0]["error"]
    assert "## Failure" in (tmp_path / "runs" / "bad" / "summary.md").read_text()


def test_parse_overrides_types_values():
    assert runner.parse_overrides([("seed", "3"), ("data_root", "null"), ("dataset", "iu-xray")]) == {
        "seed": 3, "data_root": None, "dataset": "iu-xray"}
