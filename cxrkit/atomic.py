"""Atomic file writes: a temporary sibling, then one rename, so a reader never sees half a file.

Every writer in the kit that must survive an interruption — the synthetic cohort, the image cache, the DICOM
header cache, the training state, run records and markers — goes through :func:`replacing` (or its two
shorthands): the content is written to ``.<name>.tmp-<random>`` beside the target and moved over it with
``os.replace``, which is atomic on one file system; on any failure the temporary is deleted and the old file
stays. (It is not part of any artifact's code version: how a file is written never changes its bytes.) Used by
every notebook; taught in notebook 01 (data prep).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_bytes", "write_text"]


@contextmanager
def replacing(path: str | Path, *, tag: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends normally it replaces ``path``, else it is deleted (notebook 01).

    The temporary is ``.<name>.tmp-<8 hex>``, or ``.<name><tag>`` when a writer tags its own temporaries (the
    cohort generator does, so an interrupted run's leftovers can be told from a user's files). Parent folders are
    created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{tag if tag is not None else '.tmp-' + uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes, *, tag: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically (:func:`replacing`) (notebook 01)."""
    with replacing(path, tag=tag) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, *, tag: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`replacing`) (notebook 01)."""
    with replacing(path, tag=tag) as tmp:
        tmp.write_text(text, encoding="utf-8")
