"""Time :func:`cxrkit.explain.localize` on 128×128 attribution maps (target: under 50 ms per map).

Run: ``python benchmarks/localize_speed.py [--size 128] [--repeat 20]``. Prints the median and the
worst wall time per map for each clustering method on three kinds of map: an IG-like map (two blobs
under heavy-tailed pixel noise) with the default threshold, the same with a loose quantile threshold
(30% of pixels survive), and a pathological map where every pixel survives.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cxrkit.explain.localize import CLUSTER_METHODS, localize


def ig_like_map(size: int, seed: int = 0) -> np.ndarray:
    """Return two Gaussian blobs times heavy-tailed (Laplace) pixel noise, like an IG map of a CNN."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    blobs = np.exp(-((yy - 0.25) ** 2 + (xx - 0.3) ** 2) / 0.004) + 0.8 * np.exp(-((yy - 0.7) ** 2 + (xx - 0.75) ** 2) / 0.006)
    return blobs * (1 + rng.laplace(0, 0.5, (size, size))) + rng.laplace(0, 0.05, (size, size))


def time_it(fn, repeat: int) -> tuple[float, float, int]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)), 1000 * float(np.max(times)), out.n_surviving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    ig = ig_like_map(args.size)
    cases = {
        "IG-like, defaults (smooth 1)": (ig, dict(smooth_sigma=1.0)),
        "IG-like, quantile 0.7": (ig, dict(threshold=0.7, threshold_mode="quantile")),
        "all pixels survive": (np.random.default_rng(1).random((args.size, args.size)), dict(threshold=0.0)),
    }
    print(f"localize on {args.size}x{args.size} maps, {args.repeat} runs each (median / max ms)")
    for label, (attr, kw) in cases.items():
        for method in CLUSTER_METHODS:
            med, worst, n = time_it(lambda: localize(attr, method=method, **kw), args.repeat)
            print(f"  {label:30s} {method:15s} survivors {n:6d}  {med:7.2f} / {worst:7.2f} ms")


if __name__ == "__main__":
    main()
