"""One study's frontal film: anatomy + findings → 12-bit stored pixels with burned-in markers (notebook 01, data prep)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrkit.labels import label_slug
from cxrkit.synth.anatomy import as_array, blur, build_geometry, canvas, compose, draw_path, render_anatomy
from cxrkit.synth.course import PatientPlan, StudyPlan
from cxrkit.synth.findings import collapsed_outlines, geometry_mods, render_findings
from cxrkit.synth.params import SynthParams

MAX_STORED = 4095  # BitsStored 12


@dataclass
class Film:
    """A rendered film: stored values (high = bright), display window, masks by label slug, boxes (notebook 01)."""

    pixels: np.ndarray                  # uint16, high = bright (attenuating)
    window: tuple[float, float]         # (center, width) that displays the film
    masks: dict[str, np.ndarray]        # label slug -> bool array
    boxes: list[tuple[str, tuple[int, int, int, int]]]  # (label, (x, y, w, h))
    style: dict[str, float]


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _burn_markers(n: int, study: StudyPlan) -> np.ndarray:
    """Return a boolean mask of burned-in text: the laterality marker (site-styled) and PORTABLE on AP films."""
    img = Image.new("L", (n, n), 0)
    d = ImageDraw.Draw(img)
    size = max(8, int(0.055 * n))
    letter = study.image["marker_side"]
    x = int(0.05 * n) if letter == "R" else int(0.95 * n) - size
    y = int(0.05 * n)
    d.text((x + size * 0.18, y), letter, fill=255, font=_font(size))
    pad = max(2, size // 6)
    box = [x - pad, y - pad, x + size + pad, y + size + pad]
    if study.image["marker_style"] == "round":
        d.ellipse(box, outline=255, width=max(1, n // 200))
    else:
        d.rectangle(box, outline=255, width=max(1, n // 200))
    if study.image.get("portable_text"):
        small = max(7, int(0.035 * n))
        tx = int(0.95 * n) - 5 * small if letter == "R" else int(0.05 * n)
        d.text((tx, int(0.06 * n)), "PORTABLE", fill=255, font=_font(small))
    return np.asarray(img) > 127


def _ecg_leads(geo, rng: np.random.Generator) -> np.ndarray:
    """External monitoring electrodes and wires: radiopaque, common on portable films, not a support device."""
    img, d = canvas(geo.n)
    spots = [(geo.cx - 0.75 * geo.hw, geo.y_ap + 0.03), (geo.cx + 0.75 * geo.hw, geo.y_ap + 0.03),
             (geo.cx + 0.6 * geo.hw, geo.dome["left"] + 0.05), (geo.cx - 0.55 * geo.hw, geo.dome["right"] + 0.06)]
    for x, y in spots[: int(rng.integers(2, 5))]:
        x, y = x + rng.normal(0, 0.02), y + rng.normal(0, 0.02)
        (px, py), = geo.to_px([(x, y)])
        r = 0.014 * geo.n
        d.ellipse([px - r, py - r, px + r, py + r], outline=0.6, width=max(1, int(0.005 * geo.n)))
        d.ellipse([px - r / 3, py - r / 3, px + r / 3, py + r / 3], fill=0.8)
        end = (x + rng.uniform(-0.3, 0.3), -0.05 if y < 0.5 else 1.05)
        mid = ((x + end[0]) / 2 + rng.normal(0, 0.05), (y + end[1]) / 2)
        draw_path(d, geo, [(x, y), mid, end], 0.003, 0.35)
    return as_array(img)


def render_study(patient: PatientPlan, study: StudyPlan, params: SynthParams, rng: np.random.Generator) -> Film:
    """Render one study's frontal film with its ground-truth masks and boxes (notebook 01, data prep)."""
    n = params.image_size
    mods = geometry_mods(study.findings, params.difficulty)
    geo = build_geometry(n, patient.traits, study.image, study.view, mods)
    ptx = collapsed_outlines(geo, study.findings, params.difficulty)
    layers = render_anatomy(geo, patient.traits, study.view, rng, lung_outline=ptx or None)
    extra, masks, boxes = render_findings(geo, layers, study.findings, study.devices, rng, params.difficulty, ptx)
    if study.image.get("ecg_leads"):
        extra += _ecg_leads(geo, rng)
    layers["extra"] = extra
    d = compose(layers, patient.traits["lung_density"])
    ap = study.view == "AP"
    hab = patient.traits["habitus"]
    site_a = params.use_site_effect and study.site == "A"
    # film processing: scatter and low contrast on portable films, blur, exposure, quantum noise
    if ap:
        d = 0.9 * d + 0.06 * layers["body"]
    d = blur(d, (0.55 + 0.25 * rng.random() + (0.25 if site_a else 0.0)) * n / 320)
    lo = -0.03 + 0.04 * rng.standard_normal()
    hi = 1.3 + 0.05 * rng.standard_normal() + 0.03 * hab
    base = float(rng.uniform(180, 520))
    span = float(rng.uniform(2700, 3300))
    v = (d - lo) / (hi - lo)
    noise_dn = (9.0 + 4.0 * rng.random()) * (1.4 if ap else 1.0) * (1.0 + 0.15 * max(hab, 0.0)) * (0.8 if site_a else 1.0)
    noise = rng.standard_normal((n, n), dtype=np.float32) * noise_dn
    noise *= layers["body"] > 0.02  # direct exposure outside the body saturates flat
    stored = np.clip(np.rint(base + v * span + noise), 0, MAX_STORED)
    stored[_burn_markers(n, study)] = MAX_STORED
    slug_masks = {label_slug(k): v_ for k, v_ in masks.items()}
    style = {"noise_dn": noise_dn, "base": base, "span": span,
             "ctr": (geo.heart_r + geo.heart_l) / (2 * geo.hw)}  # as it appears on this film (AP magnifies)
    return Film(stored.astype(np.uint16), (base + 0.5 * span, span), slug_masks, boxes, style)
