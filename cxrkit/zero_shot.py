"""Zero-shot diagnosis in the joint space, CheXzero style: a positive and a negative prompt per finding (notebook 07).

For finding *f*, a film's probability is the softmax over the pair of its scaled cosines with the prompt ``"f"`` and
with ``"no f"`` — no classifier is trained, only the film–report alignment. Two rules keep it honest:

* a **negative class** (``No Finding``) never goes through the ``"no {}"`` template: "no no finding" is not a sentence,
  and "no finding" is itself the negative of every finding, so the score would be inverted;
* swapping the two prompts turns each probability ``p`` into ``1 − p`` and the AUROC into ``1 − AUROC`` — the
  notebook checks it, so a reader can tell a working prompt pair from a reversed one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from cxrkit.models.alignment import AlignmentModel, pair_probabilities

__all__ = ["NEGATIVE_CLASSES", "prompt_pair", "prompt_pairs", "zero_shot_from_embeddings", "zero_shot_probabilities"]

#: Labels that are themselves the absence of findings: a "no {}" prompt would invert them.
NEGATIVE_CLASSES: frozenset[str] = frozenset({"No Finding"})


def prompt_pair(finding: str, positive: str = "{}", negative: str = "no {}") -> tuple[str, str]:
    """Return the (positive, negative) prompts of one finding, e.g. ("pleural effusion", "no pleural effusion") (notebook 07)."""
    if finding in NEGATIVE_CLASSES:
        raise ValueError(f"{finding!r} is a negative class: the prompt {negative.format(finding.lower())!r} would invert "
                         "its score; score it as the absence of the other findings instead")
    if "{}" not in positive or "{}" not in negative:
        raise ValueError(f"both templates need a '{{}}' for the finding, got {positive!r} and {negative!r}")
    name = finding.lower()
    return positive.format(name), negative.format(name)


def prompt_pairs(findings: Sequence[str], positive: str = "{}", negative: str = "no {}") -> dict[str, tuple[str, str]]:
    """Return :func:`prompt_pair` for each finding, in order (notebook 07)."""
    return {f: prompt_pair(f, positive, negative) for f in findings}


@torch.no_grad()
def zero_shot_from_embeddings(model: AlignmentModel, film_embeddings: np.ndarray | torch.Tensor,
                              pairs: dict[str, tuple[str, str]], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Return ``N × len(pairs)`` zero-shot probabilities from films already encoded (``model.encode_images``), so a notebook encodes each film once (notebook 07)."""
    films = torch.as_tensor(np.asarray(film_embeddings), dtype=torch.float32)
    if films.ndim != 2 or films.shape[1] != model.dim:
        raise ValueError(f"film_embeddings must be N × {model.dim} (model.encode_images), got {tuple(films.shape)}")
    texts = [t for pair in pairs.values() for t in pair]
    model.eval()
    device = model.log_scale.device
    prompts = model.encode_texts(torch.as_tensor(np.asarray(embed(texts)), dtype=torch.float32, device=device))
    sims = (model.scale() * films.to(device) @ prompts.T).cpu()  # N × 2F: (positive, negative) per finding
    return pair_probabilities(sims[:, 0::2], sims[:, 1::2]).numpy()


@torch.no_grad()
def zero_shot_probabilities(model: AlignmentModel, images: torch.Tensor, pairs: dict[str, tuple[str, str]],
                            embed: Callable[[list[str]], np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Return ``N × len(pairs)`` zero-shot probabilities: per finding, the softmax over a film's scaled cosines with its two prompts (notebook 07).

    ``embed`` turns prompt texts into the frozen report vectors the model was trained on
    (:func:`cxrkit.sentence_embeddings.embed_sentences`).
    """
    model.eval()
    device = model.log_scale.device
    films = [model.encode_images(images[start:start + batch_size].to(device)).cpu()
             for start in range(0, len(images), batch_size)]
    if not films:
        return np.zeros((0, len(pairs)))
    return zero_shot_from_embeddings(model, torch.cat(films), pairs, embed)
