"""Data preparation: frontal views, patient-disjoint splits, the image cache — and ``cxrkit prep`` / ``cxrkit label``.

The steps notebook 01 walks through one by one; :func:`prepare` runs them all for notebooks 02+,
reusing what is on disk and rebuilding what is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cxrkit.cache import ImageCache, build_image_cache
from cxrkit.datasets import load_study_table, resolve_root
from cxrkit.datasets.textlabels import section_policy
from cxrkit.errors import CxrkitError, ReportParseError
from cxrkit.io.reports import SECTION_POLICIES, labeling_text, parse_openi_xml, read_mimic_report
from cxrkit.labeler import label_reports
from cxrkit.labeler_eval import evaluate_mesh, load_mesh_map, read_openi_reports, unmatched_terms
from cxrkit.labels import CHEXPERT_LABELS, SPLITS
from cxrkit.outdir import OutputFolderError, check_file_target, claim_folder, marker_path
from cxrkit.paths import artifact_dir
from cxrkit.profiles import get_profile
from cxrkit.repro import rng
from cxrkit.synth import cohort_for_profile

#: Patient fractions for train / validate / test when a dataset has no official split.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.65, 0.15, 0.20)
#: Cached film sizes ``cxrkit prep --size`` accepts, in pixels.
SIZE_RANGE: tuple[int, int] = (8, 4096)
OWNER = "prep"  # a prepared folder's marker: ``.cxrkit-prep`` (cxrkit.outdir)
FRONTAL_VIEWS: tuple[str, ...] = ("PA", "AP", "FRONTAL")  # FRONTAL: frontal, PA vs AP unknown (IU PNGs)


class SplitLeakError(AssertionError):
    """A patient appears in more than one split."""


def frontal_only(table: pd.DataFrame, views: Sequence[str] = FRONTAL_VIEWS) -> pd.DataFrame:
    """Keep the frontal films (PA and AP); laterals and unknown views are dropped (notebook 01)."""
    keep = table["view"].astype("string").str.upper().isin([v.upper() for v in views])
    return table[keep.fillna(False).to_numpy()].reset_index(drop=True)


def patient_split(table: pd.DataFrame, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  group: str = "subject_id") -> pd.Series:
    """Assign train/validate/test by patient, seeded; rows with an official ``split`` keep it (notebook 01).

    Patients are shuffled with the seed and cut by the fractions, so every film of a patient lands in
    the same split. Returns the new ``split`` column.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    split = table["split"].astype(object).where(table["split"].notna(), None) if "split" in table else \
        pd.Series([None] * len(table), index=table.index, dtype=object)
    official = split.notna()
    taken = set(table.loc[official, group].astype(str))
    free = sorted(set(table.loc[~official, group].astype(str)) - taken)
    order = rng(seed, "patient_split").permutation(len(free))
    cuts = np.floor(np.cumsum(fractions)[:2] * len(free)).astype(int)
    names = np.empty(len(free), dtype=object)
    names[order[:cuts[0]]], names[order[cuts[0]:cuts[1]]], names[order[cuts[1]:]] = SPLITS
    assigned = dict(zip(free, names))
    patients = table[group].astype(str)
    return split.where(official, patients.map(assigned)).rename("split")


def image_split(table: pd.DataFrame, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> pd.Series:
    """The *wrong* way, for the leakage demonstration: assign splits per image, ignoring patients (notebook 01)."""
    tmp = table.assign(_image=np.arange(len(table)).astype(str), split=None)
    return patient_split(tmp, seed, fractions, group="_image")


def patients_in_several_splits(table: pd.DataFrame, group: str = "subject_id") -> pd.Series:
    """Return the patients whose films fall in more than one split (empty when the split is patient-disjoint)."""
    n = table.groupby(table[group].astype(str))["split"].nunique()
    return n[n > 1]


def assert_patient_disjoint(table: pd.DataFrame, group: str = "subject_id") -> None:
    """Raise :class:`SplitLeakError` naming the patients that cross splits (notebook 01)."""
    leaks = patients_in_several_splits(table, group)
    if len(leaks):
        raise SplitLeakError(f"{len(leaks)} patient(s) appear in more than one split, e.g. {list(leaks.index[:5])}")


@dataclass
class Prepared:
    """A prepared dataset: the study table (with ``split`` and ``cache_row``), the uint8 films and the quarantine."""

    folder: Path
    table: pd.DataFrame
    cache: ImageCache

    @property
    def images(self) -> np.ndarray:
        """All cached films, uint8 N×S×S; ``table.cache_row`` indexes into it."""
        return self.cache.images

    def subset(self, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Return the rows of one split and their films."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        rows = self.table[self.table["split"] == split].reset_index(drop=True)
        return rows, self.images[rows["cache_row"].to_numpy()]

    def labels(self, rows: pd.DataFrame, labels: Sequence[str] = CHEXPERT_LABELS) -> np.ndarray:
        """Return the label matrix (1/0/-1/NaN) of ``rows`` as float32, columns in the order of ``labels``."""
        return rows[list(labels)].to_numpy(dtype=np.float32)


def resolve_dataset(params: dict[str, Any]) -> tuple[str, Path]:
    """Return the dataset name and root for a profile: the generated cohort when the dataset is synthetic and no root is given."""
    dataset, root = params.get("dataset", "synthetic"), params.get("data_root")
    if dataset == "synthetic" and root is None:
        return dataset, Path(cohort_for_profile(params))
    if root is None:
        return dataset, Path(resolve_root(dataset, None))
    return dataset, Path(root)


def prepare_table(table: pd.DataFrame, *, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  frontal: bool = True) -> pd.DataFrame:
    """Frontal filter + patient split + the disjointness assertion, in one step (notebook 01)."""
    if frontal:
        table = frontal_only(table)
    table = table.assign(split=patient_split(table, seed, fractions))
    assert_patient_disjoint(table)
    return table


def _is_prepared_by(key: dict[str, Any]) -> Callable[[Path], bool]:
    """A test for a folder ``prep`` made before folder markers with these inputs: its cache's record holds ``key``."""
    def test(folder: Path) -> bool:
        try:
            recorded = json.loads((Path(folder) / "cache" / "cache.json").read_text()).get("params", {})
        except (OSError, ValueError, AttributeError):
            return False
        return isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in key.items())

    return test


def prepare(params: dict[str, Any], *, out: str | Path | None = None, workers: int | None = None,
            progress: bool = True, table: pd.DataFrame | None = None, overwrite: bool = False) -> Prepared:
    """Study table → frontal films → patient split → image cache, keyed by the parameters; what notebooks 02+ call.

    Writes ``studies.csv`` (the prepared table), ``splits.csv`` and ``quarantine.csv`` beside the cache. ``out``
    must be missing, empty, or a folder ``prep`` made with the same inputs; ``overwrite`` lets it write into
    any other folder (replacing only those files and ``cache/``).
    """
    dataset, root = resolve_dataset(params)
    size, seed = int(params.get("image_size", 128)), int(params.get("data_seed", params.get("seed", 0)))
    key = {"dataset": dataset, "root": str(root.resolve()), "size": size, "seed": seed,
           "fractions": list(DEFAULT_FRACTIONS)}
    if out is not None and not str(out).strip():
        raise OutputFolderError(Path(), "the output folder (--out) is empty; name a folder (never the current one)")
    folder = Path(out) if out is not None else artifact_dir("prepared", key)
    # the kit's own keyed folder (CXRKIT_HOME/prepared/<key>) is always its own, marked or not
    legacy = (lambda _: True) if out is None else _is_prepared_by(key)
    fresh = not folder.exists()
    claim_folder(folder, OWNER, overwrite, key=key, legacy=legacy)  # before any work: refuses foreign data
    if table is None:
        try:
            table = load_study_table(dataset, root)
        except Exception:
            if fresh:  # a wrong --root leaves nothing behind: the folder we just made held only our marker
                marker_path(folder, OWNER).unlink(missing_ok=True)
                folder.rmdir()
            raise
    table = prepare_table(table, seed=seed)
    cache = build_image_cache(table, folder / "cache", size=size, workers=workers, progress=progress, params=key)
    bad = set(cache.quarantine["image_id"].astype(str))
    table = table[~table["image_id"].astype(str).isin(bad)].reset_index(drop=True)
    table["cache_row"] = cache.rows_for(table["image_id"])
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "studies.csv", index=False)
    table[["dataset", "subject_id", "study_id", "image_id", "split"]].to_csv(folder / "splits.csv", index=False)
    cache.quarantine.to_csv(folder / "quarantine.csv", index=False)
    return Prepared(folder=folder, table=table, cache=cache)


# ---------------------------------------------------------------------------------------- command line
def check_prep_arguments(args: argparse.Namespace) -> None:
    """Reject a bad ``--size``, ``--workers``, ``--root`` or ``--out`` before any work, naming the flag and what it allows."""
    low, high = SIZE_RANGE
    if not low <= args.size <= high:
        raise CxrkitError(f"--size {args.size}: the cached film size must be {low} to {high} pixels")
    if args.workers is not None and args.workers < 1:
        raise CxrkitError(f"--workers {args.workers}: the number of processes must be at least 1 (or leave it out: all cores)")
    for flag, value in (("--root", args.root), ("--out", args.out)):
        if not str(value).strip():
            raise CxrkitError(f"{flag} is empty; name a folder (an empty path is never taken as the current folder)")


def _cmd_prep(args: argparse.Namespace) -> int:
    try:
        check_prep_arguments(args)
        params = get_profile("class", dataset=args.dataset, data_root=args.root, image_size=args.size,
                             data_seed=args.seed)
        prepared = prepare(params, out=args.out, workers=args.workers, overwrite=args.overwrite)
    except CxrkitError as err:  # the kit's own errors name the file or value: one message, no traceback
        print(f"cxrkit prep: {err}", file=sys.stderr)
        return 2
    if prepared.table.empty:
        print(f"cxrkit prep: 0 frontal films from {args.dataset} at {args.root} — an empty result is an error "
              f"(see {Path(args.out) / 'quarantine.csv'} and the views in the dataset's manifest)", file=sys.stderr)
        return 2
    counts = prepared.table["split"].value_counts().reindex(list(SPLITS)).fillna(0).astype(int)
    print(f"prepared {len(prepared.table)} frontal films from {args.dataset} into {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; {len(prepared.cache.quarantine)} quarantined ({Path(args.out) / 'quarantine.csv'})")
    return 0


def _report_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in {".txt", ".xml"})
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such report file or folder: {p}")
    return files


def label_files(paths: Sequence[str | Path], progress: bool = True, sections: str | None = None,
                skipped: list[str] | None = None) -> pd.DataFrame:
    """Label MIMIC-style ``.txt`` and Open-i ``.xml`` reports: one row per readable report, ``report_id`` + the 14 observations (notebook 01).

    ``sections`` is the labeled-section policy (cxrkit.io.reports.SECTION_POLICIES); by default each
    format gets its dataset's manifest policy (``.xml``: iu-xray's findings+impression, ``.txt``:
    mimic-cxr's impression). A report that cannot be read is left out — its name and reason are
    appended to ``skipped`` — and never shifts another report's labels.
    """
    policy = {".xml": section_policy("iu-xray", sections), ".txt": section_policy("mimic-cxr", sections)}
    ids, texts = [], []
    for f in _report_files([str(p) for p in paths]):
        kind = ".xml" if f.suffix.lower() == ".xml" else ".txt"
        try:
            if kind == ".xml":
                report = parse_openi_xml(f)
                report_id, text = report.uid, labeling_text(report.sections, policy[kind])
            else:
                report_id, text = f.stem, labeling_text(read_mimic_report(f), policy[kind])
        except ReportParseError as err:
            if skipped is not None:
                skipped.append(str(err))
            continue
        ids.append(report_id)
        texts.append(text)
    labels = label_reports(texts, progress=progress)
    return pd.concat([pd.DataFrame({"report_id": ids}), labels.reset_index(drop=True)], axis=1)


def _cmd_label(args: argparse.Namespace) -> int:
    try:
        if args.out is not None:  # before any work: an existing file is never replaced without --overwrite
            check_file_target(args.out, overwrite=args.overwrite)
        if args.evaluate_mesh:
            return _evaluate_mesh(args)
        if args.out is None:
            raise ValueError("--out is required (the CSV to write), unless --evaluate-mesh is given")
        skipped: list[str] = []
        table = label_files(args.paths, sections=args.sections, skipped=skipped)
    except (CxrkitError, ValueError, FileNotFoundError) as err:
        print(f"cxrkit label: {err}", file=sys.stderr)
        return 2
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    if table.empty:
        print(f"cxrkit label: no readable report in {', '.join(map(str, args.paths))} "
              f"({len(skipped)} skipped); nothing written", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"labelled {len(table)} reports into {args.out}" + (f"; {len(skipped)} skipped (listed above)" if skipped else ""))
    return 0


def _evaluate_mesh(args: argparse.Namespace) -> int:
    """``cxrkit label --evaluate-mesh``: the labeler's F1/precision/recall per finding against Open-i's MeSH major terms."""
    mapping = load_mesh_map(args.mesh_map)
    reports, skipped = read_openi_reports(args.paths)
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    policy = section_policy("iu-xray", args.sections)
    table = evaluate_mesh(reports, sections=policy, mapping=mapping)
    print(f"rule labeler vs MeSH major terms: {int(table['n'].iloc[0])} Open-i reports, sections {policy!r}, "
          "1 and -1 count as present")
    print(table[["precision", "recall", "f1", "mesh_present", "labeler_present"]].round(3).to_string())
    unmatched = unmatched_terms([m for r in reports for m in r.mesh_major], mapping)
    if unmatched:
        print("most frequent MeSH terms no rule maps (outside the 14 observations, or missing from the mapping): "
              + ", ".join(f"{term} ({n})" for term, n in unmatched.most_common(8)))
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out)
        print(f"wrote {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``cxrkit prep`` and ``cxrkit label`` to the command line."""
    p = subparsers.add_parser("prep", help="study table + splits + image cache of a dataset")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. synthetic, mimic-cxr-jpg, iu-xray")
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument("--out", required=True, help="output folder (studies.csv, cache/, quarantine.csv)")
    p.add_argument("--size", type=int, default=128, help="cached film size in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient split (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder holding other files or another run's output (only prep's own "
                        "files and cache/ are replaced; nothing else is deleted)")
    p.set_defaults(func=_cmd_prep)

    q = subparsers.add_parser("label", help="label report files (.txt, .xml) with the rule labeler, or evaluate it on Open-i")
    q.add_argument("paths", nargs="+", help="report files or folders")
    q.add_argument("--out", default=None, help="CSV to write: report_id + the 14 observations (with --evaluate-mesh: "
                                               "the per-finding table; optional)")
    q.add_argument("--sections", choices=list(SECTION_POLICIES), default=None,
                   help="labeled-section policy (default: per format, from the manifests: .xml findings+impression, "
                        ".txt impression)")
    q.add_argument("--evaluate-mesh", action="store_true",
                   help="measure the labeler on Open-i .xml reports against their MeSH major terms (F1, precision, "
                        "recall per finding) instead of writing labels")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    q.add_argument("--mesh-map", default=None, help="MeSH term → finding mapping YAML (default: cxrkit/labeler_mesh.yaml)")
    q.set_defaults(func=_cmd_label)
