#!/usr/bin/env python
"""Maintainer tool: run notebooks with their defaults and keep outputs only in `# NBVAL_CHECK_OUTPUT` cells.

Usage: .venv/bin/python scripts/freeze_outputs.py notebooks/01_data_prep.ipynb [...] [--reuse-home]

Outputs are frozen from an empty CXRKIT_HOME: a fresh temporary one is made for the run (shared by the notebooks
given, deleted afterwards), so every cohort, cache and model is built by the code being committed, never loaded
from an older one. `--reuse-home` uses $CXRKIT_HOME (or the default) as it is instead; say why in the commit.
Run records go to a temporary folder too. Review the diff of the frozen outputs, and commit. A frozen output must
hold on every seed of the recorded spread (`make spread`; tests/test_checked_outputs.py checks it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import papermill as pm

from cxrkit.nbstandard import check_notebook, freeze_checked_outputs
from cxrkit.paths import cxrkit_home
from cxrkit.repro import RUN_DIR_ENV


def freeze(paths: list[Path]) -> None:
    """Execute each notebook into a temporary copy and write its checked outputs back into it."""
    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / path.name
            pm.execute_notebook(str(path), str(out), cwd=str(path.parent), progress_bar=False, kernel_name="python3")
            executed = json.loads(out.read_text())
        source = json.loads(path.read_text())
        frozen = freeze_checked_outputs(source, executed)
        problems = check_notebook(frozen)
        path.write_text(json.dumps(frozen, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: frozen" + (f"; standard problems: {problems}" if problems else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to run and freeze")
    parser.add_argument("--reuse-home", action="store_true",
                        help="use $CXRKIT_HOME as it is instead of a fresh, empty one (artifacts may be stale)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="cxrkit-freeze-"))
    os.environ[RUN_DIR_ENV] = str(scratch / "run")
    try:
        if args.reuse_home:
            print(f"freezing with the existing CXRKIT_HOME={cxrkit_home()} (--reuse-home: artifacts made by "
                  "older code may be loaded)", flush=True)
        else:
            os.environ["CXRKIT_HOME"] = str(scratch / "home")
            print(f"freezing from a fresh, empty CXRKIT_HOME={scratch / 'home'} (every artifact is rebuilt by this "
                  "code; --reuse-home uses yours)", flush=True)
        freeze(args.notebooks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # made above, by this script
    return 0


if __name__ == "__main__":
    sys.exit(main())
