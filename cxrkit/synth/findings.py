"""Findings drawn where they occur on real films, each with its ground-truth mask (notebook 01, data prep).

Each finding either changes the geometry before the anatomy is drawn (cardiomegaly, a widened
mediastinum, volume loss, a collapsed lung beside a pneumothorax) or adds density afterwards
(effusion, consolidation, pneumonia, atelectasis, edema, a nodule or mass, a rib fracture, devices).
``difficulty`` divides every finding's contrast and shrinks its size by its square root.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrkit.synth.anatomy import Geometry, lateral_profile, as_array, blur, canvas, draw_path
from cxrkit.synth.course import Finding

_SIDES = ("right", "left")


def _sides(side: str) -> tuple[str, ...]:
    return _SIDES if side == "bilateral" else (side,)


def geometry_mods(findings: dict[str, Finding], difficulty: float) -> dict[str, float]:
    """Return geometry changes caused by findings: heart size, mediastinal width, hemidiaphragm elevation (notebook 01)."""
    mods: dict[str, float] = {}
    c = 1.0 / difficulty
    if "Cardiomegaly" in findings:
        mods["ctr"] = 0.5 + (0.003 + 0.055 * findings["Cardiomegaly"].severity) * c
    if "Enlarged Cardiomediastinum" in findings:
        mods["mediastinum"] = 1.0 + (0.15 + 0.45 * findings["Enlarged Cardiomediastinum"].severity) * c
    if "Atelectasis" in findings:
        f = findings["Atelectasis"]
        for side in _sides(f.side):
            mods[f"elevate_{side}"] = -(0.005 + 0.025 * f.severity) * c
    return mods


def collapsed_outlines(geo: Geometry, findings: dict[str, Finding], difficulty: float) -> dict[str, list]:
    """Return the aerated outline of a lung partly collapsed by a pneumothorax (apicolateral rim of air; notebook 01)."""
    if "Pneumothorax" not in findings:
        return {}
    f = findings["Pneumothorax"]
    side = f.side
    depth = (0.012 + 0.08 * f.severity) / math.sqrt(difficulty)
    sg = geo.side_sign(side)
    hx, hy = geo.hilum[side]
    pts = np.asarray(geo.lung_poly[side])
    x, y = pts[:, 0], pts[:, 1]
    apical = np.clip(1.0 - (y - geo.y_ap) / 0.32, 0, 1)
    lateral = np.clip((sg * (x - geo.mcx) - geo.wm - 0.05) / (0.45 * geo.hw), 0, 1)
    basal = np.clip((y - (geo.cp[side] - 0.16)) / 0.1, 0, 1)
    w = np.clip(np.maximum(apical, lateral * 0.9), 0, 1) * (1 - basal)
    w = np.convolve(np.r_[w[-3:], w, w[:3]], np.ones(7) / 7, mode="same")[3:-3]
    vx, vy = hx - x, hy - y
    norm = np.hypot(vx, vy) + 1e-6
    moved = np.c_[x + vx / norm * depth * w, y + vy / norm * depth * w]
    return {side: [tuple(p) for p in moved.tolist()], "_weights": w.tolist()}


def _lobe_maps(geo: Geometry, layers: dict[str, np.ndarray], side: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (a, b): height fraction apex→dome and medial→lateral fraction within one lung."""
    X, Y = layers["X"], layers["Y"]
    sg = geo.side_sign(side)
    A = (Y - geo.y_ap) / (geo.dome[side] - geo.y_ap)
    yy = Y[:, :1]
    med = geo.med_half(side, yy)
    lat = geo.hw * lateral_profile((yy - geo.y_ap) / (geo.cp[side] - geo.y_ap)) + sg * (geo.cx - geo.mcx)
    B = (sg * (X - geo.mcx) - med) / np.maximum(lat - med, 1e-3)
    return A, B


_LOBES = {  # (a range, b range, sharp inferior fissure)
    "right upper lobe": ((0.0, 0.42), (0.0, 1.0), True),
    "right middle lobe": ((0.42, 0.8), (0.0, 0.6), False),
    "right lower lobe": ((0.55, 1.2), (0.15, 1.0), False),
    "left upper lobe": ((0.0, 0.45), (0.0, 1.0), False),
    "lingula": ((0.45, 0.82), (0.0, 0.6), False),
    "left lower lobe": ((0.55, 1.2), (0.1, 1.0), False),
}


def _smooth_field(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    f = blur(rng.standard_normal((n, n)).astype(np.float32), scale * n)
    return f / (f.std() + 1e-6)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def render_findings(geo: Geometry, layers: dict[str, np.ndarray], findings: dict[str, Finding], devices: list[str],
                    rng: np.random.Generator, difficulty: float, ptx: dict[str, Any] | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], list[tuple[str, tuple[int, int, int, int]]]]:
    """Add every finding's density to the film and return (extra density, masks by label, boxes) (notebook 01, data prep)."""
    n = geo.n
    X, Y = layers["X"], layers["Y"]
    air = layers["air"]
    c = 1.0 / difficulty
    size = 1.0 / math.sqrt(difficulty)
    extra = np.zeros((n, n), np.float32)
    masks: dict[str, np.ndarray] = {}
    boxes: list[tuple[str, tuple[int, int, int, int]]] = []

    def add_part(label: str, part: np.ndarray) -> None:
        part = part.astype(bool)
        if not part.any():
            return
        masks[label] = masks[label] | part if label in masks else part
        b = _box(part)
        if b:
            boxes.append((label, b))

    lung = {s: layers[f"lung_mask_{s}"] > 0.5 for s in _SIDES}
    # -- geometry findings: masks of the changed silhouette
    if "Cardiomegaly" in findings:
        floor = np.where(X < geo.mcx, geo.dome_y("right", X), geo.dome_y("left", X))
        heart = (layers["mediastinum"] > 0.5) & (Y > geo.y_heart) & (Y < floor + 0.01)
        add_part("Cardiomegaly", heart)
    if "Enlarged Cardiomediastinum" in findings:
        add_part("Enlarged Cardiomediastinum", (layers["mediastinum"] > 0.5) & (Y < geo.y_heart) & (Y > geo.y_ap - 0.02))
    if "Pneumothorax" in findings and ptx:
        f = findings["Pneumothorax"]
        s = f.side
        region = lung[s] & (layers[f"aerated_{s}"] < 0.5)
        extra -= 0.07 * c * blur(region.astype(np.float32), 0.003 * n)
        extra += 0.05 * f.severity * layers[f"aerated_{s}"] * air
        img, d = canvas(n)
        pts, w = ptx[s], ptx["_weights"]
        run = [p for p, wi in zip(pts, w) if wi > 0.08]
        if len(run) > 1:
            draw_path(d, geo, run, 0.004, 1.0)
        extra += 0.13 * c * blur(as_array(img), 0.0025 * n) * (Y > geo.y_ap - 0.02)
        add_part("Pneumothorax", region)
    # -- pleural effusion: dependent fluid with a meniscus rising along the lateral wall
    if "Pleural Effusion" in findings:
        f = findings["Pleural Effusion"]
        for s in _sides(f.side):
            sev = float(np.clip(f.severity + rng.normal(0, 0.05), 0.03, 1.0))
            h = (0.004 + 0.1 * sev) * size
            lat = np.clip((np.abs(X - geo.mcx) - geo.wm - 0.04) / (0.85 * geo.hw), 0, 1)
            level = geo.dome[s] + 0.025 - h - (0.6 * h + 0.02) * lat ** 2
            ramp = np.clip((Y - level) / (0.012 + 0.03 * sev), 0, 1) ** 0.7
            side_zone = blur(lung[s].astype(np.float32), 0.004 * n)
            fluid = ramp * side_zone
            extra += min(1.0, (0.3 + 0.5 * sev) * c) * 0.8 * air * fluid + 0.02 * c * fluid
            add_part("Pleural Effusion", lung[s] & (Y > level + 0.006))
    # -- airspace disease: lobar consolidation (dense, sharp fissure, air bronchograms) and patchy pneumonia
    for label in ("Consolidation", "Pneumonia"):
        if label not in findings:
            continue
        f = findings[label]
        lobe = f.detail.get("lobe", "right lower lobe")
        s = "right" if lobe.startswith("right") else "left"
        (a0, a1), (b0, b1), sharp = _LOBES[lobe]
        A, B = _lobe_maps(geo, layers, s)
        inlobe = (A > a0) & (A < a1) & (B > b0) & (B < b1) & lung[s]
        field = _smooth_field(rng, n, 0.025 if label == "Consolidation" else 0.015)
        ca, cb = (a0 + min(a1, 1.0)) / 2, (b0 + b1) / 2
        centre = -(((A - ca) / max(a1 - a0, 0.2)) ** 2 + ((B - cb) / max(b1 - b0, 0.3)) ** 2) * 4
        frac = (0.25 + 0.6 * f.severity) * size
        score = field * (0.6 if label == "Consolidation" else 1.0) + centre
        thr = np.quantile(score[inlobe], 1 - min(frac, 0.98)) if inlobe.any() else 0.0
        region = inlobe & (score > thr)
        soft = blur(region.astype(np.float32), (0.002 if sharp else 0.006) * n)
        if label == "Consolidation":
            dens = (0.15 + 0.35 * f.severity) * c
            bronch = canvas(n)
            for _ in range(3):
                hx, hy = geo.hilum[s]
                tx, ty = geo.lung_point(s, float(np.clip(ca + rng.normal(0, 0.1), 0.1, 0.9)), float(np.clip(cb + rng.normal(0, 0.15), 0.2, 0.9)))
                draw_path(bronch[1], geo, [(hx, hy), ((hx + tx) / 2, (hy + ty) / 2 + 0.01), (tx, ty)], 0.006, 1.0)
            tex = 1.0 - 0.35 * blur(as_array(bronch[0]), 0.002 * n)
        else:
            dens = (0.15 + 0.28 * f.severity) * c
            tex = np.clip(0.65 + 0.35 * _smooth_field(rng, n, 0.006), 0.2, 1.3)
        extra += dens * air * soft * tex
        add_part(label, region)
    # -- atelectasis: plate-like bands at the base (plus the elevated hemidiaphragm set in geometry_mods)
    if "Atelectasis" in findings:
        f = findings["Atelectasis"]
        for s in _sides(f.side):
            img, d = canvas(n)
            sg = geo.side_sign(s)
            k = 1 if f.detail.get("kind") == "basal" else int(rng.integers(1, 3))
            for j in range(k):
                a = float(rng.uniform(0.68, 0.86))
                x0, y0 = geo.lung_point(s, a, float(rng.uniform(0.15, 0.35)))
                length = (0.09 + 0.12 * f.severity) * size
                ang = math.radians(rng.uniform(-12, 12))
                pts = [(x0, y0), (x0 + sg * length * math.cos(ang), y0 + length * math.sin(ang) * sg)]
                thick = (0.007 + 0.014 * f.severity) * size * (2.0 if f.detail.get("kind") == "basal" else 1.0)
                draw_path(d, geo, pts, thick, 1.0)
            band = as_array(img)
            band *= lung[s]
            extra += (0.2 + 0.3 * f.severity) * c * air * blur(band, 0.003 * n)
            add_part("Atelectasis", band > 0.5)
    # -- edema: bilateral perihilar haze with Kerley lines when moderate
    if "Edema" in findings:
        f = findings["Edema"]
        sigma = 0.1 + 0.07 * f.severity
        haze = np.zeros((n, n), np.float32)
        for s in _SIDES:
            hx, hy = geo.hilum[s]
            haze = np.maximum(haze, np.exp(-(((X - hx) ** 2) / (2 * (sigma * 1.3) ** 2) + ((Y - hy - 0.03) ** 2) / (2 * sigma ** 2))))
        haze *= np.clip(0.8 + 0.4 * _smooth_field(rng, n, 0.012), 0.3, 1.3)
        lungs = (lung["right"] | lung["left"]).astype(np.float32)
        amp = (0.06 + 0.22 * f.severity) * c
        if f.severity > 0.6:
            img, d = canvas(n)
            for s in _SIDES:
                sg = geo.side_sign(s)
                for _ in range(5):
                    x0, y0 = geo.lung_point(s, float(rng.uniform(0.7, 0.92)), 0.97)
                    draw_path(d, geo, [(x0, y0), (x0 - sg * 0.035, y0)], 0.003, 1.0)
            extra += 0.08 * c * as_array(img) * lungs
        extra += amp * air * haze * lungs
        add_part("Edema", (haze > 0.45) & (lungs > 0))
    # -- lung lesion: a round nodule or a lobulated mass
    if "Lung Lesion" in findings:
        f = findings["Lung Lesion"]
        x0, y0 = geo.lung_point(f.side, f.detail["a"], f.detail["b"])
        r = f.detail["size_mm"] / 2 / 400.0 * size * (0.8 + 0.4 * f.severity)
        prof = np.zeros((n, n), np.float32)
        lobes = 1 if f.detail.get("kind") == "nodule" else 3
        for j in range(lobes):
            ox, oy = (rng.normal(0, r * 0.3), rng.normal(0, r * 0.3)) if j else (0.0, 0.0)
            rr = r * (1.0 if j == 0 else rng.uniform(0.6, 0.85))
            d2 = ((X - x0 - ox) ** 2 + (Y - y0 - oy) ** 2) / rr ** 2
            prof = np.maximum(prof, np.sqrt(np.clip(1 - d2, 0, 1)))
        amp = min(0.6, 0.25 + 6.0 * r) * c
        extra += amp * blur(prof, 0.002 * n) * np.maximum(air, 0.3)
        add_part("Lung Lesion", prof > 0.05)
    # -- rib fracture: a gap in a rib with the distal fragment displaced
    if "Fracture" in findings:
        f = findings["Fracture"]
        rib = geo.ribs[f.side][f.detail["rib"]]
        t = f.detail["t"]
        i = min(int(t * 13), 12)
        (x0, y0), (x1, y1) = rib[i], rib[i + 1]
        bx, by = x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.5
        tx, ty = x1 - x0, y1 - y0
        norm = math.hypot(tx, ty) + 1e-9
        nx, ny = -ty / norm, tx / norm
        gap = (0.016 + 0.012 * f.severity) * size
        img, d = canvas(n)
        draw_path(d, geo, [(bx - nx * 0.03, by - ny * 0.03), (bx + nx * 0.03, by + ny * 0.03)], gap, 1.0)
        cut = blur(as_array(img), 0.0015 * n)
        bone = layers["bone"]
        shift = max(1, int(round((0.01 + 0.012 * f.severity) * size * n)))
        distal = ((X - bx) * tx + (Y - by) * ty > 0) & (((X - bx) ** 2 + (Y - by) ** 2) < 0.045 ** 2)
        moved = np.roll(bone, shift, axis=0) - bone
        extra += 0.16 * min(1.0, c) * (moved * distal - bone * cut)
        if f.detail.get("healing"):  # callus: a fusiform bony density around an older break
            r2 = ((X - bx) ** 2 + (Y - by) ** 2) / (0.022 * size) ** 2
            extra += 0.16 * c * np.exp(-r2)
        add_part("Fracture", ((X - bx) ** 2 + (Y - by) ** 2) < (0.022 * size) ** 2)
    # -- support devices
    if devices:
        dens, parts = _devices(geo, devices, findings)
        extra += dens
        for part in parts:
            add_part("Support Devices", part)
    return extra, masks, boxes


def _devices(geo: Geometry, devices: list[str], findings: dict[str, Finding]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Radiopaque tubes, lines, leads and generators: density plus one mask per device."""
    n = geo.n
    total = np.zeros((n, n), np.float32)
    parts = []
    cx, cy = geo.carina
    for dev in devices:
        img, d = canvas(n)
        mimg, md = canvas(n)
        if dev == "ett":
            path = [(geo.mcx + 0.003, -0.02), (geo.mcx + 0.002, geo.y_ap), (cx, cy - 0.045)]
            draw_path(d, geo, path, 0.02, 0.1)
            draw_path(d, geo, path, 0.004, 0.6)
            draw_path(md, geo, path, 0.026)
        elif dev == "ng":
            path = [(geo.mcx + 0.012, -0.02), (geo.mcx + 0.016, geo.y_heart), (geo.mcx + 0.03, geo.dome["left"] + 0.02),
                    (geo.cx + 0.3 * geo.hw, geo.dome["left"] + 0.07), (geo.cx + 0.42 * geo.hw, geo.dome["left"] + 0.05)]
            draw_path(d, geo, path, 0.005, 0.45)
            draw_path(md, geo, path, 0.014)
        elif dev.startswith("cvc"):
            tip = (geo.mcx - 0.7 * geo.wm, geo.y_heart - 0.02)
            if dev == "cvc_ij":
                path = [(geo.mcx - 0.09, -0.02), (geo.mcx - 0.075, geo.y_ap - 0.04), (geo.mcx - geo.wm * 0.9, geo.y_ap + 0.06), tip]
            else:
                path = [(geo.cx - 0.3, geo.y_ap + 0.02), (geo.cx - 0.16, geo.y_ap + 0.05), (geo.mcx - geo.wm, geo.y_ap + 0.07), tip]
            draw_path(d, geo, path, 0.004, 0.5)
            draw_path(md, geo, path, 0.014)
        elif dev == "pacemaker":
            gx, gy = geo.cx + 0.24, geo.y_ap + 0.07
            box = geo.to_px([(gx - 0.04, gy - 0.03), (gx + 0.04, gy + 0.03)])
            d.rounded_rectangle([box[0][0], box[0][1], box[1][0], box[1][1]], radius=0.012 * n, fill=1.2)
            md.rounded_rectangle([box[0][0] - 2, box[0][1] - 2, box[1][0] + 2, box[1][1] + 2], radius=0.012 * n, fill=1.0)
            ra = (geo.mcx - 0.5 * geo.heart_r, geo.y_heart + 0.06)
            rv = (geo.mcx + 0.55 * geo.heart_l, geo.dome["left"] - 0.02)
            for tip, bend in ((ra, 0.0), (rv, 0.02)):
                path = [(gx - 0.03, gy), (gx - 0.1, gy - 0.015), (geo.mcx + 0.06, geo.y_ap + 0.06),
                        (geo.mcx - 0.3 * geo.wm, geo.y_ap + 0.1), (geo.mcx - 0.6 * geo.wm, geo.y_heart - 0.02 + bend),
                        (geo.mcx - 0.3 * geo.heart_r, geo.y_heart + 0.08), tip]
                draw_path(d, geo, path, 0.006, 0.7)
                draw_path(md, geo, path, 0.014)
        elif dev.startswith("chest_tube"):
            side = dev.rsplit("_", 1)[1]
            sg = geo.side_sign(side)
            path = [(geo.cx + sg * (geo.hw + 0.09), geo.cp[side] - 0.12), (geo.cx + sg * (geo.hw - 0.01), geo.cp[side] - 0.17),
                    (geo.cx + sg * 0.8 * geo.hw, geo.y_ap + 0.2), (geo.cx + sg * 0.6 * geo.hw, geo.y_ap + 0.06)]
            draw_path(d, geo, path, 0.016, 0.2)
            draw_path(d, geo, path, 0.006, 0.7)
            draw_path(md, geo, path, 0.022)
        total += blur(as_array(img), 0.0015 * n)
        parts.append(as_array(mimg) > 0.5)
    return total, parts
