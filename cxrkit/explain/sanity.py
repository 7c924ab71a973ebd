"""Sanity checks for saliency maps (Adebayo et al. 2018): cascading model-parameter randomisation.

A map that explains the model must change when the model's weights are destroyed; a method whose maps
stay the same (an edge detector in disguise) fails. Taught in notebook 05 (saliency).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn


def parameter_layers(model: nn.Module) -> list[str]:
    """Return the names of modules that own parameters, from the top (logits, last registered) down (notebook 05)."""
    names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    if not names:
        raise ValueError(f"{model.__class__.__name__} has no layer with parameters to randomise")
    return names[::-1]


def _reinit(module: nn.Module) -> None:
    with torch.no_grad():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        else:
            for p in module.parameters(recurse=False):
                p.normal_(0.0, 0.05)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            module.weight.normal_(1.0, 0.5)  # reset_parameters sets weight=1, bias=0: randomise them too
            module.bias.normal_(0.0, 0.5)


def cascading_randomization(model: nn.Module, layers_order: Sequence[str] | None = None, *, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer name, model copy)`` with layers re-initialised cumulatively from the top (logits) down; the original is untouched (notebook 05).

    ``layers_order`` names submodules top first (default :func:`parameter_layers`); every yielded model is
    an independent deep copy in eval mode, re-initialised with a seeded RNG that leaves the global one alone.
    """
    order = list(parameter_layers(model) if layers_order is None else layers_order)
    modules = dict(model.named_modules())
    unknown = [n for n in order if n not in modules or not n]
    if unknown:
        raise ValueError(f"layers {unknown} are not submodules of {model.__class__.__name__}; its layers are {parameter_layers(model)}")
    current = model
    for step, name in enumerate(order):
        current = copy.deepcopy(current)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + step)
            layer = current.get_submodule(name)
            for sub in layer.modules():
                if any(True for _ in sub.parameters(recurse=False)):
                    _reinit(sub)
        yield name, current.eval()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ca, cb = np.ptp(a) == 0, np.ptp(b) == 0
    if ca or cb:
        return 1.0 if (ca and cb) else 0.0
    return float(stats.spearmanr(a, b).statistic)


def map_similarity(a: object, b: object) -> dict[str, float]:
    """Return Spearman rank correlations of two maps, of the signed values and of their absolute values (notebook 05).

    A constant map has no ranking: two constant maps count as identical (1.0), one constant map as unrelated (0.0).
    """
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {np.shape(a)} vs {np.shape(b)}")
    return {"spearman": _spearman(x, y), "spearman_abs": _spearman(np.abs(x), np.abs(y))}


def randomization_test(
    explain: Callable[[nn.Module], torch.Tensor],
    model: nn.Module,
    layers_order: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Return one row per randomisation step: mean similarity of ``explain(model_copy)`` maps ``(B, H, W)`` to the original's (notebook 05)."""
    reference = torch.as_tensor(explain(model)).detach().cpu()
    rows = []
    for step, (name, randomized) in enumerate(cascading_randomization(model, layers_order, seed=seed)):
        maps = torch.as_tensor(explain(randomized)).detach().cpu()
        sims = [map_similarity(r, m) for r, m in zip(reference, maps)]
        rows.append({"step": step, "layer": name, **{k: float(np.mean([s[k] for s in sims])) for k in sims[0]}})
    return pd.DataFrame(rows)


def sanity_verdict(similarities: Iterable[float] | Iterable[Mapping[str, float]] | pd.DataFrame, threshold: float = 0.5, *, key: str = "spearman_abs") -> bool:
    """Return True (passes) when the similarity to the original map drops below ``threshold`` at some randomisation step (notebook 05)."""
    if isinstance(similarities, pd.DataFrame):
        if key not in similarities:
            raise ValueError(f"no column {key!r} in the similarities; columns are {list(similarities.columns)}")
        values = similarities[key].to_numpy(float)
    else:
        values = np.array([s[key] if isinstance(s, Mapping) else s for s in similarities], dtype=float)
    if values.size == 0:
        raise ValueError("no similarities given: run at least one randomisation step")
    if np.isnan(values).all():
        raise ValueError(f"every {key} similarity is NaN")
    return bool(np.nanmin(values) < threshold)


# ------------------------------------------------------------------- data randomisation (shuffled labels)
# The model trained on shuffled labels is a training recipe: cxrkit.recipes.controls.shuffled_label_model.

def data_randomization_test(explain: Callable[[nn.Module], torch.Tensor], model: nn.Module,
                            shuffled_model: nn.Module) -> dict[str, float]:
    """Return the mean similarity (Spearman of signed and absolute maps) between ``explain(model)`` and ``explain(shuffled_model)`` over the films (notebook 05).

    ``explain`` maps a model to ``(B, H, W)`` maps of the same films; a method whose maps stay similar for a
    model trained on shuffled labels explains the image, not what the model learned.
    """
    a = torch.as_tensor(explain(model)).detach().cpu()
    b = torch.as_tensor(explain(shuffled_model)).detach().cpu()
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"explain must return (B, H, W) maps of the same films; got {tuple(a.shape)} and {tuple(b.shape)}")
    sims = [map_similarity(x, y) for x, y in zip(a, b)]
    return {k: float(np.mean([s[k] for s in sims])) for k in sims[0]}
