"""``cxrkit synth``: write the synthetic cohort from the command line (notebook 01, data prep)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cxrkit.errors import CxrkitError
from cxrkit.paths import artifact_dir
from cxrkit.profiles import get_profile
from cxrkit.synth.cohort import generate_cohort
from cxrkit.synth.params import SynthParams


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand to the ``cxrkit`` parser (notebook 01, data prep)."""
    p = subparsers.add_parser("synth", help="generate the synthetic chest X-ray cohort (MIMIC-CXR layout)",
                              description="Generate the synthetic cohort: DICOM films, reports, metadata and truth.")
    p.add_argument("--out", type=Path, default=None, help="cohort folder (default: CXRKIT_HOME/cohorts/<key>)")
    p.add_argument("--profile", default="class", help="parameter profile: smoke, class or full (default: class)")
    p.add_argument("--patients", type=int, default=None, help="number of patients (default: the profile's)")
    p.add_argument("--seed", type=int, default=None, help="the cohort's random seed (default: the profile's data_seed)")
    p.add_argument("--difficulty", type=float, default=None, help="finding subtlety, 1.0 = teaching default")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--no-confounders", action="store_true", help="switch off every confounder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a --out folder that holds other files (only the cohort's own files are "
                        "replaced; nothing else is deleted)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate (or resume) the cohort described by the parsed arguments; return the exit code (notebook 01)."""
    profile = get_profile(args.profile)
    overrides = {k: v for k, v in (("patients", args.patients), ("data_seed", args.seed), ("difficulty", args.difficulty))
                 if v is not None}
    if args.no_confounders:
        overrides["confounders"] = False
    params = SynthParams.from_profile({**profile, **overrides})
    out = args.out if args.out is not None else artifact_dir("cohorts", params.to_dict())
    t0 = time.perf_counter()
    try:
        root = generate_cohort(out, params, workers=args.workers, progress=not args.no_progress,
                               overwrite=args.overwrite)
    except CxrkitError as err:  # the kit's own errors name the folder or value: one message, no traceback
        print(f"cxrkit synth: {err}", file=sys.stderr)
        return 2
    films = sum(1 for _ in (root / "files").rglob("*.dcm"))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"cohort: {root}  ({params.patients} patients, {films} films, {size / 2**20:.1f} MiB, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0
