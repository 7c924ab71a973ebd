"""Time integrated gradients per film with the class profile's small CNN (target: under 0.5 s per film on a laptop CPU).

Run: ``python benchmarks/ig_speed.py [--steps 32] [--films 32] [--repeat 3]``. Loads (or trains) notebook
02's model, then times :func:`cxrkit.explain.integrated_gradients` on test films for several films-per-call
batch sizes, with and without captum's completeness delta, and prints the median seconds per film.
The load average is printed too: on a shared 2-core machine, other jobs inflate the figure.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from cxrkit.explain import integrated_gradients
from cxrkit.prep import prepare
from cxrkit.profiles import use_profile
from cxrkit.recipes.image import trained_image_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--films", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    P = use_profile("class")
    prepared = prepare(P, progress=False)  # noqa: the cache exists after notebook 01
    model = trained_image_model(P, prepared, progress=False).model.eval()
    _, films = prepared.subset("test")
    x_all = torch.from_numpy(films[: args.films]).float().div(255)[:, None]
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, {args.steps} steps, "
          f"{len(x_all)} films, {tuple(x_all.shape[-2:])} pixels")
    integrated_gradients(model, x_all[:2], 0, steps=args.steps, return_delta=False)  # warm-up
    for batch in (1, 8, 32):
        for delta in (False, True):
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                for s in range(0, len(x_all), batch):
                    integrated_gradients(model, x_all[s:s + batch], 0, steps=args.steps, return_delta=delta)
                runs.append((time.perf_counter() - start) / len(x_all))
            print(f"films per call {batch:>2}, completeness delta {'on ' if delta else 'off'}: "
                  f"{np.median(runs):.3f} s per film (median of {args.repeat})")


if __name__ == "__main__":
    main()
