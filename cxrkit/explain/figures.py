"""Plotly overlays of attribution maps on films, with localized regions as shapes and the truth as an outline.

Films, maps and outlines are PNG image traces (:mod:`cxrkit.explain.raster`), so a figure of many films stays a
few MB. Taught in notebook 05 (saliency) and reused in notebook 06.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .localize import Regions
from .raster import film_image, map_image, outline_image
from .truth import Truth, as_map, as_truth_mask


def _array(x: object) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def _per_film(value: object, n: int, what: str) -> list:
    """Split a per-film argument: one value for a single film, or None / a sequence of ``n`` values."""
    if n == 1:
        if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (Regions, Mapping)):
            return list(value)
        return [value]
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n:
        return list(value)
    raise ValueError(f"{what} must be None or given once per film: a list of {n}, got {type(value).__name__}")


def _regions_for(entry: object, method: str) -> Regions | None:
    if isinstance(entry, Mapping):
        return entry.get(method)
    return entry  # type: ignore[return-value]


def _films_and_maps(image: Any, attr_maps: dict[str, Any]) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """Check and shape the figures' inputs: films as ``(N, H, W)``, each method's maps as a list of N normalised maps."""
    films = _array(image)
    films = films[None] if films.ndim == 2 else films
    if films.ndim != 3:
        raise ValueError(f"image must be (H, W) or (N, H, W); got shape {films.shape}")
    n = len(films)
    if not attr_maps:
        raise ValueError("attr_maps is empty: give at least one {method: map}")
    maps = {}
    for method, m in attr_maps.items():
        arr = _array(m)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.ndim != 3 or len(arr) != n:
            raise ValueError(f"map {method!r} has shape {np.shape(m)}; expected (h, w) or ({n}, h, w)")
        maps[method] = [as_map(a) for a in arr]
    return films, maps


def overlay_figure(
    image: object,
    attr_maps: Mapping[str, object],
    regions: object = None,
    truth_mask: object = None,
    *,
    source_shape: Sequence[int] | None = None,
    opacity: float = 0.55,
    cell_px: int = 260,
    title: str | None = None,
) -> go.Figure:
    """Return a film × method grid: each film alone, then each method's map over it, regions as circles/boxes and the truth as an outline (notebook 05).

    ``image`` is ``(H, W)`` or ``(N, H, W)``; each map is ``(h, w)`` or ``(N, h, w)`` (stretched over the film);
    ``regions`` is a :class:`Regions`, a ``{method: Regions}`` dict, or a list of those per film;
    ``truth_mask`` is a mask or box(es) (see :func:`cxrkit.explain.truth.as_truth_mask`), or a list per film.
    """
    films, maps = _films_and_maps(image, attr_maps)
    n, (h, w) = len(films), films.shape[1:]
    region_list = _per_film(regions, n, "regions")
    truth_list: list[Truth] = _per_film(truth_mask, n, "truth_mask")

    methods = list(maps)
    titles = [t for i in range(n) for t in (f"film {i}" if n > 1 else "film", *methods)]
    fig = make_subplots(rows=n, cols=1 + len(methods), subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.04)
    for i in range(n):
        truth = as_truth_mask(truth_list[i], (h, w), source_shape) if truth_list[i] is not None else None
        film = film_image(films[i], name="film")
        outline = outline_image(truth) if truth is not None and truth.any() else None
        for j, method in enumerate([None, *methods]):
            row, col = i + 1, j + 1
            fig.add_trace(film, row=row, col=col)
            if method is not None:
                a = maps[method][i]
                top = float(np.abs(a).max()) or 1.0
                fig.add_trace(map_image(a / top, (h, w), signed=bool((a < 0).any()), opacity=opacity, name=method),
                              row=row, col=col)
                found = _regions_for(region_list[i], method)
                if found is not None and len(found):
                    g = found.geometry((h, w))
                    for _, r in g.iterrows():
                        if found.shape == "circle":
                            box = dict(x0=r.cx - r.rx, y0=r.cy - r.ry, x1=r.cx + r.rx, y1=r.cy + r.ry)
                        else:
                            box = dict(x0=r.left, y0=r.top, x1=r.right, y1=r.bottom)
                        fig.add_shape(type="circle" if found.shape == "circle" else "rect", **box,
                                      line={"color": "cyan", "width": 2}, row=row, col=col)
            if outline is not None:
                fig.add_trace(outline, row=row, col=col)
    for k in range(1, n * (1 + len(methods)) + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].update(autorange="reversed", scaleanchor=f"x{suffix}", visible=False)
        fig.layout[f"xaxis{suffix}"].update(visible=False, constrain="domain")
    fig.update_layout(title=title, showlegend=False, height=cell_px * n + 60, width=cell_px * (1 + len(methods)),
                      margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def method_film_explorer(
    image: object,
    attr_maps: Mapping[str, object],
    truth_mask: object = None,
    *,
    film_labels: Sequence[str] | None = None,
    opacity: float = 0.55,
    cell_px: int = 230,
    title: str | None = None,
) -> go.Figure:
    """Return an interactive plotly overlay explorer, method × film: one column per method, a slider that picks the film and buttons that set the overlay's opacity (notebook 05).

    ``image`` is ``(N, H, W)``; each map ``(N, h, w)``; ``truth_mask`` one mask/box(es) per film (or None).
    Only the chosen film's traces are visible; it needs no kernel, so it works in a saved HTML page too.
    """
    films, maps = _films_and_maps(image, attr_maps)
    n, (h, w) = len(films), films.shape[1:]
    truths: list = _per_film(truth_mask, n, "truth_mask")
    labels = list(film_labels) if film_labels is not None else [f"film {i}" for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} film labels for {n} films")
    methods = list(maps)
    fig = make_subplots(rows=1, cols=1 + len(methods), subplot_titles=["film", *methods], horizontal_spacing=0.01)
    owner: list[int] = []  # the film of every trace
    overlay_traces: list[int] = []
    for i in range(n):
        truth = as_truth_mask(truths[i], (h, w)) if truths[i] is not None else None
        film = film_image(films[i], name="film", visible=i == 0)
        outline = outline_image(truth, visible=i == 0) if truth is not None and truth.any() else None
        for j, method in enumerate([None, *methods]):
            fig.add_trace(film, row=1, col=j + 1)
            owner.append(i)
            if method is not None:
                a = maps[method][i]
                top = float(np.abs(a).max()) or 1.0
                fig.add_trace(map_image(a / top, (h, w), signed=bool((a < 0).any()), opacity=opacity, name=method,
                                        visible=i == 0), row=1, col=j + 1)
                owner.append(i)
                overlay_traces.append(len(owner) - 1)
            if outline is not None:
                fig.add_trace(outline, row=1, col=j + 1)
                owner.append(i)
    owner_arr = np.asarray(owner)
    steps = [{"method": "restyle", "label": labels[i], "args": [{"visible": list(owner_arr == i)}]} for i in range(n)]
    buttons = [{"method": "restyle", "label": f"overlay {o:.0%}", "args": [{"opacity": o}, overlay_traces]}
               for o in (0.0, 0.35, opacity, 0.85)]
    for k in range(1, len(methods) + 2):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].update(autorange="reversed", scaleanchor=f"x{suffix}", visible=False)
        fig.layout[f"xaxis{suffix}"].update(visible=False, constrain="domain")
    fig.update_layout(
        title=title, showlegend=False, height=cell_px + 170, width=cell_px * (1 + len(methods)),
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "film: "}, "pad": {"t": 10}}],
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons, "x": 0.0, "y": 1.18,
                      "xanchor": "left", "yanchor": "top", "showactive": True, "active": 2}],
    )
    return fig
