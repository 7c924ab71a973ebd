"""Every notebook meets the notebook standard, and the checker catches each kind of breach."""
import copy
from pathlib import Path

import nbformat
import pytest

from cxrkit.nbstandard import check_notebook, check_notebook_file
from notebook_factory import standard_cells

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_meets_the_standard(path):
    assert check_notebook_file(path) == []


def _good():
    nb = nbformat.v4.new_notebook(cells=standard_cells(["x = 1", "# NBVAL_CHECK_OUTPUT\nprint(x)"],
                                                       params='profile = "class"\nseed = 0\npatients = 1200'))
    return nbformat.from_dict(nb)


def test_good_notebook_passes():
    assert check_notebook(_good()) == []


def _breach(mutate):
    nb = copy.deepcopy(_good())
    mutate(nb)
    return check_notebook(nb)


@pytest.mark.parametrize("mutate, expected", [
    (lambda nb: nb.cells.pop(0), "markdown title"),
    (lambda nb: nb.cells[0].update(source="# Title only"), "learning objectives"),
    (lambda nb: nb.cells[1].update(source="import numpy"), "end with environment_report"),
    (lambda nb: nb.cells[3].update(source="import os\nx = 1"), "keep every import"),
    (lambda nb: nb.cells[2].metadata.update(tags=[]), "exactly one cell must be tagged"),
    (lambda nb: nb.cells[3].metadata.update(tags=["parameters"]), "exactly one cell must be tagged"),
    (lambda nb: nb.cells[2].update(source='profile = "smoke"\nseed = 0'), "must default to 'class'"),
    (lambda nb: nb.cells[2].update(source='profile = "class"\nseed = 1'), "differs from the class profile"),
    (lambda nb: nb.cells[2].update(source='profile = "class"\nnot_a_knob = 1'), "not a knob"),
    (lambda nb: nb.cells[3].update(outputs=[nbformat.v4.new_output("stream", text="1")]), "saved outputs"),
    (lambda nb: (nb.cells[3].update(execution_count=5), nb.cells[4].update(execution_count=2)), "out of order"),
])
def test_each_breach_is_caught(mutate, expected):
    problems = _breach(mutate)
    assert any(expected in p for p in problems), problems


def test_checked_cells_may_keep_outputs():
    def keep(nb):
        nb.cells[4].outputs = [nbformat.v4.new_output("stream", text="1\n")]
        nb.cells[4].execution_count = 2
    assert _breach(keep) == []


# --- the colab-setup cell: the one documented exception to "one imports cell" ---------------------------------
from IPython.core.inputtransformer2 import TransformerManager  # noqa: E402

from cxrkit.nbstandard import COLAB_SETUP_SOURCE, colab_setup_cell  # noqa: E402


def _with_colab(nb):
    nb.cells.insert(1, nbformat.from_dict(colab_setup_cell()))
    return nb


def test_a_colab_setup_cell_before_the_imports_is_allowed():
    assert check_notebook(_with_colab(_good())) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda nb: nb.cells.insert(4, nb.cells.pop(1)), "is not the first code cell"),
    (lambda nb: nb.cells[1].update(source=COLAB_SETUP_SOURCE + "\nimport numpy"), "must be exactly"),
    (lambda nb: nb.cells[1].update(source="import os"), "must be exactly"),
])
def test_a_misplaced_or_edited_colab_cell_is_caught(mutate, expected):
    nb = _with_colab(_good())
    mutate(nb)
    problems = check_notebook(nb)
    assert any(expected in p for p in problems), problems


def _run_colab_cell(monkeypatch, spec):
    import importlib.util

    calls = []

    class FakeShell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "cxrkit" else None)
    exec(TransformerManager().transform_cell(COLAB_SETUP_SOURCE), {"get_ipython": FakeShell})
    return calls


def test_colab_cell_does_nothing_where_cxrkit_is_installed(monkeypatch):
    assert _run_colab_cell(monkeypatch, spec=object()) == []


def test_colab_cell_pip_installs_cxrkit_where_it_is_missing(monkeypatch):
    monkeypatch.delenv("CXRKIT_PIP_SPEC", raising=False)
    assert _run_colab_cell(monkeypatch, spec=None) == [("pip", 'install --quiet "$CXRKIT_PIP_SPEC"')]


def test_ensure_colab_setup_cell_adds_it_once(tmp_path):
    from cxrkit.nbstandard import ensure_colab_setup_cell

    path = tmp_path / "07_x.ipynb"
    nbformat.write(_good(), str(path))
    assert ensure_colab_setup_cell(path) is True
    assert ensure_colab_setup_cell(path) is False
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[1].source == COLAB_SETUP_SOURCE and check_notebook(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_colab_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "colab-setup" in first.metadata.get("tags", [])
