"""Text attributions: integrated gradients on the embedding layer of a report model, and a word heatmap figure.

Token scores are summed over the embedding dimension; turning token scores into word scores is the job of
:mod:`cxrkit.text`. Taught in notebook 06 (clustered IG localization).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from cxrkit.text import tokens_to_words
from cxrkit.text.vocab import PAD_ID, Vocabulary

from ._common import Target, eval_mode, logits_of, model_device, target_tensor


def text_integrated_gradients(
    model: nn.Module,
    input_ids: torch.Tensor,
    target: Target,
    embedding_layer: nn.Module,
    baseline_id: int = 0,
    steps: int = 64,
    attention_mask: torch.Tensor | None = None,
    *,
    keep_ids: Sequence[int] = (),
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-token IG scores ``(B, T)`` of logit ``target`` against an all-``baseline_id`` (padding) input, and the completeness delta ``(B,)`` (notebook 06).

    IG runs on ``embedding_layer``'s output (captum ``LayerIntegratedGradients``); ``keep_ids`` (e.g. CLS/SEP)
    stay as they are in the baseline. With ``attention_mask`` the model is called as ``model(ids, attention_mask=mask)``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"input_ids must be an integer tensor, got {getattr(input_ids, 'dtype', type(input_ids).__name__)}")
    ids = (input_ids[None] if input_ids.ndim == 1 else input_ids).to(model_device(model))
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be (B, T) or (T,); got shape {tuple(input_ids.shape)}")
    baseline = torch.full_like(ids, int(baseline_id))
    for kid in keep_ids:
        baseline = torch.where(ids == int(kid), ids, baseline)
    extra: tuple = ()
    if attention_mask is not None:
        mask = (attention_mask[None] if attention_mask.ndim == 1 else attention_mask).to(ids.device)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {tuple(mask.shape)} differs from input_ids {tuple(ids.shape)}")
        extra = (mask,)

    def forward(tokens: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        out = model(tokens, attention_mask=mask[0]) if mask else model(tokens)
        return logits_of(out)

    with eval_mode(model):
        with torch.no_grad():
            n_logits = forward(ids, *extra).shape[1]
        t = target_tensor(target, ids.shape[0], n_logits).to(ids.device)
        lig = LayerIntegratedGradients(forward, embedding_layer)
        attr, delta = lig.attribute(
            ids, baselines=baseline, target=t, additional_forward_args=extra or None, n_steps=steps,
            internal_batch_size=internal_batch_size, return_convergence_delta=True,
        )
    if attr.ndim != 3:
        raise ValueError(f"embedding_layer gives attributions of shape {tuple(attr.shape)}; expected (B, T, D)")
    return attr.sum(dim=-1).detach(), delta.detach()


def word_attributions(
    model: nn.Module,
    text: str,
    tokenizer: object,
    input_ids: torch.Tensor,
    target: int,
    *,
    embedding_layer: nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
    steps: int = 64,
) -> tuple[pd.DataFrame, float]:
    """Return one report's IG word scores (a :func:`cxrkit.text.tokens_to_words` table) and the completeness delta (notebook 06).

    ``input_ids`` is the report's encoded row ``(T,)``; the baseline is all padding (the tokenizer's pad id; a
    word-piece tokenizer's ``[CLS]``/``[SEP]`` stay in the baseline). The model is called with the report's
    ``attention_mask`` (for a :class:`~cxrkit.text.Vocabulary`, ``input_ids != PAD`` when not given) at every step and
    at the baseline, so the padding baseline is the start of the integration path and completeness holds.
    ``embedding_layer`` defaults to ``model.embedding``. Token scores are summed onto the words the reader sees, checked against ``input_ids``.
    """
    layer = embedding_layer if embedding_layer is not None else getattr(model, "embedding", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{type(model).__name__} has no `embedding` layer; pass embedding_layer=")
    ids = torch.as_tensor(input_ids)
    if ids.ndim != 1:
        raise ValueError(f"input_ids must be one encoded report (T,); got shape {tuple(ids.shape)}")
    if isinstance(tokenizer, Vocabulary):
        pad, keep = PAD_ID, ()
        if attention_mask is None:  # keep the report's mask along the whole path, baseline included
            attention_mask = (ids != PAD_ID).long()
    else:
        pad = int(getattr(tokenizer, "pad_token_id"))
        keep = tuple(int(i) for i in (getattr(tokenizer, "cls_token_id", None), getattr(tokenizer, "sep_token_id", None))
                     if i is not None)
    scores, delta = text_integrated_gradients(model, ids[None], target, layer, baseline_id=pad, steps=steps,
                                              attention_mask=None if attention_mask is None else attention_mask[None],
                                              keep_ids=keep)
    words = tokens_to_words(text, scores[0].cpu(), tokenizer, input_ids=ids.cpu())
    return words, float(delta[0])


def word_heatmap_figure(words: Sequence[str], scores: Sequence[float], title: str = "Word attributions", *, words_per_row: int = 12, colorscale: str = "RdBu_r") -> go.Figure:
    """Return a zoomable plotly heatmap of one score per word, laid out as the report text in rows, centred at 0 (notebook 06)."""
    words, values = list(words), np.asarray(scores, dtype=float).ravel()
    if len(words) != len(values):
        raise ValueError(f"{len(words)} words but {len(values)} scores")
    if words_per_row < 1:
        raise ValueError(f"words_per_row must be >= 1, got {words_per_row!r}")
    if not np.isfinite(values).all():
        raise ValueError("word scores contain NaN or infinite values")
    n_rows = max(1, -(-len(words) // words_per_row))
    z = np.full((n_rows, words_per_row), np.nan)
    text = np.full((n_rows, words_per_row), "", dtype=object)
    z.flat[: len(values)] = values
    text.flat[: len(words)] = words
    bound = float(np.abs(values).max()) if len(values) and np.abs(values).max() > 0 else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, text=text, texttemplate="%{text}", hovertemplate="%{text}: %{z:.3g}<extra></extra>",
        colorscale=colorscale, zmid=0.0, zmin=-bound, zmax=bound, xgap=2, ygap=2,
        colorbar={"title": "attribution"},
    ))
    fig.update_layout(title=title, height=120 + 40 * n_rows, margin={"l": 20, "r": 20, "t": 50, "b": 20})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig
