"""Chest-film anatomy: geometry of the thorax and its rendering into a density map (notebook 01, data prep).

Coordinates are normalised to the image side (x to the right, y down, both 0..1); the patient's right
lies on the image left, as on every frontal chest film. :func:`build_geometry` turns a patient's traits
and a study's positioning into landmarks and outlines; :func:`render_anatomy` draws body, lungs with
vascular markings, heart and mediastinum, trachea, spine, ribs, clavicles, scapulae and domes as additive
density layers that the findings then modify.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

Point = tuple[float, float]


@dataclass
class Geometry:
    """Landmarks (normalised units) and outlines of one film's thorax (notebook 01, data prep)."""

    n: int
    cx: float            # centre of the thoracic cage
    mcx: float           # centre of the mediastinum (differs from cx when the patient is rotated)
    hw: float            # lung half-width at its widest
    y_ap: float          # lung apices
    dome: dict[str, float]        # top of each hemidiaphragm, keyed "right"/"left"
    cp: dict[str, float]          # costophrenic angle height per side
    hilum: dict[str, Point]
    carina: Point
    wm: float            # half-width of the superior mediastinum (right paratracheal/SVC stripe)
    heart_r: float       # heart extent right of the midline
    heart_l: float       # heart extent left of the midline
    y_heart: float       # top of the heart (start of right atrial border)
    tilt: float          # degrees of in-plane tilt
    shift: Point
    lung_poly: dict[str, list[Point]] = field(default_factory=dict)
    ribs: dict[str, list[list[Point]]] = field(default_factory=dict)   # posterior ribs per side
    med_right: Callable[[np.ndarray], np.ndarray] | None = None
    med_left: Callable[[np.ndarray], np.ndarray] | None = None

    def side_sign(self, side: str) -> int:
        """Return -1 for the patient's right (image left) and +1 for the left (notebook 01, data prep)."""
        return -1 if side == "right" else 1

    def to_px(self, pts: list[Point] | np.ndarray) -> list[Point]:
        """Map normalised anatomical points to pixel coordinates, applying tilt and shift (notebook 01, data prep)."""
        th = math.radians(self.tilt)
        c, s, n = math.cos(th), math.sin(th), self.n
        ox, oy = 0.5 + self.shift[0], 0.5 + self.shift[1]
        if isinstance(pts, np.ndarray):
            pts = pts.reshape(-1, 2).tolist()
        return [((c * (x - 0.5) - s * (y - 0.5) + ox) * n, (s * (x - 0.5) + c * (y - 0.5) + oy) * n) for x, y in pts]

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Return anatomical (x, y) coordinates of every pixel, the inverse of :meth:`to_px` (notebook 01, data prep)."""
        idx = (np.arange(self.n, dtype=np.float32) + 0.5) / self.n
        th = math.radians(self.tilt)
        c, s = math.cos(th), math.sin(th)
        X = idx[None, :] - 0.5 - self.shift[0]
        Y = idx[:, None] - 0.5 - self.shift[1]
        return (c * X + s * Y + 0.5).astype(np.float32), (-s * X + c * Y + 0.5).astype(np.float32)

    def dome_y(self, side: str, x: np.ndarray | float) -> np.ndarray | float:
        """Height of the hemidiaphragm of ``side`` at anatomical x (notebook 01, data prep)."""
        sg = self.side_sign(side)
        peak = self.cx + sg * 0.45 * self.hw
        k = (self.cp[side] - self.dome[side]) / 0.53 ** 2
        return self.dome[side] + k * ((np.asarray(x) - peak) / self.hw) ** 2

    def lung_point(self, side: str, a: float, b: float) -> Point:
        """Return the point at height fraction ``a`` (apex→dome) and medial→lateral fraction ``b`` of a lung (notebook 01)."""
        sg = self.side_sign(side)
        y = self.y_ap + a * (self.dome[side] - self.y_ap) + 0.03
        med = self.mcx + sg * float(self.med_half(side, np.array([y]))[0])
        lat = self.cx + sg * self.hw * float(lateral_profile(np.array([(y - self.y_ap) / (self.cp[side] - self.y_ap)]))[0])
        return (med + b * (lat - med), y)

    def med_half(self, side: str, y: np.ndarray) -> np.ndarray:
        """Half-width of the cardiomediastinal silhouette on ``side`` at heights ``y`` (notebook 01, data prep)."""
        fn = self.med_right if side == "right" else self.med_left
        assert fn is not None
        return fn(y)


def lateral_profile(t: np.ndarray) -> np.ndarray:
    """Lateral lung border as a fraction of the half-width, t = 0 at the apex, 1 at the costophrenic angle (notebook 01)."""
    t = np.clip(t, 0.0, 1.0)
    apex = np.sqrt(np.clip(1.0 - (1.0 - np.minimum(t, 0.12) / 0.12) ** 2, 0.0, 1.0))
    return 0.38 + 0.14 * apex + 0.48 * np.sin(0.5 * np.pi * np.clip(t / 0.8, 0, 1)) ** 0.9 - 0.02 * np.clip((t - 0.9) / 0.1, 0, 1)


def _bulge(u: np.ndarray, peak: float = 0.62) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    rise = np.sin(0.5 * np.pi * np.minimum(u / peak, 1.0)) ** 0.6
    return rise * (1.0 - 0.12 * np.clip((u - peak) / (1.0 - peak), 0.0, 1.0))


def build_geometry(n: int, traits: dict[str, float], image: dict[str, float], view: str,
                   mods: dict[str, float] | None = None) -> Geometry:
    """Turn patient traits, study positioning and finding effects into one film's geometry (notebook 01, data prep)."""
    mods = mods or {}
    ap = view == "AP"
    hw = traits["half_width"] * (1.03 if ap else 1.0)
    y_ap = traits["apex"] + (0.015 if ap else 0.0)
    dome_r = traits["dome"] + image["inspiration"] + mods.get("elevate_right", 0.0)
    dome_l = traits["dome"] + traits["dome_asym"] + image["inspiration"] + mods.get("elevate_left", 0.0)
    cx = 0.5
    mcx = cx + image["rotation"]
    mag = 1.1 if ap else 1.0
    ctr = mods.get("ctr", traits["ctr"])
    heart_w = ctr * 2 * hw * mag
    wm = traits["mediastinum"] * mag * mods.get("mediastinum", 1.0)
    knob = traits["aortic_knob"] * mag * mods.get("mediastinum", 1.0) ** 0.7
    y_hr = y_ap + 0.40 * (dome_r - y_ap)
    y_heart = y_hr + 0.03
    geo = Geometry(
        n=n, cx=cx, mcx=mcx, hw=hw, y_ap=y_ap, dome={"right": dome_r, "left": dome_l},
        cp={"right": dome_r + 0.085, "left": dome_l + 0.085},
        hilum={"right": (mcx - wm - 0.04, y_hr), "left": (mcx + wm + 0.045, y_hr - 0.018)},
        carina=(mcx + 0.004, y_ap + 0.27 * (dome_r - y_ap)), wm=wm,
        heart_r=0.37 * heart_w, heart_l=0.63 * heart_w, y_heart=y_heart,
        tilt=image["tilt"], shift=(image["shift_x"], image["shift_y"]),
    )
    y_knob = y_ap + 0.11
    y_lv = y_hr + 0.015

    def med_right(y: np.ndarray) -> np.ndarray:
        svc = wm * (0.8 + 0.2 * np.clip((y - y_ap) / (y_heart - y_ap), 0, 1))
        u = (y - y_heart) / (geo.dome["right"] + 0.03 - y_heart)
        ra = wm + (geo.heart_r - wm) * _bulge(u, 0.62)
        return np.where(y < y_heart, svc, np.maximum(svc, ra))

    def med_left(y: np.ndarray) -> np.ndarray:
        base = 0.75 * wm + 0.0 * y
        knob_b = (knob - 0.75 * wm) * np.exp(-0.5 * ((y - y_knob) / 0.022) ** 2)
        pa = (knob * 0.85 - 0.75 * wm) * np.exp(-0.5 * ((y - (y_knob + 0.065)) / 0.022) ** 2)
        u = (y - y_lv) / (geo.dome["left"] + 0.03 - y_lv)
        lv = np.where(y > y_lv, 0.8 * wm + (geo.heart_l - 0.8 * wm) * _bulge(u, 0.72), 0.0)
        return np.maximum.reduce([base + knob_b, base + pa, lv])

    geo.med_right, geo.med_left = med_right, med_left
    for side in ("right", "left"):
        geo.lung_poly[side] = _lung_outline(geo, side)
        geo.ribs[side] = _rib_paths(geo, side, traits.get("rib_spacing", 1.0), ap)
    return geo


def _lung_outline(geo: Geometry, side: str) -> list[Point]:
    sg = geo.side_sign(side)
    cp = geo.cp[side]
    # lateral border from apex to costophrenic angle
    ys = np.linspace(geo.y_ap, cp, 40)
    xs = geo.cx + sg * geo.hw * lateral_profile((ys - geo.y_ap) / (cp - geo.y_ap))
    lateral = list(zip(xs.tolist(), ys.tolist()))
    # diaphragm from lateral (costophrenic angle) to medial (cardiophrenic angle)
    dx = np.linspace(geo.cx + sg * geo.hw * 0.97, geo.mcx, 60)
    dy = np.asarray(geo.dome_y(side, dx))
    med = geo.mcx + sg * geo.med_half(side, dy)
    inside = sg * (dx - med) > 0
    stop = int(np.argmin(inside)) if not inside.all() else len(dx)
    dome = list(zip(dx[:stop].tolist(), dy[:stop].tolist()))
    y_cardiophrenic = float(dy[max(stop - 1, 0)])
    # medial border up along the cardiomediastinal silhouette, then over the apex
    ym = np.linspace(y_cardiophrenic, geo.y_ap + 0.05, 40)
    xm = geo.mcx + sg * (geo.med_half(side, ym) + 0.004)
    medial = list(zip(xm.tolist(), ym.tolist()))
    apex_x = geo.cx + sg * 0.38 * geo.hw
    th = np.linspace(0, 0.5 * np.pi, 10)
    top = [(apex_x + (xm[-1] - apex_x) * math.sin(t), geo.y_ap + (ym[-1] - geo.y_ap) * (1 - math.cos(t))) for t in th[::-1]]
    return lateral + dome + medial + top


def _rib_paths(geo: Geometry, side: str, spacing: float, ap: bool) -> list[list[Point]]:
    """Posterior ribs 1..10 of one side, each a polyline from the spine to the lateral chest wall and on anteriorly."""
    sg = geo.side_sign(side)
    ribs = []
    step = (geo.dome["right"] - geo.y_ap + 0.06) / 9.3 * spacing
    for k in range(10):
        y0 = geo.y_ap - 0.035 + k * step
        t_lat = (y0 + 0.05 - geo.y_ap) / (geo.cp[side] - geo.y_ap)
        reach = geo.hw * float(lateral_profile(np.array([t_lat]))[0]) + 0.015 - 0.03 + (geo.cx - geo.mcx) * sg
        ts = np.linspace(0, 1, 14)
        x = geo.mcx + sg * (0.03 + ts * reach)
        rise = (0.03 if k > 0 else 0.015) * np.sin(np.pi * np.clip(ts / 0.7, 0, 1)) * (1 - 0.3 * ts)
        drop = (0.075 + 0.004 * k) * ts ** 2.0
        y = y0 - rise + drop + (0.01 if ap else 0.0) * ts
        post = list(zip(x.tolist(), y.tolist()))
        # anterior arc: down and medially from the lateral wall, fading medially
        ta = np.linspace(0, 1, 8)[1:]
        xa = x[-1] - sg * ta * reach * 0.55 + sg * 0.02 * np.sin(np.pi * ta)
        ya = y[-1] + ta * (0.07 + 0.004 * k) + 0.02 * np.sin(np.pi * ta * 0.5)
        ribs.append(post + list(zip(xa.tolist(), ya.tolist())))
    return ribs


# ---------------------------------------------------------------------------- rasterising helpers
def canvas(n: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """Return a blank float image of side ``n`` and a drawer for it (notebook 01, data prep)."""
    img = Image.new("F", (n, n), 0.0)
    return img, ImageDraw.Draw(img)


def as_array(img: Image.Image) -> np.ndarray:
    """Return a PIL float image as a writable float32 array (notebook 01, data prep)."""
    return np.array(img, dtype=np.float32)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downsampled copy (same look, a fraction of the time) (notebook 01, data prep)."""
    if sigma <= 0.2:
        return a
    if sigma < 2.5:
        return ndimage.gaussian_filter(a, sigma, truncate=2.5)
    h, w = a.shape
    f = max(2, int(sigma / 1.25))
    small = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32)).resize((max(1, w // f), max(1, h // f)), Image.BOX)
    s = math.sqrt(max(sigma * sigma - f * f / 6.0, 0.25)) / f
    out = ndimage.gaussian_filter(np.asarray(small, dtype=np.float32), s, truncate=2.5)
    return np.asarray(Image.fromarray(out).resize((w, h), Image.BILINEAR), dtype=np.float32)


def polygon_mask(geo: Geometry, pts: list[Point]) -> np.ndarray:
    """Rasterise an anatomical polygon into a 0/1 float mask (notebook 01, data prep)."""
    img, d = canvas(geo.n)
    d.polygon(geo.to_px(pts), fill=1.0)
    return as_array(img)


def draw_path(d: ImageDraw.ImageDraw, geo: Geometry, pts: list[Point], width: float, value: float = 1.0) -> None:
    """Draw a polyline of normalised ``width`` onto a float canvas (notebook 01, data prep)."""
    w = max(1, int(round(width * geo.n)))
    d.line(geo.to_px(pts), fill=value, width=w, joint="curve")


# ---------------------------------------------------------------------------- the anatomy layers
def _vessel_tree(rng: np.random.Generator, geo: Geometry, side: str) -> list[tuple[list[Point], float, float]]:
    """Pulmonary vessels as (polyline, width, brightness): thick tapering trunks branching out from the hilum."""
    sg = geo.side_sign(side)
    hx, hy = geo.hilum[side]
    segs: list[tuple[list[Point], float, float]] = []
    stack = []
    # trunks fan up, out and down from the hilum (lower zones carry bigger vessels on an erect film)
    for ang in (-75, -45, -15, 10, 35, 60, 85):
        a = math.radians(ang + rng.normal(0, 8))
        dx, dy = sg * math.cos(a) * 0.8 + (0.2 * sg if ang > 70 else 0), math.sin(a)
        width = 0.012 if ang > 0 else 0.0095
        stack.append((hx, hy, math.atan2(dy, dx), 0.06 + 0.025 * rng.random(), width, 0))
    while stack:
        x, y, a, length, width, depth = stack.pop()
        pts = [(x, y)]
        for _ in range(3):
            a += rng.normal(0, 0.1)
            x += math.cos(a) * length / 3
            y += math.sin(a) * length / 3
            pts.append((x, y))
        segs.append((pts, width, 0.8 ** depth))
        if depth < 4:
            for turn in (-1, 1):
                if depth >= 2 and rng.random() < 0.3:
                    continue
                stack.append((x, y, a + turn * rng.uniform(0.25, 0.6), length * rng.uniform(0.62, 0.78),
                              max(width * 0.68, 0.0025), depth + 1))
    return segs


def render_anatomy(geo: Geometry, traits: dict[str, float], view: str, rng: np.random.Generator,
                   lung_outline: dict[str, list[Point]] | None = None) -> dict[str, np.ndarray]:
    """Draw the normal chest as density layers: body, lungs, vessels, heart, bones (notebook 01, data prep).

    ``lung_outline`` may replace a lung's aerated outline (a collapsed lung beside a pneumothorax);
    vessels are drawn only inside the aerated outline.
    """
    n = geo.n
    X, Y = geo.grid()
    ap = view == "AP"
    hab = traits["habitus"]
    # body soft tissue: an elliptic cross-section whose half-width changes from neck to shoulders to chest
    y_sh = geo.y_ap - 0.03
    neck = 0.10 + 0.01 * hab
    chest = geo.hw + 0.04 + 0.015 * hab
    shoulders = geo.hw + 0.13
    t_sh = 1.0 / (1.0 + np.exp(-(Y - y_sh) / 0.015))
    bw = neck + (shoulders - neck) * t_sh + (chest - shoulders) * np.clip((Y - geo.y_ap - 0.02) / 0.15, 0, 1)
    body = np.sqrt(np.clip(1.0 - ((X - geo.mcx) / bw) ** 2, 0.0, 1.0)) * (0.6 + 0.4 * t_sh)
    layers: dict[str, np.ndarray] = {"body": body.astype(np.float32)}
    # lungs: air replaces most of the body's thickness; thinner medially (heart) and at the apices
    lungs = {}
    for side in ("right", "left"):
        lungs[side] = polygon_mask(geo, geo.lung_poly[side])
    both = lungs["right"] + lungs["left"]
    zone = 0.62 + 0.38 * np.clip((Y - geo.y_ap) / (geo.dome["right"] - geo.y_ap), 0, 1) ** 0.5
    layers["lung_mask_right"], layers["lung_mask_left"] = lungs["right"], lungs["left"]
    layers["X"], layers["Y"] = X, Y
    wide = blur(both, 0.02 * n)
    layers["air"] = (blur(both, 0.004 * n) * zone * wide ** 0.4 * body).astype(np.float32)
    # vessels inside the aerated lung, fading towards the periphery
    vimg, vd = canvas(n)
    for side in ("right", "left"):
        for pts, width, value in _vessel_tree(rng, geo, side):
            draw_path(vd, geo, pts, width, value)
        hx, hy = geo.hilum[side]
        for j in range(4):  # the hilum: overlapping proximal arteries and veins
            a = math.radians(-60 + 45 * j + rng.normal(0, 10))
            draw_path(vd, geo, [(hx - geo.side_sign(side) * 0.015, hy), (hx + geo.side_sign(side) * 0.04 * abs(math.cos(a)), hy + 0.045 * math.sin(a))], 0.022, 1.1)
    aerated = {s: polygon_mask(geo, (lung_outline or {}).get(s, geo.lung_poly[s])) for s in ("right", "left")}
    layers["aerated_right"], layers["aerated_left"] = aerated["right"], aerated["left"]
    inner = blur(aerated["right"] + aerated["left"], 0.03 * n)
    fade = np.zeros((n, n), np.float32)
    for side in ("right", "left"):
        hx, hy = geo.hilum[side]
        fade = np.maximum(fade, np.exp(-(((X - hx) ** 2 + (Y - hy) ** 2) / (2 * 0.2 ** 2))))
    layers["vessels"] = (blur(as_array(vimg), 0.003 * n) * np.clip(inner * 1.6 - 0.3, 0, 1) * (0.35 + 0.65 * fade)).astype(np.float32)
    # heart and mediastinum
    ys = np.linspace(0.0, max(geo.dome["left"], geo.dome["right"]) + 0.12, 80)
    right = list(zip((geo.mcx - geo.med_half("right", ys)).tolist(), ys.tolist()))
    left = list(zip((geo.mcx + geo.med_half("left", ys)).tolist(), ys.tolist()))
    med = polygon_mask(geo, right + left[::-1])
    layers["mediastinum"] = med
    aer = aerated["right"] + aerated["left"]
    layers["texture"] = blur(rng.standard_normal((n, n)).astype(np.float32), 0.006 * n) * blur(aer, 0.01 * n)
    # trachea and main bronchi (air)
    timg, td = canvas(n)
    cxr, cyr = geo.carina
    draw_path(td, geo, [(geo.mcx, -0.02), (geo.mcx + 0.002, geo.y_ap), (cxr, cyr)], 0.038)
    draw_path(td, geo, [(cxr, cyr), (geo.hilum["right"][0] + 0.02, geo.hilum["right"][1] - 0.01)], 0.024)
    draw_path(td, geo, [(cxr, cyr), (geo.hilum["left"][0] - 0.02, geo.hilum["left"][1] - 0.005)], 0.022)
    layers["trachea"] = blur(as_array(timg), 0.004 * n)
    trunk, girdle = _bones(geo, ap)
    layers["bone"] = (trunk * (0.15 + 0.85 * wide) + girdle) * np.clip(body * 3.0, 0, 1)
    # subdiaphragmatic: gastric bubble under the left dome
    gimg, gd = canvas(n)
    gx = geo.cx + 0.42 * geo.hw
    gy = geo.dome["left"] + 0.055
    gd.ellipse(_ellipse_px(geo, gx, gy, 0.04 + 0.02 * rng.random(), 0.025), fill=1.0)
    gd.ellipse(_ellipse_px(geo, gx + 0.03 * rng.normal(), gy + 0.01, 0.03, 0.02), fill=0.7)
    gas = as_array(gimg) * np.clip((Y - np.asarray(geo.dome_y("left", X))) / 0.02 - 0.5, 0, 1)
    layers["gas"] = blur(gas, 0.01 * n) * (0.4 + 0.6 * rng.random())
    # breast shadows
    if traits.get("breast", 0) > 0:
        bimg, bd = canvas(n)
        by = geo.dome["right"] - 0.01
        for sg in (-1, 1):  # lateral lower-zone shadows: sharp lower edge, fading upwards
            bd.ellipse(_ellipse_px(geo, geo.cx + sg * 0.72 * geo.hw, by, 0.19, 0.1), fill=1.0)
        fade = np.clip((Y - (by - 0.1)) / 0.14, 0, 1)
        layers["breast"] = blur(as_array(bimg), 0.008 * n) * fade * traits["breast"]
    return layers


def _ellipse_px(geo: Geometry, x: float, y: float, rx: float, ry: float) -> list[float]:
    (px, py), = geo.to_px([(x, y)])
    return [px - rx * geo.n, py - ry * geo.n, px + rx * geo.n, py + ry * geo.n]


def _bones(geo: Geometry, ap: bool) -> tuple[np.ndarray, np.ndarray]:
    n = geo.n
    img, d = canvas(n)
    # spine: vertebral bodies with pedicles, seen faintly through the mediastinum
    step = (geo.dome["right"] - geo.y_ap + 0.06) / 9.3
    y = geo.y_ap - 0.1
    while y < 1.05:
        w = 0.034 + 0.006 * min(1.0, max(0.0, (y - geo.y_ap) / 0.6))
        d.polygon(geo.to_px([(geo.mcx - w, y), (geo.mcx + w, y), (geo.mcx + w, y + step * 0.8), (geo.mcx - w, y + step * 0.8)]), fill=0.55)
        for sg in (-1, 1):
            d.ellipse(_ellipse_px(geo, geo.mcx + sg * w * 0.75, y + step * 0.3, 0.008, 0.012), fill=1.0)
        d.ellipse(_ellipse_px(geo, geo.mcx, y + step * 0.55, 0.006, 0.014), fill=0.9)
        y += step
    spine = blur(as_array(img), 0.003 * n)
    # ribs: cortical rims brighter than the medulla, anterior ends faint
    rimg, rd = canvas(n)
    inner_img, ird = canvas(n)
    for side in ("right", "left"):
        for k, path in enumerate(geo.ribs[side]):
            w = 0.021 + 0.0012 * min(k, 6)
            draw_path(rd, geo, path[:14], w, 1.0)
            draw_path(ird, geo, path[:14], w * 0.55, 1.0)
            draw_path(rd, geo, path[13:], w * 1.1, 0.45)
    rib = as_array(rimg)
    ribs = blur(0.6 * rib + 0.4 * (rib - as_array(inner_img)).clip(0), 0.0025 * n)
    # clavicles, scapulae, humeral heads
    cimg, cd = canvas(n)
    for sg in (-1, 1):
        y0 = geo.y_ap + (0.0 if ap else 0.035)
        pts = [(geo.mcx + sg * 0.03, y0 + 0.02), (geo.cx + sg * 0.12, y0 + 0.01), (geo.cx + sg * 0.24, y0 - 0.025),
               (geo.cx + sg * (geo.hw + 0.02), y0 - 0.055 - (0.02 if ap else 0))]
        draw_path(cd, geo, pts, 0.03, 1.2)
        hx = geo.cx + sg * (geo.hw + 0.085)
        cd.ellipse(_ellipse_px(geo, hx, geo.y_ap + 0.0, 0.045, 0.05), fill=0.6)
        draw_path(cd, geo, [(hx, geo.y_ap), (hx + sg * 0.01, geo.y_ap + 0.2)], 0.045, 0.5)
        if ap:  # scapulae project over the lateral lungs on portable films
            scap_x = geo.cx + sg * geo.hw * 0.75
            scap = [(geo.cx + sg * (geo.hw + 0.1), geo.y_ap - 0.03), (scap_x, geo.y_ap + 0.02),
                    (scap_x + sg * 0.03, geo.y_ap + 0.3), (geo.cx + sg * (geo.hw + 0.09), geo.y_ap + 0.34)]
            cd.polygon(geo.to_px(scap), fill=0.3)
    other = blur(as_array(cimg), 0.003 * n)
    return (0.5 * spine + ribs).astype(np.float32), other.astype(np.float32)


def compose(layers: dict[str, np.ndarray], lung_density: float = 1.0) -> np.ndarray:
    """Sum the anatomy layers (plus any finding layers already added) into a raw density map (notebook 01)."""
    d = layers["body"] - 0.80 * lung_density * layers["air"]
    d -= 0.12 * layers["trachea"] * layers["body"]
    d -= 0.35 * layers["gas"]
    d += 0.26 * layers["vessels"]
    d += 0.10 * layers["texture"]
    d += 0.13 * layers["bone"]
    if "breast" in layers:
        d += 0.07 * layers["breast"]
    if "extra" in layers:
        d += layers["extra"]
    return d
