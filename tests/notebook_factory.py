"""Build small notebooks for tests of the runner and the notebook standard."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

TITLE = "# A test notebook\n\n**Learning objectives**\n- run in order\n"
IMPORTS = "from cxrkit.profiles import use_profile\nfrom cxrkit.repro import environment_report, start_run\nenvironment_report()"


def standard_cells(body: list[str], params: str = 'profile = "class"\nseed = 0') -> list:
    """Title, imports, parameters, then ``body`` code cells."""
    p = new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    return [new_markdown_cell(TITLE), new_code_cell(IMPORTS), p] + [new_code_cell(b) for b in body]


def write_notebook(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path
