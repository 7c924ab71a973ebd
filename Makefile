# cxrkit — every target bootstraps .venv itself (scripts/bootstrap.sh); nothing else is installed by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= class
NAME ?=
ONLY ?=
REF ?= reference/class
TOLERANCE ?=
EXACT ?=
SEEDS ?= 0-4
RECORD ?=
MERGE ?=
FORCE ?=
# make test's pytest-xdist workers (tests/conftest.py: the notebooks stay on one, each worker has its own home)
TEST_WORKERS ?= 2
NBVAL_FLAGS := --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: help bootstrap run test lab student spread reproduce course-models clean

help:
	@echo "make run    set up if needed, then run every notebook in order (runs/<name>/)"
	@echo "            options: PROFILE=smoke|class|full NAME=<run name> ONLY=02,03"
	@echo "make test   set up if needed, then pytest (tests/) + nbval (notebooks/) on TEST_WORKERS=2 workers"
	@echo "make lab    JupyterLab on the notebooks folder"
	@echo "make student      write the problem-set notebooks (solutions stubbed) into student/"
	@echo "make course-models  train the course models (image CNN + controls) and ship them in cxrkit/shipped/"
	@echo "make spread       run the notebooks for several seeds; every metric's spread (runs/spread-<profile>/)"
	@echo "                  options: PROFILE=class SEEDS=0-4 ONLY=02,03 FORCE=1 RECORD=reference/class MERGE=1"
	@echo "make reproduce    re-run a recorded run and compare every metric with its spread over seeds"
	@echo "                  options: REF=reference/class NAME=<run name> EXACT=1 (same machine) TOLERANCE=0.02"
	@echo "make clean  remove runs and caches (never the source)"

bootstrap:
	@VENV=$(VENV) ./scripts/bootstrap.sh

run: bootstrap
	$(PY) -m cxrkit run --profile $(PROFILE) $(if $(NAME),--name $(NAME)) $(if $(ONLY),--only $(ONLY))

test: bootstrap
	$(PY) -m pytest -n $(TEST_WORKERS) --no-loadscope-reorder --durations=20 tests notebooks $(NBVAL_FLAGS)

lab: bootstrap
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

student: bootstrap
	$(PY) -m cxrkit student

course-models: bootstrap
	$(PY) -m cxrkit course-models --profile $(PROFILE) $(if $(REBUILD),--rebuild)

spread: bootstrap
	$(PY) -m cxrkit spread --profile $(PROFILE) --seeds $(SEEDS) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force) $(if $(RECORD),--record $(RECORD)) $(if $(MERGE),--merge)

reproduce: bootstrap
	$(PY) -m cxrkit reproduce $(REF) $(if $(NAME),--name $(NAME)) $(if $(EXACT),--exact) $(if $(TOLERANCE),--tolerance $(TOLERANCE))

clean:
	rm -rf runs cxrkit_home cxrkit_home-gw* student .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
