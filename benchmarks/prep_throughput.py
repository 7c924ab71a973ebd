"""Preparing a real dataset at scale: films per second per core of decode + resize + uint8, and the projection.

Writes a few dozen synthetic films of *real* size and format into a temporary folder (a smooth field with two
lung-like shadows and noise chosen so a MIMIC-CXR-JPG film compresses close to its published mean of 1.48 MB,
557.6 GB / 377,110 films), then measures, per format:

1. films/s on one worker: ``to_uint8(read_image(path, size))`` in this process, the exact call each worker of
   :func:`cxrkit.cache.build_image_cache` makes per film (one warm-up film first);
2. ``build_image_cache`` end to end with ``--workers`` processes (spawn, chunks, memmap writes, index) over the
   films listed repeatedly (about ``--seconds`` of work, so the pool's start-up is amortised), per wall second, per
   core, and per CPU-second of the build's own processes (what a shared machine's other jobs do not lower).

Formats: MIMIC-CXR-JPG (2544×3056 8-bit JPEG, quality 95), CheXpert (2320×2828 8-bit JPEG), MIMIC-CXR DICOM
(2544×3056, 16 bits allocated / 12 stored, MONOCHROME1 with a window) uncompressed, and — when pydicom has an
encoder and a decoder installed (``pip install "cxrkit[dicom-codecs]"``) — JPEG 2000 lossless and JPEG
Lossless SV1 (written with python-gdcm). The files sit in the page cache, so this is the CPU cost: reading the
source disk is extra. Then projects hours on 2, 16 and 64 cores (linear per-core scaling assumed), the cache's disk
and the source volume to read, for MIMIC-CXR-JPG and CheXpert at ``--size``, from the films per CPU-second.

    python benchmarks/prep_throughput.py [--films 24 --workers 2 --size 224] [--out benchmarks/results/prep_throughput.md]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import io
import os
import platform
import resource
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from cxrkit.cache import build_image_cache
from cxrkit.io.images import read_image, to_uint8

#: (films, source bytes to read, where the figure comes from) of the datasets projected.
DATASETS: dict[str, tuple[int, float, str, str]] = {
    "MIMIC-CXR-JPG v2": (377_110, 557.6e9, "mimic-jpg", "557.6 GB (PhysioNet, as quoted in issue 20)"),
    "CheXpert v1.0": (224_316, 439e9, "chexpert-jpg", "~439 GB full-size release as published by Stanford (check)"),
}
MIMIC_JPEG_BYTES = 557.6e9 / 377_110  # the published mean size of a MIMIC-CXR-JPG film
CORES = (2, 16, 64)
READ_RATE = 500e6  # bytes/s of the source disk assumed for the I/O floor


def _field(height: int, width: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A smooth random film in [0, 1] with two darker lung fields and Gaussian noise of SD ``noise``."""
    low = rng.random((40, 32)).astype(np.float32)
    img = np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    lungs = sum(np.exp(-(((xx - width * cx) / (width * 0.15)) ** 2 + ((yy - height * 0.45) / (height * 0.25)) ** 2))
                for cx in (0.3, 0.7))
    img = 0.5 * img + 0.5 * (1.0 - 0.8 * lungs) + rng.normal(0.0, noise, (height, width)).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def _jpeg_bytes(film: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.rint(film * 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _noise_for(height: int, width: int, quality: int) -> float:
    """The noise SD whose JPEG has MIMIC-CXR-JPG's mean bits per pixel (one trial film per candidate)."""
    target = MIMIC_JPEG_BYTES / (2544 * 3056) * height * width
    trials = {n: len(_jpeg_bytes(_field(height, width, np.random.default_rng(99), n), quality))
              for n in (0.002, 0.004, 0.006, 0.008, 0.010)}
    return min(trials, key=lambda n: abs(trials[n] - target))


def _write_jpegs(folder: Path, n: int, height: int, width: int, quality: int = 95) -> list[Path]:
    noise, rng, paths = _noise_for(height, width, quality), np.random.default_rng(0), []
    for i in range(n):
        path = folder / f"film{i:03d}.jpg"
        path.write_bytes(_jpeg_bytes(_field(height, width, rng, noise), quality))
        paths.append(path)
    return paths


def _dicom(values: np.ndarray):
    """A DX dataset holding 12-bit ``values`` as MIMIC-CXR's DICOMs do (MONOCHROME1, a window in the header)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid(), "DX"
    ds.set_pixel_data(values, "MONOCHROME1", 16)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    return ds


def _write_dicoms(folder: Path, n: int, compress: Callable | None) -> list[Path]:
    rng, paths = np.random.default_rng(0), []
    for i in range(n):
        values = np.rint(_field(3056, 2544, rng, 0.006) * 4095).astype(np.uint16)
        ds = _dicom(values)
        path = folder / f"film{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        if compress is not None:
            compress(ds, values, path)
        paths.append(path)
    return paths


def _j2k(ds, values: np.ndarray, path: Path) -> None:
    from pydicom.uid import JPEG2000Lossless

    ds.compress(JPEG2000Lossless, values)
    ds.save_as(path, enforce_file_format=True)


def _jpeg_lossless(ds, values: np.ndarray, path: Path) -> None:
    import gdcm  # python-gdcm, part of the dicom-codecs extra

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise RuntimeError(f"gdcm cannot read {path}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"gdcm cannot compress {path}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"gdcm cannot write {path}")


def _codec_ready(uid: str) -> str | None:
    """None when pydicom can decode ``uid`` here, else why the format is skipped."""
    from pydicom.pixels import get_decoder

    return None if get_decoder(uid).is_available else "no decoder installed (pip install \"cxrkit[dicom-codecs]\")"


def _plugins(uid: str) -> str:
    """The decoder plugins pydicom has for ``uid`` here, in the order it tries them."""
    from pydicom.pixels import get_decoder

    return "/".join(get_decoder(uid).available_plugins) or "no decoder installed"


def _formats(folder: Path, n: int) -> dict[str, tuple[str, Callable[[], list[Path]] | str]]:
    """Format key → (description, a writer of its films or the reason it is skipped)."""
    from pydicom.pixels import get_encoder
    from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1

    def sub(name: str) -> Path:
        (folder / name).mkdir(parents=True, exist_ok=True)
        return folder / name

    formats: dict[str, tuple[str, Callable[[], list[Path]] | str]] = {
        "mimic-jpg": ("MIMIC-CXR-JPG: 2544×3056 8-bit JPEG q95", lambda: _write_jpegs(sub("mimic-jpg"), n, 3056, 2544)),
        "chexpert-jpg": ("CheXpert: 2320×2828 8-bit JPEG q95", lambda: _write_jpegs(sub("chexpert-jpg"), n, 2828, 2320)),
        "mimic-dcm": ("MIMIC-CXR DICOM: 2544×3056 16/12-bit, uncompressed",
                      lambda: _write_dicoms(sub("mimic-dcm"), n, None)),
    }
    j2k = _codec_ready(JPEG2000Lossless) or (None if get_encoder(JPEG2000Lossless).is_available else
                                             "no JPEG 2000 encoder installed (pylibjpeg-openjpeg)")
    formats["mimic-dcm-j2k"] = (f"MIMIC-CXR DICOM: 2544×3056 16/12-bit, JPEG 2000 lossless ({_plugins(JPEG2000Lossless)})",
                                j2k or (lambda: _write_dicoms(sub("mimic-dcm-j2k"), n, _j2k)))
    lossless = (_codec_ready(JPEGLosslessSV1) if importlib.util.find_spec("gdcm") is not None
                else "python-gdcm not installed (needed here to write the films)")
    formats["mimic-dcm-jpegll"] = (f"MIMIC-CXR DICOM: 2544×3056 16/12-bit, JPEG Lossless SV1 ({_plugins(JPEGLosslessSV1)})",
                                   lossless or (lambda: _write_dicoms(sub("mimic-dcm-jpegll"), n, _jpeg_lossless)))
    return formats


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and by its children that have ended (the cache's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _one_worker(paths: list[Path], size: int) -> tuple[float, float]:
    """(films per wall second, films per CPU second) of the cache worker's per-film call here, after a warm-up film."""
    to_uint8(read_image(paths[0], size))
    start, cpu = time.perf_counter(), _cpu_seconds()
    for path in paths:
        to_uint8(read_image(path, size))
    return len(paths) / (time.perf_counter() - start), len(paths) / (_cpu_seconds() - cpu)


def _end_to_end(paths: list[Path], size: int, workers: int, folder: Path, single: float,
                seconds: float) -> tuple[float, float]:
    """(films per wall second, films per CPU second of all processes) of build_image_cache with ``workers`` processes
    (spawn included), each film listed often enough for about ``seconds`` of decoding at the one-worker rate
    ``single``, so the pool's start-up is amortised."""
    repeats = max(2, int(np.ceil(seconds * single * workers / len(paths))))
    listed = [str(p) for p in paths] * repeats
    table = pd.DataFrame({"image_id": [f"f{i}" for i in range(len(listed))], "image_path": listed})
    start, cpu = time.perf_counter(), _cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build_image_cache(table, folder, size=size, workers=workers, chunk=8, progress=False)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if len(built.quarantine):
        raise RuntimeError(f"the benchmark's films were quarantined: {built.quarantine['reason'].iloc[0]}")
    return len(listed) / seconds, len(listed) / cpu


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def _hours(films: int, per_core: float, cores: int) -> str:
    hours = films / (per_core * cores) / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--films", type=int, default=24, help="films written per format")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="measurements per format (the median is shown)")
    parser.add_argument("--seconds", type=float, default=20.0, help="rough length of each end-to-end build")
    parser.add_argument("--out", default=None, help="also append the markdown here")
    args = parser.parse_args(argv)
    load_before = _load()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, (label, writer) in _formats(Path(tmp), args.films).items():
            if isinstance(writer, str):
                rows.append({"format": key, "label": label, "skipped": writer})
                continue
            paths = writer()
            mean_mb = float(np.mean([p.stat().st_size for p in paths])) / 1e6
            runs = []
            for repeat in range(args.repeats):
                single, single_cpu = _one_worker(paths, args.size)
                runs.append((single, single_cpu, *_end_to_end(paths, args.size, args.workers,
                                                               Path(tmp) / f"cache-{key}-{repeat}", single,
                                                               args.seconds)))
            single, single_cpu, e2e, e2e_cpu = np.median(np.array(runs), axis=0).tolist()
            spread = np.array(runs)[:, 3]
            rows.append({"format": key, "label": label, "mb": mean_mb, "single": single, "single_cpu": single_cpu,
                         "e2e": e2e, "e2e_per_core": e2e / args.workers, "e2e_cpu": e2e_cpu,
                         "e2e_cpu_range": (float(spread.min()), float(spread.max()))})
            print(f"{key}: 1 worker {single:.2f} films/s ({single_cpu:.2f} per CPU-s); {args.workers} workers "
                  f"{e2e:.2f} films/s ({e2e / args.workers:.2f} per core, {e2e_cpu:.2f} per CPU-s); "
                  f"{mean_mb:.2f} MB/film", flush=True)
    load_after = _load()

    film_bytes = args.size * args.size
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {stamp} — {os.cpu_count()}-core \"{_cpu_model()}\", {args.films} films per format at "
             f"{args.size} px", "",
             f"Command: `python benchmarks/prep_throughput.py --films {args.films} --workers {args.workers} "
             f"--size {args.size} --repeats {args.repeats}` (medians of {args.repeats}); load average (1, 5, 15 min) {load_before} before, {load_after} after.", "",
             f"| format | file size | 1 worker: films/s (per CPU-second) | build_image_cache, {args.workers} "
             "workers: films/s | per core (wall) | per CPU-second (range) |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['label']} | — | skipped: {r['skipped']} | | | |")
        else:
            lines.append(f"| {r['label']} | {r['mb']:.2f} MB | {r['single']:.2f} ({r['single_cpu']:.2f}) | "
                         f"{r['e2e']:.2f} | {r['e2e_per_core']:.2f} | **{r['e2e_cpu']:.2f}** "
                         f"({r['e2e_cpu_range'][0]:.2f}–{r['e2e_cpu_range'][1]:.2f}) |")
    rate = {r["format"]: r["e2e_cpu"] for r in rows if "skipped" not in r}
    lines += ["", f"Projection at {args.size} px from the end-to-end films per CPU-second (all processes' CPU time, so "
              "other jobs on a shared machine do not lower it), **assuming linear scaling over dedicated cores** "
              "(true only while the source disk keeps up: the last column is the read rate that needs):", "",
              "| dataset | films | " + " | ".join(f"{c} cores" for c in CORES) +
              " | cache on disk | source to read | read rate at 64 cores |",
              "|---|---|" + "---|" * len(CORES) + "---|---|---|"]
    for name, (films, source, key, where) in DATASETS.items():
        if key not in rate:
            continue
        cache_gb = films * film_bytes / 1e9
        index_mb = films * 200 / 1e6  # index.csv + sources.csv: an id, a ~100-character path, sizes: ~200 B/film
        read_rate = rate[key] * 64 * source / films / 1e6
        lines.append(f"| {name} | {films:,} | " + " | ".join(_hours(films, rate[key], c) for c in CORES) +
                     f" | {cache_gb:.1f} GB (+ ~{index_mb:.0f} MB index) | {where} | {read_rate:.0f} MB/s |")
    floor = ", ".join(f"{name} {source / READ_RATE / 3600:.1f} h" for name, (_, source, key, _) in DATASETS.items()
                      if key in rate)
    lines += ["", f"Reading the source alone at {READ_RATE / 1e6:.0f} MB/s (a fast local SSD; network storage is often "
              f"slower) takes {floor}: past a few dozen cores the disk, not the decoder, sets the time. The build "
              "needs the cache's size once more while it runs (`images.npy.tmp`) only when films are quarantined "
              "(the kept rows are streamed into the final file); otherwise the temporary file is renamed."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")
    return {"rows": rows, "load": (load_before, load_after)}


if __name__ == "__main__":
    main()
