"""Benchmark: generate the class-profile synthetic cohort and report wall time, size on disk and ms per film.

Usage: python benchmarks/synth_class_cohort.py [--out DIR] [--workers N] [--patients N] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from cxrkit.profiles import get_profile
from cxrkit.synth import SynthParams, generate_cohort


def main() -> None:
    """Generate the cohort and print the measured figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    profile = get_profile("class")
    if args.patients:
        profile["patients"] = args.patients
    params = SynthParams.from_profile(profile)
    out = args.out or Path(tempfile.mkdtemp(prefix="cxrkit-synth-bench-"))
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    cpu0 = os.times()
    generate_cohort(out, params, workers=args.workers, progress=False)
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    films = list((out / "files").rglob("*.dcm"))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    dcm = sum(p.stat().st_size for p in films)
    masks = sum(p.stat().st_size for p in (out / "truth" / "masks").iterdir())
    child_cpu = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
    own_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    print(f"patients={params.patients} films={len(films)} workers={args.workers or os.cpu_count()}")
    print(f"wall={wall:.1f}s  cpu={child_cpu + own_cpu:.1f}s  cpu-ms/film={(child_cpu + own_cpu) / len(films) * 1000:.1f}")
    print(f"size total={total / 1e6:.1f} MB  dicom={dcm / 1e6:.1f} MB ({dcm / len(films) / 1024:.1f} KiB/film)  "
          f"masks={masks / 1e6:.1f} MB")
    print(f"loadavg before={load0}  after={os.getloadavg()}")
    if not args.keep and args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
