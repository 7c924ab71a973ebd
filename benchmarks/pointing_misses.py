"""Where the pointing game's misses land (issue 15): per focal finding and method, how far a missed maximum lies
from the truth mask, and on which side.

Notebook 05 counts a hit when a map's strongest pixel lies within 3 % of the side (3.84 px at 128) of the finding's
mask. A miss can be noise anywhere on the film, or evidence just beside the mask — at the edge a radiologist reads
(the heart's border for cardiomegaly, the collapsed lung's edge for a pneumothorax). This script tells the two
apart on one class-profile model: it loads the seed's course model (or trains it with the class recipe, about
4 minutes on 2 CPU cores), scores the same films as ``benchmarks/image_recipe.py`` (the first ``--films`` test
films per focal finding) and, for every miss, measures the distance from the maximum to the mask and the side of the
mask it lies on. A figure shows the films with their masks and each method's maximum.

    python benchmarks/pointing_misses.py [--seed 0] [--films 20] [--out FILE.md] [--figure FILE.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from cxrkit.explain.pointing import pointing_rows, pointing_tolerance_px  # noqa: E402
from cxrkit.prep import prepare, resolve_dataset  # noqa: E402
from cxrkit.profiles import get_profile  # noqa: E402
from cxrkit.recipes.image import image_loaders, trained_image_model  # noqa: E402
from image_recipe import FOCAL, METHODS, focal_films, markdown, method_maps  # noqa: E402  (runs from benchmarks/)


def maximum_side(r: float, c: float, mask: np.ndarray) -> str:
    """The side of ``mask``'s bounding box on which pixel (r, c) lies ("inside box" when within it), in image terms."""
    rows, cols = np.nonzero(mask)
    dy = r - rows.min() if r < rows.min() else r - rows.max() if r > rows.max() else 0
    dx = c - cols.min() if c < cols.min() else c - cols.max() if c > cols.max() else 0
    if dx == dy == 0:
        return "inside box"
    if abs(dx) >= abs(dy):
        return "image right" if dx > 0 else "image left"
    return "below" if dy > 0 else "above"


def miss_rows(maps: dict[str, np.ndarray], masks: np.ndarray, finding: str) -> pd.DataFrame:
    """The kit's pointing rows (hit, evidence, the maximum's position and distance), with the side of each maximum."""
    rows = pointing_rows(maps, masks, finding)
    rows["side"] = [maximum_side(r.row, r.col, masks[r.film]) if r.distance > 0 else "on mask"
                    for r in rows.itertuples()]
    return rows


def summary(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per finding and method: hit rate, misses, their median distance, shares within 2× and 3× the tolerance, commonest side."""
    out = []
    for (finding, method), group in table.groupby(["finding", "method"], sort=False):
        misses = group[~group["hit"] & ~group["no_evidence"]]
        sides = misses["side"].value_counts()
        out.append({"finding": finding, "method": method, "hit rate": round(group["hit"].mean(), 2),
                    "misses": len(misses), "no evidence": int(group["no_evidence"].sum()),
                    "miss median px": round(misses["distance"].median(), 1) if len(misses) else float("nan"),
                    "misses ≤ 2× tol": int((misses["distance"] <= 2 * tolerance).sum()),
                    "misses ≤ 3× tol": int((misses["distance"] <= 3 * tolerance).sum()),
                    "commonest side": f"{sides.index[0]} ({sides.iloc[0]})" if len(sides) else ""})
    return pd.DataFrame(out)


def figure(films: np.ndarray, masks: dict[str, np.ndarray], table: pd.DataFrame, path: Path, per_finding: int = 6) -> None:
    """Films per focal finding with the truth contour and each method's maximum (filled: hit, open: miss)."""
    markers = dict(zip(METHODS, ("o", "s", "^")))
    table = table.set_index(["finding", "method", "film"])
    fig, axes = plt.subplots(len(FOCAL), per_finding, figsize=(2.2 * per_finding, 2.3 * len(FOCAL)))
    for i, finding in enumerate(FOCAL):
        idx, mask = masks[finding]
        for j in range(per_finding):
            ax = axes[i, j]
            ax.imshow(films[idx[j]], cmap="gray")
            ax.contour(mask[j].astype(float), levels=[0.5], colors="red", linewidths=0.7)
            for method in METHODS:
                row = table.loc[(finding, method, j)]
                ax.plot(row["col"], row["row"], markers[method], ms=7, mec="cyan", mfc="cyan" if row["hit"] else "none",
                        label=method if (i, j) == (0, 0) else None)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(finding)
    fig.tight_layout()
    fig.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(METHODS), frameon=False,
               title="each method's strongest pixel (filled: within the tolerance of the red truth mask)")
    fig.savefig(path, dpi=60, bbox_inches="tight")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (0: the shipped course model)")
    parser.add_argument("--films", type=int, default=20, help="test films per focal finding")
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="write the summary as markdown to this file")
    parser.add_argument("--figure", type=Path, default=None, help="save the films with each method's maximum here")
    args = parser.parse_args(argv)
    P = get_profile("class", seed=args.seed)
    prepared = prepare(P, progress=False)
    _, root = resolve_dataset(P)
    built = trained_image_model(P, prepared, progress=True)
    labels = image_loaders(P, prepared).labels
    test_rows, test_films = prepared.subset("test")
    chosen = focal_films(test_rows, test_films, root, args.films)
    tolerance = pointing_tolerance_px(test_films.shape[1:])
    parts = []
    for finding, (idx, masks) in chosen.items():
        x = torch.as_tensor(test_films[idx], dtype=torch.float32)[:, None].div(255)
        maps = method_maps(built.model, x, labels.index(finding), args.ig_steps)
        parts.append(miss_rows(maps, masks.astype(bool), finding))
    table = pd.concat(parts, ignore_index=True)
    text = markdown(summary(table, tolerance))
    print(f"seed {args.seed} ({'loaded' if built.loaded else 'trained'}), tolerance {tolerance:.2f} px\n\n{text}")
    if args.out:
        args.out.write_text(text + "\n")
    if args.figure:
        figure(test_films, chosen, table, args.figure)
    return table


if __name__ == "__main__":
    main()
