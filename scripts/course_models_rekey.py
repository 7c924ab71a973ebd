"""Compare two builds of the course models, or re-key a build under the current code version (maintainers).

The course models' keys hold code versions, so a change to hashed code that does not change the arithmetic (a
refactor, a new option off by default) still makes every key new, and `make course-models` retrains. On the machine
that recorded `reference/class` that rebuild gives the same weights; on another CPU it gives other weights, and seed
0 then drifts from the reference. Instead:

1. build the models with the previous code and with the current code on the same machine, and check they are the
   same: ``python scripts/course_models_rekey.py compare OLD_SHIPPED NEW_SHIPPED`` (weights with ``torch.equal``,
   every other file byte for byte, histories but for their timing columns); exit 1 when anything differs;
2. if (and only if) they are, put the reference machine's files under the new keys:
   ``python scripts/course_models_rekey.py rekey REFERENCE_SHIPPED NEW_SHIPPED`` — for each new folder, the folder
   whose key is the same but for code versions; their data fingerprints must be equal; ``meta.json`` keeps the new
   key and takes the rest from the reference build.

Models are matched by their key with ``code``, ``data_code`` and ``report_vectors_code`` left out, at any depth.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

CODE_FIELDS = frozenset({"code", "data_code", "report_vectors_code"})
TIMING_COLUMNS = ["seconds", "train_images_per_s"]


def without_code(value: Any) -> Any:
    """A key with its code versions left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_code(v) for k, v in value.items() if k not in CODE_FIELDS}
    if isinstance(value, list):
        return [without_code(v) for v in value]
    return value


def _meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def pairs(old_root: Path, new_root: Path) -> list[tuple[Path | None, Path]]:
    """Every model folder of ``new_root`` with its counterpart in ``old_root`` (None when there is none)."""
    out = []
    for kind in sorted(p for p in new_root.iterdir() if p.is_dir()):
        olds = {json.dumps(without_code(_meta(f)["key"]), sort_keys=True): f
                for f in (old_root / kind.name).iterdir() if (f / "meta.json").is_file()} if (old_root / kind.name).is_dir() else {}
        for new in sorted(f for f in kind.iterdir() if (f / "meta.json").is_file()):
            out.append((olds.get(json.dumps(without_code(_meta(new)["key"]), sort_keys=True)), new))
    return out


def same_file(a: Path, b: Path) -> bool:
    """Whether two model files hold the same thing: tensors equal, histories equal but for timings, else the same bytes."""
    if a.suffix == ".pt":
        x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    if a.name == "history.csv":
        x, y = (pd.read_csv(p).drop(columns=TIMING_COLUMNS, errors="ignore") for p in (a, b))
        return x.equals(y)
    return a.read_bytes() == b.read_bytes()


def compare(old_root: Path, new_root: Path) -> list[str]:
    """Return a line per difference between two builds (empty: every model the same)."""
    problems = []
    for old, new in pairs(old_root, new_root):
        if old is None:
            problems.append(f"{new.relative_to(new_root)}: no model with this key (but for code) in {old_root}")
            continue
        names = sorted(p.name for p in new.iterdir() if p.name != "meta.json")
        if names != sorted(p.name for p in old.iterdir() if p.name != "meta.json"):
            problems.append(f"{new.relative_to(new_root)}: other files than {old}")
            continue
        problems += [f"{new.relative_to(new_root)}/{n}: differs from {old / n}" for n in names if not same_file(old / n, new / n)]
    return problems


def rekey(reference_root: Path, new_root: Path) -> list[Path]:
    """Copy the reference build's files into the new build's folders (same key but for code, same data); return them."""
    done = []
    for old, new in pairs(reference_root, new_root):
        if old is None:
            raise SystemExit(f"{new}: no model with this key (but for code) in {reference_root}")
        old_meta, new_meta = _meta(old), _meta(new)
        if old_meta["data_fingerprint"] != new_meta["data_fingerprint"]:
            raise SystemExit(f"{new}: trained on other data than {old} (data fingerprints differ)")
        for f in old.iterdir():
            if f.name != "meta.json":
                shutil.copyfile(f, new / f.name)
        meta = {**old_meta, "key": new_meta["key"], "data_fingerprint": new_meta["data_fingerprint"]}
        if "settings" in new_meta:
            meta["settings"] = {**new_meta["settings"], **old_meta.get("settings", {})}  # new fields, the reference's values
        (new / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        done.append(new)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("compare", "rekey"):
        p = sub.add_parser(name)
        p.add_argument("source", type=Path, help="the old build (compare) or the reference machine's build (rekey)")
        p.add_argument("target", type=Path, help="the current code's build (cxrkit/shipped)")
    args = parser.parse_args(argv)
    if args.command == "compare":
        problems = compare(args.source, args.target)
        print("\n".join(problems) if problems else f"every model of {args.target} equals its counterpart in {args.source}")
        return 1 if problems else 0
    for folder in rekey(args.source, args.target):
        print(f"re-keyed {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
