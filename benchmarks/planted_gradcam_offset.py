"""Where the planted control's class-evidence map peaks, relative to the disc: the measurement behind notebook 05's
explanation of why Grad-CAM misses the planted disc on some seeds.

For each seed, the planted control model (loaded when saved, else trained: ~3 min on 2 CPU cores) is run on the first
``--films`` test films that carry the disc; the arg-max cell of ``model.last_conv``'s map (the 1×1 class-evidence
convolution Grad-CAM reads) is compared with the disc's centre. A consistent offset larger than the pointing game's
tolerance (4 px) plus the disc's radius (6–10 px) means Grad-CAM cannot hit the disc, although the model learned it.

    python benchmarks/planted_gradcam_offset.py [--seeds 0,4] [--films 20]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from cxrkit.prep import prepare
from cxrkit.profiles import use_profile
from cxrkit.recipes.controls import planted_control_model, planted_films


def offsets(seed: int, films: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, per film, the (row, column) offset in pixels of the class map's peak from the disc centre, and the map's value on the disc centre."""
    P = {**use_profile("class"), "seed": seed}
    prepared = prepare(P, progress=False)
    test = planted_films(P, prepared, "test")
    model = planted_control_model(P, prepared, progress=False).model
    carriers = test.positives[:films]
    x = torch.as_tensor(test.films[carriers], dtype=torch.float32)[:, None].div(255)
    seen: dict[str, torch.Tensor] = {}
    hook = model.last_conv.register_forward_hook(lambda _m, _i, out: seen.setdefault("map", out))
    with torch.no_grad():
        model(x)
    hook.remove()
    maps = seen["map"][:, 0].numpy()
    cell = x.shape[-1] / maps.shape[-1]
    shift, at_disc = [], []
    for m, j in zip(maps, carriers):
        rows, cols = np.nonzero(test.masks[j])
        r, c = np.unravel_index(int(m.argmax()), m.shape)
        shift.append(((r + 0.5) * cell - rows.mean(), (c + 0.5) * cell - cols.mean()))
        at_disc.append(m[int(rows.mean() // cell), int(cols.mean() // cell)])
    return np.array(shift), np.array(at_disc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,4")
    ap.add_argument("--films", type=int, default=20)
    args = ap.parse_args()
    print("| seed | films | peak − disc centre, rows (px) | columns (px) | median distance (px) | class map on the disc |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seed in (int(s) for s in args.seeds.split(",")):
        shift, at_disc = offsets(seed, args.films)
        print(f"| {seed} | {len(shift)} | {shift[:, 0].mean():+.1f} ± {shift[:, 0].std():.1f} | "
              f"{shift[:, 1].mean():+.1f} ± {shift[:, 1].std():.1f} | {np.median(np.hypot(*shift.T)):.1f} | "
              f"{np.median(at_disc):+.1f} (median) |")


if __name__ == "__main__":
    main()
