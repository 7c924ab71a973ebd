"""May this command write here? One owner of the answer for every ``--out`` folder the kit writes (notebook 00).

A command writes only into a missing or empty folder (which it creates and marks), a folder holding its own
marker file ``.cxrkit-<owner>`` (a resume), or a folder the kit made before markers existed (recognised by the
caller's ``legacy`` test). Anything else is refused with one message naming the folder, a few of the files found
there and the flag that allows writing anyway. ``--overwrite`` never deletes a folder: it lets the command write
its own files into it (replacing only those) and marks the folder as *adopted*, so cleanup there stays limited to
temporaries that carry the command's own tag.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrkit import __version__
from cxrkit.atomic import write_text
from cxrkit.errors import CxrkitError

MARKER_PREFIX = ".cxrkit-"
OVERWRITE_FLAG = "--overwrite"


class OutputFolderError(CxrkitError):
    """The kit may not write into a folder (foreign data, another run's output, a file, or no permission)."""

    def __init__(self, folder: str | Path, message: str):
        self.folder = Path(folder)
        super().__init__(message)


def marker_path(folder: str | Path, owner: str) -> Path:
    """Return the path of ``owner``'s marker file in ``folder``."""
    return Path(folder) / f"{MARKER_PREFIX}{owner}"


def read_marker(folder: str | Path, owner: str) -> dict[str, Any] | None:
    """Return ``owner``'s marker record in ``folder`` (an empty dict when unreadable), or None when there is none."""
    path = marker_path(folder, owner)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def is_adopted(folder: str | Path, owner: str) -> bool:
    """Return whether ``owner`` was let into ``folder`` by ``--overwrite`` while it held other files."""
    return bool((read_marker(folder, owner) or {}).get("adopted", False))


def _shown(folder: Path, limit: int = 5) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "(unreadable)"
    return ", ".join(names[:limit]) + (f" … ({len(names)} entries)" if len(names) > limit else "")


def _marker_record(owner: str, record: dict[str, Any]) -> dict[str, Any]:
    # deterministic content (no time stamp), so two folders made alike hold the same bytes
    return {**record, "owner": owner, "kit": "cxrkit", "version": __version__}


def _write_marker(folder: Path, owner: str, data: dict[str, Any]) -> None:
    write_text(marker_path(folder, owner), json.dumps(data, indent=1, sort_keys=True) + "\n")


def update_marker(folder: str | Path, owner: str, **fields: Any) -> None:
    """Add or replace fields of ``owner``'s marker in a folder it claimed (e.g. the hashes of the files it wrote)."""
    record = {**(read_marker(folder, owner) or {}), **fields}
    _write_marker(Path(folder), owner, _marker_record(owner, record))


def _check_writable(folder: Path, flag: str | None) -> None:
    """Raise :class:`OutputFolderError` when ``folder`` is a file, lies under a file, or cannot be created."""
    what = f" ({flag})" if flag else ""
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(folder, f"{folder}{what} is a file, not a folder; choose a folder to write into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputFolderError(folder, f"cannot create the output folder {folder}{what}: "
                                        f"{err.strerror or err}; choose a writable folder") from err


def claim_folder(path: str | Path, owner: str, overwrite: bool = False, *, key: Any = None,
                 legacy: Callable[[Path], bool] | None = None, flag: str | None = "--out") -> Path:
    """Create or accept ``path`` as ``owner``'s output folder and mark it; raise :class:`OutputFolderError` otherwise.

    ``key`` (JSON-able) names the run: a marked folder recorded with another key holds another run's output
    and is refused unless ``overwrite``. ``legacy(folder)`` recognises a folder the kit made before markers.
    """
    folder = Path(path)
    what = f" ({flag})" if flag else ""
    _check_writable(folder, flag)
    marker = read_marker(folder, owner)
    run = {"key": key} if key is not None else {}
    if marker is not None:
        if key is not None and "key" in marker and marker["key"] != key and not overwrite:
            raise OutputFolderError(folder, (
                f"{folder}{what} holds the output of another `{owner}` run (made with other inputs or settings); "
                f"choose another folder, or pass {OVERWRITE_FLAG} to replace that run's files"))
        record, adopted = {**marker, **run}, bool(marker.get("adopted", False))
    elif not any(folder.iterdir()) or (legacy is not None and legacy(folder)):
        record, adopted = run, False
    elif overwrite:
        record, adopted = run, True
    else:
        raise OutputFolderError(folder, (
            f"{folder}{what} already holds files the kit's `{owner}` did not write ({_shown(folder)}); "
            f"`{owner}` writes only into an empty folder or one it made itself (marked {MARKER_PREFIX}{owner}). "
            f"Choose an empty folder, or pass {OVERWRITE_FLAG} to write into this one "
            f"(only `{owner}`'s own files are replaced; nothing else is deleted)"))
    record["adopted"] = adopted
    try:  # always written: it doubles as the check that the folder is writable, before any work
        _write_marker(folder, owner, _marker_record(owner, record))
    except OSError as err:
        raise OutputFolderError(folder, f"cannot write into the output folder {folder}{what}: "
                                        f"{err.strerror or err}; choose a writable folder") from err
    return folder


def check_file_target(path: str | Path, overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse to replace an existing file unless ``overwrite``; refuse a folder or an uncreatable parent (``cxrkit label``)."""
    target = Path(path)
    if str(path) == "":
        raise OutputFolderError(target, f"{flag} is empty; name the file to write")
    if target.is_dir():
        raise OutputFolderError(target, f"{target} ({flag}) is a folder; name a file to write")
    if target.exists() and not overwrite:
        raise OutputFolderError(target, f"{target} ({flag}) already exists; the kit does not replace a file it "
                                        f"may not have written — choose a new name, or pass {OVERWRITE_FLAG} to replace it")
    _check_writable(target.parent, None)
    return target
