"""Reports per second of the rule labeler (`cxrkit.labeler.label_reports`) on one core, MIMIC-style sentences.

Goal: >= 500 reports/s on a laptop core (a speed target belongs here, not in a timed unit test).

    python benchmarks/labeler_speed.py [--reports 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cxrkit.labeler import label_reports

SENTENCES = ["Moderate right pleural effusion.", "No pneumothorax.", "Cannot exclude early pneumonia.",
             "The cardiac and mediastinal silhouettes are stable.", "Endotracheal tube terminates 4 cm above the carina.",
             "No focal consolidation, effusion or pneumothorax.", "Mild pulmonary edema and vascular congestion.",
             "Left basilar opacity may reflect atelectasis, though infection cannot be excluded."]


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(SENTENCES, size=5)) for _ in range(args.reports)]
    label_reports(texts[:5], progress=False)  # warm-up: phrase lists compiled
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        label_reports(texts, progress=False)
        rates.append(len(texts) / (time.perf_counter() - start))
    best = max(rates)
    print(f"rule labeler: {best:.0f} reports/s (best of {args.repeats}; median {sorted(rates)[len(rates) // 2]:.0f}); "
          f"goal >= 500: {'met' if best >= 500 else 'MISSED'}")
    return best


if __name__ == "__main__":
    main()
