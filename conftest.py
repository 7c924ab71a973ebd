"""The whole suite's set-up (tests/ and notebooks/): how `make test`'s two pytest-xdist workers share the work.

``make test`` runs pytest with two pytest-xdist workers (``-n 2``). Three rules keep that identical in outcome
to a one-process run:

- **work units**: every notebook's cells, in lesson order, followed by :data:`AFTER_THE_NOTEBOOKS`, are one
  unit run on one worker (nbval runs a notebook's cells in order in one kernel, and notebook 06 reads what 02–05
  built); every test module is one unit too, so a module's fixtures are built once
  (:func:`pytest_xdist_make_scheduler`);
- **order**: the notebooks, then the slowest modules (:data:`SLOW_FIRST`), then the rest, so the run does not end
  on a long unit while the other worker idles (``--no-loadscope-reorder`` keeps this order);
- **homes**: each worker keeps its artifacts in a home of its own (``<home>-<worker>``), so two workers never
  build the same cohort or model into one folder at once. A one-process run keeps ``$CXRKIT_HOME``
  (or ``cxrkit_home/``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The one work unit that holds every notebook.
NOTEBOOK_UNIT = "notebooks"

#: Test modules that run right after the notebooks, on their worker and in their home: the browser test runs
#: notebook 06 again, and there it finds the cohort and the models that nbval's run of 00–05 built.
AFTER_THE_NOTEBOOKS = ("test_browser.py",)

#: Test modules that take 20 s or more (``--durations`` on a fresh clone here), slowest first: handed out right
#: after the notebooks.
SLOW_FIRST = ("test_reproduce.py", "test_spread.py", "test_runner.py", "test_report.py",
              "test_notebook01_openi.py", "test_freeze_outputs.py", "test_safe_outputs.py", "test_models_image.py",
              "test_artifacts.py", "test_fusion.py", "test_cache_faults.py")


def worker_home(base: Path, worker: str | None) -> Path:
    """The artifact home of one pytest-xdist worker: ``base`` itself without workers, else ``<base>-<worker>``."""
    return base if not worker else base.with_name(f"{base.name}-{worker}")


def work_unit(nodeid: str) -> str:
    """The work unit of a collected item: :data:`NOTEBOOK_UNIT` for notebook cells and the modules after them, else its file."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb") or Path(path).name in AFTER_THE_NOTEBOOKS:
        return NOTEBOOK_UNIT
    return path


def hand_out_order(nodeid: str) -> int:
    """Notebook cells, then :data:`AFTER_THE_NOTEBOOKS`, then :data:`SLOW_FIRST` in its order, then the rest."""
    path = nodeid.split("::", 1)[0]
    name = Path(path).name
    if path.endswith(".ipynb"):
        return 0
    if name in AFTER_THE_NOTEBOOKS:
        return 1
    return 2 + (SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST))


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
