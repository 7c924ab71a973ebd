"""The whole suite's set-up (tests/ and notebooks/): how `make test`'s two pytest-xdist workers share the work.

``make test`` runs pytest with two pytest-xdist workers (``-n 2``). Three rules keep that identical in outcome
to a one-process run:

- **work units** (:func:`pytest_xdist_make_scheduler`): the notebooks run in two chains
  (:data:`NOTEBOOK_CHAINS`), each a unit run on one worker in lesson order (nbval runs a notebook's cells in
  order in one kernel, and a notebook may read what an earlier notebook of its chain built); every test module
  is one unit too, so a module's fixtures are built once;
- **order**: the two chains, then the slowest modules (:data:`SLOW_FIRST`), then the rest, so the run does not
  end on a long unit while the other worker idles (``--no-loadscope-reorder`` keeps this order);
- **homes**: each worker keeps its artifacts in a home of its own (``<home>-<worker>``), so two workers never
  build the same cohort or model into one folder at once. A one-process run keeps ``$CXRKIT_HOME``
  (or ``cxrkit_home/``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The notebooks' two chains, and the test modules that run at a chain's end (by file stem). A notebook reads only
#: what its own chain built before it — 04 and 06 read 03's text model, 06 reads 04's fusion model; 02 and 05 load
#: the shipped course models — so each chain gives the outputs of a full run in order; each builds the cohort once
#: (in 01, in 03). The browser test runs notebook 06 again after 06, where the cohort is already built.
NOTEBOOK_CHAINS: dict[str, tuple[str, ...]] = {
    "notebooks-a": ("00_setup", "01_data_prep", "02_image_cnn", "05_saliency_derivation"),
    "notebooks-b": ("03_text_cnn", "04_fusion", "06_clustered_ig_localization", "test_browser"),
}
_CHAIN_OF = {stem: unit for unit, stems in NOTEBOOK_CHAINS.items() for stem in stems}

#: Test modules that take 20 s or more (``--durations`` on a fresh clone here), slowest first: handed out right
#: after the notebooks.
SLOW_FIRST = ("test_reproduce.py", "test_spread.py", "test_runner.py", "test_report.py",
              "test_notebook01_openi.py", "test_freeze_outputs.py", "test_safe_outputs.py", "test_models_image.py",
              "test_artifacts.py", "test_fusion.py", "test_cache_faults.py")


def worker_home(base: Path, worker: str | None) -> Path:
    """The artifact home of one pytest-xdist worker: ``base`` itself without workers, else ``<base>-<worker>``."""
    return base if not worker else base.with_name(f"{base.name}-{worker}")


def work_unit(nodeid: str) -> str:
    """The work unit of a collected item: its chain (:data:`NOTEBOOK_CHAINS`), else its file (a notebook left out
    of the chains runs alone, as ``make run ONLY=NN`` would run it)."""
    path = Path(nodeid.split("::", 1)[0])
    return _CHAIN_OF.get(path.stem, str(path))


def hand_out_order(nodeid: str) -> int:
    """Notebook cells, then the chained test modules, then :data:`SLOW_FIRST` in its order, then the rest."""
    path = Path(nodeid.split("::", 1)[0])
    if path.suffix == ".ipynb":
        return 0
    if path.stem in _CHAIN_OF:
        return 1
    return 2 + (SLOW_FIRST.index(path.name) if path.name in SLOW_FIRST else len(SLOW_FIRST))


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
