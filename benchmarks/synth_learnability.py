"""Benchmark: can a small CNN at 128×128 learn the synthetic findings, and how well (difficulty calibration)?

Trains a 4-block CNN for a few epochs on a patient-disjoint 70/30 split of a generated cohort and prints
per-finding test AUROC (generator-truth labels). The teaching default should give roughly 0.65–0.9.
Usage: python benchmarks/synth_learnability.py COHORT_DIR [--epochs N] [--size 128]
"""
from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from cxrkit.labels import RENDERED_FINDINGS
from cxrkit.synth import display_array


def load(root: Path, size: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Return display images resized to ``size`` and the merged truth table."""
    images = pd.read_csv(root / "truth" / "images.csv")
    studies = pd.read_csv(root / "truth" / "studies.csv")
    table = images.merge(studies, on=["subject_id", "study_id", "view", "site"])
    xs = []
    for row in table.itertuples():
        pf = f"p{row.subject_id}"
        img = display_array(root / "files" / pf[:3] / pf / f"s{row.study_id}" / f"{row.dicom_id}.dcm")
        xs.append(np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)))
    return np.stack(xs).astype(np.float32) / 255.0, table


def model(k: int) -> nn.Module:
    """A small CNN: four conv blocks, global average pooling, one linear layer."""
    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 64), block(64, 96),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, k))


def main() -> None:
    """Train, evaluate and print per-finding AUROC."""
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    x, table = load(args.cohort, args.size)
    labels = list(RENDERED_FINDINGS)
    y = table[labels].to_numpy(np.float32)
    test = np.array([zlib.crc32(str(s).encode()) % 10 < 3 for s in table.subject_id])
    xt, yt = torch.from_numpy(x[~test, None]), torch.from_numpy(y[~test])
    xv, yv = torch.from_numpy(x[test, None]), y[test]
    print(f"loaded {len(x)} films in {time.perf_counter() - t0:.0f}s; train {len(xt)}, test {len(xv)}")
    net = model(len(labels))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    pos = yt.mean(0).clamp(0.02, 0.98)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            p = torch.cat([torch.sigmoid(net(xv[i : i + 256])) for i in range(0, len(xv), 256)]).numpy()
        aucs = {lab: roc_auc_score(yv[:, j], p[:, j]) for j, lab in enumerate(labels) if 0 < yv[:, j].sum() < len(yv)}
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  mean AUROC {np.mean(list(aucs.values())):.3f}  "
              f"({time.perf_counter() - t0:.0f}s)")
    for lab, a in aucs.items():
        print(f"  {lab:28s} {a:.3f}  (test positives {int(yv[:, labels.index(lab)].sum())})")


if __name__ == "__main__":
    main()
