#!/usr/bin/env bash
# Create .venv with the machine's python3 and install cxrkit[dev] into it — only when .venv is missing
# or pyproject.toml changed since the last install (its sha256 is kept in a stamp file). Called by make.
set -euo pipefail
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.cxrkit-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "bootstrap: $VENV is up to date (pyproject.toml unchanged) — skipping install"
  exit 0
fi
# --no-compile: byte-compiling all ~19,000 installed modules up front is minutes of CPU (16 s for torch's 2,352
# here); Python compiles, and caches, only the modules a run imports, on first import.
echo "bootstrap: installing cxrkit[dev] into $VENV (first time: a few minutes)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q -e ".[dev]" 2> >(grep -v "^WARNING: Location" >&2)
echo "$want" > "$STAMP"
echo "bootstrap: done"
