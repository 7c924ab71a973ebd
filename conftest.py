"""The whole suite's set-up (tests/ and notebooks/): how `make test`'s two pytest-xdist workers share the work.

``make test`` runs pytest with two pytest-xdist workers (``-n 2``). Three rules keep that identical in outcome
to a one-process run:

- **work units** (:func:`pytest_xdist_make_scheduler`): every notebook's cells, in lesson order, and then
  :data:`AFTER_THE_NOTEBOOKS` are one unit (:data:`NOTEBOOK_UNIT`) run on one worker (nbval runs a notebook's
  cells in order in one kernel, and a notebook may read what an earlier one built); every test module is one
  unit too, so a module's fixtures are built once;
- **order and priority**: the notebooks (then :data:`AFTER_THE_NOTEBOOKS`), then the slowest modules
  (:data:`SLOW_FIRST`), then the rest (``--no-loadscope-reorder`` keeps this order); a worker running test modules
  lowers its priority (:data:`TEST_NICENESS`), so the notebook chain, the longest unit, keeps its pace;
- **homes**: each worker keeps its artifacts in a home of its own (``<home>-<worker>``), so two workers never
  build the same cohort or model into one folder at once. A one-process run keeps ``$CXRKIT_HOME``
  (or ``cxrkit_home/``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The notebooks run as one chain, in lesson order, on one worker: a notebook may read what an earlier one built
#: (04 and 06 read 03's text model, 06 reads 04's fusion model; 01 builds the cohort for all). Two chains at once
#: were slower (measured: two notebook kernels of two threads each on two cores), so one worker runs the chain
#: while the other runs the tests.
NOTEBOOK_UNIT = "notebooks"

#: Test modules that run at the chain's end, on its worker and in its home: the browser test runs notebook 06 (its
#: image part) once more, and there it finds the cohort that notebook 01 built.
AFTER_THE_NOTEBOOKS = ("test_browser.py",)

#: How much a worker lowers its CPU priority (``os.nice``) once it runs a test module: the notebook chain is the
#: longest unit, so while it runs, the tests take the CPU it leaves free instead of slowing it down.
TEST_NICENESS = 5

#: Test modules that take 20 s or more (``--durations`` on a fresh clone here), slowest first: handed out right
#: after the notebooks.
SLOW_FIRST = ("test_reproduce.py", "test_spread.py", "test_runner.py", "test_report.py",
              "test_notebook01_openi.py", "test_freeze_outputs.py", "test_safe_outputs.py", "test_models_image.py",
              "test_artifacts.py", "test_fusion.py", "test_cache_faults.py")


def worker_home(base: Path, worker: str | None) -> Path:
    """The artifact home of one pytest-xdist worker: ``base`` itself without workers, else ``<base>-<worker>``."""
    return base if not worker else base.with_name(f"{base.name}-{worker}")


def work_unit(nodeid: str) -> str:
    """The work unit of a collected item: :data:`NOTEBOOK_UNIT` for a notebook's cells and the modules after them, else its file."""
    path = Path(nodeid.split("::", 1)[0])
    return NOTEBOOK_UNIT if path.suffix == ".ipynb" or path.name in AFTER_THE_NOTEBOOKS else str(path)


def hand_out_order(nodeid: str) -> int:
    """Notebook cells, then :data:`AFTER_THE_NOTEBOOKS`, then :data:`SLOW_FIRST` in its order, then the rest."""
    path = Path(nodeid.split("::", 1)[0])
    if path.suffix == ".ipynb":
        return 0
    if path.name in AFTER_THE_NOTEBOOKS:
        return 1
    return 2 + (SLOW_FIRST.index(path.name) if path.name in SLOW_FIRST else len(SLOW_FIRST))


_niced = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under xdist, lower this worker's CPU priority by :data:`TEST_NICENESS` before its first test-module test."""
    global _niced
    if _niced or not os.environ.get("PYTEST_XDIST_WORKER") or not hasattr(os, "nice"):
        return
    if work_unit(item.nodeid) != NOTEBOOK_UNIT:
        os.nice(TEST_NICENESS)  # inherited by the subprocesses the tests start; never undone (raising it needs root)
        _niced = True


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        from cxrkit.paths import configured_home

        os.environ["CXRKIT_HOME"] = str(worker_home(configured_home(), worker))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: hand_out_order(item.nodeid))  # stable: cells and tests keep their module's order


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown, and never called, without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Schedule by :func:`work_unit` (xdist's own ``--dist loadgroup`` cannot: it renames items, which pytest 9 ignores)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)
