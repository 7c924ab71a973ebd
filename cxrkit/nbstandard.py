"""The notebook standard, as code: what every notebook under ``notebooks/`` must look like.

Title with learning objectives → one imports cell ending in the environment report → exactly one
``parameters`` cell holding ``class``-profile defaults → … ; no saved outputs except in cells marked
``# NBVAL_CHECK_OUTPUT``; execution counts never out of order. ``tests/test_notebook_standard.py``
runs :func:`check_notebook` over every notebook (see DESIGN.md, "Notebook standard").

One documented exception to "one imports cell": a notebook may start its code with a cell tagged
``colab-setup`` whose source is exactly :data:`COLAB_SETUP_SOURCE`. It installs cxrkit only where cxrkit
is not importable (Google Colab, a bare Jupyter server) and does nothing in the kit's own environment,
on Binder (whose ``binder/postBuild`` installs the kit) or under nbval/papermill. Its text is fixed here
so every notebook carries the same cell; :func:`colab_setup_cell` builds it.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from cxrkit.lazy import lazy_import
from cxrkit.profiles import CLASS

nbformat = lazy_import("nbformat")

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
REPORT_CALL = "environment_report"
COLAB_TAG = "colab-setup"
#: Where the colab-setup cell installs cxrkit from, unless ``CXRKIT_PIP_SPEC`` names another source.
CXRKIT_PIP_SOURCE = "git+https://github.com/cxrkit/cxrkit"
#: The one allowed cell before the imports cell (tagged ``colab-setup``), character for character.
COLAB_SETUP_SOURCE = "\n".join([
    "# Colab / bare Jupyter only: install cxrkit when it is missing (does nothing where cxrkit is installed).",
    "import importlib.util",
    "import os",
    "",
    'if importlib.util.find_spec("cxrkit") is None:',
    f'    CXRKIT_PIP_SPEC = os.environ.get("CXRKIT_PIP_SPEC", "{CXRKIT_PIP_SOURCE}")',
    '    %pip install --quiet "$CXRKIT_PIP_SPEC"',
])


def colab_setup_cell() -> dict[str, Any]:
    """Return the ``colab-setup`` code cell every notebook may start with (notebooks 00–06, README "Working elsewhere")."""
    return {"cell_type": "code", "execution_count": None, "id": "colab-setup",
            "metadata": {"tags": [COLAB_TAG]}, "outputs": [], "source": COLAB_SETUP_SOURCE}


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _has_import(tree: ast.AST) -> bool:
    return any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))


def _parse(src: str) -> ast.Module | None:
    """Parse a code cell, ignoring IPython magics and shell escapes."""
    lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def check_parameters_cell(src: str) -> list[str]:
    """Check that a parameters cell assigns only known knobs, each to its ``class``-profile value."""
    problems: list[str] = []
    tree = _parse(src)
    if tree is None:
        return ["the parameters cell is not valid Python"]
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            problems.append(f"the parameters cell may hold only simple assignments (line {node.lineno})")
            continue
        name = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            problems.append(f"parameter {name!r} is not a literal")
            continue
        if name == "profile":
            if value != "class":
                problems.append(f"parameter 'profile' must default to 'class', not {value!r}")
        elif name not in CLASS:
            problems.append(f"parameter {name!r} is not a knob of cxrkit.profiles (add it there)")
        elif value != CLASS[name]:
            problems.append(f"parameter {name!r} = {value!r} differs from the class profile ({CLASS[name]!r})")
    if not any(isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "profile" for n in tree.body):
        problems.append("the parameters cell must set profile = 'class'")
    return problems


def check_notebook(nb: dict[str, Any]) -> list[str]:
    """Return the ways a notebook (as parsed JSON) breaks the standard; an empty list means it complies."""
    problems: list[str] = []
    cells = nb.get("cells", [])
    if not cells:
        return ["the notebook has no cells"]

    first = cells[0]
    text = _source(first)
    if first.get("cell_type") != "markdown" or not text.lstrip().startswith("# "):
        problems.append("the first cell must be a markdown title ('# ...')")
    elif "learning objectives" not in text.lower():
        problems.append("the title cell must list the learning objectives")

    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    colab = [(i, c) for i, c in code if COLAB_TAG in c.get("metadata", {}).get("tags", [])]
    for i, cell in colab:
        if i != code[0][0]:
            problems.append(f"cell {i} is tagged {COLAB_TAG!r} but is not the first code cell")
        elif _source(cell) != COLAB_SETUP_SOURCE:
            problems.append(f"cell {i} ({COLAB_TAG}) must be exactly cxrkit.nbstandard.COLAB_SETUP_SOURCE")
    if colab and colab[0][0] == code[0][0]:
        code = code[1:]
    if not code:
        return problems + ["the notebook has no code cells"]
    imports_index, imports_cell = code[0]
    tree = _parse(_source(imports_cell))
    if tree is None or not _has_import(tree):
        problems.append("the first code cell must be the imports cell")
    else:
        last = tree.body[-1] if tree.body else None
        call = last.value if isinstance(last, ast.Expr) else None
        func = getattr(call, "func", None)
        if not (isinstance(call, ast.Call) and getattr(func, "id", getattr(func, "attr", None)) == REPORT_CALL):
            problems.append(f"the imports cell must end with {REPORT_CALL}()")
    for i, cell in code[1:]:
        t = _parse(_source(cell))
        if t is not None and _has_import(t):
            problems.append(f"cell {i} imports; keep every import in the one imports cell")

    tagged = [(i, c) for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"exactly one cell must be tagged 'parameters' (found {len(tagged)})")
    else:
        problems += check_parameters_cell(_source(tagged[0][1]))

    counts = []
    for i, cell in code:
        if cell.get("outputs") and CHECK_MARK not in _source(cell):
            problems.append(f"cell {i} has saved outputs but is not marked {CHECK_MARK}")
        if cell.get("execution_count") is not None:
            counts.append(cell["execution_count"])
    if counts != sorted(counts) or len(set(counts)) != len(counts):
        problems.append(f"execution counts out of order: {counts}")
    return problems


def check_notebook_file(path: str | Path) -> list[str]:
    """Read a ``.ipynb`` file and return its breaches of the standard, each prefixed with the file name."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return [f"{path.name}: cannot read notebook ({err})"]
    return [f"{path.name}: {p}" for p in check_notebook(nb)]


def freeze_checked_outputs(source: dict[str, Any], executed: dict[str, Any]) -> dict[str, Any]:
    """Copy outputs of ``# NBVAL_CHECK_OUTPUT`` cells from an executed copy into ``source``; clear every other output.

    Checked cells get consecutive execution counts (nbval compares only cells whose reference ran).
    """
    src_cells, run_cells = source["cells"], [c for c in executed["cells"]
                                             if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if len(src_cells) != len(run_cells):
        raise ValueError(f"executed notebook has {len(run_cells)} cells, source has {len(src_cells)}")
    count = 0
    for cell, ran in zip(src_cells, run_cells):
        if cell.get("cell_type") != "code":
            continue
        if CHECK_MARK in _source(cell):
            count += 1
            cell["outputs"] = [{k: v for k, v in o.items() if k != "execution_count"} | (
                {"execution_count": count} if o.get("output_type") == "execute_result" else {})
                for o in ran.get("outputs", [])]
            cell["execution_count"] = count
        else:
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    return source


def ensure_colab_setup_cell(path: str | Path) -> bool:
    """Insert the ``colab-setup`` cell before a notebook's imports cell unless it is there; True if added (README "Working elsewhere")."""
    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        raise ValueError(f"{path.name}: has no code cell to put the colab-setup cell before")
    if COLAB_TAG in nb.cells[code[0]].get("metadata", {}).get("tags", []):
        return False
    nb.cells.insert(code[0], nbformat.from_dict(colab_setup_cell()))
    nbformat.write(nb, str(path))
    return True
