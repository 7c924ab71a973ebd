"""Where the kit keeps its artifacts: one folder, ``CXRKIT_HOME``, keyed by the parameters, inputs and code that made them.

Taught in notebook 00 (setup) and used by every notebook.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from cxrkit.artifacts import artifact_code_version

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Artifacts the kit ships inside the package — the course models ``cxrkit course-models`` builds — laid out like
#: ``CXRKIT_HOME`` (``<kind>/<artifact_key>/``). Searched after ``CXRKIT_HOME``; a run never writes here.
SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"


def configured_home() -> Path:
    """Return where the artifact folder is configured to be (not created): ``$CXRKIT_HOME``, else ``cxrkit_home/`` (notebook 00)."""
    return Path(os.environ.get("CXRKIT_HOME", REPO_ROOT / "cxrkit_home")).expanduser()


def cxrkit_home() -> Path:
    """Return the artifact folder, created if missing: ``$CXRKIT_HOME`` when set, else ``cxrkit_home/`` in the repository."""
    home = configured_home()
    home.mkdir(parents=True, exist_ok=True)
    return home


def params_key(params: dict[str, Any], length: int = 10) -> str:
    """Return a short stable hash of a parameter dict, used to key cached artifacts."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def artifact_key(kind: str, params: dict[str, Any]) -> str:
    """Return the key of one artifact: a hash of its parameters (which hold its inputs' keys) and its code version (notebook 00).

    The code version is :func:`cxrkit.artifacts.artifact_code_version` of ``kind``; a downstream artifact puts the
    upstream one's key into its ``params`` and so inherits the upstream code version too.
    """
    return params_key({"params": params, "code": artifact_code_version(kind)})


def artifact_dir(kind: str, params: dict[str, Any]) -> Path:
    """Return ``CXRKIT_HOME/<kind>/<artifact_key>`` (not created): the home of one keyed artifact (notebook 00)."""
    return cxrkit_home() / kind / artifact_key(kind, params)


def shipped_dir(kind: str, params: dict[str, Any]) -> Path:
    """Return ``cxrkit/shipped/<kind>/<artifact_key>`` (not created): where the kit ships a built artifact (notebook 02)."""
    return SHIPPED_ROOT / kind / artifact_key(kind, params)


def find_artifact(kind: str, params: dict[str, Any], files: Sequence[str]) -> Path | None:
    """Return the first folder holding every one of ``files`` for this artifact — ``CXRKIT_HOME``, then what the kit ships — or None (notebook 02)."""
    for folder in (artifact_dir(kind, params), shipped_dir(kind, params)):
        if all((folder / name).is_file() for name in files):
            return folder
    return None
