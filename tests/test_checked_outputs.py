"""Checked cells assert only what holds on every seed: nbval's view of checked outputs, and the committed spread record.

The last test reads ``reference/class/spread_checked_outputs.json`` (written by ``make spread RECORD=reference/class``)
and fails, naming notebook, cell and seed, when a frozen ``# NBVAL_CHECK_OUTPUT`` output in ``notebooks/`` differs
from what any seed of the spread printed.
"""
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cxrkit.checked_outputs import (cell_keys, checked_outputs, comparable_outputs, frozen_differences, is_checked,
                                    sanitize_patterns, seed_dependent_cells)

REPO = Path(__file__).parent.parent
CLASS_RECORD = REPO / "reference" / "class" / "spread_checked_outputs.json"
MIN_SEEDS = 5
PATTERNS = sanitize_patterns()


def _cell(source, *outputs, count=1, tags=()):
    cell = new_code_cell(source, execution_count=count, outputs=list(outputs))
    cell.metadata["tags"] = list(tags)
    return cell


def _stdout(text):
    return new_output("stream", name="stdout", text=text)


def test_which_cells_nbval_checks_in_lax_mode():
    assert is_checked(_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"))
    assert is_checked(_cell("print(1)", tags=["nbval-check-output"]))
    assert not is_checked(_cell("print(1)"))
    assert not is_checked(_cell("# NBVAL_CHECK_OUTPUT\n# NBVAL_SKIP\nprint(1)"))
    assert not is_checked(new_markdown_cell("# NBVAL_CHECK_OUTPUT"))


def test_outputs_are_flattened_joined_and_sanitized_as_nbval_compares_them():
    outputs = [_stdout("trained in 3.2 s\n"), _stdout("progress 10%\rprogress 100%\n"),
               new_output("execute_result", data={"text/plain": "0.81", "image/png": "iVBORw0KGgo="},
                          execution_count=7),
               new_output("display_data", data={"text/html": "<b>x</b>", "text/plain": "x"}),
               new_output("stream", name="stderr", text="warning\n")]
    flat = comparable_outputs(outputs, PATTERNS)
    assert flat == {"stdout": ["trained in TIME\nprogress 100%\n"], "stderr": ["warning\n"],
                    "text/plain": ["0.81", "x"], "text/html": ["<b>x</b>"]}  # no image, no counts
    assert outputs[0]["text"] == "trained in 3.2 s\n"  # the notebook's own outputs are left alone
    same_text_other_split = [_stdout("trained in 9 s\nprogress 100%\n")]
    assert comparable_outputs(same_text_other_split, PATTERNS)["stdout"] == flat["stdout"]


def test_cells_are_named_by_id_and_papermills_injected_cell_is_left_out():
    injected = _cell("seed = 3", tags=["injected-parameters"])
    nb = new_notebook(cells=[new_markdown_cell("# t"), _cell("x = 1", count=None), injected,
                             _cell("# NBVAL_CHECK_OUTPUT\nprint('a')", _stdout("a\n")),
                             _cell("# NBVAL_CHECK_OUTPUT\nprint('b')", count=None)])
    keys = cell_keys(nb)
    assert [k for k, _, _ in keys] == [c.id for c in nb.cells if c.cell_type == "code" and c is not injected]
    assert [n for _, n, _ in keys] == [0, 1, 2]  # nbval's cell numbers skip only the injected cell
    ran = checked_outputs(nb, PATTERNS)
    assert list(ran.values()) == [{"stdout": ["a\n"]}, {}]
    assert list(checked_outputs(nb, PATTERNS, frozen=True)) == [nb.cells[3].id]  # an unrun frozen cell is not checked
    plain = json.loads(nbformat.writes(nb))
    for cell in plain["cells"]:
        cell.pop("id")
    plain["nbformat_minor"] = 4
    assert list(checked_outputs(plain, PATTERNS)) == ["cell 1", "cell 2"]  # no ids: nbval's cell numbers


def _frozen_folder(tmp_path, *cells):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = new_notebook(cells=list(cells))
    nbformat.write(nb, str(folder / "04_demo.ipynb"))
    return folder, nb


def _record(cells, seeds=(0, 1)):
    return {"profile": "class", "seeds": list(seeds), "notebooks": {"04_demo": cells}}


def test_a_frozen_output_that_one_seed_does_not_print_is_named_with_notebook_cell_and_seed(tmp_path):
    folder, nb = _frozen_folder(tmp_path, _cell("# NBVAL_CHECK_OUTPUT\nprint(ok)", _stdout("gain excludes 0: False\n")))
    key = nb.cells[0].id
    agree = _record({key: {"0": {"stdout": ["gain excludes 0: False\n"]}, "1": {"stdout": ["gain excludes 0: False\n"]}}})
    assert frozen_differences(folder, agree, patterns=PATTERNS) == []
    flips = _record({key: {"0": {"stdout": ["gain excludes 0: False\n"]}, "1": {"stdout": ["gain excludes 0: True\n"]}}})
    problems = frozen_differences(folder, flips, patterns=PATTERNS)
    assert len(problems) == 1 and problems[0].startswith(f"04_demo cell {key} (nbval Cell 0), seed 1: output differs")
    assert "gain excludes 0: True" in problems[0]
    assert seed_dependent_cells(flips) == [f"04_demo cell {key}: differs between seeds "
                                           "(seed 0: '[stdout] gain excludes 0: False'; seed 1: '[stdout] gain excludes 0: True')"]
    assert seed_dependent_cells(agree) == []


def test_a_record_missing_a_cell_a_seed_or_a_notebook_or_too_few_seeds_fails(tmp_path):
    folder, nb = _frozen_folder(tmp_path, _cell("# NBVAL_CHECK_OUTPUT\nprint(1)", _stdout("1\n")),
                                _cell("# NBVAL_CHECK_OUTPUT\nprint(2)", _stdout("2\n"), count=2))
    first, second = nb.cells[0].id, nb.cells[1].id
    record = _record({first: {"0": {"stdout": ["1\n"]}}})
    problems = frozen_differences(folder, record, patterns=PATTERNS, min_seeds=5)
    assert problems[0] == "the record covers 2 seed(s) ['0', '1']; at least 5 are needed"
    assert f"04_demo cell {first} (nbval Cell 0), seed 1: no recorded output" in problems
    assert f"04_demo cell {second} (nbval Cell 1): checked cell missing from the record" in problems
    assert frozen_differences(folder, {"seeds": [0], "notebooks": {}}, patterns=PATTERNS) == [
        "04_demo: not in the record (it has 2 checked cells)"]


def test_the_record_is_sanitized_like_the_frozen_output(tmp_path):
    folder, nb = _frozen_folder(tmp_path, _cell("# NBVAL_CHECK_OUTPUT\nprint(t)", _stdout("cached in 2.0 s at /x/tmp/abc\n")))
    record = _record({nb.cells[0].id: {"0": {"stdout": ["cached in TIME at PATH\n"]},
                                       "1": {"stdout": ["cached in 7 s at /y/runs/z\n"]}}})
    assert frozen_differences(folder, record, patterns=PATTERNS) == []


def test_every_frozen_checked_output_is_what_every_seed_of_the_class_spread_printed():
    """The committed class spread (>= 5 seeds) printed exactly the frozen output of every checked cell."""
    assert CLASS_RECORD.is_file(), (f"{CLASS_RECORD.relative_to(REPO)} is missing: record the class spread with "
                                    "`make spread RECORD=reference/class` (reference/README.md)")
    record = json.loads(CLASS_RECORD.read_text())
    assert record.get("profile") == "class", f"{CLASS_RECORD.name} is a spread of profile {record.get('profile')!r}"
    problems = frozen_differences(REPO / "notebooks", record, min_seeds=MIN_SEEDS)
    assert not problems, "\n".join(problems)
