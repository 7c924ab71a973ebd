"""Patients over time: who is imaged, where, how sick, and which findings each study holds (notebook 01, data prep).

This is the labels-only half of the generator: it draws every patient's clinical course (sites, views,
findings with severity and laterality, devices placed and removed, report misses) without drawing a
pixel, so prevalences and confounders can be studied in a second on thousands of patients.
Findings follow a Gaussian-copula model: each finding's latent score mixes shared sickness, cardiac and
infection factors with its own noise, each an AR(1) process over studies with a stationary N(0, 1)
marginal, and a finding is present when its score passes the site's prevalence threshold.
Per-study prevalence therefore equals the parameter exactly in expectation, while findings persist,
resolve and appear between studies and cluster in sick patients.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from cxrkit.labels import CHEXPERT_LABELS, RENDERED_FINDINGS
from cxrkit.synth.params import SynthParams

_NORMAL = NormalDist()

#: Loadings of each finding's latent score on the shared factors (sick, cardiac, infection).
_LOADINGS: dict[str, tuple[float, float, float]] = {
    "Enlarged Cardiomediastinum": (0.30, 0.40, 0.00),
    "Cardiomegaly": (0.30, 0.70, 0.00),
    "Lung Lesion": (0.15, 0.00, 0.00),
    "Edema": (0.40, 0.60, 0.00),
    "Consolidation": (0.35, 0.00, 0.65),
    "Pneumonia": (0.35, 0.00, 0.70),
    "Atelectasis": (0.50, 0.00, 0.30),
    "Pneumothorax": (0.35, 0.00, 0.00),
    "Pleural Effusion": (0.40, 0.45, 0.25),
    "Fracture": (0.15, 0.00, 0.00),
    "Support Devices": (0.75, 0.00, 0.00),
}
#: AR(1) persistence of each finding's own noise between consecutive studies.
_PERSIST: dict[str, float] = {
    "Enlarged Cardiomediastinum": 0.90, "Cardiomegaly": 0.97, "Lung Lesion": 0.97, "Edema": 0.60,
    "Consolidation": 0.60, "Pneumonia": 0.55, "Atelectasis": 0.50, "Pneumothorax": 0.70,
    "Pleural Effusion": 0.80, "Fracture": 0.95, "Support Devices": 0.70,
}
_FACTOR_PERSIST = (0.75, 0.95, 0.55)  # sick, cardiac, infection
#: Chest-tube rate per film, independent of everything, when the shortcut is off.
CHEST_TUBE_BACKGROUND = 0.02
#: Findings the radiologist may miss when they are subtle; devices are never missed.
_MISSABLE = tuple(f for f in RENDERED_FINDINGS if f != "Support Devices")
#: Clinical stories an indication is drawn from, with the findings that make each more likely.
STORIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "infection": (1.0, ("Pneumonia", "Consolidation", "Pleural Effusion", "Atelectasis")),
    "heart_failure": (0.6, ("Cardiomegaly", "Edema", "Pleural Effusion")),
    "dyspnea": (1.0, ("Edema", "Pleural Effusion", "Pneumothorax", "Atelectasis")),
    "trauma": (0.5, ("Fracture", "Pneumothorax", "Enlarged Cardiomediastinum")),
    "chest_pain": (0.8, ("Pneumothorax", "Enlarged Cardiomediastinum", "Cardiomegaly")),
    "lines": (0.1, ("Support Devices",)),
    "preop": (1.2, ()),
    "oncology": (0.4, ("Lung Lesion", "Pleural Effusion")),
}


@dataclass
class Finding:
    """One finding as present in one study: how bad, which side, where, and how the report treats it (notebook 01, data prep)."""

    severity: float
    side: str
    detail: dict[str, Any] = field(default_factory=dict)
    hedged: bool = False
    missed: bool = False
    change: str = "new"  # new | unchanged | improved | worsened (relative to the prior study)


@dataclass
class StudyPlan:
    """Everything about one study and its frontal film except the pixels (notebook 01, data prep)."""

    subject_id: int
    study_id: int
    dicom_id: str
    index: int
    site: str
    sex: str
    age: int
    view: str
    date: str
    time: float
    story: str
    sickness: float
    findings: dict[str, Finding]
    devices: list[str]
    removed_devices: list[str]
    resolved: list[str]
    prior_date: str | None
    image: dict[str, Any]

    def labels(self) -> dict[str, int]:
        """Return the 14 generator-truth labels as 0/1 (Lung Opacity and No Finding derived; notebook 01)."""
        out = {lab: 0 for lab in CHEXPERT_LABELS}
        for name in self.findings:
            out[name] = 1
        out["Lung Opacity"] = int(any(out[f] for f in ("Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion")))
        out["Pleural Other"] = 0
        out["No Finding"] = int(not any(v for k, v in out.items() if k not in ("No Finding", "Support Devices")))
        return out


@dataclass
class PatientPlan:
    """A patient's anatomy traits and the ordered list of their studies (notebook 01, data prep)."""

    index: int
    subject_id: int
    site: str
    sex: str
    traits: dict[str, float]
    studies: list[StudyPlan]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


def patient_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Return the (plan, render) random generators of patient ``index``, independent of worker count (notebook 01)."""
    ss = np.random.SeedSequence(seed, spawn_key=(index,))
    plan_ss, render_ss = ss.spawn(2)
    return np.random.default_rng(plan_ss), np.random.default_rng(render_ss)


def draw_ids(params: SynthParams) -> tuple[np.ndarray, np.ndarray]:
    """Draw unique random subject ids (1xxxxxxx) and four unique study ids (5xxxxxxx) per patient (notebook 01)."""
    rng = _rng(params.seed, 2**31 - 1)
    n = params.patients
    subjects = 10_000_000 + rng.choice(10_000_000, size=n, replace=False)
    studies = 50_000_000 + rng.choice(10_000_000, size=4 * n, replace=False)
    return subjects.astype(np.int64), studies.reshape(n, 4).astype(np.int64)


def make_dicom_id(seed: int, subject_id: int, study_id: int, k: int = 0) -> str:
    """Return a MIMIC-style dicom_id (five dash-separated groups of 8 hex chars) derived from the seed (notebook 01)."""
    h = hashlib.sha256(f"cxrkit-synth:{seed}:{subject_id}:{study_id}:{k}".encode()).hexdigest()[:40]
    return "-".join(h[i : i + 8] for i in range(0, 40, 8))


def _sample_traits(rng: np.random.Generator, sex: str, age: int) -> dict[str, float]:
    """Per-patient anatomy: size, habitus, heart size, lung shape (used by the renderer)."""
    female = sex == "F"
    return {
        "half_width": float(rng.uniform(0.33, 0.40) - (0.012 if female else 0.0)),
        "apex": float(rng.uniform(0.11, 0.16)),
        "dome": float(rng.uniform(0.64, 0.72)),
        "dome_asym": float(rng.uniform(0.01, 0.035)),
        "ctr": float(np.clip(rng.normal(0.47, 0.035) + 0.0008 * (age - 50), 0.37, 0.5)),
        "habitus": float(np.clip(rng.normal(0.0, 1.0), -2.0, 2.5)),
        "mediastinum": float(rng.uniform(0.042, 0.062)),
        "aortic_knob": float(rng.uniform(0.07, 0.095) + 0.0003 * (age - 50)),
        "breast": float(rng.uniform(0.5, 1.0) if female else 0.0),
        "rib_spacing": float(rng.uniform(0.95, 1.05)),
        "lung_density": float(rng.uniform(0.85, 1.1)),
    }


def _finding_attributes(rng: np.random.Generator, name: str) -> dict[str, Any]:
    """Persistent per-patient shape of a finding (side, lobe, location, kind)."""
    side = "right" if rng.random() < 0.5 else "left"
    if name == "Pleural Effusion":
        side = rng.choice(["right", "left", "bilateral"], p=[0.35, 0.3, 0.35])
        return {"side": str(side)}
    if name == "Atelectasis":
        side = rng.choice(["right", "left", "bilateral"], p=[0.3, 0.45, 0.25])
        return {"side": str(side), "kind": str(rng.choice(["plate", "basal"], p=[0.6, 0.4]))}
    if name in ("Consolidation", "Pneumonia"):
        lobes = ["right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "lingula", "left lower lobe"]
        lobe = str(rng.choice(lobes, p=[0.18, 0.14, 0.25, 0.13, 0.1, 0.2]))
        return {"side": "right" if lobe.startswith("right") else "left", "lobe": lobe}
    if name == "Lung Lesion":
        kind = "mass" if rng.random() < 0.3 else "nodule"
        return {"side": side, "kind": kind, "a": float(rng.uniform(0.2, 0.8)), "b": float(rng.uniform(0.3, 0.85)),
                "size_mm": float(rng.uniform(32, 60) if kind == "mass" else rng.uniform(8, 25))}
    if name == "Fracture":
        return {"side": side, "rib": int(rng.integers(4, 10)), "t": float(rng.uniform(0.55, 0.9)), "healing": bool(rng.random() < 0.6)}
    if name in ("Edema", "Cardiomegaly", "Enlarged Cardiomediastinum"):
        return {"side": "bilateral" if name == "Edema" else ""}
    if name == "Pneumothorax":
        return {"side": side}
    return {"side": ""}


def _severity_from_margin(margin: float, base: float) -> float:
    return float(np.clip(0.35 * base + 0.65 * (1.0 - math.exp(-1.3 * margin)), 0.04, 1.0))


def _choose_story(rng: np.random.Generator, present: set[str], index: int, had_devices: bool) -> str:
    names = list(STORIES)
    w = np.array([STORIES[s][0] + 3.0 * sum(f in present for f in STORIES[s][1]) for s in names])
    if index > 0:
        w[names.index("preop")] *= 0.2
    if had_devices:
        w[names.index("lines")] += 1.0
    return str(rng.choice(names, p=w / w.sum()))


def sample_patient(params: SynthParams, index: int, subject_id: int, study_ids: np.ndarray) -> PatientPlan:
    """Draw one patient's whole clinical course (no pixels) from its own seeded generator (notebook 01, data prep)."""
    rng, _ = patient_rngs(params.seed, index)
    site = "A" if rng.random() < params.site_share else "B"
    sex = "F" if rng.random() < 0.5 else "M"
    age0 = int(np.clip(rng.normal(62, 16), 19, 95))
    traits = _sample_traits(rng, sex, age0)
    n_studies = int(rng.choice(len(params.studies_per_patient), p=params.studies_per_patient)) + 1
    attrs = {name: _finding_attributes(rng, name) for name in RENDERED_FINDINGS}
    base_sev = {name: float(rng.beta(1.5, 2.0)) for name in RENDERED_FINDINGS}
    thresholds = {f: _NORMAL.inv_cdf(1.0 - params.site_prevalence(f, site)) if params.prevalence[f] > 0 else math.inf
                  for f in RENDERED_FINDINGS}
    device_prefs = {"ett": rng.random(), "cvc": rng.random(), "ng": rng.random(), "pacer": rng.random(),
                    "cvc_side": rng.random()}
    factors = rng.standard_normal(3)
    noise = rng.standard_normal(len(RENDERED_FINDINGS))
    style_m1 = rng.random() < params.monochrome1_fraction
    p_cr = (0.8 if site == "A" else 0.2) if params.use_site_effect else 0.5
    modality = "CR" if rng.random() < p_cr else "DX"
    base_date = _dt.date(2110, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 365 * 80)))
    date = base_date
    ap_beta = 1.5 if params.use_sick_portable else 0.0
    ap_alpha = 1.7 * _NORMAL.inv_cdf(min(max(params.ap_fraction, 1e-3), 1 - 1e-3)) * math.sqrt(1 + (ap_beta / 1.7) ** 2)
    if params.use_site_effect:
        ap_alpha += 0.5 if site == "A" else -0.5
    studies: list[StudyPlan] = []
    prev: StudyPlan | None = None
    prev_ptx = False
    for k in range(n_studies):
        if k > 0:
            for j, phi in enumerate(_FACTOR_PERSIST):
                factors[j] = phi * factors[j] + math.sqrt(1 - phi * phi) * rng.standard_normal()
            for i, name in enumerate(RENDERED_FINDINGS):
                phi = _PERSIST[name]
                noise[i] = phi * noise[i] + math.sqrt(1 - phi * phi) * rng.standard_normal()
        findings: dict[str, Finding] = {}
        for i, name in enumerate(RENDERED_FINDINGS):
            load = list(_LOADINGS[name])
            if name == "Support Devices" and not params.use_sick_portable:
                load = [0.0, 0.0, 0.0]
            own = math.sqrt(max(1e-9, 1.0 - sum(x * x for x in load)))
            z = sum(a * b for a, b in zip(load, factors)) + own * noise[i]
            if z > thresholds[name]:
                sev = _severity_from_margin(z - thresholds[name], base_sev[name])
                findings[name] = Finding(severity=sev, side=attrs[name].get("side", ""), detail=dict(attrs[name]))
        sickness = float(factors[0])
        # support devices: a persistent per-patient device set, plus the chest tube rule
        devices: list[str] = []
        if "Support Devices" in findings:
            if device_prefs["pacer"] < 0.12 + 0.004 * max(0, age0 - 50):
                devices.append("pacemaker")
            if device_prefs["ett"] < 0.45:
                devices.append("ett")
                if device_prefs["ng"] < 0.6:
                    devices.append("ng")
            if device_prefs["cvc"] < 0.6 or not devices:
                devices.append("cvc_ij" if device_prefs["cvc_side"] < 0.65 else "cvc_subclavian")
        if params.use_chest_tube_shortcut:
            # a drain on the pneumothorax film itself, or on the treated follow-up film (SynthParams owns the rates)
            tube = (("Pneumothorax" in findings and rng.random() < params.chest_tube_on_ptx)
                    or (k > 0 and prev_ptx and rng.random() < params.chest_tube_after_ptx))
        else:
            tube = rng.random() < CHEST_TUBE_BACKGROUND
        if tube:
            side = findings["Pneumothorax"].side if "Pneumothorax" in findings else (
                prev.findings["Pneumothorax"].side if prev and "Pneumothorax" in prev.findings else attrs["Pneumothorax"]["side"])
            devices.append("chest_tube_" + side)
            if "Pneumothorax" in findings:  # a drained pneumothorax may be smaller
                findings["Pneumothorax"].severity = max(0.04, findings["Pneumothorax"].severity * params.drained_ptx_severity)
        if devices:
            findings.setdefault("Support Devices", Finding(severity=1.0, side=""))
            findings["Support Devices"].detail = {"devices": list(devices)}
        else:
            findings.pop("Support Devices", None)
        prev_ptx = "Pneumothorax" in findings
        # view: portable AP more likely when sick (confounder) and always when intubated
        p_ap = 1.0 / (1.0 + math.exp(-(ap_alpha + ap_beta * sickness)))
        view = "AP" if ("ett" in devices or rng.random() < p_ap) else "PA"
        # dates: sick patients come back within days, others within months
        if k > 0:
            gap = int(rng.integers(1, 8)) if view == "AP" else int(rng.integers(20, 500))
            date = date + _dt.timedelta(days=gap)
        age = age0 + (date - base_date).days // 365
        hour = int(rng.integers(3, 8)) if view == "AP" and rng.random() < 0.6 else int(rng.integers(8, 20))
        time = hour * 10000 + int(rng.integers(0, 60)) * 100 + int(rng.integers(0, 60)) + int(rng.integers(0, 1000)) / 1000
        # how the report treats each finding: subtle ones are hedged or missed
        for name, f in findings.items():
            if prev is not None and name in prev.findings:
                d = f.severity - prev.findings[name].severity
                f.change = "worsened" if d > 0.15 else "improved" if d < -0.15 else "unchanged"
            if name in _MISSABLE:
                conspicuity = f.severity / params.difficulty
                if conspicuity < 0.22 and rng.random() < params.miss_rate:
                    f.missed = True
                elif conspicuity < 0.32 and rng.random() < 0.6:
                    f.hedged = True
        removed = [d for d in (prev.devices if prev else []) if d not in devices]
        resolved = [n for n, f in (prev.findings if prev else {}).items()
                    if n not in findings and n != "Support Devices" and not f.missed]
        story = _choose_story(rng, set(findings), k, bool(devices))
        image = {
            "photometric": "MONOCHROME1" if style_m1 else "MONOCHROME2",
            "modality": modality,
            "voi": "lut" if rng.random() < params.voi_lut_fraction else "window",
            "marker_side": "R" if rng.random() < 0.5 else "L",
            "marker_style": ("round" if site == "A" else "square") if params.use_site_effect else "square",
            "portable_text": view == "AP",
            "ecg_leads": bool(rng.random() < (0.6 if view == "AP" else 0.05)),
            "inspiration": float(rng.uniform(-0.035, 0.02) - (0.03 if view == "AP" else 0.0)),
            "rotation": float(rng.normal(0, 0.012 if view == "PA" else 0.022)),
            "tilt": float(rng.normal(0, 1.2 if view == "PA" else 2.5)),
            "shift_x": float(rng.uniform(-0.03, 0.03)),
            "shift_y": float(rng.uniform(-0.025, 0.025)),
        }
        sid = int(study_ids[k])
        plan = StudyPlan(
            subject_id=int(subject_id), study_id=sid, dicom_id=make_dicom_id(params.seed, int(subject_id), sid),
            index=k, site=site, sex=sex, age=int(age), view=view, date=date.strftime("%Y%m%d"), time=float(time),
            story=story, sickness=sickness, findings=findings, devices=devices, removed_devices=removed,
            resolved=resolved, prior_date=prev.date if prev else None, image=image,
        )
        studies.append(plan)
        prev = plan
    return PatientPlan(index=index, subject_id=int(subject_id), site=site, sex=sex, traits=traits, studies=studies)


def sample_plans(params: SynthParams) -> list[PatientPlan]:
    """Draw every patient's clinical course without rendering images (notebook 01, data prep)."""
    subjects, studies = draw_ids(params)
    return [sample_patient(params, i, subjects[i], studies[i]) for i in range(params.patients)]


def study_row(patient: PatientPlan, s: StudyPlan) -> dict[str, Any]:
    """Return the ``truth/studies.csv`` row of one study (notebook 01, data prep)."""
    return {"subject_id": s.subject_id, "study_id": s.study_id, "study_index": s.index, "site": s.site,
            "sex": s.sex, "age": s.age, "view": s.view, "story": s.story, "sickness": round(s.sickness, 4),
            **s.labels()}


def sample_labels(params: SynthParams) -> pd.DataFrame:
    """Return the generator-truth study table (as ``truth/studies.csv``) plus device columns, drawing no pixels (notebook 01)."""
    rows = []
    for p in sample_plans(params):
        for s in p.studies:
            row = study_row(p, s)
            row["has_chest_tube"] = int(any(d.startswith("chest_tube") for d in s.devices))
            row["marker_style"] = s.image["marker_style"]
            rows.append(row)
    return pd.DataFrame(rows)
