"""environment.yml and pyproject.toml name the same packages with the same version ranges."""
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _environment() -> dict[str, str]:
    deps = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    out = {}
    for d in deps:
        for req in (d["pip"] if isinstance(d, dict) else [d]):
            name, spec = _split(req)
            if name not in CONDA_ONLY:
                out[CONDA_TO_PIP.get(name, name)] = spec
    return out


def test_same_packages_and_ranges():
    assert _environment() == _pyproject()


def test_nothing_fetches_weights_by_default():
    text = (REPO / "pyproject.toml").read_text().lower()
    for fetcher in ("huggingface-hub-download", "fastembed", "gdown", "kaggle"):
        assert fetcher not in text


def test_binder_installs_the_kit_with_pyprojects_torch_ranges():
    post_build = (REPO / "binder" / "postBuild").read_text()
    assert "pip install --no-cache-dir -e ." in post_build
    pins = dict(_split(q) for q in re.findall(r'"((?:torch|torchvision)[^"]+)"', post_build))
    assert pins == {k: v for k, v in _pyproject().items() if k in ("torch", "torchvision")}
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert runtime.startswith("python-3.") and int(runtime.split(".")[1]) >= int(requires.split(".")[1])
