"""Load the per-dataset YAML manifests in ``data_manifests/`` (source, licence, layout, label map, split).

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import copy
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cxrkit.errors import CxrkitError
from cxrkit.paths import REPO_ROOT

#: Environment variable that points at a folder of manifests (overrides every other location).
MANIFEST_DIR_ENV = "CXRKIT_MANIFEST_DIR"

#: Keys every manifest must define.
REQUIRED_KEYS: tuple[str, ...] = ("name", "source", "access", "licence", "citation", "env_var", "layout", "labels", "views", "split")


class ManifestError(CxrkitError):
    """A dataset manifest is missing or malformed (notebook 01)."""


def manifest_dirs() -> list[Path]:
    """Return the folders searched for manifests, in order: ``$CXRKIT_MANIFEST_DIR``, the repo checkout, the install prefix (notebook 01)."""
    dirs: list[Path] = []
    if os.environ.get(MANIFEST_DIR_ENV):
        dirs.append(Path(os.environ[MANIFEST_DIR_ENV]).expanduser())
    dirs.append(REPO_ROOT / "data_manifests")  # a git checkout or an editable install
    dirs.append(Path(sys.prefix) / "share" / "cxrkit" / "data_manifests")  # a wheel installed with its data files
    return dirs


def manifest_path(name: str) -> Path:
    """Return the path of the manifest of dataset ``name`` (notebook 01), or raise :class:`ManifestError` listing where it looked."""
    for folder in manifest_dirs():
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(d) for d in manifest_dirs())
    raise ManifestError(f"no manifest {name}.yaml for dataset {name!r}; looked in: {looked} (set {MANIFEST_DIR_ENV} to a folder of manifests)")


@lru_cache(maxsize=None)
def _load_cached(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {path} is not a YAML mapping")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ManifestError(f"manifest {path} lacks the key(s) {missing}")
    return data


def load_manifest(name: str) -> dict[str, Any]:
    """Return dataset ``name``'s manifest as a dict (a fresh copy, safe to modify) — notebook 01 prints one."""
    data = _load_cached(str(manifest_path(name)))
    if data["name"] != name:
        raise ManifestError(f"manifest {manifest_path(name)} names dataset {data['name']!r}, not {name!r}")
    return copy.deepcopy(data)


def list_manifests() -> list[str]:
    """Return the dataset names that have a manifest in the first folder that holds any (notebook 01)."""
    for folder in manifest_dirs():
        names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        if names:
            return names
    return []
