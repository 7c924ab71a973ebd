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
# --no-compile, then one parallel byte-compile of the installed packages: pip compiles one file at a time, and
# Python's own cache-on-first-import does not happen where PYTHONDONTWRITEBYTECODE is set (as on this project's
# machines): there every notebook kernel and every test subprocess compiled torch, pandas, scikit-learn … again,
# about 20 s each (a notebook's import cell: 27.6 s without the byte-code, 8.4 s with it, measured here).
echo "bootstrap: installing cxrkit[dev] into $VENV (first time: a few minutes)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q -e ".[dev]" 2> >(grep -v "^WARNING: Location" >&2)
echo "bootstrap: byte-compiling the installed packages on every core (first time: under a minute)"
# Left out, as nothing here imports them: the packages' own test suites, pip and setuptools, and the ~550 model
# families of transformers other than the BERT ones the text models load. quiet=2: a few packages ship files that
# are not valid Python 3.11 on purpose.
"$VENV/bin/python" -c 'import compileall, re, sysconfig
site = sysconfig.get_paths()["purelib"]
skip = re.compile(re.escape(site) + r"/(?:(?:.+/)?tests/|pip/|setuptools/|transformers/models/(?!(?:auto|bert|distilbert)/)[^/]+/)")
compileall.compile_dir(site, rx=skip, quiet=2, workers=0)'
echo "$want" > "$STAMP"
echo "bootstrap: done"
