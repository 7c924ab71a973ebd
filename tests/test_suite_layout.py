"""make test's two workers: the notebooks in two chains, a unit per test module, a home per worker (conftest.py)."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).parent.parent


def _suite_conftest():
    spec = importlib.util.spec_from_file_location("suite_conftest", REPO / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_in_exactly_one_chain_in_lesson_order():
    c = _suite_conftest()
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    chained = [stem for stems in c.NOTEBOOK_CHAINS.values() for stem in stems if not stem.startswith("test_")]
    assert sorted(chained) == notebooks, "add the new notebook to a chain in conftest.NOTEBOOK_CHAINS"
    for stems in c.NOTEBOOK_CHAINS.values():
        ordered = [s for s in stems if not s.startswith("test_")]
        assert ordered == sorted(ordered)  # lesson order inside a chain
    for stem in (s for stems in c.NOTEBOOK_CHAINS.values() for s in stems if s.startswith("test_")):
        assert (REPO / "tests" / f"{stem}.py").exists()


def test_a_notebooks_cells_share_its_chain_and_each_test_module_is_its_own_unit():
    c = _suite_conftest()
    assert c.work_unit("notebooks/01_data_prep.ipynb::Cell 0") == c.work_unit("notebooks/05_saliency_derivation.ipynb::Cell 9")
    assert c.work_unit("notebooks/03_text_cnn.ipynb::Cell 0") == c.work_unit("notebooks/06_clustered_ig_localization.ipynb::Cell 3") \
        == c.work_unit("tests/test_browser.py::test_notebook_06_explorer_redraws_regions_when_the_threshold_moves")
    assert c.work_unit("notebooks/02_image_cnn.ipynb::Cell 0") != c.work_unit("notebooks/04_fusion.ipynb::Cell 0")
    assert c.work_unit("tests/test_spread.py::test_a[1-2]") == c.work_unit("tests/test_spread.py::test_b") \
        == "tests/test_spread.py"
    assert c.work_unit("notebooks/99_new.ipynb::Cell 0") == "notebooks/99_new.ipynb"  # unchained: alone


def test_the_notebooks_come_first_then_the_chained_tests_then_the_slow_modules_and_order_is_kept():
    c = _suite_conftest()
    ids = ["tests/test_metrics.py::test_x", "tests/test_spread.py::test_y", "notebooks/01_data_prep.ipynb::Cell 0",
           "tests/test_browser.py::test_z", "notebooks/00_setup.ipynb::Cell 0", "tests/test_reproduce.py::test_w",
           "notebooks/00_setup.ipynb::Cell 1"]
    ordered = sorted(ids, key=c.hand_out_order)
    assert ordered == ["notebooks/01_data_prep.ipynb::Cell 0", "notebooks/00_setup.ipynb::Cell 0",
                       "notebooks/00_setup.ipynb::Cell 1", "tests/test_browser.py::test_z",
                       "tests/test_reproduce.py::test_w", "tests/test_spread.py::test_y", "tests/test_metrics.py::test_x"]
    assert all((REPO / "tests" / name).exists() for name in c.SLOW_FIRST)


def test_each_worker_gets_a_home_of_its_own_and_one_process_keeps_the_configured_one(tmp_path):
    c = _suite_conftest()
    assert c.worker_home(tmp_path / "home", None) == tmp_path / "home"
    assert c.worker_home(tmp_path / "home", "gw0") == tmp_path / "home-gw0" != c.worker_home(tmp_path / "home", "gw1")
