"""``cxrkit course-models``: build the course models and ship them inside the package (``make course-models``).

The class recipe trains the image CNN for 80 epochs — minutes on a laptop CPU, too long for a lecture and
for a fresh clone's ``make run``. So the kit ships what exactly that recipe produced on the class cohort: the
image model of notebook 02, the two control models of notebook 05 (shuffled labels, planted signal), and the
text CNNs and fusion models notebooks 03 and 04 compare (seconds each, but together about 100 of ``make run``'s
600-second budget; notebook 03 still trains its first text CNN live, and 04 shows the fusion's start), and notebook
07's frozen MiniLM impression vectors and its two alignment models (the model and its shuffled-pair control: about
80 s of training each, and 25–65 s of MiniLM encoding a fresh clone would otherwise spend). They
are ordinary cached artifacts, laid out like ``CXRKIT_HOME`` under :data:`cxrkit.paths.SHIPPED_ROOT` and keyed
like every artifact by parameters, data and code, so a changed recipe never loads them: it trains anew.

The trade-off: a reviewer who re-runs the notebooks re-uses these weights instead of re-training them (the
notebooks' numbers then match to rounding); ``cxrkit course-models --rebuild`` re-trains them on the
reviewer's machine, and ``cxrkit spread`` trains them afresh for every other seed.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cxrkit import paths  # paths.SHIPPED_ROOT read when used: tests ship into a temporary folder
from cxrkit.prep import prepare
from cxrkit.profiles import PROFILES, get_profile, validate_params
from cxrkit.recipes.alignment import PAIRINGS, alignment_key, report_vectors, report_vectors_key, trained_alignment_model
from cxrkit.recipes.controls import (
    PLANTED_SIGNAL,
    ControlRecipe,
    control_key,
    planted_control_model,
    shuffled_label_control,
)
from cxrkit.recipes.fusion import fusion_model_key, trained_fusion_model
from cxrkit.recipes.image import image_model_key, trained_image_model
from cxrkit.recipes.text import text_model_key, trained_text_model

__all__ = ["COURSE_KINDS", "course_keys", "missing_course_models", "build_course_models"]

#: The artifact kinds the kit ships, with the recipe that builds each.
COURSE_KINDS: tuple[str, ...] = ("image_models", "shuffled_label_models", "planted_models", "text_models",
                                 "fusion_models", "sentence_embeddings", "alignment_models")

#: The text models notebook 03 compares on the class profile: (text source, MiniLM word-piece vectors). The plain
#: CNN on the indication is not shipped: notebook 03 trains it live and checks the recipe's against it, a check that
#: holds between two runs on one machine, not between the packager's CPU and a student's.
COURSE_TEXT_MODELS: tuple[tuple[str, bool], ...] = (("indication", True), ("findings_impression", False),
                                                   ("redacted", False))
#: The fusion models notebook 04 compares: (method, the text model's source); the text models are the plain CNNs.
COURSE_FUSION_MODELS: tuple[tuple[str, str], ...] = (("early", "indication"), ("joint", "indication"),
                                                    ("attention", "indication"), ("early", "findings_impression"))


def course_keys(P: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Return each course model of profile ``P`` by name (``kind`` or ``kind/part``): its kind and artifact key (what a shipped folder is named after)."""
    epochs = ControlRecipe.read(P).control_epochs
    keys = {"image_models": ("image_models", image_model_key(P)),
            "shuffled_label_models": ("shuffled_label_models", control_key(P, "shuffled_label_models", epochs=epochs)),
            "planted_models": ("planted_models", control_key(P, "planted_models", signal=PLANTED_SIGNAL.as_dict(),
                                                               epochs=epochs))}
    for source, pretrained in COURSE_TEXT_MODELS:
        keys[_text_name(source, pretrained)] = ("text_models", text_model_key(P, source, pretrained))
    for method, source in COURSE_FUSION_MODELS:
        keys[f"fusion_models/{method}_{source}"] = ("fusion_models", fusion_model_key(P, method, source))
    keys["sentence_embeddings"] = ("sentence_embeddings", report_vectors_key(P))
    for pairs in PAIRINGS:
        keys[f"alignment_models/{pairs}"] = ("alignment_models", alignment_key(P, pairs))
    return keys


def _text_name(source: str, pretrained: bool) -> str:
    return f"text_models/{source}" + ("_minilm_vectors" if pretrained else "")


def missing_course_models(P: dict[str, Any]) -> list[str]:
    """Return the course models (by :func:`course_keys` name) the kit does not ship for ``P`` under the current code (empty: all shipped)."""
    return [name for name, (kind, key) in course_keys(P).items() if not (paths.shipped_dir(kind, key) / "meta.json").is_file()]


def _copy_into_package(folder: Path, target: Path) -> None:
    if folder.resolve() == target.resolve():
        return
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def build_course_models(P: dict[str, Any], *, rebuild: bool = False, progress: bool = True,
                        echo: Callable[..., Any] = print) -> dict[str, Path]:
    """Train (or load) the course models of ``P`` and make them exactly the set the package ships (``cxrkit course-models``).

    Folders of these kinds that the package shipped for an older key are removed: they could never load again.
    """
    prepared = prepare(P, progress=progress)
    # each shared part is built once, when the first model that needs it is timed: shipped itself, or a later part
    image = functools.cache(lambda: trained_image_model(P, prepared, progress=progress, force=rebuild))
    text = functools.cache(lambda source, pretrained: trained_text_model(P, source, pretrained, prepared,
                                                                         progress=progress, force=rebuild))
    vectors = functools.cache(lambda: report_vectors(P, prepared, progress=progress, force=rebuild))
    builders: dict[str, Callable[[], Any]] = {
        "image_models": image,
        "shuffled_label_models": lambda: shuffled_label_control(P, prepared, progress=progress, force=rebuild),
        "planted_models": lambda: planted_control_model(P, prepared, progress=progress, force=rebuild),
    }
    for source, pretrained in COURSE_TEXT_MODELS:
        builders[_text_name(source, pretrained)] = lambda s=source, v=pretrained: text(s, v)
    for method, source in COURSE_FUSION_MODELS:
        builders[f"fusion_models/{method}_{source}"] = (
            lambda m=method, s=source: trained_fusion_model(P, m, prepared, image=image(), text=text(s, False),
                                                            progress=progress, force=rebuild))
    builders["sentence_embeddings"] = vectors
    for pairs in PAIRINGS:
        builders[f"alignment_models/{pairs}"] = (
            lambda p=pairs: trained_alignment_model(P, prepared, pairs=p, vectors=vectors(), progress=progress,
                                                    force=rebuild))
    keys, shipped = course_keys(P), {}
    for name, (kind, key) in keys.items():
        start = time.perf_counter()
        built = builders[name]()
        target = paths.shipped_dir(kind, key)
        if Path(built.folder).name != target.name:
            raise RuntimeError(f"{name}: built into {built.folder}, but its course key names {target.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_into_package(Path(built.folder), target)
        shipped[name] = target
        how = "loaded" if built.loaded else "trained"
        echo(f"{name}: {how} in {time.perf_counter() - start:.0f} s → {target.relative_to(paths.SHIPPED_ROOT.parent)}")
    kept = {path.resolve() for path in shipped.values()}
    for kind in COURSE_KINDS:  # what the package shipped for an older key could never load again
        for old in (paths.SHIPPED_ROOT / kind).iterdir() if (paths.SHIPPED_ROOT / kind).is_dir() else ():
            if old.is_dir() and old.resolve() not in kept and (old / "meta.json").is_file():
                shutil.rmtree(old)
    return shipped


def _cmd_course_models(args: argparse.Namespace) -> int:
    seed = validate_params({"seed": args.seed} if args.seed is not None else {}, args.profile)  # exit 2 via cxrkit.cli
    P = get_profile(args.profile, **seed)
    if args.check:
        missing = missing_course_models(P)
        for kind in missing:
            print(f"missing: no shipped {kind} for profile {args.profile} under the current code; "
                  "run `make course-models` and commit cxrkit/shipped/", file=sys.stderr)
        if not missing:
            print(f"the shipped course models match profile {args.profile} and the current code")
        return 1 if missing else 0
    shipped = build_course_models(P, rebuild=args.rebuild)
    print(json.dumps({kind: str(path) for kind, path in shipped.items()}, indent=1))
    return 0


def register(subparsers: Any) -> None:
    """Add ``cxrkit course-models`` to the command line."""
    p = subparsers.add_parser("course-models", help="build the course models the kit ships (image CNN, controls, text CNNs, fusion)")

    p.add_argument("--profile", default="class", choices=sorted(PROFILES), help="profile whose models to build (default: class)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's)")
    p.add_argument("--rebuild", action="store_true", help="train again even when a saved model matches")
    p.add_argument("--check", action="store_true", help="only check that shipped models match the code; exit 1 if not")
    p.set_defaults(func=_cmd_course_models)
