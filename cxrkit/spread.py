"""``cxrkit spread``: run the notebooks for several seeds and record every metric's spread over them (``make spread``, README "For reviewers").

Each seed runs with ``cxrkit run`` (:func:`cxrkit.runner.run_notebooks`, ``-p seed N``; the data are held fixed
by the profile's other knobs) into ``runs/spread-<profile>/seed-N/``. Then ``spread.json`` records, for every
metric of every notebook, the mean, standard deviation (n − 1), minimum, maximum and the value of each seed
(text and booleans: only their values), and the run's cost in minutes; ``spread.md`` shows it as a table.
``spread_checked_outputs.json`` records every seed's outputs of every ``# NBVAL_CHECK_OUTPUT`` cell, sanitized
as nbval compares them (:mod:`cxrkit.checked_outputs`); the command prints the checked cells whose output
depends on the seed or differs from the frozen one in ``notebooks/``.

The runs keep their artifacts in ``runs/spread-<profile>/cxrkit_home`` (``--reuse-home``: in ``$CXRKIT_HOME``), so the
first seed builds the cohort, caches and models from empty, like a fresh clone, and the recorded cost is honest.
Resumable: a seed whose folder holds a complete run of the same notebooks, parameters and code is not run
again (``--force`` re-runs it); a seed folder that ``cxrkit spread`` did not write is never touched.
``--record reference/class`` copies the spread files and the first seed's run (``summary.json``, the run
records) into the reference folder that ``cxrkit reproduce`` reads. Seed-to-seed spread stands in for
machine-to-machine spread: another CPU rounds differently, and training amplifies that as a new seed does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from cxrkit import runner  # runner.run_notebooks through the module, so a test can stand in for the runs
from cxrkit.artifacts import HASHED_SUFFIXES, PACKAGE_ROOT, code_version
from cxrkit.atomic import replacing, write_text
from cxrkit.checked_outputs import checked_outputs, frozen_differences, sanitize_patterns, seed_dependent_cells
from cxrkit.lazy import lazy_import
from cxrkit.paths import REPO_ROOT, cxrkit_home
from cxrkit.profiles import check_profile, validate_params
from cxrkit.reproduce import (  # noqa: F401
    SPREAD_FILE,
    SPREAD_K,
    load_run_metrics,
    load_spread,
    metric_rule,
    read_json,
    spread_tolerance,
)
from cxrkit.runner import add_notebook_options, discover_notebooks, only_option, parse_overrides

nbformat = lazy_import("nbformat")  # seconds to import: only collecting the checked outputs needs it

#: Modules that no notebook runs (the tools around the runs); editing them does not make a seed's run stale.
TOOL_MODULES = ("spread.py", "reproduce.py", "checked_outputs.py", "report.py", "student.py", "cli.py", "__main__.py")

SPREAD_TABLE = "spread.md"
CHECKED_FILE = "spread_checked_outputs.json"
#: Written into every folder this command makes; what lets it resume, and refuse folders it did not make.
SEED_MARKER = "spread-seed.json"
OUT_MARKER = ".cxrkit-spread"
#: The spread's own artifact folder inside its output folder (``--reuse-home`` uses ``$CXRKIT_HOME`` instead).
HOME_FOLDER = "cxrkit_home"
#: The files ``--record`` writes into a reference folder (and the only ones it will overwrite there).
RECORD_FILES = ("summary.json", "summary.md", SPREAD_FILE, SPREAD_TABLE, CHECKED_FILE)
_RECORD_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.record\.json$")


def parse_seeds(text: str) -> list[int]:
    """Turn ``"0-4"``, ``"0,1,2"`` or ``"0-2,7"`` into a sorted list of distinct seeds (``cxrkit spread --seeds``)."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise ValueError(f"--seeds {text!r}: {part!r} is not a seed or a range like 0-4")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def notebooks_version(paths: Sequence[Path]) -> str:
    """A short hash of the notebooks' code-cell sources (not their outputs): a seed run of other notebooks is stale."""
    h = hashlib.sha256()
    for path in paths:
        nb = json.loads(Path(path).read_text())
        h.update(path.name.encode() + b"\0")
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                src = cell.get("source", "")
                h.update(("".join(src) if isinstance(src, list) else src).encode() + b"\0")
    return h.hexdigest()[:12]


def notebook_code_version() -> str:
    """The code version of every cxrkit module a notebook may run (:data:`TOOL_MODULES` left out): a seed run made by other code is stale."""
    targets = sorted(p.name for p in PACKAGE_ROOT.iterdir() if p.name not in TOOL_MODULES and p.name != "__pycache__"
                     and (p.is_dir() or p.suffix in HASHED_SUFFIXES))
    return code_version(*targets)


def summarize(values: Sequence[Any], *, timing: bool = False) -> dict[str, Any]:
    """Return one metric's spread over seeds: mean, SD (n − 1), min, max and the values; text/booleans: only the values (``cxrkit spread``)."""
    values = list(values)
    present = [v for v in values if v is not None]
    numbers = [float(v) for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not present or len(numbers) != len(present):
        out: dict[str, Any] = {"values": values}
    else:
        out = {"mean": statistics.fmean(numbers), "sd": statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
               "min": min(present), "max": max(present), "values": values}
    if timing:
        out["timing"] = True  # machine- and load-dependent: shown, never a tolerance
    return out


@dataclass
class SeedRun:
    """What happened to one seed: its folder, whether it ran now, its wall time, and the failure when there was one."""

    seed: int
    folder: Path
    ran: bool
    seconds: float
    error: str | None = None


@dataclass
class SpreadResult:
    """The outcome of ``cxrkit spread``: the spread, the checked-output record, the seed runs and the problems found."""

    spread: dict[str, Any]
    checked: dict[str, Any]
    runs: list[SeedRun]
    seed_dependent: list[str] = field(default_factory=list)
    frozen_mismatches: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[SeedRun]:
        """The seeds whose run failed."""
        return [r for r in self.runs if r.error]


def _run_seconds(folder: Path) -> float:
    summary = json.loads((folder / "summary.json").read_text())
    return float(sum(nb.get("seconds", 0.0) for nb in summary.get("notebooks", [])))


def _seed_state(folder: Path, expected: dict[str, Any]) -> str:
    """``absent``, ``complete`` (same notebooks, parameters, code; every notebook ok), ``stale`` or ``incomplete``; a foreign folder is an error."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return "absent"
    marker = folder / SEED_MARKER
    if not marker.is_file():
        raise ValueError(f"{folder} exists but was not written by `cxrkit spread` (no {SEED_MARKER}); "
                         "move it away or choose another --out")
    try:
        info = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return "incomplete"
    if {k: info.get(k) for k in expected} != expected:
        return "stale"
    if not info.get("complete"):
        return "incomplete"
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "incomplete"
    done = {nb["notebook"] for nb in summary.get("notebooks", []) if nb.get("status") == "ok"}
    if set(expected["notebooks"]) - done or not all((folder / f"{nb}.record.json").is_file() and
                                                    (folder / f"{nb}.ipynb").is_file() for nb in expected["notebooks"]):
        return "incomplete"
    return "complete"


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _prepare_out(out: Path) -> None:
    """Create the spread folder, or check that an existing one was made by this command."""
    if out.exists() and not (out / OUT_MARKER).exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and was not made by `cxrkit spread` (no {OUT_MARKER}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / OUT_MARKER).touch()


def _indented(echo: Callable[..., Any]) -> Callable[..., Any]:
    """An ``echo`` that indents the runner's progress lines under the seed's line (a continued line is not indented)."""
    fresh = [True]

    def inner(*parts: Any, end: str = "\n", **kwargs: Any) -> None:
        echo(("    " if fresh[0] else "") + " ".join(map(str, parts)), end=end, **kwargs)
        fresh[0] = end.endswith("\n")

    return inner


@contextmanager
def _artifact_home(home: Path | None) -> Iterator[None]:
    """Point ``CXRKIT_HOME`` (and so every notebook kernel) at ``home`` for the duration; None leaves it as it is."""
    previous = os.environ.get("CXRKIT_HOME")
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        os.environ["CXRKIT_HOME"] = str(home)
    try:
        yield
    finally:
        if home is not None and previous is None:
            os.environ.pop("CXRKIT_HOME", None)
        elif home is not None:
            os.environ["CXRKIT_HOME"] = previous


def run_seeds(*, profile: str, seeds: Sequence[int], out: Path, notebooks_dir: Path,
              only: Sequence[str] | None = None, overrides: dict[str, Any] | None = None, force: bool = False,
              reuse_home: bool = False, timeout: int | None = None,
              echo: Callable[..., Any] = print) -> tuple[list[SeedRun], list[str]]:
    """Run every seed that has no complete run in ``out`` (all with ``force``); return the seed runs and the notebook names (``cxrkit spread``).

    The runs build their artifacts in ``out/cxrkit_home`` — empty the first time, so every cohort, cache and model
    is made by this code and the cost is a fresh clone's — unless ``reuse_home`` keeps ``$CXRKIT_HOME``.
    """
    overrides = dict(overrides or {})
    if "seed" in overrides:
        raise ValueError("the seeds come from --seeds; do not pass -p seed")
    overrides = validate_params(overrides, check_profile(profile))  # every knob checked before any folder is made
    paths = discover_notebooks(Path(notebooks_dir), only)
    names = [p.stem for p in paths]
    code = f"{notebook_code_version()}/{notebooks_version(paths)}"
    _prepare_out(out)
    expected = {seed: {"profile": profile, "seed": seed, "parameters": overrides, "notebooks": names, "code": code}
                for seed in seeds}
    states = {seed: _seed_state(out / f"seed-{seed}", expected[seed]) for seed in seeds}  # refuse before running
    home = None if reuse_home else out / HOME_FOLDER
    with _artifact_home(home):
        echo(f"artifacts in {cxrkit_home()}" + (" (--reuse-home)" if reuse_home else " (the spread's own; "
                                                "--reuse-home uses $CXRKIT_HOME)"))
        runs = [_run_one(seed, f"seed {seed} [{i}/{len(seeds)}]", out, states[seed], expected[seed], force,
                         notebooks_dir, timeout, echo) for i, seed in enumerate(seeds, 1)]
    return runs, names


def _run_one(seed: int, head: str, out: Path, state: str, expected: dict[str, Any], force: bool, notebooks_dir: Path,
             timeout: int | None, echo: Callable[..., Any]) -> SeedRun:
    """Run one seed into ``out/seed-N`` unless its run there is complete (and not ``force``)."""
    folder, names = out / f"seed-{seed}", expected["notebooks"]
    if state == "complete" and not force:
        seconds = _run_seconds(folder)
        echo(f"{head}: complete in {folder} ({seconds / 60:.1f} min when it ran); skipped — --force re-runs it")
        return SeedRun(seed, folder, False, seconds)
    why = {"absent": "", "stale": " (its run was made by other code, notebooks or parameters)",
           "incomplete": " (its run was interrupted or failed)", "complete": " (--force)"}[state]
    echo(f"{head}: running {len(names)} notebook(s) into {folder}{why}")
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / SEED_MARKER, {**expected, "complete": False, "written_by": "cxrkit spread"})
    start = time.perf_counter()
    error = None
    try:
        runner.run_notebooks(notebooks_dir=Path(notebooks_dir), runs_dir=out, name=folder.name, profile=expected["profile"],
                      overrides={**expected["parameters"], "seed": seed}, only=[n[:2] for n in names],
                      timeout=timeout, echo=_indented(echo), report=False)
    except runner.NotebookFailed as err:
        error = str(err)
    seconds = time.perf_counter() - start
    if error is None:
        _write_json(folder / SEED_MARKER, {**expected, "complete": True, "written_by": "cxrkit spread"})
        echo(f"{head}: done in {seconds / 60:.1f} min")
    else:
        echo(f"{head}: FAILED after {seconds / 60:.1f} min — {error}")
    return SeedRun(seed, folder, True, seconds, error)


def collect_spread(profile: str, runs: Sequence[SeedRun], notebooks: Sequence[str],
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build ``spread.json`` from the complete seed runs: every metric's spread, the seeds, the cost and the environment (``cxrkit spread``)."""
    good = [r for r in runs if not r.error]
    if not good:
        raise ValueError("no seed completed: there is no spread to record")
    per_seed = {r.seed: load_run_metrics(r.folder) for r in good}
    metrics: dict[str, dict[str, Any]] = {}
    for nb in notebooks:
        names: list[str] = []
        for r in good:
            names += [m for m in per_seed[r.seed].get(nb, {}) if m not in names]
        metrics[nb] = {m: summarize([per_seed[r.seed].get(nb, {}).get(m) for r in good],
                                    timing=metric_rule(m)[0] == "timing") for m in names}
    seconds = {str(r.seed): round(_run_seconds(r.folder), 1) for r in good}
    total = sum(seconds.values())
    first = next(iter(sorted(good[0].folder.glob("*.record.json"))), None)
    environment = json.loads(first.read_text()).get("environment", {}) if first else {}
    spread: dict[str, Any] = {
        "profile": profile,
        "seeds": [r.seed for r in good],
        "metrics": metrics,
        "parameters": dict(overrides or {}),
        "notebooks": list(notebooks),
        "cost": {"seconds_per_seed": seconds, "minutes_per_seed": round(total / 60 / len(seconds), 2),
                 "total_minutes": round(total / 60, 2),
                 "note": "wall time of each seed's notebooks (cxrkit run), on the machine the environment describes"},
        "environment": environment,
    }
    failed = {str(r.seed): r.error for r in runs if r.error}
    if failed:
        spread["failed"] = failed
    return spread


def collect_checked(profile: str, runs: Sequence[SeedRun], notebooks: Sequence[str],
                    patterns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Return every complete seed's sanitized outputs of every checked cell: ``{"notebooks": {nb: {cell: {seed: outputs}}}}`` (``cxrkit spread``)."""
    good = [r for r in runs if not r.error]
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for nb in notebooks:
        for r in good:
            executed = nbformat.read(str(r.folder / f"{nb}.ipynb"), as_version=4)
            for key, outputs in checked_outputs(executed, patterns).items():
                cells.setdefault(nb, {}).setdefault(key, {})[str(r.seed)] = outputs
    return {"profile": profile, "seeds": [r.seed for r in good], "sanitize": "tests/nbval_sanitize.cfg (nbval-lax)",
            "notebooks": cells}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def format_spread(spread: dict[str, Any], seed_dependent: Sequence[str] = (),
                  frozen_mismatches: Sequence[str] = ()) -> str:
    """Render ``spread.md``: per notebook, each metric's mean ± SD, min–max, the first seed's value and the tolerance ``cxrkit reproduce`` derives (``cxrkit spread``)."""
    seeds, cost = spread["seeds"], spread["cost"]
    env = spread.get("environment", {})
    machine = ", ".join(str(env[k]) for k in ("cpu_model", "cpu_capability", "torch_blas") if env.get(k))
    threads = f", {env['threads']} threads" if env.get("threads") else ""
    lines = [f"# Spread over seeds — profile `{spread['profile']}`", "",
             f"Seeds {', '.join(map(str, seeds))} ({len(seeds)} runs of {len(spread['notebooks'])} notebooks; "
             f"`seed` varied, every other parameter held: {json.dumps(spread.get('parameters', {}))}).",
             f"Cost: {cost['minutes_per_seed']:.1f} min per seed, {cost['total_minutes']:.1f} min in all"
             + (f" ({machine}{threads})." if machine else "."), "",
             f"`cxrkit reproduce` passes a number when |now − mean| ≤ max({SPREAD_K:g}·SD, max − min, floor) "
             "(`cxrkit.reproduce.TOLERANCES`); counts must equal the reference run's, text must be one of the seeds' "
             "values, timings are not compared. Seed-to-seed spread stands in for machine-to-machine spread.", ""]
    for nb, metrics in spread["metrics"].items():
        lines += [f"## {nb}", "", f"| metric | mean ± SD | min – max | seed {seeds[0]} | tolerance |",
                  "|---|---:|---:|---:|---:|"]
        for name, stats in metrics.items():
            first = stats["values"][0] if stats["values"] else None
            if "mean" in stats:
                shown = f"{stats['mean']:.4g} ± {stats['sd']:.2g}", f"{stats['min']:.4g} – {stats['max']:.4g}"
            else:
                shown = "values: " + ", ".join(_fmt(v) for v in stats["values"]), ""
            tol = "timing, not compared" if stats.get("timing") else str(spread_tolerance(name, stats, first))
            lines.append(f"| {name} | {shown[0]} | {shown[1]} | {_fmt(first)} | {tol} |")
        lines.append("")
    lines += ["## Checked cells (`# NBVAL_CHECK_OUTPUT`)", ""]
    if not seed_dependent and not frozen_mismatches:
        lines.append("Every checked cell prints the same on every seed, and matches its frozen output in `notebooks/`.")
    for text in list(seed_dependent) + list(frozen_mismatches):
        lines += ["```", text, "```"]
    if spread.get("failed"):
        lines += ["", "## Failed seeds (left out of the spread)", ""]
        lines += [f"- seed {s}: {err}" for s, err in spread["failed"].items()]
    return "\n".join(lines) + "\n"


def run_spread(*, profile: str = "class", seeds: Sequence[int] = (0, 1, 2, 3, 4), out: Path | None = None,
               notebooks_dir: Path = REPO_ROOT / "notebooks", only: Sequence[str] | None = None,
               overrides: dict[str, Any] | None = None, force: bool = False, reuse_home: bool = False,
               timeout: int | None = None, echo: Callable[..., Any] = print) -> SpreadResult:
    """Run the seeds, then write ``spread.json``, ``spread.md`` and ``spread_checked_outputs.json`` into ``out`` (``cxrkit spread``)."""
    if not seeds:
        raise ValueError("give at least one seed")
    out = Path(out) if out is not None else REPO_ROOT / "runs" / f"spread-{profile}"
    patterns = sanitize_patterns()
    runs, names = run_seeds(profile=profile, seeds=seeds, out=out, notebooks_dir=notebooks_dir, only=only,
                            overrides=overrides, force=force, reuse_home=reuse_home, timeout=timeout, echo=echo)
    spread = collect_spread(profile, runs, names, overrides)
    checked = collect_checked(profile, runs, names, patterns)
    dependent = seed_dependent_cells(checked)
    mismatches = frozen_differences(notebooks_dir, checked, patterns=patterns, notebooks=names)
    _write_json(out / SPREAD_FILE, spread)
    _write_json(out / CHECKED_FILE, checked)
    (out / SPREAD_TABLE).write_text(format_spread(spread, dependent, mismatches))
    n_cells = sum(len(c) for c in checked["notebooks"].values())
    echo(f"spread over seeds {spread['seeds']}: {out / SPREAD_FILE}, {out / SPREAD_TABLE}; cost "
         f"{spread['cost']['minutes_per_seed']:.1f} min per seed, {spread['cost']['total_minutes']:.1f} min in all")
    echo(f"checked cells: {n_cells} recorded in {out / CHECKED_FILE}; {len(dependent)} differ between seeds, "
         f"{len(mismatches)} seed output(s) differ from the frozen ones")
    for line in dependent + [m.splitlines()[0] for m in mismatches]:
        echo(f"  {line}")
    return SpreadResult(spread, checked, runs, dependent, mismatches)


def record_spread(out: Path, target: Path, *, echo: Callable[..., Any] = print) -> list[Path]:
    """Copy a finished spread and its first seed's run into a reference folder (``cxrkit spread --record reference/class``).

    Writes ``spread.json``, ``spread.md``, ``spread_checked_outputs.json`` and the first seed's ``summary.json``,
    ``summary.md`` and run records; overwrites only those files, and refuses a folder holding anything else.
    """
    spread = load_spread(out / SPREAD_FILE)
    if spread.get("failed"):
        raise ValueError(f"{out / SPREAD_FILE}: seed(s) {sorted(spread['failed'])} failed; fix them before recording")
    run = out / f"seed-{spread['seeds'][0]}"
    records = sorted(run / f"{nb}.record.json" for nb in spread["notebooks"])
    target = Path(target)
    if target.exists():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in RECORD_FILES
                         and not _RECORD_PATTERN.match(p.name))
        if foreign:
            raise ValueError(f"{target} holds {foreign}, which --record did not write; choose an empty folder")
        other = sorted(p.name for p in target.glob("*.record.json") if p.name not in {r.name for r in records})
        if other:
            raise ValueError(f"{target} holds records of notebooks this spread did not run ({other}); "
                             "record a spread of every notebook, or choose an empty folder")
    target.mkdir(parents=True, exist_ok=True)
    sources = [out / SPREAD_FILE, out / SPREAD_TABLE, out / CHECKED_FILE, run / "summary.json", run / "summary.md",
               *records]
    written = []
    for src in sources:
        if not src.is_file():
            raise ValueError(f"{src}: no such file — is {out} a finished spread?")
    for src in sources:
        dst = target / src.name
        with replacing(dst) as tmp:
            shutil.copyfile(src, tmp)
        written.append(dst)
    echo(f"recorded the spread over seeds {spread['seeds']} and seed {spread['seeds'][0]}'s run in {target} "
         f"({len(written)} files)")
    return written


def merge_spread(out: Path, target: Path, *, echo: Callable[..., Any] = print) -> list[Path]:
    """Add a finished spread of some notebooks to a reference recorded with the same profile, seeds and parameters (``cxrkit spread --record DIR --merge``).

    For a notebook added to the kit, so the reference gains its rows without re-running every other notebook: its
    metrics, checked outputs, first-seed record and summary line join the reference's (a notebook in both is
    replaced), each seed's cost is the sum of the two parts (``cost.merged`` lists what was added, so a replaced
    notebook's old cost is still counted), and ``spread.md`` is rendered again. The machine must be
    the one the reference was recorded on: the environment reports are compared.
    """
    out, target = Path(out), Path(target)
    new, old = load_spread(out / SPREAD_FILE), load_spread(target / SPREAD_FILE)
    if new.get("failed"):
        raise ValueError(f"{out / SPREAD_FILE}: seed(s) {sorted(new['failed'])} failed; fix them before recording")
    for field_name in ("profile", "seeds", "parameters"):
        if new.get(field_name) != old.get(field_name):
            raise ValueError(f"{out / SPREAD_FILE}: its {field_name} {new.get(field_name)!r} differ from the reference's "
                             f"{old.get(field_name)!r} ({target / SPREAD_FILE}); merge only spreads of the same runs")
    machine = ("cpu_model", "cpu_capability", "torch_blas", "threads", "torch")
    if any(new.get("environment", {}).get(k) != old.get("environment", {}).get(k) for k in machine):
        raise ValueError(f"{out / SPREAD_FILE} was run on another machine or stack than {target / SPREAD_FILE} "
                         f"(compare {', '.join(machine)}); record a whole spread there instead")
    notebooks = sorted(set(old["notebooks"]) | set(new["notebooks"]))
    merged = {**old, "notebooks": notebooks,
              "metrics": {nb: (new if nb in new["notebooks"] else old)["metrics"].get(nb, {}) for nb in notebooks}}
    seconds = {s: round(old["cost"]["seconds_per_seed"].get(s, 0.0) + new["cost"]["seconds_per_seed"].get(s, 0.0), 1)
               for s in old["cost"]["seconds_per_seed"]}
    merged["cost"] = {**old["cost"], "seconds_per_seed": seconds,
                      "minutes_per_seed": round(sum(seconds.values()) / 60 / len(seconds), 2),
                      "total_minutes": round(sum(seconds.values()) / 60, 2),
                      "merged": [*old["cost"].get("merged", []), ", ".join(new["notebooks"])]}
    checked_old, checked_new = (json.loads((folder / CHECKED_FILE).read_text()) for folder in (target, out))
    checked = {**checked_old, "notebooks": {nb: (checked_new if nb in new["notebooks"] else checked_old)["notebooks"]
                                            .get(nb, {}) for nb in notebooks}}
    run = out / f"seed-{new['seeds'][0]}"
    summary_old, summary_new = (json.loads((folder / "summary.json").read_text()) for folder in (target, run))
    lines = {nb["notebook"]: nb for nb in summary_old["notebooks"]} | {nb["notebook"]: nb for nb in summary_new["notebooks"]}
    records = [run / f"{nb}.record.json" for nb in new["notebooks"]]
    for src in records:
        if not src.is_file():
            raise ValueError(f"{src}: no such file — is {out} a finished spread?")
    written = []
    for src in records:
        shutil.copyfile(src, target / src.name)
        written.append(target / src.name)
    runner.write_summary(target, {**summary_old, "notebooks": [lines[nb] for nb in sorted(lines)]})
    _write_json(target / CHECKED_FILE, checked)
    _write_json(target / SPREAD_FILE, merged)
    (target / SPREAD_TABLE).write_text(format_spread(merged, seed_dependent_cells(checked)))
    written += [target / name for name in ("summary.json", "summary.md", CHECKED_FILE, SPREAD_FILE, SPREAD_TABLE)]
    echo(f"merged the spread of {new['notebooks']} over seeds {new['seeds']} into {target} ({len(written)} files)")
    return written


def _cmd_spread(args: argparse.Namespace) -> int:
    try:
        seeds = parse_seeds(args.seeds)
        out = Path(args.out) if args.out else REPO_ROOT / "runs" / f"spread-{args.profile}"
        result = run_spread(profile=args.profile, seeds=seeds, out=out, notebooks_dir=Path(args.notebooks),
                            only=only_option(args.only),
                            overrides=parse_overrides(args.param or []), force=args.force,
                            reuse_home=args.reuse_home, timeout=args.cell_timeout)
        if result.failed:
            print(f"error: seed(s) {[r.seed for r in result.failed]} failed; the spread covers the others only",
                  file=sys.stderr)
            return 1
        if args.record:
            (merge_spread if args.merge else record_spread)(out, Path(args.record))
    except ValueError as err:  # the kit's own errors among them; `cxrkit.cli.main` would print those the same way
        print(f"cxrkit spread: {err}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: Any) -> None:
    """Add ``cxrkit spread`` to the command line."""
    p = subparsers.add_parser("spread", help="run the notebooks for several seeds and record every metric's spread")
    add_notebook_options(p, "override one parameter for every seed (repeatable; not seed)")
    p.add_argument("--seeds", default="0-4", help="seeds to run: a range 0-4, a list 0,1,2, or both (default 0-4)")
    p.add_argument("--out", help="spread folder (default: runs/spread-<profile>)")
    p.add_argument("--force", action="store_true", help="re-run seeds whose run is already complete")
    p.add_argument("--reuse-home", action="store_true",
                   help="build and load artifacts in $CXRKIT_HOME instead of the spread's own <out>/cxrkit_home "
                        "(cheaper when it holds them; the cost recorded is then not a fresh clone's)")
    p.add_argument("--record", metavar="DIR",
                   help="then copy the spread and the first seed's run into DIR, e.g. reference/class")
    p.add_argument("--merge", action="store_true",
                   help="with --record: add this spread's notebooks (e.g. --only 07) to the spread DIR holds, recorded "
                        "on this machine with the same seeds and parameters, instead of replacing it")
    p.set_defaults(func=_cmd_spread)
