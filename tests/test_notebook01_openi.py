"""Notebook 01 pointed at an Open-i root in the official layout runs end to end and shows the MeSH evaluation (issue 16).

The default run (synthetic) is checked by nbval; this is the other path: ``dataset = "iu-xray"`` with a
``data_root`` of fixture XML + PNGs, executed with papermill (about a minute on a laptop CPU).
"""
from __future__ import annotations

import json
from pathlib import Path

import papermill as pm

from fixtures.real_trees import make_iu_xray

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "01_data_prep.ipynb"


def _printed(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text") or output.get("data", {}).get("text/plain") or ""))
    return "".join(parts)


def test_notebook_01_on_an_open_i_root_shows_the_mesh_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    root = make_iu_xray(tmp_path / "data", png_dir="NLMCXR_png")
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"dataset": "iu-xray", "data_root": str(root)},
                        cwd=str(NOTEBOOK.parent), progress_bar=False, kernel_name="python3")
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    printed = "\n".join(_printed(c) for c in cells)
    assert "sections: findings+impression" in printed  # the dataset's policy labelled the reports
    mesh = next(_printed(c) for c in cells if "MeSH evaluation skipped" in "".join(c["source"]))
    assert "7 Open-i reports (0 unreadable); F1 per labeled-section policy" in mesh
    rows = {line.split()[0]: line.split()[1:] for line in mesh.splitlines() if line.startswith(("Cardiomegaly", "Atelectasis"))}
    assert rows["Cardiomegaly"][:2] == ["0.000", "1.0"] and rows["Atelectasis"][:2] == ["0.000", "1.0"]
