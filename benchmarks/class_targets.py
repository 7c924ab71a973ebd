"""Issue 15's "done when" targets judged on a recorded spread: per target, every seed's value, its worst and mean.

A verdict on one seed of one CPU is a coin toss when the target sits inside the seed-to-seed spread (the kit's
guide: design for spread, not for luck). So this script reads a spread's ``spread.json`` (``make spread
RECORD=reference/class``) and states each target twice: met on every seed, and met by the seeds' mean. The
best method is chosen per seed as notebook 05 does, by its pointing game averaged over the five focal findings.

    python benchmarks/class_targets.py [--spread reference/class/spread.json] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cxrkit.labels import label_slug

#: Issue 15's five focal findings, as notebook 05 names them in its metrics.
FOCAL_SLUGS = tuple(label_slug(finding) for finding in
                    ("Pleural Effusion", "Pneumothorax", "Lung Lesion", "Consolidation", "Cardiomegaly"))
BASELINE_MAPS = ("random", "centre_bias")
SANITY_METHODS = ("gradcam", "integrated_gradients")
PLANTED_PREFIX = "planted_pointing_game_"

#: A target: its name, the threshold, and the value a seed's metrics give (the target is met when value ≥ threshold).
Target = tuple[str, float, Callable[[dict], float]]


def seed_metrics(spread: dict) -> list[dict]:
    """One flat ``{metric: value}`` per seed of a spread's ``spread.json`` (notebook prefixes dropped)."""
    out = [{} for _ in spread["seeds"]]
    for metrics in spread["metrics"].values():
        for name, summary in metrics.items():
            for i, value in enumerate(summary["values"]):
                out[i][name] = value
    return out


def best_method(m: dict) -> str:
    """The method with the highest pointing game averaged over the focal findings (notebook 05's best method)."""
    methods = [k[len("pointing_game_"):] for k in m if k.startswith("pointing_game_")
               and not any(k.endswith("_" + s) for s in FOCAL_SLUGS) and k[len("pointing_game_"):] not in BASELINE_MAPS]
    return max(methods, key=lambda method: m[f"pointing_game_{method}"])


def planted_methods(m: dict) -> list[str]:
    """The methods notebook 05 scored on the planted disc, in its order, read from a seed's metrics."""
    methods = [k[len(PLANTED_PREFIX):] for k in m if k.startswith(PLANTED_PREFIX)]
    return [method for method in methods if method not in BASELINE_MAPS]


def sanity_passed(m: dict) -> float:
    """1.0 when neither Grad-CAM nor IG is among the methods notebook 05 recorded as failing a sanity check."""
    failed = {name.strip() for name in str(m.get("sanity_failed_methods", "")).split(",") if name.strip()}
    return float(not failed & set(SANITY_METHODS))


def targets(planted: list[str]) -> list[Target]:
    """Issue 15's targets, in its order, with a row per ``planted`` method; each value is compared with ``>=``."""
    out: list[Target] = [
        ("image test macro AUROC", 0.85, lambda m: m["image_test_macro_auroc"]),
        ("image AUROC − global-cue baseline", 0.08,
         lambda m: m["image_test_macro_auroc"] - m["image_global_cue_auroc"]),
        ("best method's pointing game (mean of 5)", 0.6, lambda m: m[f"pointing_game_{best_method(m)}"]),
    ]
    for slug in FOCAL_SLUGS:
        out.append((f"best method − centre bias: {slug.replace('_', ' ')}", 1e-9,
                    lambda m, s=slug: m[f"pointing_game_{best_method(m)}_{s}"] - m[f"pointing_game_centre_bias_{s}"]))
    out += [
        ("Grad-CAM and IG pass both sanity checks (1 = yes)", 1.0, sanity_passed),
        ("clustered IG test hit rate", 0.6, lambda m: m["loc_hit_rate"]),
        ("clustered IG hit rate − random regions", 0.4, lambda m: m["loc_hit_rate"] - m["loc_random_hit_rate"]),
        ("clustered IG region precision", 0.3, lambda m: m["loc_precision"]),
        ("chest-tube gap: pneumothorax AUROC with − without a tube", 0.05,
         lambda m: m["ptx_auroc_with_tube"] - m["ptx_auroc_without_tube"]),
        ("planted control test AUROC", 0.95, lambda m: m["planted_auroc"]),
    ]
    for method in planted:
        out.append((f"planted pointing game: {method.replace('_', ' ')}", 0.9,
                    lambda m, k=method: m[PLANTED_PREFIX + k]))
    out.append(("kit loop / bare loop (a timing: this CPU's, not compared by reproduce)", 0.95,
                lambda m: m["loop_speed_ratio"]))
    return out


def judge(spread: dict) -> pd.DataFrame:
    """A row per target: every seed's value, the worst and the mean, and whether each of the two meets the threshold."""
    per_seed = seed_metrics(spread)
    rows = []
    for name, threshold, value in targets(planted_methods(per_seed[0])):
        values = np.array([value(m) for m in per_seed], dtype=float)
        row = {"target": name, "threshold": f"≥ {threshold:g}" if threshold > 1e-6 else "> 0"}
        row.update({f"seed {s}": round(v, 3) for s, v in zip(spread["seeds"], values)})
        row.update({"worst": round(values.min(), 3), "mean": round(values.mean(), 3),
                    "seeds meeting it": f"{int((values >= threshold).sum())} of {len(values)}",
                    "every seed": "yes" if (values >= threshold).all() else "no",
                    "mean meets it": "yes" if values.mean() >= threshold else "no"})
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spread", type=Path, default=Path(__file__).parent.parent / "reference/class/spread.json")
    parser.add_argument("--out", type=Path, help="write the table here as markdown as well as printing it")
    args = parser.parse_args(argv)
    spread = json.loads(args.spread.read_text())
    env = spread.get("environment", {})
    table = judge(spread)
    head = (f"Issue 15's targets on `{args.spread}`: profile `{spread['profile']}`, seeds "
            f"{', '.join(map(str, spread['seeds']))}, recorded on {env.get('cpu_model', '?')} "
            f"({env.get('cpu_capability', '?')}, {env.get('threads', '?')} threads), commit "
            f"{str(env.get('git_commit', '?'))[:7]}.\n")
    text = head + "\n" + markdown(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
