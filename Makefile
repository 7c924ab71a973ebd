# cxrkit — every target bootstraps .venv itself (scripts/bootstrap.sh); nothing else is installed by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= class
NAME ?=
ONLY ?=
REF ?= reference/class
TOLERANCE ?=
NBVAL_FLAGS := --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: help bootstrap run test lab student reproduce clean

help:
	@echo "make run    set up if needed, then run every notebook in order (runs/<name>/)"
	@echo "            options: PROFILE=smoke|class|full NAME=<run name> ONLY=02,03"
	@echo "make test   set up if needed, then pytest (tests/) + nbval (notebooks/)"
	@echo "make lab    JupyterLab on the notebooks folder"
	@echo "make student      write the problem-set notebooks (solutions stubbed) into student/"
	@echo "make reproduce    re-run a recorded run and compare every metric with it"
	@echo "                  options: REF=reference/class (a run folder) NAME=<run name> TOLERANCE=0.02"
	@echo "make clean  remove runs and caches (never the source)"

bootstrap:
	@VENV=$(VENV) ./scripts/bootstrap.sh

run: bootstrap
	$(PY) -m cxrkit run --profile $(PROFILE) $(if $(NAME),--name $(NAME)) $(if $(ONLY),--only $(ONLY))

test: bootstrap
	$(PY) -m pytest tests notebooks $(NBVAL_FLAGS)

lab: bootstrap
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

student: bootstrap
	$(PY) -m cxrkit student

reproduce: bootstrap
	$(PY) -m cxrkit reproduce $(REF) $(if $(NAME),--name $(NAME)) $(if $(TOLERANCE),--tolerance $(TOLERANCE))

clean:
	rm -rf runs cxrkit_home student .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
