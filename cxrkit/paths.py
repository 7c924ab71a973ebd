"""Where the kit keeps its artifacts: one folder, ``CXRKIT_HOME``, keyed by the parameters, inputs and code that made them.

Taught in notebook 00 (setup) and used by every notebook.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def cxrkit_home() -> Path:
    """Return the artifact folder: ``$CXRKIT_HOME`` when set, else ``cxrkit_home/`` in the repository."""
    home = Path(os.environ.get("CXRKIT_HOME", REPO_ROOT / "cxrkit_home")).expanduser()
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
    from cxrkit.artifacts import artifact_code_version

    return params_key({"params": params, "code": artifact_code_version(kind)})


def artifact_dir(kind: str, params: dict[str, Any]) -> Path:
    """Return ``CXRKIT_HOME/<kind>/<artifact_key>`` (not created): the home of one keyed artifact (notebook 00)."""
    return cxrkit_home() / kind / artifact_key(kind, params)
