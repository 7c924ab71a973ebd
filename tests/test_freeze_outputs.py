"""scripts/freeze_outputs.py freezes checked outputs from a fresh, empty CXRKIT_HOME unless told to reuse one."""
import json
import os
import subprocess
import sys
from pathlib import Path

from notebook_factory import standard_cells, write_notebook

REPO = Path(__file__).parent.parent
PEEK = "# NBVAL_CHECK_OUTPUT\nprint('artifacts found:', sorted(p.name for p in cxrkit_home().iterdir()))"


def _freeze(notebook: Path, home: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CXRKIT_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "freeze_outputs.py"), str(notebook), *flags],
                          capture_output=True, text=True, env=env, timeout=600)


def _frozen_text(notebook: Path) -> str:
    cell = json.loads(notebook.read_text())["cells"][-1]
    return "".join("".join(o.get("text", "")) for o in cell["outputs"])


def test_outputs_are_frozen_from_an_empty_home_unless_reuse_is_asked_for(tmp_path):
    cells = standard_cells([PEEK])
    cells[1].source = "from cxrkit.paths import cxrkit_home\n" + cells[1].source
    notebook = write_notebook(tmp_path / "01_peek.ipynb", cells)
    home = tmp_path / "home"
    (home / "image_models" / "stale").mkdir(parents=True)

    done = _freeze(notebook, home)
    assert done.returncode == 0, done.stderr
    assert "freezing from a fresh, empty CXRKIT_HOME=" in done.stdout and "01_peek.ipynb: frozen" in done.stdout
    assert _frozen_text(notebook) == "artifacts found: []\n"
    assert (home / "image_models" / "stale").is_dir()  # the user's home is untouched

    done = _freeze(notebook, home, "--reuse-home")
    assert done.returncode == 0, done.stderr
    assert f"freezing with the existing CXRKIT_HOME={home}" in done.stdout
    assert _frozen_text(notebook) == "artifacts found: ['image_models']\n"

    missing = _freeze(tmp_path / "nope.ipynb", home)
    assert missing.returncode == 2 and "no such notebook" in missing.stderr


def test_freeze_from_run_copies_the_checked_outputs_of_an_executed_run(tmp_path):
    cells = standard_cells(["# NBVAL_CHECK_OUTPUT\nprint('checked')", "print('not checked')"])
    (tmp_path / "notebooks").mkdir()
    source = write_notebook(tmp_path / "notebooks" / "03_demo.ipynb", cells)
    executed = json.loads(source.read_text())
    injected = {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "seed = 0",
                "outputs": [], "execution_count": None, "id": "injected"}
    executed["cells"].insert(0, injected)
    for cell in executed["cells"]:
        if cell["cell_type"] == "code" and "print(" in "".join(cell["source"]):
            text = "checked\n" if "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]) else "not checked\n"
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}]
    run = tmp_path / "run"
    run.mkdir()
    (run / "03_demo.ipynb").write_text(json.dumps(executed))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "freeze_from_run.py"), str(run), str(source.parent)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0, done.stderr
    frozen = json.loads(source.read_text())["cells"]
    outputs = ["".join("".join(o.get("text", "")) for o in c.get("outputs", [])) for c in frozen if c["cell_type"] == "code"]
    assert "checked\n" in outputs and "not checked\n" not in outputs
