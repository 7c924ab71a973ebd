"""The image cache: every film decoded once, resized, and stored as one uint8 array on disk.

Built in parallel over the machine's cores with a progress bar; a file that cannot be read is skipped
and listed in a quarantine table with the reason, so one bad file never stops a preparation. A worker
process that dies (out of memory, a crashing decoder) does not stop it either: the films of its
unfinished batches are retried one at a time in a fresh worker, and a film that kills that worker too
is quarantined, named. Writes are atomic: the array and its index are written under temporary names
and the completion marker (``cache.json``) last, so an interrupted build leaves nothing a later run
trusts. Each source file's size and modification time are recorded (``sources.csv``); a finished
cache whose files changed since re-decodes just those films. Warnings raised while decoding (values
above BitsStored …) are shown once by the building process and kept in ``notes.csv``.

Resumable at MIMIC size: films are decoded in chunks straight into one ``images.npy.tmp`` memmap; after
each chunk is written and flushed it is appended to a log (``progress-chunks.jsonl``, with its quarantined
films and warnings) beside ``progress.json`` (the build's parameters) and ``progress-prints.npy`` (the
source fingerprints). An interrupted build (Ctrl-C, a killed process) called again with the same
parameters reopens the memmap and decodes only the chunks not logged (and those whose files changed
since); anything inconsistent starts over. Quarantined films are dropped by streaming the kept rows
chunk by chunk into the final memmap, so memory stays constant (a few chunks) even for 377,110 films ×
224² (18.9 GB); the result is byte-identical to an uninterrupted build. Why one ``.npy`` memmap rather
than shards or WebDataset tars: the batch loader reads rows at random, in memory or through the memmap,
one file per cache keeps reuse and atomic replacement simple, and the chunk log gives resumability
without shards. Taught in notebook 01.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrkit.artifacts import artifact_code_version
from cxrkit.atomic import replacing, write_text
from cxrkit.errors import CxrkitError
from cxrkit.io import dicom
from cxrkit.io.images import read_image, to_uint8

MARKER = "cache.json"
SOURCES = "sources.csv"
NOTES = "notes.csv"
#: The sidecars of an unfinished build: its parameters, its source fingerprints, the log of finished chunks.
PROGRESS, PROGRESS_PRINTS, PROGRESS_LOG = "progress.json", "progress-prints.npy", "progress-chunks.jsonl"

Failure = tuple[int, str]
Note = tuple[int, type, str]


class CacheParameterError(CxrkitError, ValueError):
    """A parameter of the image cache (its film size, its chunk) is not usable; the message names it."""


def _read_chunk(args: tuple) -> tuple[np.ndarray, list[Failure], list[Note]]:
    """Worker: read and resize a chunk of image paths; return the uint8 stack, (position, reason) failures and warnings.

    ``args`` is ``(paths, size)`` or ``(paths, size, max_pixels)``; the third sets
    :data:`cxrkit.io.dicom.MAX_PIXELS` in this process (a spawned worker does not see the parent's).
    """
    paths, size = args[0], args[1]
    if len(args) > 2:
        dicom.MAX_PIXELS = int(args[2])
    out = np.zeros((len(paths), size, size), dtype=np.uint8)
    failures: list[Failure] = []
    notes: list[Note] = []
    for i, path in enumerate(paths):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out[i] = to_uint8(read_image(path, size))
            except CxrkitError as err:
                failures.append((i, getattr(err, "reason", str(err))))
            except Exception as err:  # an undecodable file must never stop a 300,000-image preparation
                failures.append((i, f"{type(err).__name__}: {err}"))
        notes += [(i, w.category, str(w.message)) for w in caught]
    return out, failures, notes


@dataclass
class ImageCache:
    """A built cache: ``images[i]`` is the film of ``index.image_id[i]``; ``quarantine`` lists what was skipped."""

    folder: Path
    images: np.ndarray
    index: pd.DataFrame
    quarantine: pd.DataFrame
    info: dict[str, Any]

    def rows_for(self, image_ids: Sequence[str]) -> np.ndarray:
        """Return the cache positions of ``image_ids`` (KeyError naming the first id not in the cache)."""
        pos = pd.Series(np.arange(len(self.index)), index=self.index["image_id"].astype(str))
        missing = [i for i in map(str, image_ids) if i not in pos.index]
        if missing:
            raise KeyError(f"image {missing[0]!r} is not in the cache at {self.folder} ({len(missing)} missing)")
        return pos.loc[list(map(str, image_ids))].to_numpy()


def cache_is_complete(folder: Path, params: dict[str, Any]) -> bool:
    """True when ``folder`` holds a finished cache built with exactly ``params`` (which hold the code version, see :func:`build_image_cache`)."""
    marker = Path(folder) / MARKER
    if not marker.exists():
        return False
    try:
        info = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return info.get("params") == params


def check_cache_parameters(size: Any, chunk: Any = 64) -> tuple[int, int]:
    """Return (size, chunk) as ints, or raise CacheParameterError naming the bad one — before anything is written."""
    for name, value, example in (("size", size, "the side of the square film in pixels, e.g. 128"),
                                 ("chunk", chunk, "films per batch, e.g. 64")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise CacheParameterError(f"image cache {name} {value!r} is not usable: expected a positive integer "
                                      f"({example})")
    return int(size), int(chunk)


def fingerprint(path: str | Path) -> tuple[int, int]:
    """Return a source file's (size in bytes, modification time in ns), or (-1, -1) when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def _died_reason(err: BaseException) -> str:
    return (f"the worker process decoding this file died ({type(err).__name__}: {err}); retried alone in a fresh "
            "worker, it died again — the decoder crashed or ran out of memory on this file")


def _decode(paths: Sequence[str], size: int, *, workers: int, chunk: int, sink: Callable[[int, np.ndarray], None],
            progress: Callable[[int], None], skip: frozenset[int] = frozenset(),
            on_chunk: Callable[[int, list[Failure], list[Note]], None] | None = None) -> tuple[list[Failure], list[Note]]:
    """Decode ``paths`` in batches (``sink(position, stack)`` stores each, then ``on_chunk(k, failures, notes)``),
    skipping batch numbers in ``skip``; survive and name films that kill a worker."""
    offsets = list(range(0, len(paths), chunk))
    jobs = {k: (list(paths[o:o + chunk]), size, dicom.MAX_PIXELS) for k, o in enumerate(offsets) if k not in skip}
    failed: list[Failure] = []
    notes: list[Note] = []

    def take(offset: int, result: tuple[np.ndarray, list[Failure], list[Note]]) -> tuple[list[Failure], list[Note]]:
        stack, failures, chunk_notes = result
        sink(offset, stack)
        progress(len(stack))
        return ([(offset + i, reason) for i, reason in failures],
                [(offset + i, category, message) for i, category, message in chunk_notes])

    def finish(k: int, failures: list[Failure], chunk_notes: list[Note]) -> None:
        failed.extend(failures)
        notes.extend(chunk_notes)
        if on_chunk is not None:
            on_chunk(k, failures, chunk_notes)

    if workers == 1:
        for k, job in jobs.items():
            finish(k, *take(offsets[k], _read_chunk(job)))
        return failed, notes

    pending, suspects = deque(jobs), []
    while pending:
        executor, inflight, broke = _pool(workers), {}, False
        try:
            while (pending or inflight) and not broke:
                while pending and len(inflight) < workers:
                    k = pending.popleft()
                    try:
                        inflight[executor.submit(_read_chunk, jobs[k])] = k
                    except BrokenProcessPool:
                        pending.appendleft(k)
                        broke = True
                        break
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                if broke:
                    done, _ = wait(inflight)
                for future in done:
                    k = inflight.pop(future)
                    try:
                        finish(k, *take(offsets[k], future.result()))
                    except BrokenProcessPool:
                        broke = True
                        suspects.append(k)
                if broke:  # every batch still in flight went down with the pool
                    for future, k in list(inflight.items()):
                        try:
                            finish(k, *take(offsets[k], future.result()))
                        except BrokenProcessPool:
                            suspects.append(k)
                    inflight.clear()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    if suspects:
        films = sum(len(jobs[k][0]) for k in suspects)
        print(f"cxrkit: a worker process died while decoding; retrying the {films} films of its unfinished "
              "batches one at a time", file=sys.stderr)
        for k in sorted(suspects):
            finish(k, *_retry_alone([(offsets[k] + j, p) for j, p in enumerate(jobs[k][0])], size, dicom.MAX_PIXELS,
                                    take))
    return sorted(failed), sorted(notes, key=lambda n: n[0])


def _retry_alone(films: list[tuple[int, str]], size: int, max_pixels: int,
                 take: Callable[[int, tuple[np.ndarray, list[Failure], list[Note]]], tuple[list[Failure], list[Note]]]
                 ) -> tuple[list[Failure], list[Note]]:
    """Decode each (position, path) alone in a one-worker pool; a film whose worker dies again is a failure."""
    failed: list[Failure] = []
    notes: list[Note] = []
    executor = None
    try:
        for position, path in films:
            executor = executor or _pool(1)
            try:
                got_failed, got_notes = take(position, executor.submit(_read_chunk, ([path], size, max_pixels)).result())
                failed += got_failed
                notes += got_notes
            except BrokenProcessPool as err:
                failed.append((position, _died_reason(err)))
                executor.shutdown(wait=True, cancel_futures=True)
                executor = None
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return failed, notes


def _emit(notes: list[Note]) -> None:
    """Show each decoding warning once in this process (a spawned worker's would not reach a notebook)."""
    for _, category, message in notes:
        warnings.warn(message, category if isinstance(category, type) and issubclass(category, Warning)
                      else UserWarning, stacklevel=3)


def _notes_frame(notes: list[Note], ids: Sequence[str], paths: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame([{"image_id": ids[i], "image_path": paths[i], "warning": getattr(c, "__name__", str(c)),
                          "note": m} for i, c, m in notes], columns=["image_id", "image_path", "warning", "note"])


def _sources_frame(ids: Sequence[str], paths: Sequence[str], prints: Sequence[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame({"image_id": list(ids), "image_path": list(paths),
                         "size": [s for s, _ in prints], "mtime_ns": [m for _, m in prints]})


def build_image_cache(table: pd.DataFrame, folder: str | Path, *, size: int, workers: int | None = None,
                      chunk: int = 64, progress: bool = True, params: dict[str, Any] | None = None) -> ImageCache:
    """Decode every ``image_path`` of ``table`` to a ``size``×``size`` uint8 film in ``folder`` (notebook 01).

    Reuses a finished cache built with the same parameters, the same image ids and the same code (the
    ``prepared`` code version of :mod:`cxrkit.artifacts`), re-decoding only the films whose source file
    changed (size, modification time or path) since; otherwise rebuilds it from scratch. A cache built
    before file fingerprints were recorded is rebuilt. A ``size`` or ``chunk`` that is not a positive
    integer raises :class:`CacheParameterError` before anything is written.
    """
    size, chunk = check_cache_parameters(size, chunk)
    folder = Path(folder)
    ids = table["image_id"].astype(str).tolist()
    params = {**(params or {}), "size": int(size), "n_images": len(ids),
              "ids_hash": pd.util.hash_pandas_object(pd.Series(ids), index=False).sum().item(),
              "code": artifact_code_version("prepared")}
    paths = table["image_path"].astype(str).tolist()
    if cache_is_complete(folder, params):
        reused = _reuse(folder, ids, paths, size=size, workers=workers, chunk=chunk, progress=progress)
        if reused is not None:
            return reused
    if len(set(ids)) != len(ids):
        raise ValueError("image_id must be unique in the table given to build_image_cache")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).unlink(missing_ok=True)  # whatever was here is no longer trusted
    prints = [fingerprint(p) for p in paths]  # before decoding: a file changed meanwhile counts as changed
    n_chunks = (len(paths) + chunk - 1) // chunk
    tmp = folder / "images.npy.tmp"
    finished = _resumable_chunks(folder, tmp, params, chunk, paths, prints)
    if finished is None:
        finished = {}
        images = _start_progress(folder, tmp, params, chunk, prints, size)
    else:
        images = np.load(tmp, mmap_mode="r+")
        print(f"cxrkit: resuming the interrupted image cache build in {folder}: {len(finished)} of {n_chunks} "
              "chunks already decoded", file=sys.stderr)
    todo = n_chunks - len(finished)
    workers = max(1, min(workers or os.cpu_count() or 1, todo or 1))
    done_films = sum(min(chunk, len(paths) - k * chunk) for k in finished)
    start = time.perf_counter()
    bar = tqdm(total=len(paths), initial=done_films, desc=f"caching {len(paths)} films at {size}px", unit="img",
               disable=not progress)

    def sink(offset: int, stack: np.ndarray) -> None:
        images[offset:offset + len(stack)] = stack

    log = open(folder / PROGRESS_LOG, "a", encoding="utf-8")

    def on_chunk(k: int, failures: list[Failure], chunk_notes: list[Note]) -> None:
        images.flush()  # the chunk's rows are on disk before the log says so
        _record_chunk(log, k, failures, chunk_notes)

    try:
        new_failed, new_notes = _decode(paths, size, workers=workers, chunk=chunk, sink=sink, progress=bar.update,
                                        skip=frozenset(finished), on_chunk=on_chunk)
    finally:
        bar.close()
        log.close()
    seconds = time.perf_counter() - start
    images.flush()
    del images
    failed = sorted([f for fs, _ in finished.values() for f in fs] + new_failed)
    notes = sorted([n for _, ns in finished.values() for n in ns] + new_notes, key=lambda n: n[0])
    _emit(notes)

    bad = {i for i, _ in failed}
    keep = np.array([i for i in range(len(paths)) if i not in bad], dtype=np.int64)
    if bad:
        _compact(tmp, folder / "images.npy", keep, chunk)
        tmp.unlink(missing_ok=True)
    else:
        os.replace(tmp, folder / "images.npy")
    for name in (PROGRESS, PROGRESS_PRINTS, PROGRESS_LOG):
        (folder / name).unlink(missing_ok=True)
    quarantine = pd.DataFrame([{"image_id": ids[i], "image_path": paths[i], "reason": r} for i, r in failed],
                              columns=["image_id", "image_path", "reason"])
    index = pd.DataFrame({"image_id": [ids[i] for i in keep], "row": np.arange(len(keep))})
    _atomic_csv(folder / "index.csv", index)
    _atomic_csv(folder / "quarantine.csv", quarantine)
    _atomic_csv(folder / SOURCES, _sources_frame(ids, paths, prints))
    _write_notes(folder, _notes_frame(notes, ids, paths))
    decoded = len(paths) - done_films
    info = {"params": params, "n_cached": int(len(keep)), "n_quarantined": len(failed),
            "seconds": round(seconds, 3), "images_per_s": round(decoded / max(seconds, 1e-9), 1),
            "workers": workers}
    if finished:
        info["resumed_chunks"] = len(finished)
    write_text(folder / MARKER, json.dumps(info, indent=2))
    return load_image_cache(folder)


def _start_progress(folder: Path, tmp: Path, params: dict[str, Any], chunk: int, prints: list[tuple[int, int]],
                    size: int) -> np.memmap:
    """Begin a build from scratch: a fresh ``images.npy.tmp`` memmap, its fingerprints, an empty chunk log."""
    for name in (PROGRESS, PROGRESS_LOG):
        (folder / name).unlink(missing_ok=True)
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(prints), size, size))
    _atomic_save_npy(folder / PROGRESS_PRINTS, np.array(prints, dtype=np.int64).reshape(len(prints), 2))
    write_text(folder / PROGRESS, json.dumps({"params": params, "chunk": chunk, "n_images": len(prints)}, indent=2))
    return images


def _chunk_line(k: int, failures: list[Failure], notes: list[Note]) -> str:
    """One line of the chunk log: the chunk number, its failures and its warnings (class as ``module:qualname``)."""
    return json.dumps({"chunk": k, "failures": [[i, r] for i, r in failures],
                       "notes": [[i, f"{getattr(c, '__module__', '')}:{getattr(c, '__qualname__', str(c))}", m]
                                 for i, c, m in notes]}) + "\n"


def _record_chunk(log: Any, k: int, failures: list[Failure], notes: list[Note]) -> None:
    """Append one finished chunk (its quarantined films and warnings) to the build's log, flushed to disk."""
    log.write(_chunk_line(k, failures, notes))
    log.flush()
    os.fsync(log.fileno())


def _category(name: str) -> type | str:
    """The warning class a log records as ``module:qualname``, or the bare name when it cannot be imported."""
    module, _, qualname = name.partition(":")
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        return found if isinstance(found, type) else qualname
    except Exception:
        return qualname


def _resumable_chunks(folder: Path, tmp: Path, params: dict[str, Any], chunk: int, paths: list[str],
                      prints: list[tuple[int, int]]) -> dict[int, tuple[list[Failure], list[Note]]] | None:
    """The finished chunks of an interrupted build with these parameters (their failures and notes), or None to start over.

    A chunk holding a file whose fingerprint changed since is left out, so it is decoded again.
    """
    if not (folder / PROGRESS).exists() or not tmp.exists():
        return None
    try:
        state = json.loads((folder / PROGRESS).read_text())
        recorded = np.load(folder / PROGRESS_PRINTS)
        header = np.load(tmp, mmap_mode="r")
        shape, dtype = header.shape, header.dtype
        del header
    except Exception:
        state = None
    n = len(paths)
    if (not isinstance(state, dict) or state.get("params") != params or state.get("chunk") != chunk
            or state.get("n_images") != n or recorded.shape != (n, 2) or dtype != np.uint8
            or shape != (n, params["size"], params["size"])):
        print(f"cxrkit: the unfinished image cache build in {folder} does not match this one; starting over",
              file=sys.stderr)
        return None
    n_chunks = (n + chunk - 1) // chunk
    now = np.array(prints, dtype=np.int64).reshape(n, 2)
    finished: dict[int, tuple[list[Failure], list[Note]]] = {}
    lines = (folder / PROGRESS_LOG).read_text(encoding="utf-8").splitlines() if (folder / PROGRESS_LOG).exists() else []
    for line in lines:
        try:
            record = json.loads(line)
            k = int(record["chunk"])
            failures = [(int(i), str(r)) for i, r in record["failures"]]
            notes = [(int(i), _category(str(c)), str(m)) for i, c, m in record["notes"]]
        except Exception:  # a line torn by the interruption: that chunk is simply decoded again
            continue
        if 0 <= k < n_chunks and (recorded[k * chunk:(k + 1) * chunk] == now[k * chunk:(k + 1) * chunk]).all():
            finished[k] = (failures, notes)
    # rewrite the log with just the chunks kept, and the fingerprints as they are now
    write_text(folder / PROGRESS_LOG, "".join(_chunk_line(k, fs, ns) for k, (fs, ns) in sorted(finished.items())))
    _atomic_save_npy(folder / PROGRESS_PRINTS, now)
    return finished


def _compact(src: Path, dst: Path, keep: np.ndarray, block: int) -> None:
    """Copy the rows ``keep`` of the ``.npy`` at ``src`` into a new ``.npy`` at ``dst``, ``block`` rows at a time (constant memory)."""
    full = np.load(src, mmap_mode="r")
    with replacing(dst) as partial:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=full.dtype, shape=(len(keep),) + full.shape[1:])
        for first in range(0, len(keep), block):
            rows = keep[first:first + block]
            out[first:first + len(rows)] = full[rows]
        out.flush()
        del out
    del full


def _write_notes(folder: Path, notes: pd.DataFrame) -> None:
    if len(notes):
        _atomic_csv(folder / NOTES, notes)
    else:
        (folder / NOTES).unlink(missing_ok=True)


def _reuse(folder: Path, ids: list[str], paths: list[str], *, size: int, workers: int | None, chunk: int,
           progress: bool) -> ImageCache | None:
    """Load a finished cache, re-decoding the films whose source changed; None when it must be rebuilt."""
    sources = folder / SOURCES
    if not sources.exists():
        print(f"cxrkit: the image cache in {folder} records no file fingerprints (built by an older cxrkit); "
              "rebuilding it", file=sys.stderr)
        return None
    recorded = pd.read_csv(sources, dtype={"image_id": str, "image_path": str})
    if recorded["image_id"].tolist() != ids:
        return None
    now = [fingerprint(p) for p in paths]
    changed = [i for i, (p, fp, old_p, old_s, old_m) in enumerate(zip(paths, now, recorded["image_path"],
                                                                   recorded["size"], recorded["mtime_ns"]))
               if p != old_p or fp != (int(old_s), int(old_m))]
    if not changed:
        return load_image_cache(folder)
    print(f"cxrkit: {len(changed)} of {len(ids)} source files changed since the image cache in {folder} was built "
          "(size, modification time or path); re-decoding them", file=sys.stderr)
    return _refresh(folder, ids, paths, now, changed, size=size, workers=workers, chunk=chunk, progress=progress)


def _refresh(folder: Path, ids: list[str], paths: list[str], now: list[tuple[int, int]], changed: list[int], *,
             size: int, workers: int | None, chunk: int, progress: bool) -> ImageCache:
    """Re-decode the ``changed`` films and rewrite the cache; every other film's array is copied unchanged."""
    info = json.loads((folder / MARKER).read_text())
    old_index = pd.read_csv(folder / "index.csv", dtype={"image_id": str})
    old_quarantine = pd.read_csv(folder / "quarantine.csv", dtype={"image_id": str}).set_index("image_id")
    old_notes = pd.read_csv(folder / NOTES, dtype={"image_id": str}) if (folder / NOTES).exists() else None
    old_row = dict(zip(old_index["image_id"], old_index["row"]))
    sub_paths = [paths[i] for i in changed]
    n_chunks = (len(sub_paths) + chunk - 1) // chunk
    workers = max(1, min(workers or os.cpu_count() or 1, n_chunks or 1))
    fresh_tmp = folder / "refresh.npy.tmp"
    fresh = np.lib.format.open_memmap(fresh_tmp, mode="w+", dtype=np.uint8, shape=(len(sub_paths), size, size))

    def sink(offset: int, stack: np.ndarray) -> None:
        fresh[offset:offset + len(stack)] = stack

    bar = tqdm(total=len(sub_paths), desc=f"re-caching {len(sub_paths)} changed films", unit="img",
               disable=not progress)
    try:
        sub_failed, sub_notes = _decode(sub_paths, size, workers=workers, chunk=chunk, sink=sink, progress=bar.update)
    finally:
        bar.close()
    _emit(sub_notes)
    new_reason = {changed[j]: reason for j, reason in sub_failed}
    fresh_of = {i: j for j, i in enumerate(changed)}

    (folder / MARKER).unlink(missing_ok=True)  # the cache is being rewritten: not trusted until the marker is back
    old = np.load(folder / "images.npy", mmap_mode="r")
    keep = [i for i in range(len(ids)) if (i in fresh_of and i not in new_reason) or
            (i not in fresh_of and ids[i] in old_row)]
    tmp = folder / "images.npy.tmp"
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keep), size, size))
    for row, i in enumerate(keep):
        images[row] = fresh[fresh_of[i]] if i in fresh_of else old[old_row[ids[i]]]
    images.flush()
    del images, old, fresh
    quarantine = pd.DataFrame(
        [{"image_id": ids[i], "image_path": paths[i], "reason": new_reason[i]} if i in new_reason else
         {"image_id": ids[i], "image_path": old_quarantine.loc[ids[i], "image_path"],
          "reason": old_quarantine.loc[ids[i], "reason"]}
         for i in range(len(ids)) if i in new_reason or (i not in fresh_of and ids[i] not in old_row)],
        columns=["image_id", "image_path", "reason"])
    notes = _notes_frame([(changed[j], c, m) for j, c, m in sub_notes], ids, paths)
    if old_notes is not None:
        untouched = old_notes[~old_notes["image_id"].isin({ids[i] for i in changed})]
        notes = pd.concat([untouched, notes], ignore_index=True) if len(notes) else untouched
    os.replace(tmp, folder / "images.npy")
    fresh_tmp.unlink(missing_ok=True)
    _atomic_csv(folder / "index.csv", pd.DataFrame({"image_id": [ids[i] for i in keep], "row": np.arange(len(keep))}))
    _atomic_csv(folder / "quarantine.csv", quarantine)
    _atomic_csv(folder / SOURCES, _sources_frame(ids, paths, now))
    _write_notes(folder, notes)
    info.update({"n_cached": len(keep), "n_quarantined": len(quarantine), "refreshed": len(changed)})
    write_text(folder / MARKER, json.dumps(info, indent=2))
    return load_image_cache(folder)


def load_image_cache(folder: str | Path) -> ImageCache:
    """Load a finished cache (the whole uint8 array into memory); a missing marker is an error naming the folder."""
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.exists():
        raise FileNotFoundError(f"no finished image cache in {folder} (no {MARKER}); build it with prepare()")
    info = json.loads(marker.read_text())
    return ImageCache(folder=folder, images=np.load(folder / "images.npy"),
                      index=pd.read_csv(folder / "index.csv", dtype={"image_id": str}),
                      quarantine=pd.read_csv(folder / "quarantine.csv", dtype={"image_id": str}), info=info)


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _atomic_csv(path: Path, df: pd.DataFrame) -> None:
    with replacing(path) as tmp:
        df.to_csv(tmp, index=False)
