"""The knobs of the synthetic cohort in one dataclass, :class:`SynthParams` (taught in notebook 01, data prep)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cxrkit.labels import RENDERED_FINDINGS

#: Per-study prevalence of each rendered finding, pooled over both sites (Lung Opacity and No Finding are derived).
DEFAULT_PREVALENCE: dict[str, float] = {
    "Enlarged Cardiomediastinum": 0.06,
    "Cardiomegaly": 0.18,
    "Lung Lesion": 0.07,
    "Edema": 0.10,
    "Consolidation": 0.07,
    "Pneumonia": 0.08,
    "Atelectasis": 0.14,
    "Pneumothorax": 0.06,
    "Pleural Effusion": 0.16,
    "Fracture": 0.05,
    "Support Devices": 0.18,
}

#: Stored-resolution choices are square; 320 keeps the class cohort small on disk (see the report).
DEFAULT_IMAGE_SIZE = 320

TRANSFER_SYNTAXES = ("rle", "deflate", "explicit")

#: Bumped whenever the generator's output changes, so cached cohorts keyed by the parameters are not reused.
GENERATOR_VERSION = 5


@dataclass
class SynthParams:
    """Every parameter of the synthetic cohort; same values and seed give byte-identical files (notebook 01, data prep)."""

    patients: int = 1200
    seed: int = 0
    #: 1.0 is the teaching default; >1 makes findings fainter and smaller, <1 more conspicuous.
    difficulty: float = 1.0
    #: stored DICOM rows = columns (models resize to their own input size).
    image_size: int = DEFAULT_IMAGE_SIZE
    #: master switch for the three confounders below (each also has its own flag).
    confounders: bool = True
    #: pneumothorax films and the films after them often show a chest tube (the classic shortcut; rates below).
    chest_tube_shortcut: bool = True
    #: with the shortcut on: chance that a film showing a pneumothorax also shows a drain on its side.
    chest_tube_on_ptx: float = 0.6
    #: with the shortcut on: chance that the film after a pneumothorax shows a chest tube (a treated follow-up).
    chest_tube_after_ptx: float = 0.9
    #: a drained pneumothorax's severity is multiplied by this (1.0: a drain does not shrink it on the same film).
    drained_ptx_severity: float = 1.0
    #: sicker patients get more portable AP films and more support devices.
    sick_portable: bool = True
    #: Site A is sicker than Site B and burns a different marker into its films.
    site_effect: bool = True
    #: fraction of patients imaged at Site A.
    site_share: float = 0.5
    #: prevalence at Site A divided by prevalence at Site B when ``site_effect`` is on.
    site_prevalence_ratio: float = 2.0
    #: per-study prevalence of each rendered finding (pooled over sites).
    prevalence: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PREVALENCE))
    #: probabilities of a patient having 1, 2, 3, 4 studies.
    studies_per_patient: tuple[float, ...] = (0.55, 0.25, 0.12, 0.08)
    #: share of portable AP films (the rest PA).
    ap_fraction: float = 0.35
    #: probability that a subtle finding goes unreported (recorded in truth/report_misses.csv).
    miss_rate: float = 0.35
    #: share of films stored MONOCHROME1 (inverted) rather than MONOCHROME2.
    monochrome1_fraction: float = 0.5
    #: share of films whose contrast is given by a VOI LUT Sequence instead of WindowCenter/Width.
    voi_lut_fraction: float = 0.2
    #: pixel-data encoding: "rle" (RLE Lossless), "deflate" (Deflated Explicit VR LE) or "explicit" (none).
    transfer_syntax: str = "rle"
    #: also write an Open-i style XML report per study under ``openi/``.
    write_openi: bool = False
    #: version of the generator that made (or will make) the cohort; part of the cache key.
    generator_version: int = GENERATOR_VERSION

    def __post_init__(self) -> None:
        self.studies_per_patient = tuple(float(p) for p in self.studies_per_patient)
        unknown = sorted(set(self.prevalence) - set(RENDERED_FINDINGS))
        if unknown:
            raise ValueError(f"prevalence given for unknown finding(s) {unknown}; choose from {RENDERED_FINDINGS}")
        self.prevalence = {**DEFAULT_PREVALENCE, **{k: float(v) for k, v in self.prevalence.items()}}
        for name, p in self.prevalence.items():
            if not 0.0 <= p < 0.9:
                raise ValueError(f"prevalence of {name!r} must lie in [0, 0.9), got {p}")
        if self.patients < 1:
            raise ValueError(f"patients must be >= 1, got {self.patients}")
        if self.difficulty <= 0:
            raise ValueError(f"difficulty must be > 0, got {self.difficulty}")
        if not 64 <= self.image_size <= 2048:
            raise ValueError(f"image_size must lie in [64, 2048], got {self.image_size}")
        if self.transfer_syntax not in TRANSFER_SYNTAXES:
            raise ValueError(f"transfer_syntax must be one of {TRANSFER_SYNTAXES}, got {self.transfer_syntax!r}")
        if self.generator_version != GENERATOR_VERSION:
            raise ValueError(f"cohort made by generator version {self.generator_version}; this is version "
                             f"{GENERATOR_VERSION}: regenerate it in a new folder")
        for name in ("chest_tube_on_ptx", "chest_tube_after_ptx", "drained_ptx_severity"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
            setattr(self, name, value)
        if not 0 < self.site_share < 1:
            raise ValueError(f"site_share must lie in (0, 1), got {self.site_share}")
        if len(self.studies_per_patient) < 1 or abs(sum(self.studies_per_patient) - 1.0) > 1e-6:
            raise ValueError("studies_per_patient must be probabilities summing to 1")

    # -- effective confounder switches -------------------------------------------------------
    @property
    def use_chest_tube_shortcut(self) -> bool:
        """Whether pneumothoraces get chest tubes on their own and follow-up films (notebook 01, data prep)."""
        return self.confounders and self.chest_tube_shortcut

    @property
    def use_sick_portable(self) -> bool:
        """Whether sickness drives portable AP films and support devices (notebook 01, data prep)."""
        return self.confounders and self.sick_portable

    @property
    def use_site_effect(self) -> bool:
        """Whether the two sites differ in prevalence and burned-in marker (notebook 01, data prep)."""
        return self.confounders and self.site_effect

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict (what ``truth/params.json`` holds; notebook 01, data prep)."""
        d = dataclasses.asdict(self)
        d["studies_per_patient"] = list(self.studies_per_patient)
        d["prevalence"] = {k: self.prevalence[k] for k in sorted(self.prevalence)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthParams":
        """Build parameters from a dict such as ``truth/params.json`` (notebook 01, data prep)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown synthetic-cohort parameter(s) {unknown}")
        return cls(**d)

    @classmethod
    def from_profile(cls, profile: dict[str, Any], **overrides: Any) -> "SynthParams":
        """Build parameters from a profile dict (patients, data seed, difficulty, confounders; notebook 01, data prep).

        The cohort's seed is the profile's ``data_seed`` (``seed``, the training seed, when a dict has no ``data_seed``).
        """
        keys = ("patients", "difficulty", "confounders")
        values = {k: profile[k] for k in keys if k in profile}
        if "data_seed" in profile or "seed" in profile:
            values["seed"] = profile.get("data_seed", profile.get("seed"))
        return cls(**values, **overrides)

    def site_prevalence(self, finding: str, site: str) -> float:
        """Return the prevalence of ``finding`` at ``site`` ("A" or "B") so the pooled prevalence is the parameter (notebook 01)."""
        p = self.prevalence[finding]
        if not self.use_site_effect:
            return p
        q, r = self.site_share, self.site_prevalence_ratio
        p_b = p / (q * r + 1.0 - q)
        p_a = r * p_b
        if p_a > 0.95:  # keep the pooled value when the ratio would push Site A past certainty
            p_a = 0.95
            p_b = (p - q * p_a) / (1.0 - q)
        return p_a if site == "A" else p_b
