"""The named parameter sets — ``smoke``, ``class`` (the default) and ``full`` — in one place.

Every notebook's ``parameters`` cell holds the ``class`` values of the knobs it uses, plus
``profile = "class"``; the next cell calls :func:`use_profile`, which swaps in the chosen profile's
value for every knob the user left at its ``class`` default. Taught in notebook 00 (setup).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cxrkit.errors import ParameterError, UnknownParameterError

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
    # image CNN (notebook 02). The class recipe (benchmarks/image_recipe.py chose it) trains 80 epochs, a few
    # minutes on a laptop CPU: longer than a lecture, so the kit ships the model it produced (cxrkit
    # course-models) and notebook 02 trains ``live_epochs`` of it live.
    "image_model": "small_cnn",
    "image_width": 24,
    "image_head": "lse",
    "epochs": 80,
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
    # joint image-text embedding (notebook 07): the alignment recipe (benchmarks/alignment_prototype.py measured it)
    "align_epochs": 10,
    "align_lr": 2e-3,
    "align_dim": 64,
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
    "align_epochs": 1,
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
    "align_epochs": 30,
}

PROFILES: dict[str, dict[str, Any]] = {"smoke": SMOKE, "class": CLASS, "full": FULL}


@dataclass(frozen=True)
class Knob:
    """One knob: its type (``int``, ``float``, ``bool``, ``str`` or ``Path``), bounds or choices, and what it does."""

    kind: type
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is refused (lr > 0)
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    def describe(self) -> str:
        """What a valid value looks like, e.g. ``a whole number >= 1`` (used in the error messages)."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is Path:
            text = "an existing folder"
        else:
            text = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}[self.kind]
            if self.low is not None and self.high is not None and not self.low_open:
                text += f" in [{self.low:g}, {self.high:g}]"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low:g}"
                text += f" and <= {self.high:g}" if self.high is not None else ""
        return text + (" or null" if self.nullable else "")


_SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
#: Every knob a profile holds and a notebook's ``parameters`` cell may set (``-p KEY VALUE``): type, bounds, meaning.
#: The choices mirror the code that reads them (tests/test_params_validation.py checks they agree).
KNOBS: dict[str, Knob] = {
    "seed": Knob(int, "seeds training: weight init, batch order, augmentation, bootstraps", 0, _SEED_MAX),
    "data_seed": Knob(int, "seeds the data: the synthetic cohort and the patient split", 0, _SEED_MAX),
    "dataset": Knob(str, "which dataset (cxrkit.datasets.list_datasets())",
                    choices=("synthetic", "mimic-cxr", "mimic-cxr-jpg", "iu-xray", "chexpert", "nih-cxr14")),
    "data_root": Knob(Path, "the dataset's folder (null: the generated cohort, or $CXRKIT_<NAME>_ROOT)", nullable=True),
    "patients": Knob(int, "patients in the synthetic cohort (enough for three splits)", 10, 10_000_000),
    "difficulty": Knob(float, "how faint the synthetic findings are", 0.0, 100.0, low_open=True),
    "confounders": Knob(bool, "plant the synthetic cohort's site and device shortcuts"),
    # the kit's networks downsample 32-fold (DenseNet-121, ResNet-18, VGG-16; the small CNN 8-fold): 32 px is the least
    "image_size": Knob(int, "film size in pixels of the image cache and the image models", 32, 2048),
    "image_model": Knob(str, "image architecture (cxrkit.models.IMAGE_MODELS)",
                        choices=("small_cnn", "vgg16", "resnet18", "densenet121")),
    "image_width": Knob(int, "the small CNN's width (channels of its first block)", 1, 1024),
    "image_head": Knob(str, "the small CNN's pooling head", choices=("gap", "gapmax", "lse")),
    "epochs": Knob(int, "image-model training epochs", 1, 10_000),
    "live_epochs": Knob(int, "epochs notebook 02 trains live", 1, 10_000),
    "schedule": Knob(str, "learning-rate schedule (cxrkit.train.SCHEDULES)", choices=("constant", "onecycle", "cosine")),
    "pos_weight": Knob(str, "how rare labels' positives are weighed", choices=("balanced", "sqrt_balanced", "none"),
                       nullable=True),
    "batch_size": Knob(int, "training batch size (a batch of one breaks batch norm)", 2, 65_536),
    "lr": Knob(float, "image-model learning rate", 0.0, 10.0, low_open=True),
    "weight_decay": Knob(float, "AdamW weight decay", 0.0, 10.0),
    "uncertainty": Knob(str, "what an uncertain (-1) label trains as (cxrkit.train.UNCERTAINTY_POLICIES)",
                        choices=("ignore", "ones", "zeros")),
    "augment": Knob(bool, "augment the training films"),
    "patience": Knob(int, "epochs without improvement before early stopping (constant schedule)", 1, 10_000),
    "n_boot": Knob(int, "bootstrap resamples of the confidence intervals", 1, 1_000_000),
    "text_source": Knob(str, "which report text the text models read (cxrkit.text.TEXT_SOURCES)",
                        choices=("indication", "findings_impression", "redacted")),
    "text_epochs": Knob(int, "text-model training epochs", 1, 10_000),
    "text_lr": Knob(float, "text-model learning rate", 0.0, 10.0, low_open=True),
    "finetune_minilm": Knob(bool, "fine-tune the pretrained MiniLM text encoder"),
    "fusion_epochs": Knob(int, "fusion-model training epochs", 1, 10_000),
    "joint_epochs": Knob(int, "epochs of joint (end-to-end) fusion training", 1, 10_000),
    "control_epochs": Knob(int, "epochs of notebook 05's control models", 1, 10_000),
    "n_explain_films": Knob(int, "films notebook 05 explains", 1, 100_000),
    "ig_steps": Knob(int, "integrated-gradients steps", 1, 100_000),
    "smoothgrad_samples": Knob(int, "SmoothGrad noise samples", 1, 100_000),
    "n_loc_films": Knob(int, "films notebook 06 localizes", 1, 1_000_000),
    "align_epochs": Knob(int, "epochs of notebook 07's alignment models", 1, 10_000),
    "align_lr": Knob(float, "notebook 07's alignment learning rate", 0.0, 10.0, low_open=True),
    "align_dim": Knob(int, "width of notebook 07's joint embedding space", 2, 4096),
}

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(name: str) -> str:
    return f"unknown parameter {name!r}{_suggest(name, sorted(KNOBS))}"


def check_profile(name: Any) -> str:
    """Return ``name`` when it is a profile; raise :class:`UnknownParameterError` (a ``KeyError``) otherwise."""
    if not isinstance(name, str) or name not in PROFILES:
        raise UnknownParameterError([f"unknown profile {name!r}{_suggest(str(name), sorted(PROFILES))}; "
                                     f"choose one of {sorted(PROFILES)}"])
    return name


def _typed(knob: Knob, value: Any) -> Any:
    """Convert ``value`` (typed, or the text of ``-p KEY VALUE``) to the knob's type; raise ``ValueError`` when it is not one."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "null" and knob.nullable):
        if knob.nullable:
            return None
        raise ValueError("null")
    if knob.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise ValueError(value)
    if knob.kind is int:
        if isinstance(value, str):
            value = value.strip()
            if not value.lstrip("+-").isdigit():
                raise ValueError(value)
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(value)
        return value
    if knob.kind is float:
        if isinstance(value, str):
            value = float(value.strip())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(value)
        return float(value)
    if not isinstance(value, str):  # str and Path knobs take text
        raise ValueError(value)
    if knob.kind is Path:
        if not value.strip():
            raise ValueError(value)
        return str(Path(value).expanduser()) if value.startswith("~") else value
    return value


def _problem(name: str, knob: Knob, value: Any, given: Any) -> str | None:
    """What is wrong with the converted ``value`` of ``name`` (bounds, choices, a missing folder), or None."""
    if value is None:
        return None
    if knob.choices is not None and value not in knob.choices:
        return f"{name}={given!r}: expected {knob.describe()}{_suggest(str(value), [str(c) for c in knob.choices])}"
    if knob.kind is Path and not Path(value).is_dir():
        return f"{name}={value!r}: no such folder (expected {knob.describe()})"
    if knob.kind in (int, float):
        low_bad = knob.low is not None and (value <= knob.low if knob.low_open else value < knob.low)
        if low_bad or (knob.high is not None and value > knob.high):
            return f"{name}={given!r}: expected {knob.describe()}"
    return None


def validate_params(overrides: Mapping[str, Any], profile: str = "class") -> dict[str, Any]:
    """Return ``overrides`` converted to their knobs' types; raise one :class:`~cxrkit.errors.ParameterError` naming every bad knob.

    Names must be knobs of :data:`KNOBS` (a typo gets "did you mean …?"); values are converted from text
    (``-p epochs 3``) or checked when typed, then held to the knob's bounds or choices. ``~`` in a path is
    expanded and the folder must exist. ``cxrkit run``/``spread``/``reproduce`` call it before any notebook starts.
    """
    check_profile(profile)
    out: dict[str, Any] = {}
    problems: list[str] = []
    unknown = False
    for name, value in overrides.items():
        if name == "profile":
            problems.append("profile: choose it with --profile, not -p")
            continue
        knob = KNOBS.get(name)
        if knob is None:
            problems.append(_unknown(name))
            unknown = True
            continue
        try:
            out[name] = _typed(knob, value)
        except ValueError:
            problems.append(f"{name}={value!r}: expected {knob.describe()}")
            continue
        problem = _problem(name, knob, out[name], value)
        if problem:
            problems.append(problem)
    if problems:  # an unknown name is a KeyError too, as get_profile has always raised
        raise (UnknownParameterError if unknown else ParameterError)(problems)
    return out


def get_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """Return a copy of profile ``name`` with ``overrides`` applied; unknown names or knobs raise ``KeyError``."""
    check_profile(name)
    unknown = sorted(set(overrides) - set(CLASS))
    if unknown:
        raise UnknownParameterError([_unknown(k) for k in unknown])
    return {**PROFILES[name], **overrides, "profile": name}


def use_profile(profile: str, **values: Any) -> dict[str, Any]:
    """Resolve a notebook's parameters: values left at their ``class`` default follow ``profile``; changed ones win.

    Used in the cell after every notebook's ``parameters`` cell (notebook 00 shows how). Changed values are
    checked by :func:`validate_params` and kept exactly as given, except that ``~`` in a path is expanded.
    """
    changed = {k: v for k, v in values.items() if k not in CLASS or CLASS[k] != v}
    checked = validate_params(changed, check_profile(profile))
    changed = {k: checked[k] if KNOBS[k].kind is Path else v for k, v in changed.items()}
    return get_profile(profile, **changed)
