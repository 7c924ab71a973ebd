"""Grad-CAM's pointing game on the planted control, layer by layer and seed by seed (issue 15's planted target).

Notebook 05 reads Grad-CAM at ``model.last_conv`` — for the ``"lse"`` head, the 1×1 class-evidence convolution.
On some seeds that map peaks two cells away from the disc although the model learned it (test AUROC 1.00;
``benchmarks/planted_gradcam_offset.py``). This script asks whether an earlier layer, whose cells see less of the
film, keeps the disc in place: for each seed it loads (or trains, ~1.5 min on 2 CPU cores) the planted control and
scores Grad-CAM at each conv block with the kit's pointing game (tolerance 3 % of the side) on the first
``--films`` test films that carry the disc, beside vanilla gradients and integrated gradients as references.

    python benchmarks/planted_gradcam_layers.py [--seeds 0-4] [--films 20] [--control-epochs N] [--lr X] [--out benchmarks/results/planted_gradcam_layers.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from cxrkit.explain.pointing import pointing_tolerance_px
from cxrkit.explain.saliency import attribute
from cxrkit.explain.truth import pointing_game
from cxrkit.prep import prepare
from cxrkit.profiles import use_profile
from cxrkit.recipes.controls import planted_control_model, planted_films
from cxrkit.spread import parse_seeds

#: Grad-CAM layers of SmallCNN, from the class-evidence map back to the stem, with each cell's size at 128 px.
LAYERS = {"head (last_conv)": "head", "blocks.3": "blocks.3", "blocks.2": "blocks.2", "blocks.1": "blocks.1",
          "blocks.0": "blocks.0"}
#: Input-gradient methods, as references (they point at the disc on every recorded seed).
REFERENCES = ("vanilla_gradient", "integrated_gradients")


def hit_rates(seed: int, films: int, control_epochs: int | None = None,
              lr: float | None = None) -> tuple[dict[str, float], float]:
    """Pointing-game hit rate per layer and reference method on one seed's planted control, and its training/loading seconds."""
    P = {**use_profile("class"), "seed": seed}
    if control_epochs is not None:
        P["control_epochs"] = control_epochs
    if lr is not None:
        P["lr"] = lr
    prepared = prepare(P, progress=False)
    test = planted_films(P, prepared, "test")
    start = time.perf_counter()
    model = planted_control_model(P, prepared, progress=False).model
    seconds = time.perf_counter() - start
    carriers = test.positives[:films]
    x = torch.as_tensor(test.films[carriers], dtype=torch.float32)[:, None].div(255)
    tolerance = pointing_tolerance_px(x.shape[-2:])
    maps = {name: attribute("gradcam", model, x, 0, layer=layer) for name, layer in LAYERS.items()}
    maps["vanilla_gradient"] = attribute("vanilla_gradient", model, x, 0).abs()  # sign-free, as notebook 05
    maps["integrated_gradients"] = attribute("integrated_gradients", model, x, 0, baseline="black", steps=P["ig_steps"])
    rates = {name: float(np.mean([pointing_game(m[i].numpy(), test.masks[j], tolerance=tolerance)
                                  for i, j in enumerate(carriers)]))
             for name, m in maps.items()}
    return rates, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--films", type=int, default=20)
    ap.add_argument("--control-epochs", type=int, default=None, help="the planted control's epochs (default: the profile's)")
    ap.add_argument("--lr", type=float, default=None, help="the peak learning rate (default: the profile's)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = ap.parse_args()
    names = [*LAYERS, *REFERENCES]
    lines = ["| seed | " + " | ".join(names) + " | model s |", "|---:|" + "---:|" * (len(names) + 1)]
    for seed in parse_seeds(args.seeds):
        rates, seconds = hit_rates(seed, args.films, args.control_epochs, args.lr)
        lines.append(f"| {seed} | " + " | ".join(f"{rates[n]:.2f}" for n in names) + f" | {seconds:.0f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
