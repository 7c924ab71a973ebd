#!/usr/bin/env python
"""Maintainer tool: run notebooks with their defaults and keep outputs only in `# NBVAL_CHECK_OUTPUT` cells.

Usage: .venv/bin/python scripts/freeze_outputs.py notebooks/01_data_prep.ipynb [...]
Run it after changing a notebook, review the diff of the frozen outputs, and commit.
"""
import json
import sys
import tempfile
from pathlib import Path

import papermill as pm

from cxrkit.nbstandard import check_notebook, freeze_checked_outputs

for name in sys.argv[1:]:
    path = Path(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        pm.execute_notebook(str(path), str(out), cwd=str(path.parent), progress_bar=False, kernel_name="python3")
        executed = json.loads(out.read_text())
    source = json.loads(path.read_text())
    frozen = freeze_checked_outputs(source, executed)
    problems = check_notebook(frozen)
    path.write_text(json.dumps(frozen, indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: frozen" + (f"; standard problems: {problems}" if problems else ""))
