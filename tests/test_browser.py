"""A real browser: JupyterLab from .venv, Debian's Chromium driven by Playwright, notebook 06's explorer slider.

Skipped, with the reason, only when ``/usr/bin/chromium`` (or the ``playwright`` package) is missing;
``.ci/run`` installs Chromium with apt. No browser is ever downloaded: Playwright drives the system binary.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).parent.parent
CHROMIUM = Path(os.environ.get("CXRKIT_CHROMIUM", "/usr/bin/chromium"))
NOTEBOOK_06 = REPO / "notebooks" / "06_clustered_ig_localization.ipynb"
SCREENSHOTS = REPO / "runs" / "browser"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` "
                                                      "(.ci/run does it) to run the browser test"),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is missing: pip install -e .[dev]"),
]

# A tiny stand-in with the explorer's hooks: a VBox.cxrkit-explorer holding a FloatSlider.cxrkit-threshold
# and an HTML whose span.cxrkit-regions lists the "regions" above the threshold.
TINY_EXPLORER = '''import ipywidgets as W
values = [0.1, 0.35, 0.5, 0.62, 0.8, 0.93]
slider = W.FloatSlider(value=0.7, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False)
slider.add_class("cxrkit-threshold")
counts = W.HTML()
def redraw(_=None):
    kept = [v for v in values if v >= slider.value]
    counts.value = f'<span class="cxrkit-regions">{kept}</span>'
slider.observe(redraw, names="value")
redraw()
box = W.VBox([slider, counts])
box.add_class("cxrkit-explorer")
box'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path):
    """Start JupyterLab from this venv on 127.0.0.1, a free port and a random token; stop it afterwards."""
    port, token = _free_port(), secrets.token_hex(16)
    state = root.parent / f"{root.name}-jupyter-state"  # fresh settings and workspaces: nothing restored
    for sub in ("config", "settings", "workspaces", "runtime"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    news = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no pop-up over the explorer
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime")}
    log = open(root.parent / f"{root.name}-jupyterlab.log", "w")
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.port_retries=0", f"--LabApp.user_settings_dir={state / 'settings'}",
         f"--LabApp.workspaces_dir={state / 'workspaces'}", *as_root],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start; the end of {log.name}:\n"
                                   + Path(log.name).read_text()[-2000:])
            time.sleep(0.5)
        yield base, token
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (this test's own process group), by its id."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def explore_in_browser(notebook: Path, root: Path, screenshot: Path, run_timeout_s: float) -> tuple[str, str]:
    """Open ``notebook`` in JupyterLab in Chromium, run all cells, move the threshold slider; return regions before/after."""
    shutil.copy(notebook, root / notebook.name)
    with jupyter_lab(root) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{notebook.name}?token={token}", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                                   " === 'idle'", timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            regions = page.locator(".cxrkit-explorer .cxrkit-regions").first
            try:
                regions.wait_for(state="attached", timeout=run_timeout_s * 1000)
            except Exception:
                page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-failed.png")), full_page=True)
                raise
            regions.scroll_into_view_if_needed()
            before = regions.inner_text()
            readout = page.locator(".cxrkit-explorer .cxrkit-threshold .widget-readout").first
            current = float(readout.inner_text())
            target = 0.2 if current > 0.5 else 0.9
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(f"{target:.2f}")
            page.keyboard.press("Enter")
            page.wait_for_function("(old) => { const e = document.querySelector('.cxrkit-explorer .cxrkit-regions');"
                                   " return e && e.innerText !== old; }", arg=before, timeout=60_000)
            after = regions.inner_text()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".cxrkit-explorer").first.screenshot(path=str(screenshot))
            return before, after
        finally:
            browser.close()


def test_harness_moves_a_slider_and_sees_the_redraw(tmp_path):
    """The harness itself, on a tiny ipywidgets notebook with the explorer's hooks (seconds)."""
    nb = new_notebook(cells=[new_markdown_cell("# tiny explorer"), new_code_cell(TINY_EXPLORER)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "src" / "tiny_explorer.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, str(path))
    (tmp_path / "lab").mkdir()
    before, after = explore_in_browser(path, tmp_path / "lab", SCREENSHOTS / "tiny-explorer.png", run_timeout_s=120)
    assert before == "[0.8, 0.93]" and after == "[0.35, 0.5, 0.62, 0.8, 0.93]"
    assert (SCREENSHOTS / "tiny-explorer.png").stat().st_size > 1000


#: What the browser run of notebook 06 changes: fewer films, and no text/fusion section (tagged ``text_and_fusion``:
#: run alone, this test would train notebook 03's and 04's models for it; nbval's own run of 06 checks it). The explorer,
#: its maps and its threshold are the notebook's own code, unchanged.
BROWSER_06_PARAMETERS = {"n_loc_films": 8}
SKIPPED_TAG = "text_and_fusion"


def browser_copy_of_06(folder: Path) -> Path:
    """Notebook 06 with :data:`BROWSER_06_PARAMETERS` set in its parameters cell and its text/fusion cells left out."""
    nb = nbformat.read(str(NOTEBOOK_06), as_version=4)
    cells, parameters = [], 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if SKIPPED_TAG in tags:
            continue
        if "parameters" in tags:
            parameters += 1
            for name, value in BROWSER_06_PARAMETERS.items():
                line = next(line for line in cell.source.splitlines() if line.startswith(f"{name} = "))
                cell.source = cell.source.replace(line, f"{name} = {value!r}")
        cells.append(cell)
    assert parameters == 1 and len(cells) < len(nb.cells), "notebook 06 lost its parameters cell or its tagged cells"
    nb.cells = cells
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NOTEBOOK_06.name
    nbformat.write(nb, str(path))
    return path


@pytest.mark.skipif(not NOTEBOOK_06.exists(), reason="notebook 06 is not in this checkout yet")
def test_notebook_06_explorer_redraws_regions_when_the_threshold_moves(tmp_path):
    """Run notebook 06 (its image part, 8 films) in Chromium, move the explorer's slider, see the drawn regions change."""
    notebook = browser_copy_of_06(tmp_path / "src")
    (tmp_path / "lab").mkdir()
    before, after = explore_in_browser(notebook, tmp_path / "lab", SCREENSHOTS / "06-explorer.png",
                                       run_timeout_s=540)
    assert before != after
    assert (SCREENSHOTS / "06-explorer.png").stat().st_size > 1000
