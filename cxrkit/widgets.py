"""ipywidgets explorers: the clustered-IG localization explorer of notebook 06.

The explorer lets a reader pick a film, an attribution method, a threshold and a clustering method, and
redraws the detected regions (circles) over the film with the counts of hits and false regions. The work
is split so that it can be tested without a browser:

* :func:`explorer_view` — a **pure** function from an :class:`ExplorerState` (film, method, threshold,
  clustering) and the precomputed maps/truth to an :class:`ExplorerView` (regions, per-region hit flags,
  counts, the shapes to draw, a one-line summary). It never modifies its inputs.
* :func:`explorer_svg` — the drawing the widget shows: an SVG with the film and the map as one embedded PNG,
  the truth outlined in green, and one ``<circle>`` (or ``<rect>``) per region — plain HTML, so it updates as one
  widget value, with no plotly output inside a widget (and no JavaScript to run).
* :func:`explorer_figure` — the same view as a plotly figure (zoom, hover), for a static cell.
* :class:`LocalizationExplorer` — the ipywidgets wiring: every control change calls :func:`explorer_view`
  and redraws.

Stable hooks for browser tests (Playwright) — each control has a fixed ``description`` and CSS class:

==============================  ====================  =====================================
widget                          ``description``       CSS class (``add_class``)
==============================  ====================  =====================================
the container (``VBox``)        —                     ``cxrkit-explorer``
film picker (``Dropdown``)      ``film``              ``cxrkit-film``
method (``Dropdown``)           ``method``            ``cxrkit-method``
threshold (``FloatSlider``)     ``threshold``         ``cxrkit-threshold``
clustering (``Dropdown``)       ``clustering``        ``cxrkit-clustering``
counts (``HTML``)               —                     ``cxrkit-counts``
figure (``HTML``, an SVG)      —                     ``cxrkit-figure``
==============================  ====================  =====================================

The counts widget's HTML holds ``<span class="cxrkit-n-regions">``, ``cxrkit-n-hits`` and
``cxrkit-n-false`` with the numbers, and ``<span class="cxrkit-regions">`` listing every drawn region as
``(cx, cy, r)`` in film pixels, so a test can read what is drawn as text. In the figure's SVG every region is
an element with class ``cxrkit-region`` plus ``cxrkit-hit`` or ``cxrkit-false``, with ``data-cx``, ``data-cy``
and ``data-r`` attributes in film pixels. Moving the threshold slider changes the regions (a higher threshold
keeps fewer pixels).
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrkit.explain.localization_metrics import film_scores, match_regions
from cxrkit.explain.localize import CLUSTER_METHODS, Regions, localize
from cxrkit.explain.raster import outline_pixels, png_data_uri
from cxrkit.explain.truth import as_map, as_truth_mask, truth_objects
from cxrkit.lazy import lazy_import

ipywidgets = lazy_import("ipywidgets")  # only a live Jupyter kernel builds the widgets; the view functions are tested without
ipython_display = lazy_import("IPython.display")

__all__ = ["ExplorerState", "ExplorerView", "explorer_view", "explorer_svg", "explorer_figure", "LocalizationExplorer",
           "CSS_CLASSES"]

#: The CSS class of each explorer widget, for browser tests (see the module docstring).
CSS_CLASSES: dict[str, str] = {
    "container": "cxrkit-explorer", "film": "cxrkit-film", "method": "cxrkit-method",
    "threshold": "cxrkit-threshold", "clustering": "cxrkit-clustering", "counts": "cxrkit-counts",
    "figure": "cxrkit-figure",
}


@dataclass(frozen=True)
class ExplorerState:
    """What the explorer's controls say: film index, attribution method, threshold and clustering method (notebook 06)."""

    film: int
    method: str
    threshold: float
    clustering: str = "single_linkage"


@dataclass
class ExplorerView:
    """What to draw for one :class:`ExplorerState`: the regions, their geometry on the film, hit flags and counts (notebook 06)."""

    state: ExplorerState
    regions: Regions
    shapes: pd.DataFrame
    n_regions: int
    n_hits: int
    n_false: int
    n_objects: int
    n_found: int
    summary: str
    scores: dict[str, Any] = field(default_factory=dict)


def _map_of(maps: Mapping[str, object], state: ExplorerState) -> np.ndarray:
    if state.method not in maps:
        raise ValueError(f"method {state.method!r} has no maps; choose one of {list(maps)}")
    stack = maps[state.method]
    n = len(stack)  # type: ignore[arg-type]
    if not isinstance(state.film, (int, np.integer)) or not 0 <= int(state.film) < n:
        raise ValueError(f"film {state.film!r} is out of range for {n} films")
    return as_map(stack[int(state.film)])  # type: ignore[index]


def explorer_view(state: ExplorerState, maps: Mapping[str, object], truths: Sequence[object] | None,
                  film_shape: Sequence[int], **localize_kw: Any) -> ExplorerView:
    """Return what the explorer draws for ``state``: :func:`~cxrkit.explain.localize` regions of the chosen map, scored against the film's truth (notebook 06).

    ``maps`` is ``{method: (N, h, w) maps}``, ``truths`` one mask/box(es) per film (or None), ``film_shape``
    the film's ``(H, W)`` in which ``shapes`` (``cx, cy, rx, ry, left, top, right, bottom, hit``) are given.
    ``localize_kw`` are further :func:`~cxrkit.explain.localize` arguments (``threshold`` and ``method``
    come from the state). Pure: the inputs are never modified.
    """
    if state.clustering not in CLUSTER_METHODS:
        raise ValueError(f"clustering {state.clustering!r} is not one of {CLUSTER_METHODS}")
    for key in ("threshold", "method"):
        if key in localize_kw:
            raise ValueError(f"{key}= comes from the explorer state; do not pass it in localize_kw")
    attr = _map_of(maps, state)
    regions = localize(attr, threshold=float(state.threshold), method=state.clustering, **localize_kw)
    shapes = regions.geometry(film_shape)
    truth = None if truths is None else truths[int(state.film)]
    if truth is not None:
        objects = truth_objects(truth, attr.shape)
        table = match_regions(regions, objects)
        scores = film_scores(regions, objects)
        shapes["hit"] = table["hit"].to_numpy(bool)
        n_hits, n_objects, n_found = scores["n_true_regions"], scores["n_objects"], scores["n_found"]
    else:
        scores = {}
        shapes["hit"] = np.zeros(len(regions), bool)
        n_hits, n_objects, n_found = 0, 0, 0
    n_false = len(regions) - n_hits
    summary = (f"{state.method}, threshold {state.threshold:.2f}, {state.clustering}: {len(regions)} regions, "
               f"{n_hits} hits, {n_false} false" + (f"; found {n_found}/{n_objects} truth objects" if truth is not None else ""))
    return ExplorerView(state, regions, shapes, len(regions), int(n_hits), int(n_false), int(n_objects),
                        int(n_found), summary, scores)


def explorer_figure(film: object, attr_map: object, view: ExplorerView, truth: object = None, *,
                    opacity: float = 0.45, size_px: int = 460) -> go.Figure:
    """Return the plotly figure of one explorer view: the film, the map over it, hits as green and false regions as red circles, the truth as a contour (notebook 06)."""
    img = as_map(film)
    h, w = img.shape
    a = as_map(attr_map)
    pos = np.clip(a, 0, None)
    top = float(pos.max()) or 1.0
    sy, sx = h / a.shape[0], w / a.shape[1]
    fig = go.Figure(go.Heatmap(z=img, colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=pos / top, x0=0.5 * sx - 0.5, dx=sx, y0=0.5 * sy - 0.5, dy=sy, opacity=opacity,
                             colorscale="Hot", zmin=0, zmax=1, showscale=False,
                             hovertemplate="attribution %{z:.2f}<extra></extra>"))
    if truth is not None:
        mask = as_truth_mask(truth, (h, w))
        if mask.any():
            fig.add_trace(go.Contour(z=mask.astype(float), autocontour=False, showscale=False, hoverinfo="skip",
                                     contours={"start": 0.5, "end": 0.5, "size": 0.5, "coloring": "lines"},
                                     line={"color": "lime", "width": 2}, name="truth"))
    for r in view.shapes.itertuples(index=False):
        colour = "lime" if r.hit else "red"
        if view.regions.shape == "circle":
            box = dict(type="circle", x0=r.cx - r.rx, y0=r.cy - r.ry, x1=r.cx + r.rx, y1=r.cy + r.ry)
        else:
            box = dict(type="rect", x0=r.left, y0=r.top, x1=r.right, y1=r.bottom)
        fig.add_shape(**box, line={"color": colour, "width": 2, "dash": "solid" if r.hit else "dot"})
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_layout(title=view.summary, width=size_px, height=size_px + 40, showlegend=False,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, title_font_size=12)
    return fig


def _hot(v: np.ndarray) -> np.ndarray:
    """The 'hot' colour map (black → red → yellow → white) of values in [0, 1], as (…, 3) floats."""
    return np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)


def _composite_png(film: np.ndarray, attr_map: np.ndarray, truth: object, opacity: float) -> str:
    """The film with the map blended over it and the truth's outline, as a PNG data URI."""
    h, w = film.shape
    low, high = float(film.min()), float(film.max())
    grey = (film - low) / (high - low) if high > low else np.zeros_like(film)
    pos = np.clip(attr_map, 0, None)
    pos = pos / pos.max() if pos.max() > 0 else pos
    if pos.shape != film.shape:  # stretch the map over the film (nearest)
        rows = (np.arange(h) * pos.shape[0] // h)[:, None]
        cols = (np.arange(w) * pos.shape[1] // w)[None, :]
        pos = pos[rows, cols]
    alpha = (opacity * np.sqrt(pos))[..., None]
    rgb = (1 - alpha) * grey[..., None] + alpha * _hot(pos)
    if truth is not None:
        edge = outline_pixels(as_truth_mask(truth, (h, w)))[..., 3] > 0
        rgb[edge] = (0.0, 1.0, 0.0)
    return png_data_uri((255 * np.clip(rgb, 0, 1)).astype(np.uint8))


def explorer_svg(film: object, attr_map: object, view: ExplorerView, truth: object = None, *,
                 opacity: float = 0.6, size_px: int = 420) -> str:
    """Return the explorer's drawing as an HTML ``<svg>``: film + map as an embedded PNG, truth outlined in green, hits as green and false regions as red dashed circles (notebook 06)."""
    img = as_map(film)
    h, w = img.shape
    png = _composite_png(img, as_map(attr_map), truth, opacity)
    parts = [f'<svg class="cxrkit-svg" xmlns="http://www.w3.org/2000/svg" width="{size_px}" height="{round(size_px * h / w)}" '
             f'viewBox="-0.5 -0.5 {w} {h}">',
             f'<image href="{png}" x="-0.5" y="-0.5" width="{w}" height="{h}" '
             'style="image-rendering: pixelated"/>']
    stroke = max(w, h) / 200
    for r in view.shapes.itertuples(index=False):
        kind = "cxrkit-hit" if r.hit else "cxrkit-false"
        style = (f'fill="none" stroke="{"lime" if r.hit else "red"}" stroke-width="{stroke:.2f}"'
                 + ("" if r.hit else f' stroke-dasharray="{3 * stroke:.2f}"'))
        data = f'data-cx="{r.cx:.1f}" data-cy="{r.cy:.1f}" data-r="{r.rx:.1f}"'
        if view.regions.shape == "circle":
            parts.append(f'<circle class="cxrkit-region {kind}" {data} cx="{r.cx:.2f}" cy="{r.cy:.2f}" r="{r.rx:.2f}" {style}/>')
        else:
            parts.append(f'<rect class="cxrkit-region {kind}" {data} x="{r.left:.2f}" y="{r.top:.2f}" '
                         f'width="{r.right - r.left:.2f}" height="{r.bottom - r.top:.2f}" {style}/>')
    parts.append("</svg>")
    return f'<div title="{html.escape(view.summary)}">' + "".join(parts) + f"<br><small>{html.escape(view.summary)}</small></div>"


def _counts_html(view: ExplorerView) -> str:
    regions = "; ".join(f"({r.cx:.0f}, {r.cy:.0f}, {r.rx:.0f})" for r in view.shapes.itertuples(index=False))
    return (f'<span class="cxrkit-n-regions">{view.n_regions}</span> regions · '
            f'<b>hits</b> <span class="cxrkit-n-hits">{view.n_hits}</span> · '
            f'<b>false</b> <span class="cxrkit-n-false">{view.n_false}</span> · '
            f'truth found {view.n_found}/{view.n_objects}<br>'
            f'<small>regions (cx, cy, r): <span class="cxrkit-regions">{html.escape(regions) or "none"}</span></small>')


class LocalizationExplorer:
    """The ipywidgets explorer of notebook 06: film picker, method, threshold slider and clustering choice, redrawing circles and hit/false counts live (notebook 06).

    ``films`` is ``(N, H, W)``, ``maps`` ``{method: (N, h, w)}``, ``truths`` one mask per film (or None);
    ``film_labels`` names the films in the picker. Display it as the last expression of a cell, or use
    ``.widget``. See the module docstring for the widgets' descriptions and CSS classes.
    """

    def __init__(self, films: object, maps: Mapping[str, object], truths: Sequence[object] | None = None, *,
                 film_labels: Sequence[str] | None = None, threshold: float = 0.7,
                 threshold_range: tuple[float, float, float] = (0.05, 0.95, 0.05),
                 clustering: str = "single_linkage", **localize_kw: Any):
        self.films = np.asarray(films)
        if self.films.ndim != 3:
            raise ValueError(f"films must be (N, H, W); got shape {self.films.shape}")
        n = len(self.films)
        if not maps:
            raise ValueError("maps is empty: give at least one {method: (N, h, w) maps}")
        for method, stack in maps.items():
            if len(stack) != n:  # type: ignore[arg-type]
                raise ValueError(f"method {method!r} has {len(stack)} maps for {n} films")  # type: ignore[arg-type]
        if truths is not None and len(truths) != n:
            raise ValueError(f"{len(truths)} truths for {n} films")
        self.maps, self.truths, self.localize_kw = dict(maps), truths, localize_kw
        labels = list(film_labels) if film_labels is not None else [f"film {i}" for i in range(n)]
        if len(labels) != n:
            raise ValueError(f"{len(labels)} film labels for {n} films")
        low, high, step = threshold_range
        self.film = ipywidgets.Dropdown(options=[(label, i) for i, label in enumerate(labels)], value=0,
                                        description="film")
        self.method = ipywidgets.Dropdown(options=list(self.maps), value=list(self.maps)[0], description="method")
        self.threshold = ipywidgets.FloatSlider(value=float(threshold), min=low, max=high, step=step,
                                                description="threshold", continuous_update=False, readout_format=".2f")
        self.clustering = ipywidgets.Dropdown(options=list(CLUSTER_METHODS), value=clustering,
                                              description="clustering")
        self.counts = ipywidgets.HTML()
        self.figure = ipywidgets.HTML()
        for name in ("film", "method", "threshold", "clustering", "counts", "figure"):
            getattr(self, name).add_class(CSS_CLASSES[name])
        controls = ipywidgets.HBox([ipywidgets.VBox([self.film, self.method]),
                                    ipywidgets.VBox([self.threshold, self.clustering])])
        self.widget = ipywidgets.VBox([controls, self.counts, self.figure])
        self.widget.add_class(CSS_CLASSES["container"])
        for control in (self.film, self.method, self.threshold, self.clustering):
            control.observe(lambda _change: self.redraw(), names="value")
        self.view: ExplorerView | None = None
        self.redraw()

    def state(self) -> ExplorerState:
        """Return the controls' current :class:`ExplorerState`."""
        return ExplorerState(int(self.film.value), str(self.method.value), float(self.threshold.value),
                             str(self.clustering.value))

    def redraw(self) -> ExplorerView:
        """Recompute the view of the current state, update the counts and redraw the figure; return the view."""
        state = self.state()
        view = explorer_view(state, self.maps, self.truths, self.films.shape[1:], **self.localize_kw)
        self.view = view
        self.counts.value = _counts_html(view)
        truth = None if self.truths is None else self.truths[state.film]
        self.figure.value = explorer_svg(self.films[state.film], self.maps[state.method][state.film], view, truth)  # type: ignore[index]
        return view

    def _ipython_display_(self) -> None:
        ipython_display.display(self.widget)
