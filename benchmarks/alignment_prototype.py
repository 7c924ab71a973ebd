"""A first measurement for notebook 07: align films and impressions on the class cohort and score zero-shot diagnosis
and case retrieval, beside the same model trained on shuffled film–report pairs (the measured chance level).

The alignment model (:mod:`cxrkit.models.alignment`: notebook 02's CNN trunk, a projection of frozen MiniLM impression
vectors, symmetric InfoNCE) is trained with the kit's ``fit`` on the training films only, for ``--epochs`` under a
one-cycle schedule, and chosen by validation loss. Then, on the test films:

* zero-shot AUROC per finding (prompt pair "x" / "no x", softmax over the pair), and with the prompts swapped;
* film → report retrieval, test→test (the query's patient excluded), binary relevance = a shared positive finding,
  Jaccard for nDCG@10, beside the chance report.

    python benchmarks/alignment_prototype.py [--epochs 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from cxrkit.labels import MODEL_LABELS, evaluation_targets
from cxrkit.models.alignment import AlignmentModel, contrastive_loss
from cxrkit.prep import prepare
from cxrkit.profiles import use_profile
from cxrkit.recipes.image import new_image_model
from cxrkit.retrieval import (binary_relevance, chance_report, cosine_scores, exclusion_mask, jaccard_relevance,
                              retrieval_report)
from cxrkit.sentence_embeddings import embed_sentences, sentence_embeddings
from cxrkit.train import BatchLoader, TensorDictDataset, fit
from cxrkit.zero_shot import prompt_pairs, zero_shot_probabilities

FINDINGS = ["Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion", "Consolidation", "Pneumothorax"]


def _split(prepared, vectors, split: str, shuffle_seed: int | None = None):
    rows, films = prepared.subset(split)
    text = vectors.on(rows)
    if shuffle_seed is not None:  # the control: each film paired with another film's report
        text = text[np.random.default_rng(shuffle_seed).permutation(len(text))]
    images = torch.from_numpy(films).unsqueeze(1).float().div(255)
    return rows, TensorDictDataset({"images": images, "text_vectors": torch.from_numpy(text)},
                                   np.zeros((len(rows), 1), np.float32))


def run(P: dict, epochs: int, shuffled: bool) -> dict:
    prepared = prepare(P, progress=False)
    vectors = sentence_embeddings(prepared.table, ("impression",), progress=False)
    _, train = _split(prepared, vectors, "train", P["seed"] if shuffled else None)
    _, val = _split(prepared, vectors, "validate", P["seed"] + 1 if shuffled else None)
    test_rows, test = _split(prepared, vectors, "test")
    torch.manual_seed(P["seed"])
    model = AlignmentModel(new_image_model(P, num_outputs=1), text_dim=vectors.vectors.shape[1])
    start = time.perf_counter()
    history = fit(model, BatchLoader(train, batch_size=64, shuffle=True, seed=P["seed"], drop_last=True),
                  BatchLoader(val, batch_size=256), epochs=epochs, lr=2e-3, loss=contrastive_loss, monitor="val_loss",
                  schedule="onecycle", early_stopping_patience=None, progress=False, seed=P["seed"])
    seconds = time.perf_counter() - start
    y = evaluation_targets(test_rows, FINDINGS)
    images = test.inputs["images"]
    pairs = prompt_pairs(FINDINGS)
    p = zero_shot_probabilities(model, images, pairs, embed_sentences)
    p_swapped = zero_shot_probabilities(model, images, {k: v[::-1] for k, v in pairs.items()}, embed_sentences)
    auroc = {}
    for j, f in enumerate(FINDINGS):
        known = ~np.isnan(y[:, j])
        auroc[f] = (roc_auc_score(y[known, j], p[known, j]), roc_auc_score(y[known, j], p_swapped[known, j]))
    with torch.no_grad():
        films, reports = model.encode_images(images).numpy(), model.encode_texts(test.inputs["text_vectors"]).numpy()
    labels = np.nan_to_num(evaluation_targets(test_rows, [m for m in MODEL_LABELS if m != "No Finding"]))
    exclude = exclusion_mask(test_rows["image_id"], test_rows["subject_id"], test_rows["image_id"], test_rows["subject_id"])
    rel, graded = binary_relevance(labels, labels), jaccard_relevance(labels, labels)
    scores = cosine_scores(films, reports)
    return {"seconds": seconds, "best_epoch": history.best_epoch, "val_loss": float(history.table["val_loss"].min()),
            "zero_shot": auroc, "retrieval": retrieval_report(scores, rel, graded, 10, exclude),
            "chance": chance_report(rel, graded, 10, exclude, n_permutations=50)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    P = {**use_profile("class"), "seed": args.seed}
    results = {name: run(P, args.epochs, name == "shuffled pairs") for name in ("aligned", "shuffled pairs")}
    print(f"class cohort, seed {args.seed}, {args.epochs} epochs, impressions, test films\n")
    print("| zero-shot AUROC (swapped prompts) | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for f in FINDINGS:
        print(f"| {f} | " + " | ".join(f"{r['zero_shot'][f][0]:.3f} ({r['zero_shot'][f][1]:.3f})" for r in results.values()) + " |")
    print("\n| film → report retrieval, test→test, k = 10 | " + " | ".join(results) + " | chance |")
    print("|---|" + "---:|" * (len(results) + 1))
    first = next(iter(results.values()))
    for m in ("P@k", "R@k", "mAP", "MRR", "nDCG@k"):
        print(f"| {m} | " + " | ".join(f"{r['retrieval'][m]:.3f}" for r in results.values()) + f" | {first['chance'][m]:.3f} |")
    print(f"\nqueries scored {first['retrieval']['queries_scored']}, skipped (no shared finding in the gallery) "
          f"{first['retrieval']['queries_skipped']}")
    for name, r in results.items():
        print(f"{name}: trained in {r['seconds']:.0f} s, best epoch {r['best_epoch']}, validation loss {r['val_loss']:.3f}")


if __name__ == "__main__":
    main()
