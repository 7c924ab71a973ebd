"""The named parameter sets — ``smoke``, ``class`` (the default) and ``full`` — in one place.

Every notebook's ``parameters`` cell holds the ``class`` values of the knobs it uses, plus
``profile = "class"``; the next cell calls :func:`use_profile`, which swaps in the chosen profile's
value for every knob the user left at its ``class`` default. Taught in notebook 00 (setup).
"""
from __future__ import annotations

from typing import Any

#: Knobs shared by every profile, with the ``class`` values (what a plain run, nbval and papermill use).
CLASS: dict[str, Any] = {
    "seed": 0,
    # data: which dataset, where it lives (None = the generated synthetic cohort)
    "dataset": "synthetic",
    "data_root": None,
    "patients": 1200,
    "difficulty": 1.0,
    "confounders": True,
    "image_size": 128,
}

#: Seconds-long runs for tests of the machinery; the numbers they produce mean nothing.
SMOKE: dict[str, Any] = {
    **CLASS,
    "patients": 60,
    "image_size": 64,
}

#: A bigger cohort (or a real dataset given by ``dataset``/``data_root``), GPU when present.
FULL: dict[str, Any] = {
    **CLASS,
    "patients": 6000,
    "image_size": 224,
}

PROFILES: dict[str, dict[str, Any]] = {"smoke": SMOKE, "class": CLASS, "full": FULL}


def get_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """Return a copy of profile ``name`` with ``overrides`` applied; unknown names or knobs raise ``KeyError``."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    unknown = sorted(set(overrides) - set(CLASS))
    if unknown:
        raise KeyError(f"unknown parameter(s) {unknown}; the knobs are {sorted(CLASS)}")
    return {**PROFILES[name], **overrides, "profile": name}


def use_profile(profile: str, **values: Any) -> dict[str, Any]:
    """Resolve a notebook's parameters: values left at their ``class`` default follow ``profile``; changed ones win.

    Used in the cell after every notebook's ``parameters`` cell (notebook 00 shows how).
    """
    changed = {k: v for k, v in values.items() if k not in CLASS or CLASS[k] != v}
    return get_profile(profile, **changed)
