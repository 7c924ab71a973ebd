"""Checks on a dataset root: its expected layout, safe paths inside it, CSVs with required columns, file walks.

Taught in notebook 01 (data preparation).
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from cxrkit.errors import CxrkitError, DatasetLayoutError


class PathEscapeError(CxrkitError, ValueError):
    """A path read from a dataset file points outside the dataset root (``..`` or an absolute path) (notebook 01)."""


class DatasetFileError(CxrkitError, ValueError):
    """A dataset file (CSV, list) is unreadable or lacks a required column (notebook 01)."""


def top_level_entries(root: Path) -> list[str]:
    """Return the sorted names directly under ``root`` (folders end in ``/``), or a note when it is not a folder (notebook 01)."""
    if not root.exists():
        return ["(the folder does not exist)"]
    if not root.is_dir():
        return ["(a file, not a folder)"]
    return sorted(e.name + ("/" if e.is_dir() else "") for e in root.iterdir())


def _alternatives(requirement: str | Sequence[str]) -> list[str]:
    return [requirement] if isinstance(requirement, str) else list(requirement)


def _matches(root: Path, pattern: str) -> bool:
    if not any(ch in pattern for ch in "*?["):
        return (root / pattern).exists()
    return next(iter(root.glob(pattern)), None) is not None


def check_layout(dataset: str, root: Path, requirements: Sequence[str | Sequence[str]], description: str = "") -> list[str]:
    """Return, per requirement, the first glob that matches under ``root``; raise one :class:`DatasetLayoutError` listing all expectations otherwise (notebook 01)."""
    matched: list[str | None] = []
    if root.is_dir():
        for requirement in requirements:
            matched.append(next((p for p in _alternatives(requirement) if _matches(root, p)), None))
    else:
        matched = [None] * len(requirements)
    if all(m is not None for m in matched):
        return [str(m) for m in matched]
    expected = [description] if description else []
    for requirement, hit in zip(requirements, matched):
        status = "found" if hit is not None else "MISSING"
        expected.append(f"{' or '.join(_alternatives(requirement))} ({status})")
    raise DatasetLayoutError(dataset, root, expected, top_level_entries(root))


def safe_join(root: Path, relative: str, source: str) -> Path:
    """Join a path read from a dataset file onto ``root``; raise :class:`PathEscapeError` naming ``source`` when it is absolute or climbs out (notebook 01).

    The check is lexical (``..`` segments, absolute or drive paths), so folders that are symlinks to
    another disk still work.
    """
    text = str(relative).strip().replace("\\", "/")
    if not text:
        raise PathEscapeError(f"{source}: empty path")
    if os.path.isabs(text) or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(f"{source}: absolute path {relative!r} refused; paths must be relative to the dataset root {root}")
    joined = os.path.normpath(os.path.join(str(root), text))
    base = os.path.normpath(str(root))
    if os.path.commonpath([base, joined]) != base:
        raise PathEscapeError(f"{source}: path {relative!r} escapes the dataset root {root}; refused")
    return Path(joined)


def read_csv_checked(path: Path, required: Iterable[str], **kwargs: Any) -> pd.DataFrame:
    """Read a CSV (``.gz`` too) with pandas; raise :class:`DatasetFileError` naming the file and the first missing column (notebook 01)."""
    try:
        frame = pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise DatasetFileError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DatasetFileError(f"{path}: cannot read as CSV ({type(err).__name__}: {err})") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetFileError(f"{path}: required column {missing[0]!r} is missing (missing: {missing}; found: {list(frame.columns)})")
    return frame


def read_name_list(path: Path) -> list[str]:
    """Return the non-blank lines of a one-name-per-line text file (NIH ``train_val_list.txt``) (notebook 01)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def walk_files(root: Path, suffixes: Iterable[str], exclude_dirs: Iterable[str] = ()) -> Iterator[Path]:
    """Yield every file under ``root`` whose name ends in one of ``suffixes`` (case-insensitive), in sorted order (notebook 01).

    Symlinked folders are followed once each (a link loop is not followed twice); folders named in
    ``exclude_dirs`` are not entered.
    """
    wanted = tuple(s.lower() for s in suffixes)
    excluded = set(exclude_dirs)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in excluded)
        for name in sorted(filenames):
            if name.lower().endswith(wanted):
                yield Path(dirpath) / name
