"""make test's two workers: the notebooks as one unit in lesson order, a unit per test module, a home per worker (conftest.py)."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).parent.parent


def _suite_conftest():
    spec = importlib.util.spec_from_file_location("suite_conftest", REPO / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebooks_cells_and_the_browser_test_share_one_unit_and_each_test_module_is_its_own():
    c = _suite_conftest()
    cells = [f"notebooks/{nb.name}::Cell {k}" for nb in sorted((REPO / "notebooks").glob("*.ipynb")) for k in (0, 7)]
    assert len(cells) >= 14 and {c.work_unit(n) for n in cells} == {c.NOTEBOOK_UNIT}
    assert c.work_unit("tests/test_browser.py::test_z") == c.NOTEBOOK_UNIT
    assert c.work_unit("tests/test_spread.py::test_a[1-2]") == c.work_unit("tests/test_spread.py::test_b") \
        == "tests/test_spread.py"


def test_the_notebooks_come_first_then_the_browser_test_then_the_slow_modules_and_order_is_kept():
    c = _suite_conftest()
    ids = ["tests/test_browser.py::test_z", "tests/test_metrics.py::test_x", "tests/test_spread.py::test_y",
           "notebooks/01_data_prep.ipynb::Cell 0", "notebooks/00_setup.ipynb::Cell 0",
           "tests/test_reproduce.py::test_w", "notebooks/00_setup.ipynb::Cell 1"]
    ordered = sorted(ids, key=c.hand_out_order)
    assert ordered == ["notebooks/01_data_prep.ipynb::Cell 0", "notebooks/00_setup.ipynb::Cell 0",
                       "notebooks/00_setup.ipynb::Cell 1", "tests/test_browser.py::test_z",
                       "tests/test_reproduce.py::test_w", "tests/test_spread.py::test_y", "tests/test_metrics.py::test_x"]
    assert all((REPO / "tests" / name).exists() for name in c.SLOW_FIRST + c.AFTER_THE_NOTEBOOKS)


def test_each_worker_gets_a_home_of_its_own_and_one_process_keeps_the_configured_one(tmp_path):
    c = _suite_conftest()
    assert c.worker_home(tmp_path / "home", None) == tmp_path / "home"
    assert c.worker_home(tmp_path / "home", "gw0") == tmp_path / "home-gw0" != c.worker_home(tmp_path / "home", "gw1")
