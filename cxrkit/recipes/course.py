"""``cxrkit course-models``: build the course models and ship them inside the package (``make course-models``).

The class recipe trains the image CNN for 40 epochs — minutes on a laptop CPU, too long for a lecture and
for a fresh clone's ``make run``. So the kit ships what exactly that recipe produced on the class cohort: the
image model of notebook 02 and the two control models of notebook 05 (shuffled labels, planted signal). They
are ordinary cached artifacts, laid out like ``CXRKIT_HOME`` under :data:`cxrkit.paths.SHIPPED_ROOT` and keyed
like every artifact by parameters, data and code, so a changed recipe never loads them: it trains anew.

The trade-off: a reviewer who re-runs the notebooks re-uses these weights instead of re-training them (the
notebooks' numbers then match to rounding); ``cxrkit course-models --rebuild`` re-trains them on the
reviewer's machine, and ``cxrkit spread`` trains them afresh for every other seed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["COURSE_KINDS", "course_keys", "missing_course_models", "build_course_models"]

#: The artifact kinds the kit ships, with the recipe that builds each.
COURSE_KINDS: tuple[str, ...] = ("image_models", "shuffled_label_models", "planted_models")


def course_keys(P: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the artifact key of each course model of profile ``P`` (what a shipped folder must be named after)."""
    from cxrkit.profiles import CLASS
    from cxrkit.recipes.controls import PLANTED_SIGNAL, control_key
    from cxrkit.recipes.image import image_model_key

    epochs = int(P.get("control_epochs", CLASS["control_epochs"]))
    return {"image_models": image_model_key(P),
            "shuffled_label_models": control_key(P, "shuffled_label_models", epochs=epochs),
            "planted_models": control_key(P, "planted_models", signal=PLANTED_SIGNAL.as_dict(), epochs=epochs)}


def missing_course_models(P: dict[str, Any]) -> list[str]:
    """Return the course-model kinds the kit does not ship for ``P`` under the current code (empty: all shipped)."""
    from cxrkit.paths import shipped_dir

    return [kind for kind, key in course_keys(P).items() if not (shipped_dir(kind, key) / "meta.json").is_file()]


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
    from cxrkit.paths import SHIPPED_ROOT, shipped_dir
    from cxrkit.prep import prepare
    from cxrkit.recipes.controls import planted_control_model, shuffled_label_control
    from cxrkit.recipes.image import trained_image_model

    prepared = prepare(P, progress=progress)
    builders = {
        "image_models": lambda: trained_image_model(P, prepared, progress=progress, force=rebuild),
        "shuffled_label_models": lambda: shuffled_label_control(P, prepared, progress=progress, force=rebuild),
        "planted_models": lambda: planted_control_model(P, prepared, progress=progress, force=rebuild),
    }
    keys, shipped = course_keys(P), {}
    for kind in COURSE_KINDS:
        start = time.perf_counter()
        built = builders[kind]()
        target = shipped_dir(kind, keys[kind])
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_into_package(Path(built.folder), target)
        for old in target.parent.iterdir():
            if old.is_dir() and old != target and (old / "meta.json").is_file():
                shutil.rmtree(old)
        shipped[kind] = target
        how = "loaded" if built.loaded else "trained"
        echo(f"{kind}: {how} in {time.perf_counter() - start:.0f} s → {target.relative_to(SHIPPED_ROOT.parent)}")
    return shipped


def _cmd_course_models(args: argparse.Namespace) -> int:
    from cxrkit.profiles import get_profile, validate_params

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
    p = subparsers.add_parser("course-models", help="build the course models the kit ships (image CNN + controls)")
    from cxrkit.profiles import PROFILES

    p.add_argument("--profile", default="class", choices=sorted(PROFILES), help="profile whose models to build (default: class)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's)")
    p.add_argument("--rebuild", action="store_true", help="train again even when a saved model matches")
    p.add_argument("--check", action="store_true", help="only check that shipped models match the code; exit 1 if not")
    p.set_defaults(func=_cmd_course_models)
