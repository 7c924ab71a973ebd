"""The named parameter sets — ``smoke``, ``class`` (the default) and ``full`` — in one place.

Every notebook's ``parameters`` cell holds the ``class`` values of the knobs it uses, plus
``profile = "class"``; the next cell calls :func:`use_profile`, which swaps in the chosen profile's
value for every knob the user left at its ``class`` default. Taught in notebook 00 (setup).
"""
from __future__ import annotations

from typing import Any

#: Knobs shared by every profile, with the ``class`` values (what a plain run, nbval and papermill use).
CLASS: dict[str, Any] = {
    # ``seed`` seeds training (weight init, batch order, augmentation, bootstraps); ``data_seed`` fixes the data
    # (the synthetic cohort and the patient split). Another CPU changes training rounding, never the data, so
    # the spread over ``seed`` with ``data_seed`` held fixed is the stand-in for machine-to-machine spread.
    "seed": 0,
    "data_seed": 0,
    # data: which dataset, where it lives (None = the generated synthetic cohort)
    "dataset": "synthetic",
    "data_root": None,
    "patients": 1200,
    "difficulty": 1.0,
    "confounders": True,
    "image_size": 128,
    # image CNN (notebook 02). The class recipe (benchmarks/image_recipe.py chose it) trains 40 epochs, a few
    # minutes on a laptop CPU: longer than a lecture, so the kit ships the model it produced (cxrkit
    # course-models) and notebook 02 trains ``live_epochs`` of it live.
    "image_model": "small_cnn",
    "image_width": 24,
    "image_head": "lse",
    "epochs": 40,
    "live_epochs": 4,
    "schedule": "onecycle",
    "pos_weight": "sqrt_balanced",
    "batch_size": 64,
    "lr": 4e-3,
    "weight_decay": 1e-4,
    "uncertainty": "ignore",
    "augment": True,
    "patience": 4,
    "n_boot": 500,
    # text models (notebook 03)
    "text_source": "indication",
    "text_epochs": 15,
    "text_lr": 2e-3,
    "finetune_minilm": False,
    # fusion (notebook 04)
    "fusion_epochs": 6,
    "joint_epochs": 2,
    # explanations (notebooks 05, 06)
    "control_epochs": 20,  # the shuffled-label and planted-signal control models (notebook 05)
    "n_explain_films": 20,
    "ig_steps": 32,
    "smoothgrad_samples": 16,
    "n_loc_films": 60,
}

#: Seconds-long runs for tests of the machinery; the numbers they produce mean nothing.
SMOKE: dict[str, Any] = {
    **CLASS,
    "patients": 60,
    "image_size": 64,
    "epochs": 1,
    "live_epochs": 1,
    "batch_size": 32,
    "patience": 1,
    "n_boot": 50,
    "text_epochs": 1,
    "fusion_epochs": 1,
    "joint_epochs": 1,
    "control_epochs": 1,
    "n_explain_films": 2,
    "ig_steps": 8,
    "smoothgrad_samples": 4,
    "n_loc_films": 6,
}

#: A bigger cohort (or a real dataset given by ``dataset``/``data_root``), GPU when present.
FULL: dict[str, Any] = {
    **CLASS,
    "patients": 6000,
    "image_size": 224,
    "image_model": "densenet121",
    "epochs": 30,
    "live_epochs": 2,
    "patience": 6,
    "n_boot": 2000,
    "text_epochs": 30,
    "finetune_minilm": True,
    "fusion_epochs": 12,
    "joint_epochs": 8,
    "control_epochs": 15,
    "n_explain_films": 32,
    "ig_steps": 128,
    "smoothgrad_samples": 50,
    "n_loc_films": 400,
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
