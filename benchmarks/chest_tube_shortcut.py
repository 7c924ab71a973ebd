"""Does the chest-tube shortcut show under a tube rule? Notebook 02's audit on cohorts made with other tube rules.

A rule is three :class:`cxrkit.synth.SynthParams` fields written ``on/after/drained``: the chance of a drain on a
pneumothorax film itself (``chest_tube_on_ptx``), on the film after one (``chest_tube_after_ptx``), and the factor
a drained pneumothorax's size is multiplied by (``drained_ptx_severity``). Per rule the class cohort is generated
with it (kept under ``CXRKIT_HOME/cohorts/``), prepared, and the class recipe trained per seed with the kit's own
steps (``image_loaders`` → ``new_image_model`` → ``fit(**image_fit_settings(P))``); on the test films it reports
what notebook 02's section 9 does: pneumothorax AUROC with a tube and without one (each against all negatives,
with the number of positives), and, among films without a pneumothorax, the AUROC of the pneumothorax score for
"has a tube". The kit's rule is ``0.6/0.9/1.0`` (``benchmarks/results/chest_tube_shortcut.md``).

    python benchmarks/chest_tube_shortcut.py [--variants 0.6/0.9/1.0,0/0.85/0.5] [--seeds 0-2] [--epochs N] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cxrkit.labels import evaluation_targets
from cxrkit.metrics import macro_auroc
from cxrkit.paths import artifact_dir
from cxrkit.prep import prepare
from cxrkit.profiles import get_profile
from cxrkit.recipes.image import image_fit_settings, image_loaders, new_image_model
from cxrkit.spread import parse_seeds
from cxrkit.synth import SynthParams, generate_cohort, is_complete
from cxrkit.train import fit, predict
from image_recipe import markdown  # the benchmarks' table writer (this script runs from benchmarks/)

RULE_FIELDS = ("chest_tube_on_ptx", "chest_tube_after_ptx", "drained_ptx_severity")


def parse_rule(text: str) -> dict[str, float]:
    """``"0.6/0.9/1.0"`` → the three SynthParams fields of a tube rule."""
    parts = text.strip().split("/")
    if len(parts) != 3:
        raise SystemExit(f"error: a tube rule is on/after/drained, e.g. 0.6/0.9/1.0; got {text!r}")
    return dict(zip(RULE_FIELDS, (float(p) for p in parts)))


def cohort_with_rule(P: dict, rule: dict[str, float]) -> Path:
    """The class cohort generated with this tube rule (made once, then found under ``CXRKIT_HOME/cohorts/``)."""
    params = SynthParams.from_profile(P, **rule)
    out = artifact_dir("cohorts", params.to_dict())
    if not is_complete(out):
        generate_cohort(out, params, progress=False)
    return out


def tube_audit(root: Path, test_rows: pd.DataFrame, y_ptx: np.ndarray, p_ptx: np.ndarray) -> dict:
    """Notebook 02's audit: pneumothorax AUROC with and without a tube, and the tube's effect among negatives."""
    truth = pd.read_csv(root / "truth" / "images.csv", dtype={"dicom_id": str}).set_index("dicom_id")
    tube = test_rows["image_id"].astype(str).map(truth["has_chest_tube"]).fillna(0).to_numpy() == 1
    negatives = y_ptx == 0
    row = {}
    for name, count, positives in (("with tube", "tube positives", (y_ptx == 1) & tube),
                                   ("without tube", "tube-free positives", (y_ptx == 1) & ~tube)):
        films = positives | negatives
        row[count] = int(positives.sum())
        row[f"ptx AUROC {name}"] = round(macro_auroc(y_ptx[films], p_ptx[films]), 3) if positives.any() else np.nan
    row["gap"] = round(row["ptx AUROC with tube"] - row["ptx AUROC without tube"], 3)
    row["tube AUROC in negatives"] = round(macro_auroc(tube[negatives].astype(float), p_ptx[negatives]), 3)
    return row


def run(rule_text: str, seed: int, epochs: int | None) -> dict:
    """Train the class recipe on the cohort with this tube rule and audit it on the test films."""
    P = get_profile("class", seed=seed, **({"epochs": epochs} if epochs else {}))
    root = cohort_with_rule(P, parse_rule(rule_text))
    P = {**P, "data_root": str(root)}
    prepared = prepare(P, progress=False)
    loaders = image_loaders(P, prepared)
    model = new_image_model(P, num_outputs=len(loaders.labels))
    start = time.perf_counter()
    fit(model, loaders.train, loaders.validate, progress=False, **image_fit_settings(P))
    seconds = time.perf_counter() - start
    test_rows, _ = prepared.subset("test")
    y, p = evaluation_targets(test_rows, loaders.labels), predict(model, loaders.test)
    k = loaders.labels.index("Pneumothorax")
    return {"rule (on ptx / after ptx / drained size)": rule_text, "seed": seed, "epochs": P["epochs"],
            "train s": round(seconds), "test macro AUROC": round(macro_auroc(y, p), 3),
            **tube_audit(root, test_rows, y[:, k], p[:, k])}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="0.6/0.9/1.0", help="comma-separated tube rules on/after/drained")
    parser.add_argument("--seeds", default="0", help="training seeds: 0-2 or 0,3 (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the class profile's)")
    parser.add_argument("--out", default=None, help="write the table as markdown to this file")
    args = parser.parse_args(argv)
    rules, seeds = args.variants.split(","), parse_seeds(args.seeds)
    for rule in rules:
        parse_rule(rule)  # a bad rule fails before any training
    rows = []
    for rule in rules:
        for seed in seeds:
            rows.append(run(rule, seed, args.epochs))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    text = markdown(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return table


if __name__ == "__main__":
    main()
