"""Notebook 07's GLoRIA-style local term, measured beside the global-only alignment model on the class cohort.

Both models share everything the prototype (benchmarks/alignment_prototype.py) fixed: notebook 02's CNN trunk, frozen
MiniLM impression vectors, the kit's ``fit`` on the training films for ``--epochs`` under a one-cycle schedule
(lr 2e-3, batches of 64), chosen by validation loss. The local model (:mod:`cxrkit.models.local_alignment`) adds
the impressions' word pieces (frozen MiniLM table, a trainable projection), the last feature map pooled to 8×8
regions, and GLoRIA's word→region attention loss (weight 1, γ = 4, 5, 10). On the test films:

* train seconds and seconds per epoch (fit's own per-epoch timing: training batches, the loss over all training
  rows, the validation loss over the whole validation set);
* zero-shot AUROC per finding (prompt pair "x" / "no x"): the global score for both models, and for the local model
  also its local score and the sum of both logits;
* film → report retrieval test→test (the query's patient excluded), k = 5, beside the chance report;
* grounding: on the test films whose synthetic truth mask holds Pleural Effusion, the pointing game of the phrase
  "pleural effusion"'s mean word attention (8×8, upsampled to the film) against the mask, beside the same model
  untrained, a random map, a centre-bias map and the training films' mean effusion mask (where effusions usually
  are: a fixed map that needs no film), notebook 05's protocol, tolerance 3% of the side.

    python benchmarks/local_alignment.py [--epochs 10] [--seed 0] [--max-words 64]
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from cxrkit.explain.pointing import pointing_rows
from cxrkit.explain.truth import centre_bias_map, random_map, resize_mask
from cxrkit.ground_truth import films_with_finding
from cxrkit.labels import MODEL_LABELS, evaluation_targets
from cxrkit.models.alignment import AlignmentModel, contrastive_loss, pair_probabilities
from cxrkit.models.local_alignment import LocalAlignmentModel, non_word_ids, phrase_map
from cxrkit.prep import prepare, resolve_dataset
from cxrkit.profiles import use_profile
from cxrkit.recipes.image import new_image_model
from cxrkit.retrieval import (binary_relevance, chance_report, cosine_scores, exclusion_mask, jaccard_relevance,
                              retrieval_report)
from cxrkit.sentence_embeddings import embed_sentences, sentence_embeddings
from cxrkit.text.pretrained import encode_wordpieces, load_pretrained_tokenizer, pretrained_embedding_matrix
from cxrkit.text.sources import report_text
from cxrkit.train import BatchLoader, TensorDictDataset, fit
from cxrkit.zero_shot import prompt_pairs, zero_shot_probabilities

FINDINGS = ["Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion", "Consolidation"]
K = 5


def _split(prepared, vectors, tokenizer, max_words: int, split: str, words: bool):
    rows, films = prepared.subset(split)
    inputs = {"images": torch.from_numpy(films).unsqueeze(1).float().div(255),
              "text_vectors": torch.from_numpy(vectors.on(rows))}
    if words:
        inputs.update(encode_wordpieces(tokenizer, report_text(rows, ("impression",)), max_words))
    return rows, TensorDictDataset(inputs, np.zeros((len(rows), 1), np.float32))


def _aurocs(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    out = {}
    for j, f in enumerate(FINDINGS):
        known = ~np.isnan(y[:, j])
        out[f] = roc_auc_score(y[known, j], p[known, j])
    return out


@torch.no_grad()
def _local_zero_shot(model: LocalAlignmentModel, images: torch.Tensor, tokenizer, pairs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot probabilities from the local logits, and from the sum of the global and local logits."""
    texts = [t for pair in pairs.values() for t in pair]
    enc = encode_wordpieces(tokenizer, texts, model.max_words)
    local = model.local_similarity(images, enc["input_ids"], enc["attention_mask"])
    both = local + model.similarity(images, torch.as_tensor(np.asarray(embed_sentences(texts)), dtype=torch.float32))
    return (pair_probabilities(local[:, 0::2], local[:, 1::2]).numpy(),
            pair_probabilities(both[:, 0::2], both[:, 1::2]).numpy())


@torch.no_grad()
def _pointing(models: dict, root, rows: pd.DataFrame, films: np.ndarray, train_rows: pd.DataFrame, tokenizer,
              max_words: int, seed: int) -> pd.DataFrame:
    found = films_with_finding(root, rows, "Pleural Effusion")
    idx = np.array([i for i, _ in found])
    size = films.shape[1:]
    masks = np.stack([resize_mask(m, size) for _, m in found])
    x = torch.as_tensor(films[idx], dtype=torch.float32)[:, None].div(255)
    enc = encode_wordpieces(tokenizer, ["pleural effusion"], max_words)
    maps = {}
    for name, model in models.items():
        model.eval()
        stack = [F.interpolate(phrase_map(model, xi, enc["input_ids"][0], enc["attention_mask"][0])[None, None],
                               size=size, mode="bilinear", align_corners=False)[0, 0] for xi in x]
        maps[name] = torch.stack(stack).numpy()
    rng = np.random.default_rng(seed)
    maps["random map"] = np.stack([random_map(size, rng) for _ in idx])
    maps["centre bias"] = np.repeat(centre_bias_map(size)[None], len(idx), axis=0)
    # where effusions usually are: the mean effusion mask of the training films, one fixed map for every test film
    prior = np.mean([resize_mask(m, size) for _, m in films_with_finding(root, train_rows, "Pleural Effusion")], axis=0)
    maps["training-mask prior"] = np.repeat(prior[None], len(idx), axis=0)
    return pointing_rows(maps, masks, "Pleural Effusion")


def run(P: dict, epochs: int, kind: str, max_words: int, shared: dict) -> dict:
    prepared, vectors, tokenizer = shared["prepared"], shared["vectors"], shared["tokenizer"]
    local = kind == "local"
    _, train = _split(prepared, vectors, tokenizer, max_words, "train", local)
    _, val = _split(prepared, vectors, tokenizer, max_words, "validate", local)
    test_rows, test = _split(prepared, vectors, tokenizer, max_words, "test", True)
    torch.manual_seed(P["seed"])
    image_model = new_image_model(P, num_outputs=1)
    if local:
        model = LocalAlignmentModel(image_model, shared["table"], text_dim=vectors.vectors.shape[1], grid=8,
                                    max_words=max_words, skip_ids=non_word_ids(tokenizer))
        loss = model.loss(weight=1.0)
        untrained = copy.deepcopy(model)
    else:
        model, loss = AlignmentModel(image_model, text_dim=vectors.vectors.shape[1]), contrastive_loss
    start = time.perf_counter()
    history = fit(model, BatchLoader(train, batch_size=64, shuffle=True, seed=P["seed"], drop_last=True),
                  BatchLoader(val, batch_size=256), epochs=epochs, lr=2e-3, loss=loss, monitor="val_loss",
                  schedule="onecycle", early_stopping_patience=None, progress=False, seed=P["seed"])
    seconds = time.perf_counter() - start
    model.eval()
    y = evaluation_targets(test_rows, FINDINGS)
    images = test.inputs["images"]
    pairs = prompt_pairs(FINDINGS)
    zero_shot = {"global": _aurocs(y, zero_shot_probabilities(model, images, pairs, embed_sentences))}
    with torch.no_grad():
        films, reports = model.encode_images(images).numpy(), model.encode_texts(test.inputs["text_vectors"]).numpy()
    labels = np.nan_to_num(evaluation_targets(test_rows, [m for m in MODEL_LABELS if m != "No Finding"]))
    exclude = exclusion_mask(test_rows["image_id"], test_rows["subject_id"], test_rows["image_id"], test_rows["subject_id"])
    rel, graded = binary_relevance(labels, labels), jaccard_relevance(labels, labels)
    global_scores = cosine_scores(films, reports)
    retrieval = {"global": retrieval_report(global_scores, rel, graded, K, exclude)}
    out = {"seconds": seconds, "epoch_seconds": float(history.table["seconds"].mean()),
           "best_epoch": history.best_epoch, "val_loss": float(history.table["val_loss"].min()),
           "zero_shot": zero_shot, "retrieval": retrieval,
           "chance": chance_report(rel, graded, K, exclude, n_permutations=50)}
    if local:
        p_local, p_both = _local_zero_shot(model, images, tokenizer, pairs)
        zero_shot["local"], zero_shot["global + local"] = _aurocs(y, p_local), _aurocs(y, p_both)
        with torch.no_grad():
            local_logits = model.local_similarity(images, test.inputs["input_ids"], test.inputs["attention_mask"])
            glob_logits = model.similarity(images, test.inputs["text_vectors"])
            # the cost of one whole-set local loss, as fit computes it over all training rows after each epoch
            train_out = torch.cat([model(**{k: v[i:i + 256] for k, v in train.inputs.items()})
                                   for i in range(0, len(train), 256)])
            t0 = time.perf_counter()
            loss(train_out)
            out["whole_train_loss_seconds"] = time.perf_counter() - t0
            val_out = model(**val.inputs)
            out["val_global_loss"] = float(contrastive_loss(val_out[:, :2 * model.dim + 1]))
        retrieval["local"] = retrieval_report(local_logits.numpy().astype(float), rel, graded, K, exclude)
        retrieval["global + local"] = retrieval_report((local_logits + glob_logits).numpy().astype(float), rel,
                                                       graded, K, exclude)
        test_all, test_films = prepared.subset("test")
        out["pointing"] = _pointing({"word attention, trained": model, "word attention, untrained": untrained},
                                    resolve_dataset(P)[1], test_all, test_films, prepared.subset("train")[0],
                                    tokenizer, max_words, P["seed"])
        out["real_words"] = float(model.word_mask(train.inputs["input_ids"], train.inputs["attention_mask"])
                                  .sum(1).float().mean())
        out["truncated"] = float((train.inputs["attention_mask"][:, -1] == 1).float().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-words", type=int, default=64)
    args = ap.parse_args()
    P = {**use_profile("class"), "seed": args.seed}
    prepared = prepare(P, progress=False)
    shared = {"prepared": prepared, "vectors": sentence_embeddings(prepared.table, ("impression",), progress=False),
              "tokenizer": load_pretrained_tokenizer(), "table": pretrained_embedding_matrix()}
    load = os.getloadavg()[0]
    results = {kind: run(P, args.epochs, kind, args.max_words, shared) for kind in ("global", "local")}
    g, loc = results["global"], results["local"]
    print(f"class cohort, seed {args.seed}, {args.epochs} epochs, impressions, max_words {args.max_words}, "
          f"{torch.get_num_threads()} threads, load average at start {load:.2f}, after {os.getloadavg()[0]:.2f}\n")
    print("| cost | global-only | global + local |\n|---|---:|---:|")
    print(f"| train seconds ({args.epochs} epochs) | {g['seconds']:.0f} | {loc['seconds']:.0f} |")
    print(f"| seconds per epoch (fit's own timing) | {g['epoch_seconds']:.1f} | {loc['epoch_seconds']:.1f} "
          f"(× {loc['epoch_seconds'] / g['epoch_seconds']:.2f}) |")
    print(f"| best epoch | {g['best_epoch']} | {loc['best_epoch']} |")
    print(f"| validation loss (best) | {g['val_loss']:.3f} | {loc['val_loss']:.3f} (global term "
          f"{loc['val_global_loss']:.3f}) |")
    print(f"\nlocal: one whole-training-set local loss ({len(prepared.subset('train')[0])} rows) "
          f"{loc['whole_train_loss_seconds']:.1f} s; real words per impression {loc['real_words']:.1f}; "
          f"impressions truncated at max_words {loc['truncated']:.1%}\n")
    columns = [("global-only", g["zero_shot"]["global"]), ("local model: global score", loc["zero_shot"]["global"]),
               ("local model: local score", loc["zero_shot"]["local"]),
               ("local model: global + local", loc["zero_shot"]["global + local"])]
    print("| zero-shot AUROC | " + " | ".join(n for n, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for f in FINDINGS:
        print(f"| {f} | " + " | ".join(f"{c[f]:.3f}" for _, c in columns) + " |")
    print("| mean | " + " | ".join(f"{np.mean(list(c.values())):.3f}" for _, c in columns) + " |")
    columns = [("global-only", g["retrieval"]["global"]), ("local model: global", loc["retrieval"]["global"]),
               ("local model: local", loc["retrieval"]["local"]),
               ("local model: global + local", loc["retrieval"]["global + local"]), ("chance", g["chance"])]
    print(f"\n| film → report retrieval, test→test, k = {K} | " + " | ".join(n for n, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for m in ("P@k", "mAP", "MRR", "nDCG@k"):
        print(f"| {m.replace('k', str(K)) if m != 'mAP' else m} | " + " | ".join(f"{c[m]:.3f}" for _, c in columns) + " |")
    r = g["retrieval"]["global"]
    print(f"\nqueries scored {r['queries_scored']}, skipped (no shared finding in the gallery) {r['queries_skipped']}")
    rows = loc["pointing"]
    summary = rows.groupby("method", sort=False).agg(films=("hit", "size"), hit_rate=("hit", "mean"),
                                                     mass_inside=("mass_inside", "mean"), mask_share=("mask_share", "mean"))
    print("\n| pointing game, \"pleural effusion\" on test films with an effusion mask | films | hit rate | mass inside | "
          "mask share |\n|---|---:|---:|---:|---:|")
    for method, s in summary.iterrows():
        print(f"| {method} | {s['films']:.0f} | {s['hit_rate']:.2f} | {s['mass_inside']:.2f} | {s['mask_share']:.2f} |")


if __name__ == "__main__":
    main()
