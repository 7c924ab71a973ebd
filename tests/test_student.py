"""`cxrkit student`: stubs fail their checks, solutions pass, nothing is lost or leaked, bad markers are named."""
import json
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from cxrkit.cli import main
from cxrkit.exercises import CheckResult, check, registry
from cxrkit.nbstandard import COLAB_TAG
from cxrkit.student import (BEGIN, END, MarkerError, cell_source, find_exercises, student_notebook, stub_solutions,
                            verify_student_copy, write_student_notebooks)
from notebook_factory import standard_cells, write_notebook

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = [(path, ex) for path in NOTEBOOKS for ex in find_exercises(json.loads(path.read_text()), path.stem)]


def _read(path):
    return json.loads(Path(path).read_text())


@lru_cache(maxsize=None)
def _imports_source(path: Path) -> str:
    """The notebook's imports cell: its first code cell that is not the colab-setup cell."""
    code = [c for c in _read(path)["cells"] if c["cell_type"] == "code"
            and COLAB_TAG not in c.get("metadata", {}).get("tags", [])]
    return cell_source(code[0])


def _run_exercise(path: Path, solution_source: str, check_source: str) -> CheckResult:
    """exec the notebook's imports, one exercise cell and its check cell; return what check() found."""
    results: list[CheckResult] = []
    namespace: dict = {}
    exec(compile(_imports_source(path), f"{path.name}:imports", "exec"), namespace)

    def recording_check(name, fn, **kwargs):
        results.append(check(name, fn, **kwargs))
        return results[-1]

    exec(compile(solution_source, f"{path.name}:exercise", "exec"), namespace)
    namespace["check"] = recording_check
    exec(compile(check_source, f"{path.name}:check", "exec"), namespace)
    assert len(results) == 1, f"the check cell should call check() once, called it {len(results)} times"
    return results[0]


def test_notebooks_01_to_03_have_exercises():
    names = {ex.notebook for _, ex in EXERCISES}
    assert {"01_data_prep", "02_image_cnn", "03_text_cnn"} <= names


@pytest.mark.parametrize("path, ex", EXERCISES, ids=lambda v: getattr(v, "exercise", ""))
def test_instructor_solution_passes_its_check(path, ex):
    cells = _read(path)["cells"]
    result = _run_exercise(path, cell_source(cells[ex.cell]), cell_source(cells[ex.check_cell]))
    assert result.passed, result.message


@pytest.mark.parametrize("path, ex", EXERCISES, ids=lambda v: getattr(v, "exercise", ""))
def test_student_stub_fails_its_check_in_plain_words(path, ex, capsys):
    student, _ = student_notebook(_read(path), path.stem)
    cells = student["cells"]
    result = _run_exercise(path, cell_source(cells[ex.cell]), cell_source(cells[ex.check_cell]))
    assert not result.passed
    assert "not written yet" in result.message
    assert "✗" in capsys.readouterr().out  # the student sees the verdict, and the notebook did not crash


def test_every_solution_cell_is_followed_by_a_check_of_a_registered_exercise():
    known = registry()
    for path in NOTEBOOKS:
        for ex in find_exercises(_read(path), path.stem):  # raises MarkerError when a check cell is missing
            assert ex.exercise in known, f"{path.name}: cell {ex.check_cell} checks unknown exercise {ex.exercise!r}"
            assert known[ex.exercise].notebook == path.stem, \
                f"{path.name}: exercise {ex.exercise!r} is registered for {known[ex.exercise].notebook}"


def test_no_registered_exercise_is_missing_from_its_notebook():
    present = {path.stem for path in NOTEBOOKS}
    used = {ex.exercise for _, ex in EXERCISES}
    for name, ex in registry().items():
        if ex.notebook in present:
            assert name in used, f"exercise {name!r} is registered for {ex.notebook} but no cell there checks it"


def test_make_student_writes_every_notebook_without_solutions(tmp_path):
    assert main(["student", "--out", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for src, out in zip(NOTEBOOKS, written):
        instructor, student = _read(src), _read(out)
        text = "".join(cell_source(c) for c in student["cells"])
        assert BEGIN not in text and END not in text and "NBVAL_CHECK_OUTPUT" not in text
        assert all(not c.get("outputs") for c in student["cells"] if c["cell_type"] == "code")
        assert len(student["cells"]) == len(instructor["cells"])
        assert [e.exercise for e in find_exercises(instructor, src.stem)] == \
            [e.exercise for e in EXERCISES if e[0] == src for e in [e[1]]]
        verify_student_copy(instructor, student, src.stem)
        nbformat.validate(nbformat.from_dict(student))


def test_stub_keeps_the_indentation_and_the_rest_of_the_function():
    src = f"def f(x):\n    \"\"\"Doc.\"\"\"\n    {BEGIN}\n    y = x + 1\n    return y\n    {END}\n\nprint(f)"
    out, removed = stub_solutions(src)
    assert out == 'def f(x):\n    """Doc."""\n    raise NotImplementedError(' \
                  '"write your solution here, then run the check cell below")\n\nprint(f)'
    assert removed == ["    y = x + 1\n    return y\n"]
    compile(out, "stub", "exec")


@pytest.mark.parametrize("body, expected", [
    (f"def f():\n    {BEGIN}\n    return 1\n", "never closed"),
    (f"def f():\n    return 1\n    {END}\n", "without a"),
    (f"def f():\n    {BEGIN}\n    {BEGIN}\n    return 1\n    {END}\n", "inside another"),
    (f"def f():\n    {BEGIN}\n    return 1\n{END}\n", "indented differently"),
])
def test_unbalanced_markers_name_the_notebook_and_cell(tmp_path, body, expected):
    cells = standard_cells([body, 'check("nb01_leaky_patients", f)'])
    path = write_notebook(tmp_path / "07_broken.ipynb", cells)
    with pytest.raises(MarkerError, match=rf"07_broken: cell 3: .*{expected}"):
        write_student_notebooks([path], tmp_path / "student", echo=lambda *a, **k: None)
    assert main(["student", "--notebooks", str(tmp_path), "--out", str(tmp_path / "student")]) == 1


def test_a_solution_without_a_check_cell_is_an_error(tmp_path):
    cells = standard_cells([f"def f():\n    {BEGIN}\n    return 1\n    {END}", "print('no check here')"])
    with pytest.raises(MarkerError, match=r"cell 3: the next code cell must call check"):
        find_exercises(nbformat.from_dict({"cells": cells}), "08_nocheck")


def test_the_check_must_test_the_function_the_cell_defines():
    cells = [new_markdown_cell("# t"), new_code_cell(f"def f():\n    {BEGIN}\n    return 1\n    {END}"),
             new_code_cell('check("nb01_leaky_patients", g)')]
    with pytest.raises(MarkerError, match="tests 'g'"):
        find_exercises({"cells": cells}, "09_wrong")


def test_a_leaked_solution_is_caught():
    nb = {"cells": [new_code_cell(f"def f(x):\n    {BEGIN}\n    return sorted(x)[::-1]\n    {END}"),
                    new_code_cell('check("nb01_leaky_patients", f)')]}
    student, _ = student_notebook(nb, "10_leak")
    student["cells"].append(new_code_cell("    return sorted(x)[::-1]\n"))  # e.g. a hint cell pasting the answer
    with pytest.raises(AssertionError, match="leaked"):
        verify_student_copy(nb, student, "10_leak")
