"""The planted-signal control: a small bright disc pasted into half the films, as the *only* label (notebook 05).

A saliency method that fails on a real finding leaves two explanations open: the method does not localize, or
the model never learned where the finding is. The control separates them. Every film keeps its anatomy, but
the label is now "does this film carry the disc?", and the disc's mask is known exactly. Train the class
recipe on it: if the model learns the disc (test AUROC near 1), every honest method must point at the disc;
if the model cannot learn it, the recipe — not the method — is what fails.

The same transform works on any prepared cache (synthetic or real films), seeded, so the control is
reproducible and costs no extra data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cxrkit.repro import rng

__all__ = ["PlantedSignal", "PlantedFilms", "plant_signal"]


@dataclass(frozen=True)
class PlantedSignal:
    """What is planted: disc radius range (as a share of the film's side), brightness added, share of films that carry it (notebook 05).

    The disc is placed uniformly in a central box (``box`` = top, bottom, left, right as shares of the
    side), where the lungs and heart are; its grey value rises by ``contrast`` (in [0, 1] units, clipped at
    white) with a one-pixel soft edge.
    """

    radius: tuple[float, float] = (0.03, 0.05)
    contrast: float = 0.25
    share: float = 0.5
    box: tuple[float, float, float, float] = (0.2, 0.8, 0.15, 0.85)

    def __post_init__(self) -> None:
        lo, hi = self.radius
        if not 0 < lo <= hi < 0.5:
            raise ValueError(f"radius must be 0 < low <= high < 0.5 (shares of the side), got {self.radius}")
        if not 0 < self.contrast <= 1:
            raise ValueError(f"contrast must be in (0, 1], got {self.contrast}")
        if not 0 < self.share < 1:
            raise ValueError(f"share must be in (0, 1): some films with the disc and some without, got {self.share}")
        top, bottom, left, right = self.box
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError(f"box must be (top, bottom, left, right) shares with top < bottom and left < right, got {self.box}")

    def as_dict(self) -> dict:
        """The signal's parameters, for cache keys and run records."""
        return asdict(self)


@dataclass
class PlantedFilms:
    """Films with the disc planted, its label (1 = disc present) and its mask per film (all-false without a disc) (notebook 05)."""

    films: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    @property
    def positives(self) -> np.ndarray:
        """Indices of the films that carry the disc."""
        return np.flatnonzero(self.labels == 1)


def plant_signal(films: np.ndarray, seed: int, stream: str = "planted", signal: PlantedSignal = PlantedSignal()) -> PlantedFilms:
    """Return a copy of ``N×H×W`` uint8 ``films`` with a bright disc planted in a seeded share of them, its labels and masks (notebook 05).

    ``seed`` and ``stream`` (e.g. the split's name) fix which films carry the disc, where and how large, so
    the same call always plants the same discs; the input array is never modified.
    """
    films = np.asarray(films)
    if films.ndim != 3 or films.dtype != np.uint8:
        raise ValueError(f"films must be an N×H×W uint8 array, got shape {films.shape} and dtype {films.dtype}")
    n, h, w = films.shape
    g = rng(seed, "plant_signal", stream)
    labels = (g.random(n) < signal.share).astype(np.float32)
    if n >= 2 and labels.min() == labels.max():  # keep both classes present in tiny sets
        labels[: n // 2] = 1.0 - labels[0]
    out = films.astype(np.float32)
    masks = np.zeros((n, h, w), dtype=bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top, bottom, left, right = signal.box
    side = float(min(h, w))
    for i in np.flatnonzero(labels == 1):
        r = g.uniform(*signal.radius) * side
        cy = g.uniform(top * h + r, bottom * h - r)
        cx = g.uniform(left * w + r, right * w - r)
        distance = np.hypot(yy - cy, xx - cx)
        weight = np.clip(r + 0.5 - distance, 0.0, 1.0)  # 1 inside, a one-pixel ramp at the edge
        out[i] += 255.0 * signal.contrast * weight
        masks[i] = distance <= r
    return PlantedFilms(np.clip(np.rint(out), 0, 255).astype(np.uint8), labels, masks)
