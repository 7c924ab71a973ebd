"""``cxrkit reproduce``: re-execute a recorded run and compare every metric with it (``make reproduce``, README "For reviewers").

The reference is a run folder (``summary.json`` + one ``<notebook>.record.json`` per notebook, e.g.
``reference/class``). Its parameters and seed are re-used, its notebooks re-executed with ``cxrkit run``
into ``runs/<name>/``, and every metric compared under the tolerance :data:`TOLERANCES` states for it:

- text, booleans and integers (counts, a method's name) must match **exactly**;
- other numbers within an **absolute 1e-6** — same machine + same seed gives the same numbers; on
  another machine (other CPU, BLAS, torch build) pass ``--tolerance 0.02`` to loosen every number;
- timings (``*_per_s``, ``*_seconds``, ``*_s_per_*``, ``*_ms_per_*``) depend on the machine and load; they are
  shown but not compared.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cxrkit.paths import REPO_ROOT

#: Absolute tolerance for a numeric metric on the machine that recorded the reference.
SAME_MACHINE_ABS = 1e-6

#: The one table of tolerances: the first pattern that matches a metric's name decides.
#: ``exact``: equal values; ``abs``: |now - reference| <= the number; ``timing``: shown, never compared.
TOLERANCES: tuple[tuple[str, str, float], ...] = (
    ("*_per_s", "timing", 0.0),       # images per second (02, 01)
    ("*_seconds", "timing", 0.0),
    ("*_s_per_*", "timing", 0.0),     # seconds per film (06)
    ("*_ms_per_*", "timing", 0.0),    # milliseconds per map (06)
    ("n_*", "exact", 0.0),
    ("*", "abs", SAME_MACHINE_ABS),
)

PASS, FAIL, MISSING, NEW, TIMING = "ok", "FAIL", "MISSING", "new", "timing (not compared)"


@dataclass(frozen=True)
class Tolerance:
    """How one metric is compared: ``exact``, ``abs`` within ``value``, or ``timing`` (not compared)."""

    kind: str
    value: float = 0.0

    def __str__(self) -> str:
        return {"exact": "exact", "timing": "—"}.get(self.kind, f"±{self.value:g}")


def tolerance_for(metric: str, reference: Any, loosen: float | None = None) -> Tolerance:
    """Return the tolerance :data:`TOLERANCES` gives ``metric``; text, bools and ints are exact (``cxrkit reproduce``)."""
    kind, value = next((k, v) for pattern, k, v in TOLERANCES if fnmatch.fnmatchcase(metric, pattern))
    if kind == "timing":
        return Tolerance("timing")
    if kind == "exact" or not isinstance(reference, float):  # str, bool, int, None: exact
        return Tolerance("exact")
    return Tolerance("abs", max(value, loosen) if loosen is not None else value)


@dataclass(frozen=True)
class Row:
    """One line of the reproduction table: a metric of a notebook, both values, their difference and the verdict."""

    notebook: str
    metric: str
    reference: Any
    now: Any
    difference: float | None
    tolerance: Tolerance | None
    verdict: str


def _difference(reference: Any, now: Any) -> float | None:
    numeric = (int, float)
    if isinstance(reference, numeric) and isinstance(now, numeric) and not isinstance(reference, bool) \
            and not isinstance(now, bool):
        return float(now) - float(reference)
    return None


def compare_metric(notebook: str, metric: str, reference: Any, now: Any, loosen: float | None = None) -> Row:
    """Compare one metric's value now with its reference value under its tolerance (``cxrkit reproduce``)."""
    tol = tolerance_for(metric, reference, loosen)
    diff = _difference(reference, now)
    if tol.kind == "timing":
        verdict = TIMING
    elif tol.kind == "exact":
        same = type(reference) is type(now) or (isinstance(reference, (int, float)) and isinstance(now, (int, float))
                                                and not isinstance(reference, bool) and not isinstance(now, bool))
        verdict = PASS if same and reference == now else FAIL
    elif reference is None or now is None or diff is None:  # a NaN is recorded as null
        verdict = PASS if reference is None and now is None else FAIL
    else:
        verdict = PASS if math.isfinite(diff) and abs(diff) <= tol.value else FAIL
    return Row(notebook, metric, reference, now, diff, tol, verdict)


def compare_runs(reference: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]],
                 loosen: float | None = None) -> list[Row]:
    """Compare ``{notebook: {metric: value}}`` now with the reference: every reference metric, plus new ones (``cxrkit reproduce``)."""
    rows: list[Row] = []
    for notebook, metrics in reference.items():
        current = now.get(notebook)
        for metric, value in metrics.items():
            if current is None or metric not in current:
                rows.append(Row(notebook, metric, value, None, None, tolerance_for(metric, value, loosen), MISSING))
            else:
                rows.append(compare_metric(notebook, metric, value, current[metric], loosen))
        for metric in sorted(set(current or {}) - set(metrics)):
            rows.append(Row(notebook, metric, None, current[metric], None, None, NEW))
    return rows


def passed(rows: Sequence[Row]) -> bool:
    """True when no metric failed or went missing (a new metric or a timing never fails a reproduction)."""
    return all(r.verdict not in (FAIL, MISSING) for r in rows)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(rows: Sequence[Row]) -> str:
    """Render the reproduction table: notebook | metric | reference | now | difference | tolerance | verdict."""
    header = ("notebook", "metric", "reference", "now", "difference", "tolerance", "verdict")
    body = [(r.notebook, r.metric, _fmt(r.reference), _fmt(r.now),
             "—" if r.difference is None else f"{r.difference:+.3g}", str(r.tolerance or "—"), r.verdict)
            for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])] + [line(b) for b in body]
    fails = sum(r.verdict in (FAIL, MISSING) for r in rows)
    compared = sum(r.verdict in (PASS, FAIL, MISSING) for r in rows)
    out.append(f"{compared - fails}/{compared} metrics reproduced" + (f"; {fails} did not" if fails else ""))
    return "\n".join(out)


@dataclass
class RecordedRun:
    """A run folder read back: name, profile, seed, parameters, and each notebook's metrics in run order."""

    folder: Path
    profile: str
    seed: Any
    parameters: dict[str, Any]
    metrics: dict[str, dict[str, Any]]


def load_run(folder: str | Path) -> RecordedRun:
    """Read ``summary.json`` and each ``<notebook>.record.json`` of a run folder; name the file that is missing or bad."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{summary_path}: no such file — is {folder} a run folder written by `cxrkit run`?") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{summary_path}: not valid JSON ({err})") from None
    metrics: dict[str, dict[str, Any]] = {}
    for nb in summary.get("notebooks", []):
        name = nb["notebook"]
        if nb.get("status") != "ok":
            raise ValueError(f"{summary_path}: notebook {name} has status {nb.get('status')!r}; "
                             "a reference must be a run where every notebook succeeded")
        record_path = folder / f"{name}.record.json"
        try:
            record = json.loads(record_path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{record_path}: no such file — the reference run lacks this notebook's record") from None
        if record.get("seed") != summary.get("seed"):
            raise ValueError(f"{record_path}: seed {record.get('seed')!r} differs from the run's {summary.get('seed')!r}")
        metrics[name] = record.get("metrics", {})
    if not metrics:
        raise ValueError(f"{summary_path}: the run has no notebooks")
    return RecordedRun(folder, summary["profile"], summary.get("seed"), dict(summary.get("parameters", {})), metrics)


def reproduce(reference_dir: str | Path, *, name: str | None = None, runs_dir: Path = REPO_ROOT / "runs",
              notebooks_dir: Path = REPO_ROOT / "notebooks", loosen: float | None = None,
              timeout: int | None = None, echo: Callable[..., Any] = print) -> tuple[list[Row], Path]:
    """Re-run the reference's notebooks with its parameters and seed, then compare every metric (``make reproduce``)."""
    from cxrkit.runner import NotebookFailed, run_notebooks

    ref = load_run(reference_dir)
    name = name or f"reproduce-{Path(reference_dir).name}"
    overrides = {k: v for k, v in ref.parameters.items() if k != "profile"}
    overrides.setdefault("seed", ref.seed)
    only = [nb[:2] for nb in ref.metrics]
    echo(f"reproducing {reference_dir}: profile {ref.profile}, seed {ref.seed}, notebooks {', '.join(ref.metrics)}")
    try:
        run_notebooks(notebooks_dir=notebooks_dir, runs_dir=runs_dir, name=name, profile=ref.profile,
                      overrides=overrides, only=only, timeout=timeout, echo=echo)
    except NotebookFailed as err:
        echo(f"error: {err}")
    now = load_run_metrics(Path(runs_dir) / name)
    return compare_runs(ref.metrics, now, loosen), Path(runs_dir) / name


def load_run_metrics(folder: Path) -> dict[str, dict[str, Any]]:
    """Each notebook's recorded metrics in a run folder, for the notebooks that wrote a record."""
    return {p.name[: -len(".record.json")]: json.loads(p.read_text()).get("metrics", {})
            for p in sorted(Path(folder).glob("*.record.json"))}


def _cmd_reproduce(args: argparse.Namespace) -> int:
    try:
        rows, folder = reproduce(args.reference, name=args.name, runs_dir=Path(args.runs),
                                 notebooks_dir=Path(args.notebooks), loosen=args.tolerance,
                                 timeout=args.cell_timeout)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = format_table(rows)
    print(table)
    (folder / "reproduction.txt").write_text(table + "\n")
    return 0 if passed(rows) else 1


def register(subparsers: Any) -> None:
    """Add ``cxrkit reproduce`` to the command line."""
    p = subparsers.add_parser("reproduce", help="re-run a recorded run and compare every metric with it")
    p.add_argument("reference", nargs="?", default=str(REPO_ROOT / "reference" / "class"),
                   help="the recorded run folder (default: reference/class)")
    p.add_argument("--name", help="run folder for the re-execution (default: reproduce-<reference name>)")
    p.add_argument("--tolerance", type=float, default=None,
                   help=f"loosen every numeric tolerance to this absolute value (default {SAME_MACHINE_ABS:g}, "
                        "for the machine that recorded the reference)")
    p.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="notebook folder")
    p.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="folder that holds run folders")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    p.set_defaults(func=_cmd_reproduce)
