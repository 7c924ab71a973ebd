"""The set-up step runs pip only when .venv is missing or pyproject.toml changed (scripts/bootstrap.sh)."""
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).parent.parent
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$@" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; chmod +x "$3/bin/python"
fi
"""


def _setup(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    log = tmp_path / "calls.log"
    fake = tmp_path / "fake-python3"
    fake.write_text(FAKE_PYTHON.format(log=log))
    fake.chmod(0o755)
    return log, fake


def _bootstrap(tmp_path, fake):
    env = {**os.environ, "VENV": str(tmp_path / ".venv"), "PYTHON": str(fake)}
    out = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bootstrap_installs_once_then_skips_until_pyproject_changes(tmp_path):
    log, fake = _setup(tmp_path)
    first = _bootstrap(tmp_path, fake)
    calls = log.read_text().splitlines()
    assert any(c.startswith("-m venv") for c in calls)
    assert any("pip install" in c and ".[dev]" in c for c in calls)
    assert "installing" in first

    log.write_text("")
    second = _bootstrap(tmp_path, fake)
    assert log.read_text() == ""  # neither venv nor pip ran
    assert "skipping install" in second

    with (tmp_path / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    _bootstrap(tmp_path, fake)
    calls = log.read_text().splitlines()
    assert not any(c.startswith("-m venv") for c in calls)  # the venv is kept
    assert any("pip install" in c for c in calls)


def test_make_targets_bootstrap_first():
    makefile = (REPO / "Makefile").read_text()
    for target in ("run", "test", "lab"):
        assert f"\n{target}: bootstrap" in makefile
    assert (REPO / ".ci" / "run").read_text().strip().endswith("make test")
