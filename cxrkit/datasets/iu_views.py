"""Views of Open-i (IU X-ray) films: from DICOM headers or ``indiana_projections.csv`` when present, else from the report XML.

Taught in notebook 01 (data preparation). The official PNG release (``NLMCXR_png``) carries no view,
and ``indiana_projections.csv`` comes from a third-party repackaging, not from Open-i. What the
official files do carry is each ``parentImage``'s ``figureId`` (``F1``, ``F2`` …) and ``caption``. In
the published reports all images of a report share one caption that names the *study's* views
("PA and lateral chest x-XXXX", "Xray Chest PA and Lateral"), so a caption alone cannot say which
image is which. The method, first source that decides wins, per film:

1. ``header`` — the DICOM ``ViewPosition`` (DICOM release only; blank in part of real collections);
2. ``projections`` — ``indiana_projections.csv`` at the root (``Frontal`` → ``FRONTAL``, ``Lateral``);
3. ``caption`` — the image's own caption names exactly one view (``PA``/``AP``/``frontal``/``lateral``),
   when the captions differ between the report's images, or the report has one image;
4. ``order`` (method ``"auto"`` only) — a report with exactly two images whose shared caption names
   one frontal view and a lateral view: the images not decided above take those views in figure
   order, the frontal view first (``F1`` frontal, ``F2`` lateral).

Limits, stated plainly: rule 4 is an assumption, not a fact of the files — nothing in the Open-i XML
says that ``F1`` is the frontal film, and it could not be checked against the real collection here
(cxrkit cannot download it on its build machines). Where it is wrong, a lateral film enters the
frontal set. Reports with one image and a two-view caption, three or more images, or captions that
name no view stay unknown (``view`` None; cxrkit.prep's frontal filter drops them). The aspect ratio
of the PNG is not used: portrait/landscape differences between frontal and lateral films are weak.
For views from another source, add ``indiana_projections.csv`` or use the DICOM release.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from cxrkit.errors import CxrkitError
from cxrkit.io.reports import OpenIFigure

#: ``views=`` choices of the iu-xray adapter: ``auto`` (rules 1–4), ``files`` (rules 1–3: only what a
#: file states about one image), ``keep-unknown`` (rules 1–4, and no error when no film is frontal).
VIEW_METHODS: tuple[str, ...] = ("auto", "files", "keep-unknown")

#: Caption words → the view they name.
CAPTION_VIEW_WORDS: dict[str, str] = {
    "pa": "PA", "posteroanterior": "PA", "postero-anterior": "PA",
    "ap": "AP", "anteroposterior": "AP", "antero-posterior": "AP",
    "frontal": "FRONTAL",
    "lateral": "LATERAL", "lat": "LATERAL",
}
FRONTAL_KINDS: frozenset[str] = frozenset({"PA", "AP", "FRONTAL"})
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_FIGURE_NUMBER = re.compile(r"^F(\d+)$", re.IGNORECASE)


class OpenIViewError(CxrkitError, ValueError):
    """No Open-i film could be given a frontal view, so preparing frontal films would give none (notebook 01)."""


def caption_views(caption: str) -> set[str]:
    """Return the views a ``parentImage`` caption names, e.g. ``{"PA", "LATERAL"}`` for "PA and lateral chest x-XXXX" (notebook 01)."""
    text = str(caption or "").lower().replace("p.a.", "pa").replace("a.p.", "ap")
    return {CAPTION_VIEW_WORDS[w] for w in _WORD.findall(text) if w in CAPTION_VIEW_WORDS}


def _figure_order(figures: Sequence[OpenIFigure]) -> list[OpenIFigure]:
    numbers = [_FIGURE_NUMBER.match(f.figure_id or "") for f in figures]
    if all(numbers):
        return [f for _, f in sorted(zip((int(m.group(1)) for m in numbers), figures), key=lambda pair: pair[0])]
    return list(figures)


def _order_rule(figures: Sequence[OpenIFigure], decided: dict[str, tuple[str, str]]) -> None:
    """Rule 4: two images sharing a caption that names one frontal view and a lateral view."""
    named = caption_views(figures[0].caption)
    frontal = named & FRONTAL_KINDS
    if len(figures) != 2 or len(frontal) != 1 or "LATERAL" not in named:
        return
    views = [next(iter(frontal)), "LATERAL"]
    undecided = [f for f in _figure_order(figures) if f.image_id not in decided]
    if len(undecided) == 1:  # a header or the projections CSV decided the other one: this one takes the other view
        other = next(decided[f.image_id][0] for f in figures if f.image_id in decided)
        views = ["LATERAL"] if other in FRONTAL_KINDS else views[:1]
    for figure, view in zip(undecided, views):
        decided[figure.image_id] = (view, "order")


def decide_views(figures: Sequence[OpenIFigure], known: Mapping[str, tuple[str, str]],
                 method: str = "auto") -> dict[str, tuple[str, str]]:
    """Return image id → (view, source) for one report's figures (cxrkit.io.reports.OpenIFigure); ``known`` holds header/projections views (notebook 01)."""
    if method not in VIEW_METHODS:
        raise ValueError(f"views must be one of {VIEW_METHODS}, not {method!r}")
    decided = {image_id: pair for image_id, pair in known.items() if pair[0]}
    shared = len(figures) > 1 and len({f.caption.strip().lower() for f in figures}) == 1
    for figure in figures:
        named = caption_views(figure.caption)
        if figure.image_id not in decided and not shared and len(named) == 1:
            decided[figure.image_id] = (next(iter(named)), "caption")
    if method != "files" and shared:
        _order_rule(figures, decided)
    return decided


def check_some_frontal(sources: Counter, views: Sequence[str | None], root: str | Path, method: str) -> None:
    """Raise :class:`OpenIViewError` naming the fixes when films exist but none has a frontal view (unless ``method`` keeps unknown views) (notebook 01)."""
    if method == "keep-unknown" or not views or any(v in FRONTAL_KINDS for v in views):
        return
    unknown = sum(v is None for v in views)
    raise OpenIViewError(
        f"iu-xray at {root}: none of its {len(views)} films has a frontal view ({unknown} unknown; decided: "
        f"{dict(sources) or 'none'}). The PNG release carries no view and these reports' captions do not say "
        f"which image is frontal. Fix: add indiana_projections.csv (uid,filename,projection) at {root}, or use the "
        f"DICOM release (NLMCXR_dcm.tgz, whose headers carry ViewPosition); or load with views='keep-unknown' "
        f"to keep the films with their view unknown (cxrkit prep's frontal filter then drops them)."
    )
