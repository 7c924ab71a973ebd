"""``cxrkit student``: write the problem-set versions of the notebooks (``make student``, README "For instructors").

An exercise in an instructor notebook is a code cell whose solution lines sit between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (see :mod:`cxrkit.exercises`), followed by a cell that
calls ``check("<exercise>", fn)``. The student copy replaces each marked block with one
``raise NotImplementedError(...)`` at the block's indentation, clears every output, and is verified:
no marker and no solution block survives, and every exercise of the instructor notebook is still there.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cxrkit.errors import CxrkitError
from cxrkit.outdir import claim_folder, read_marker, update_marker
from cxrkit.paths import REPO_ROOT
from cxrkit.runner import discover_notebooks

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB_MESSAGE = "write your solution here, then run the check cell below"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


class MarkerError(ValueError):
    """Solution markers are unbalanced, nested or misplaced; the message names the notebook and the cell."""


@dataclass(frozen=True)
class ExerciseCell:
    """Where one exercise sits in a notebook: its solution cell, its check cell, the exercise and function names."""

    notebook: str
    cell: int
    check_cell: int
    exercise: str
    function: str


def cell_source(cell: dict[str, Any]) -> str:
    """Return a cell's source as one string (nbformat stores a string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def stub_solutions(source: str, where: str = "<cell>") -> tuple[str, list[str]]:
    """Replace each marked solution block with ``raise NotImplementedError`` at its indentation (``cxrkit student``).

    Returns the new source and the removed blocks; raises :class:`MarkerError` naming ``where`` when the
    markers are unbalanced, nested, or differently indented.
    """
    out: list[str] = []
    removed: list[str] = []
    block: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if block is not None:
                raise MarkerError(f"{where}: line {number}: '{BEGIN}' inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            block = []
        elif stripped == END:
            if block is None:
                raise MarkerError(f"{where}: line {number}: '{END}' without a '{BEGIN}' before it")
            end_indent = line[: len(line) - len(line.lstrip())]
            if end_indent != indent:
                raise MarkerError(f"{where}: line {number}: '{END}' is indented differently from its '{BEGIN}'")
            out.append(f'{indent}raise NotImplementedError("{STUB_MESSAGE}")\n')
            removed.append("".join(block))
            block = None
        elif BEGIN in line or END in line:
            raise MarkerError(f"{where}: line {number}: a solution marker must stand alone on its line")
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise MarkerError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, removed


def check_call(source: str) -> tuple[str, str] | None:
    """Return ``(exercise, function)`` of the first ``check("<exercise>", fn)`` call in a cell, or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and isinstance(node.args[1], ast.Name)):
            return node.args[0].value, node.args[1].id
    return None


def find_exercises(nb: dict[str, Any], name: str) -> list[ExerciseCell]:
    """List the exercises of a notebook: each solution cell and the ``check(...)`` cell that must follow it.

    Raises :class:`MarkerError` (naming the notebook and the cell) for unbalanced markers or a solution
    cell whose next code cell is not a check of a function it defines.
    """
    cells = nb.get("cells", [])
    found: list[ExerciseCell] = []
    for i, cell in enumerate(cells):
        src = cell_source(cell)
        if cell.get("cell_type") != "code" or (BEGIN not in src and END not in src):
            continue
        where = f"{name}: cell {i}"
        _, removed = stub_solutions(src, where)
        if not removed:
            raise MarkerError(f"{where}: solution markers but no complete solution block")
        following = next((j for j in range(i + 1, len(cells)) if cells[j].get("cell_type") == "code"), None)
        call = check_call(cell_source(cells[following])) if following is not None else None
        if call is None:
            raise MarkerError(f"{where}: the next code cell must call check(\"<exercise>\", <function>)")
        defined = _defined_functions(src)
        if call[1] not in defined:
            raise MarkerError(f"{where}: the check in cell {following} tests {call[1]!r}, "
                              f"but this cell defines {sorted(defined) or 'no function'}")
        found.append(ExerciseCell(name, i, following, call[0], call[1]))
    return found


def _defined_functions(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def student_notebook(nb: dict[str, Any], name: str) -> tuple[dict[str, Any], list[ExerciseCell]]:
    """Return the student copy of an instructor notebook (solutions stubbed, outputs cleared) and its exercises."""
    exercises = find_exercises(nb, name)
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        src, _ = stub_solutions(cell_source(cell), f"{name}: cell {i}")
        src = "\n".join(ln for ln in src.split("\n") if ln.strip() != CHECK_MARK)
        cell["source"] = src
        cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    out.setdefault("metadata", {})["cxrkit"] = {"student_version_of": name}
    return out, exercises


def verify_student_copy(instructor: dict[str, Any], student: dict[str, Any], name: str) -> None:
    """Raise ``AssertionError`` when a solution or marker leaked into the student copy or an exercise was lost."""
    text = "\n".join(cell_source(c) for c in student.get("cells", []))
    if BEGIN in text or END in text:
        raise AssertionError(f"{name}: a solution marker survived in the student copy")
    for i, cell in enumerate(instructor.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for block in stub_solutions(cell_source(cell), f"{name}: cell {i}")[1]:
            if block.strip() and block in text:
                raise AssertionError(f"{name}: cell {i}: the solution leaked into the student copy")
    before = [(e.exercise, e.function) for e in find_exercises(instructor, name)]
    after = [(e.exercise, e.function) for e in _stubbed_exercises(student, name)]
    if before != after:
        raise AssertionError(f"{name}: exercises {before} in the instructor notebook but {after} in the student copy")


def _stubbed_exercises(nb: dict[str, Any], name: str) -> list[ExerciseCell]:
    """Exercises of a student copy: cells raising the stub, each followed by its check cell."""
    cells = nb.get("cells", [])
    found = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and STUB_MESSAGE in cell_source(cell):
            following = next((j for j in range(i + 1, len(cells)) if cells[j].get("cell_type") == "code"), None)
            call = check_call(cell_source(cells[following])) if following is not None else None
            if call:
                found.append(ExerciseCell(name, i, following, *call))
    return found


OWNER = "student"  # the student folder's marker ``.cxrkit-student`` records the hash of every notebook written


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_student_folder(folder: Path) -> bool:
    """A student folder made before folder markers: it holds a notebook the kit wrote (``student_version_of``)."""
    for path in folder.glob("*.ipynb"):
        try:
            if "student_version_of" in json.loads(path.read_text()).get("metadata", {}).get("cxrkit", {}):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def write_student_notebooks(notebooks: Iterable[Path], out_dir: Path, echo: Any = print,
                            overwrite: bool = False) -> list[Path]:
    """Write ``out_dir/NN_*.ipynb`` for each instructor notebook, verified leak-free, keeping edited ones (``cxrkit student``).

    A notebook already in ``out_dir`` is replaced only when it is byte-for-byte what the kit wrote there (its hash
    is in the folder's marker) or what it would write now; one a student edited is kept and named, unless
    ``overwrite``. ``out_dir`` must be missing, empty or a student folder, unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    studied = [(Path(path), _student_copy(Path(path))) for path in notebooks]  # every check before any write
    claim_folder(out_dir, OWNER, overwrite, legacy=_is_student_folder)
    hashes: dict[str, str] = dict((read_marker(out_dir, OWNER) or {}).get("notebooks", {}))
    written, kept = [], []
    for path, (data, exercises) in studied:
        target = out_dir / path.name
        if target.exists() and not overwrite:
            current = _sha(target.read_bytes())
            if current not in {hashes.get(target.name), _sha(data)}:
                kept.append(target)
                echo(f"{target}: kept — edited since the kit wrote it (your work is not replaced; "
                     "pass --overwrite to replace it with a fresh copy)")
                continue
        target.write_bytes(data)
        hashes[target.name] = _sha(data)
        echo(f"{target}: {len(exercises)} exercise(s)" + (": " + ", ".join(e.exercise for e in exercises) if exercises else ""))
        written.append(target)
    update_marker(out_dir, OWNER, notebooks=dict(sorted(hashes.items())))
    if kept:
        echo(f"{len(kept)} edited notebook(s) kept as they are: {', '.join(p.name for p in kept)}")
    return written


def _student_copy(path: Path) -> tuple[bytes, list[ExerciseCell]]:
    """Read an instructor notebook and return its verified student copy's bytes and its exercises."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read notebook ({err})") from err
    student, exercises = student_notebook(nb, path.stem)
    verify_student_copy(nb, student, path.stem)
    return (json.dumps(student, indent=1, ensure_ascii=False) + "\n").encode(), exercises


def _cmd_student(args: argparse.Namespace) -> int:
    try:
        notebooks = discover_notebooks(Path(args.notebooks), args.only.split(",") if args.only else None)
        write_student_notebooks(notebooks, Path(args.out), overwrite=args.overwrite)
    except CxrkitError as err:  # a refused --out: one message naming the folder and the flag, no traceback
        print(f"cxrkit student: {err}", file=sys.stderr)
        return 2
    except (ValueError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``cxrkit student`` to the command line."""
    p = subparsers.add_parser("student", help="write problem-set notebooks (solutions stubbed) into student/")
    p.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="instructor notebook folder")
    p.add_argument("--out", default=str(REPO_ROOT / "student"), help="where the student notebooks go")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,02")
    p.add_argument("--overwrite", action="store_true",
                   help="replace notebooks edited since the kit wrote them, and write into a folder holding other files")
    p.set_defaults(func=_cmd_student)
