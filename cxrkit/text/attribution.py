"""A first look at per-word attribution: gradient × embedding, laid back onto the words the reader sees.

Taught in notebook 03 (text CNN); notebook 05 derives integrated gradients from it.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrkit.text.tokenize import word_spans
from cxrkit.text.vocab import PAD_ID, Vocabulary


def _embedding_layer(model: nn.Module) -> nn.Module:
    layer = getattr(model, "embedding", None)
    if layer is None and callable(getattr(model, "get_input_embeddings", None)):
        layer = model.get_input_embeddings()
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{type(model).__name__} has no `embedding` layer to attribute to")
    return layer


def _target_index(target: int | Sequence[int] | torch.Tensor, batch: int, k: int) -> torch.Tensor:
    t = torch.as_tensor(target, dtype=torch.long)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"target must be one label index or one per row ({batch}); got shape {tuple(t.shape)}")
    if (t < 0).any() or (t >= k).any():
        raise ValueError(f"target index out of range for {k} outputs: {t.tolist()}")
    return t


def gradient_x_embedding(
    model: nn.Module,
    input_ids: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Return per-token scores ``B × L``: d(target logit)/d(embedding output) · embedding output (notebook 03).

    The gradient is taken on the model's own forward in eval mode — the same function that predicts —
    and the model's parameters' ``.grad`` are left untouched. ``target`` is a label index, or one per row.
    With ``return_logits=True`` the logits of that forward are returned too.
    """
    layer = _embedding_layer(model)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # a fresh leaf with the same values, so the gradient exists even when the embedding is frozen
        leaf = output.detach().requires_grad_(True)
        captured["emb"] = leaf
        return leaf

    param = next(model.parameters(), None)
    if param is not None:  # inputs follow the model (CPU or GPU)
        input_ids = input_ids.to(param.device)
        attention_mask = None if attention_mask is None else attention_mask.to(param.device)
    was_training = model.training
    handle = layer.register_forward_hook(hook)
    model.eval()
    try:
        with torch.enable_grad():
            kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
            logits = model(input_ids, **kwargs)
            if "emb" not in captured:
                raise RuntimeError("the model's forward did not call its embedding layer")
            idx = _target_index(target, logits.shape[0], logits.shape[1])
            chosen = logits.gather(1, idx.to(logits.device).unsqueeze(1)).sum()
            (grad,) = torch.autograd.grad(chosen, captured["emb"])
    finally:
        handle.remove()
        model.train(was_training)
    scores = (grad * captured["emb"]).sum(dim=-1).detach()
    return (scores, logits.detach()) if return_logits else scores


def token_spans(text: str, tokenizer: Vocabulary | Any, length: int) -> tuple[list[tuple[int, int] | None], list[int]]:
    """Return, for each of the ``length`` encoded positions of ``text``, its character span (``None`` for padding
    and special tokens) and the ids the tokenizer gives — the same truncation as the encoders (notebook 03)."""
    if isinstance(tokenizer, Vocabulary):
        ids = tokenizer.ids(text)[:length]
        spans: list[tuple[int, int] | None] = list(tokenizer.token_spans(text, length))
    elif getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, max_length=length, truncation=True, return_offsets_mapping=True,
                        return_special_tokens_mask=True)
        ids = list(enc["input_ids"])
        spans = [None if special or a == b else (int(a), int(b))
                 for (a, b), special in zip(enc["offset_mapping"], enc["special_tokens_mask"])]
    else:
        raise TypeError(f"tokenizer must be a cxrkit Vocabulary or a fast Hugging Face tokenizer, got {type(tokenizer).__name__}")
    return spans + [None] * (length - len(spans)), ids


def tokens_to_words(
    text: str,
    token_scores: Sequence[float] | torch.Tensor | np.ndarray,
    tokenizer: Vocabulary | Any,
    input_ids: Sequence[int] | torch.Tensor | None = None,
) -> pd.DataFrame:
    """Sum per-token scores onto the words of ``text`` as the reader sees them (notebook 03).

    ``token_scores`` is one encoded row (its length is the ``max_len`` it was encoded with); pass that
    row's ``input_ids`` to have the alignment checked. Word-pieces (``pl ##eur ##al``), the three ``_`` of
    ``___`` and the pieces of ``x-XXXX`` all land on the one word they came from. Returns one row per word
    with its surface text, character span, summed ``score`` and ``n_tokens`` (0: truncated or a removed
    stop word — the model never read it).
    """
    scores = np.asarray(token_scores.detach().cpu() if isinstance(token_scores, torch.Tensor) else token_scores,
                        dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"token_scores must be one row (1-D), got shape {scores.shape}")
    spans, ids = token_spans(text, tokenizer, len(scores))
    if input_ids is not None:
        given = [int(i) for i in (input_ids.tolist() if isinstance(input_ids, torch.Tensor) else input_ids)]
        pad = tokenizer.pad_token_id if not isinstance(tokenizer, Vocabulary) else PAD_ID
        if len(given) != len(scores) or given[: len(ids)] != ids or any(i != pad for i in given[len(ids):]):
            raise ValueError(
                "input_ids do not match this text under this tokenizer: the scores cannot be aligned "
                f"(re-encoded {ids[:12]}…, given {given[:12]}…)"
            )
    words = word_spans(text)
    starts = [a for _, a, _ in words]
    total = np.zeros(len(words))
    count = np.zeros(len(words), dtype=int)
    for pos, span in enumerate(spans):
        if span is None:
            continue
        a, b = span
        # the reader word with the largest overlap (token spans never cross words for BERT-style tokenizers)
        i = max(bisect.bisect_right(starts, a) - 1, 0)
        best, best_overlap = None, 0
        for j in range(i, len(words)):
            if words[j][1] >= b:
                break
            overlap = min(b, words[j][2]) - max(a, words[j][1])
            if overlap > best_overlap:
                best, best_overlap = j, overlap
        if best is None:
            raise ValueError(f"token at position {pos} (chars {a}:{b}, {text[a:b]!r}) falls outside every word")
        total[best] += scores[pos]
        count[best] += 1
    return pd.DataFrame(
        {
            "word": [text[a:b] for _, a, b in words],
            "start": [a for _, a, _ in words],
            "end": [b for _, _, b in words],
            "score": total,
            "n_tokens": count,
        }
    )
