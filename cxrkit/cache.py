"""The image cache: every film decoded once, resized, and stored as one uint8 array on disk.

Built in parallel over the machine's cores with a progress bar; a file that cannot be read is skipped
and listed in a quarantine table with the reason, so one bad file never stops a preparation. Writes are
atomic: the array and its index are written under temporary names and the completion marker
(``cache.json``) last, so an interrupted build leaves nothing a later run trusts. Taught in notebook 01.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cxrkit.errors import CxrkitError

MARKER = "cache.json"


def _read_chunk(args: tuple[Sequence[str], int]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Worker: read and resize a chunk of image paths; return the uint8 stack and (position, reason) failures."""
    from cxrkit.io.images import read_image, to_uint8

    paths, size = args
    out = np.zeros((len(paths), size, size), dtype=np.uint8)
    failures: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            out[i] = to_uint8(read_image(path, size))
        except CxrkitError as err:
            failures.append((i, getattr(err, "reason", str(err))))
        except Exception as err:  # an undecodable file must never stop a 300,000-image preparation
            failures.append((i, f"{type(err).__name__}: {err}"))
    return out, failures


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


def build_image_cache(table: pd.DataFrame, folder: str | Path, *, size: int, workers: int | None = None,
                      chunk: int = 64, progress: bool = True, params: dict[str, Any] | None = None) -> ImageCache:
    """Decode every ``image_path`` of ``table`` to a ``size``×``size`` uint8 film in ``folder`` (notebook 01).

    Reuses a finished cache built with the same parameters, the same image ids and the same code (the
    ``prepared`` code version of :mod:`cxrkit.artifacts`); otherwise rebuilds it from scratch.
    """
    from tqdm.auto import tqdm

    from cxrkit.artifacts import artifact_code_version

    folder = Path(folder)
    ids = table["image_id"].astype(str).tolist()
    params = {**(params or {}), "size": int(size), "n_images": len(ids),
              "ids_hash": pd.util.hash_pandas_object(pd.Series(ids), index=False).sum().item(),
              "code": artifact_code_version("prepared")}
    if cache_is_complete(folder, params):
        return load_image_cache(folder)
    if len(set(ids)) != len(ids):
        raise ValueError("image_id must be unique in the table given to build_image_cache")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).unlink(missing_ok=True)  # whatever was here is no longer trusted
    paths = table["image_path"].astype(str).tolist()
    chunks = [(paths[i:i + chunk], int(size)) for i in range(0, len(paths), chunk)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks) or 1))

    tmp = folder / "images.npy.tmp"
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size))
    failed: list[tuple[int, str]] = []
    start = time.perf_counter()
    bar = tqdm(total=len(paths), desc=f"caching {len(paths)} films at {size}px", unit="img", disable=not progress)
    if workers == 1:
        results = map(_read_chunk, chunks)
        executor = None
    else:
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        results = executor.map(_read_chunk, chunks)
    try:
        for c, (stack, failures) in enumerate(results):
            offset = c * chunk
            images[offset:offset + len(stack)] = stack
            failed += [(offset + i, reason) for i, reason in failures]
            bar.update(len(stack))
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - start
    images.flush()
    del images

    bad = {i for i, _ in failed}
    keep = np.array([i for i in range(len(paths)) if i not in bad], dtype=np.int64)
    full = np.load(tmp, mmap_mode="r")
    kept = np.ascontiguousarray(full[keep]) if bad else np.asarray(full)
    quarantine = pd.DataFrame([{"image_id": ids[i], "image_path": paths[i], "reason": r} for i, r in failed],
                              columns=["image_id", "image_path", "reason"])
    index = pd.DataFrame({"image_id": [ids[i] for i in keep], "row": np.arange(len(keep))})

    _atomic_save_npy(folder / "images.npy", kept)
    del full, kept
    tmp.unlink(missing_ok=True)
    _atomic_csv(folder / "index.csv", index)
    _atomic_csv(folder / "quarantine.csv", quarantine)
    info = {"params": params, "n_cached": int(len(keep)), "n_quarantined": len(failed),
            "seconds": round(seconds, 3), "images_per_s": round(len(paths) / max(seconds, 1e-9), 1),
            "workers": workers}
    _atomic_text(folder / MARKER, json.dumps(info, indent=2))
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
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def _atomic_csv(path: Path, df: pd.DataFrame) -> None:
    tmp = path.with_name(path.name + ".partial")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)
