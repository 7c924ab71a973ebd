#!/usr/bin/env python
"""Maintainer tool: freeze the checked outputs of notebooks from an already executed run (e.g. seed 0 of a spread).

Usage: .venv/bin/python scripts/freeze_from_run.py runs/spread-class/seed-0 [notebooks/]

`cxrkit spread` runs in its own CXRKIT_HOME, empty at its first run; a re-run re-uses only artifacts keyed by the
current code, so its seed-0 run prints what `scripts/freeze_outputs.py` would (a fresh clone's `make test` is the
check). This copies the outputs of its `# NBVAL_CHECK_OUTPUT` cells into the
source notebooks instead of executing them again. Only notebooks present in both folders are frozen.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cxrkit.nbstandard import check_notebook, freeze_checked_outputs


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    run = Path(argv[0])
    notebooks = Path(argv[1]) if len(argv) > 1 else Path("notebooks")
    executed = sorted(run.glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        print(f"error: no executed notebooks NN_*.ipynb in {run}", file=sys.stderr)
        return 2
    for done in executed:
        path = notebooks / done.name
        if not path.is_file():
            continue
        frozen = freeze_checked_outputs(json.loads(path.read_text()), json.loads(done.read_text()))
        problems = check_notebook(frozen)
        path.write_text(json.dumps(frozen, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: frozen from {done}" + (f"; standard problems: {problems}" if problems else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
