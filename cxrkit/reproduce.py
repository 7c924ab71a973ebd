"""``cxrkit reproduce``: re-execute a recorded run and compare every metric with the recorded spread (``make reproduce``, README "For reviewers").

The reference is a run folder (``summary.json`` + one ``<notebook>.record.json`` per notebook, e.g.
``reference/class``) that also holds the run's **spread over seeds**, ``spread.json`` (written by
``cxrkit spread``). Its parameters and seed are re-used, its notebooks re-executed with ``cxrkit run`` into
``runs/<name>/``, and every metric compared under the rule :data:`TOLERANCES` states for it:

- a number is reproduced when ``|now - spread mean| <= tol``, with ``tol = max(k·SD, max - min, floor)``:
  :data:`SPREAD_K` standard deviations over the seeds, or the whole range the seeds gave, or the metric's
  floor (its resolution, for a metric the seeds did not move). Seed-to-seed spread stands in for
  machine-to-machine spread: another CPU rounds differently and training amplifies it, as another seed does;
- a count (``n_*``, an integer) must equal the reference run's value;
- text and booleans (a method's name, the list of methods that failed a check) must be among the values the
  seeds gave;
- timings (``*_per_s``, ``*_seconds``, ``*_s_per_*``, ``*_ms_per_*``) depend on the machine and load; they are
  shown but not compared.

``--exact`` is the same-machine mode: every number within :data:`SAME_MACHINE_ABS` of the reference run's value
(same machine + same seed gives the same numbers, bit for bit), text and counts equal. A reference without
``spread.json`` is compared exactly, with a one-line notice. ``--tolerance X`` loosens every numeric tolerance
to at least ``X`` in either mode. Before the table, the facts of the environment report that differ between
the reference and this run are printed (CPU capability, BLAS, threads …), so a reviewer sees why digits moved.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cxrkit import runner  # runner.run_notebooks through the module, so a test can stand in for the runs
from cxrkit.paths import REPO_ROOT
from cxrkit.repro import environment_differences, environment_report

#: Absolute tolerance for a numeric metric on the machine that recorded the reference (``--exact``).
SAME_MACHINE_ABS = 1e-6

#: The spread over seeds a reference folder holds (written by ``cxrkit spread``, read here).
SPREAD_FILE = "spread.json"

#: A number is reproduced within this many standard deviations of its spread over seeds (or its range, or its floor).
#: Four, not three: with five seeds the sample SD is itself uncertain (its 95% interval reaches down to ~0.6 of the
#: true SD), so 4 sample SDs still cover about 2.4 true SDs; a real regression moves a metric by far more.
SPREAD_K = 4.0

#: The one table of tolerances: the first pattern that matches a metric's name decides its kind and floor.
#: ``timing``: shown, never compared; ``exact``: a count, equal to the reference run's value; ``number``: within
#: ``max(SPREAD_K·SD, max - min, floor)`` of the spread mean (``--exact``: within :data:`SAME_MACHINE_ABS` of the
#: reference value). The floor is the metric's resolution — the smallest change that means something.
TOLERANCES: tuple[tuple[str, str, float], ...] = (
    ("*_per_s", "timing", 0.0),                 # images per second (02, 01)
    ("*_seconds", "timing", 0.0),
    ("*_s_per_*", "timing", 0.0),               # seconds per film (06)
    ("*_ms_per_*", "timing", 0.0),              # milliseconds per map (06)
    ("*_speed_ratio", "timing", 0.0),           # the kit's loop against a bare loop (02)
    ("*_train_s", "timing", 0.0),               # seconds a recipe trained (07)
    ("n_*", "exact", 0.0),                      # film counts (01)
    ("*auroc*", "number", 0.005),               # AUROC and its CI bounds: half a point, below any claimed effect
    ("fusion_gain*", "number", 0.005),          # a difference of AUROCs (04)
    ("pointing_game_*", "number", 0.05),        # a hit rate over 20 films per finding: one film (05)
    ("planted_pointing_game*", "number", 0.05),
    ("grounding_pointing_game*", "number", 0.05),  # a hit rate over 20 films with an effusion: one film (07)
    ("retrieval_*", "number", 0.005),           # means over ~170 scored queries (07)
    ("no_evidence_share_*", "number", 0.01),    # share of all-zero maps over 100 film-findings (05)
    ("*hit_rate", "number", 0.025),             # a hit rate over tens of films: about one film (06)
    ("loc_precision", "number", 0.01),          # shares of hundreds of regions (06)
    ("loc_recall", "number", 0.01),
    ("loc_false_per_film", "number", 0.05),     # false regions per film over 60 films: three regions (06)
    ("loc_threshold", "number", 0.05),          # one step of notebook 06's threshold grid
    ("mass_inside_*", "number", 0.005),         # share of attribution mass inside the truth (05)
    ("*completeness_error", "number", 0.005),   # IG's relative completeness error (05, 06)
    ("*", "number", 0.001),                     # anything else: a thousandth
)

PASS, FAIL, MISSING, NEW, TIMING = "ok", "FAIL", "MISSING", "new", "timing (not compared)"


@dataclass(frozen=True)
class Tolerance:
    """How one metric is compared: ``exact``, ``abs`` within ``value`` (``source`` says which term set it), ``among`` the seeds' values, or ``timing``."""

    kind: str
    value: float = 0.0
    source: str = ""

    def __str__(self) -> str:
        if self.kind == "abs":
            return f"±{self.value:.3g}" + (f" ({self.source})" if self.source else "")
        return {"exact": "exact", "timing": "—", "among": "a seed's value"}[self.kind]


def metric_rule(metric: str) -> tuple[str, float]:
    """Return ``(kind, floor)`` of a metric from :data:`TOLERANCES` (``cxrkit reproduce``, ``cxrkit spread``)."""
    return next((k, v) for pattern, k, v in TOLERANCES if fnmatch.fnmatchcase(metric, pattern))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def tolerance_for(metric: str, reference: Any, loosen: float | None = None) -> Tolerance:
    """Return the same-machine tolerance of ``metric`` (``--exact``): text, bools and ints exact, numbers within :data:`SAME_MACHINE_ABS`."""
    kind, _ = metric_rule(metric)
    if kind == "timing":
        return Tolerance("timing")
    if kind == "exact" or not isinstance(reference, float):  # str, bool, int, None: exact
        return Tolerance("exact")
    if loosen is not None and loosen > SAME_MACHINE_ABS:
        return Tolerance("abs", loosen, "--tolerance")
    return Tolerance("abs", SAME_MACHINE_ABS)


def spread_tolerance(metric: str, stats: dict[str, Any], reference: Any = None,
                     loosen: float | None = None) -> Tolerance:
    """Return the tolerance a metric's spread over seeds gives it: ``max(SPREAD_K·SD, max - min, floor)`` for a number (``cxrkit reproduce``)."""
    kind, floor = metric_rule(metric)
    if kind == "timing":
        return Tolerance("timing")
    if "mean" not in stats:
        return Tolerance("among")
    if kind == "exact" or (_is_number(reference) and not isinstance(reference, float)) or \
            all(isinstance(v, int) and not isinstance(v, bool) for v in stats["values"] if v is not None):
        return Tolerance("exact")
    terms = [(SPREAD_K * float(stats["sd"]), f"{SPREAD_K:g} SD"), (float(stats["max"]) - float(stats["min"]), "range"),
             (floor, "floor")]
    if loosen is not None:
        terms.append((float(loosen), "--tolerance"))
    value, source = max(terms, key=lambda t: t[0])
    return Tolerance("abs", value, source)


@dataclass(frozen=True)
class Row:
    """One line of the reproduction table: a metric of a notebook, its values, the spread mean, the difference and the verdict."""

    notebook: str
    metric: str
    reference: Any
    now: Any
    difference: float | None
    tolerance: Tolerance | None
    verdict: str
    mean: float | None = None
    spread: bool = False


def _difference(reference: Any, now: Any) -> float | None:
    if _is_number(reference) and _is_number(now):
        return float(now) - float(reference)
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind: a count recorded as 4 or 4.0 is one count; a bool is not a number."""
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _within(diff: float | None, tol: Tolerance, reference: Any, now: Any) -> str:
    if reference is None or now is None or diff is None:  # a NaN is recorded as null
        return PASS if reference is None and now is None else FAIL
    return PASS if math.isfinite(diff) and abs(diff) <= tol.value else FAIL


def compare_metric(notebook: str, metric: str, reference: Any, now: Any, loosen: float | None = None,
                   spread: dict[str, Any] | None = None) -> Row:
    """Compare one metric's value now with its spread over seeds (or, without ``spread``, exactly with the reference) (``cxrkit reproduce``)."""
    if spread is None:
        tol = tolerance_for(metric, reference, loosen)
        diff = _difference(reference, now)
        if tol.kind == "timing":
            verdict = TIMING
        elif tol.kind == "exact":
            verdict = PASS if _same(reference, now) else FAIL
        else:
            verdict = _within(diff, tol, reference, now)
        return Row(notebook, metric, reference, now, diff, tol, verdict)
    tol = spread_tolerance(metric, spread, reference, loosen)
    mean = spread.get("mean")
    diff = _difference(reference if tol.kind == "exact" else mean, now)  # a count is compared with the reference run
    values = spread.get("values", [])
    if tol.kind == "timing":
        verdict = TIMING
    elif tol.kind == "among" or (tol.kind == "exact" and reference is None):
        verdict = PASS if any(_same(v, now) for v in values) else FAIL
    elif tol.kind == "exact":
        verdict = PASS if _same(reference, now) else FAIL
    elif now is None or mean is None:
        verdict = PASS if now is None and None in values else FAIL
    else:
        verdict = _within(diff, tol, mean, now)
    return Row(notebook, metric, reference, now, diff, tol, verdict, mean, True)


def compare_runs(reference: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]],
                 loosen: float | None = None, spread: dict[str, dict[str, dict[str, Any]]] | None = None) -> list[Row]:
    """Compare ``{notebook: {metric: value}}`` now with the spread (or the reference): every recorded metric, plus new ones (``cxrkit reproduce``)."""
    rows: list[Row] = []
    notebooks = list(reference) + [nb for nb in (spread or {}) if nb not in reference]
    for notebook in notebooks:
        metrics = reference.get(notebook, {})
        stats = (spread or {}).get(notebook, {})
        names = list(metrics) + [m for m in stats if m not in metrics]
        current = now.get(notebook)
        for metric in names:
            value, in_spread = metrics.get(metric), stats.get(metric) if spread is not None else None
            if current is None or metric not in current:
                tol = spread_tolerance(metric, in_spread, value, loosen) if in_spread else \
                    tolerance_for(metric, value, loosen)
                rows.append(Row(notebook, metric, value, None, None, tol, MISSING,
                                in_spread.get("mean") if in_spread else None, bool(in_spread)))
            else:
                rows.append(compare_metric(notebook, metric, value, current[metric], loosen, in_spread))
        for metric in sorted(set(current or {}) - set(names)):
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
    """Render the reproduction table; with a spread: notebook | metric | reference | spread mean | now | difference | tolerance | verdict.

    The difference is ``now - spread mean`` for a number compared with its spread, ``now - reference`` otherwise.
    """
    with_spread = any(r.spread for r in rows)
    if with_spread:
        header = ("notebook", "metric", "reference", "spread mean", "now", "difference", "tolerance", "verdict")
    else:
        header = ("notebook", "metric", "reference", "now", "difference", "tolerance", "verdict")
    body = []
    for r in rows:
        diff = "—" if r.difference is None else f"{r.difference:+.3g}"
        cells = [r.notebook, r.metric, _fmt(r.reference)] + ([_fmt(r.mean)] if with_spread else []) + \
            [_fmt(r.now), diff, str(r.tolerance or "—"), r.verdict]
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])] + [line(b) for b in body]
    fails = sum(r.verdict in (FAIL, MISSING) for r in rows)
    compared = sum(r.verdict in (PASS, FAIL, MISSING) for r in rows)
    rule = (f"numbers within max({SPREAD_K:g} SD, range, floor) of the spread mean over seeds" if with_spread
            else f"numbers within {SAME_MACHINE_ABS:g} of the reference (same machine)")
    out.append(f"{compared - fails}/{compared} metrics reproduced" + (f"; {fails} did not" if fails else "")
               + f" ({rule})")
    return "\n".join(out)


def read_json(path: Path, missing_hint: str) -> Any:
    """Read a JSON file the kit wrote; a missing or broken file is a ``ValueError`` naming it (``cxrkit reproduce``, ``cxrkit spread``)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file — {missing_hint}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


@dataclass
class RecordedRun:
    """A run folder read back: name, profile, seed, parameters, each notebook's metrics in run order, and its environment report."""

    folder: Path
    profile: str
    seed: Any
    parameters: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    environment: dict[str, Any] = field(default_factory=dict)


def load_run(folder: str | Path) -> RecordedRun:
    """Read ``summary.json`` and each ``<notebook>.record.json`` of a run folder; name the file that is missing or bad."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    summary = read_json(summary_path, f"is {folder} a run folder written by `cxrkit run`?")
    metrics: dict[str, dict[str, Any]] = {}
    environment: dict[str, Any] = {}
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
        environment = environment or dict(record.get("environment") or {})
    if not metrics:
        raise ValueError(f"{summary_path}: the run has no notebooks")
    return RecordedRun(folder, summary["profile"], summary.get("seed"), dict(summary.get("parameters", {})), metrics,
                       environment)


def load_spread(path: str | Path) -> dict[str, Any]:
    """Read and check a ``spread.json``: profile, seeds and ``{notebook: {metric: stats}}``; name the file and the entry that is wrong (``cxrkit reproduce``; ``cxrkit spread`` writes it)."""
    path = Path(path)
    data = read_json(path, "write it with `cxrkit spread`")
    if not isinstance(data, dict) or not all(k in data for k in ("profile", "seeds", "metrics")):
        raise ValueError(f"{path}: a spread needs the keys profile, seeds and metrics")
    if not data["seeds"]:
        raise ValueError(f"{path}: the spread covers no seeds")
    for nb, metrics in data["metrics"].items():
        for name, stats in (metrics or {}).items():
            if not isinstance(stats, dict) or not isinstance(stats.get("values"), list):
                raise ValueError(f"{path}: {nb}.{name} needs a list of values")
            if "mean" in stats and not all(isinstance(stats.get(k), (int, float)) for k in ("mean", "sd", "min", "max")):
                raise ValueError(f"{path}: {nb}.{name} has a mean but not numeric sd, min and max")
    data.setdefault("notebooks", list(data["metrics"]))
    return data


def reproduce(reference_dir: str | Path, *, name: str | None = None, runs_dir: Path = REPO_ROOT / "runs",
              notebooks_dir: Path = REPO_ROOT / "notebooks", loosen: float | None = None, exact: bool = False,
              timeout: int | None = None, echo: Callable[..., Any] = print) -> tuple[list[Row], Path]:
    """Re-run the reference's notebooks with its parameters and seed, then compare every metric with its spread, or exactly (``make reproduce``)."""
    ref = load_run(reference_dir)
    spread = None
    if not exact:
        if (Path(reference_dir) / SPREAD_FILE).exists():
            recorded = load_spread(Path(reference_dir) / SPREAD_FILE)
            if recorded["profile"] != ref.profile:
                raise ValueError(f"{Path(reference_dir) / SPREAD_FILE}: a spread of profile {recorded['profile']!r}, "
                                 f"but the reference run is profile {ref.profile!r}")
            spread = recorded["metrics"]
            echo(f"tolerances from the spread over seeds {recorded['seeds']} ({SPREAD_FILE})")
        else:
            echo(f"note: {reference_dir} has no {SPREAD_FILE}; comparing exactly (within {SAME_MACHINE_ABS:g}, "
                 "right only on the machine that recorded it)")
    name = name or f"reproduce-{Path(reference_dir).name}"
    overrides = {k: v for k, v in ref.parameters.items() if k != "profile"}
    overrides.setdefault("seed", ref.seed)
    only = [nb[:2] for nb in ref.metrics]
    echo(f"reproducing {reference_dir}: profile {ref.profile}, seed {ref.seed}, notebooks {', '.join(ref.metrics)}")
    try:
        runner.run_notebooks(notebooks_dir=notebooks_dir, runs_dir=runs_dir, name=name, profile=ref.profile,
                      overrides=overrides, only=only, timeout=timeout, echo=echo)
    except runner.NotebookFailed as err:
        echo(f"error: {err}")
    now = load_run_metrics(Path(runs_dir) / name)
    return compare_runs(ref.metrics, now, loosen, spread), Path(runs_dir) / name


def load_run_metrics(folder: Path) -> dict[str, dict[str, Any]]:
    """Each notebook's recorded metrics in a run folder, for the notebooks that wrote a record."""
    return {p.name[: -len(".record.json")]: json.loads(p.read_text()).get("metrics", {})
            for p in sorted(Path(folder).glob("*.record.json"))}


def environment_lines(reference_dir: str | Path, run_folder: str | Path) -> list[str]:
    """The environment facts that differ between the reference run and a re-run (from their run records), as printed before the table (``cxrkit reproduce``)."""
    reference = load_run(reference_dir).environment
    records = sorted(Path(run_folder).glob("*.record.json"))
    now = json.loads(records[0].read_text()).get("environment") if records else None
    now = now or environment_report().as_dict()
    if not reference:
        return [f"environment: {reference_dir} records none to compare with"]
    diffs = environment_differences(reference, now)
    return ["environment: same as the reference"] if not diffs else \
        ["environment differs from the reference:"] + [f"  {line}" for line in diffs]


def _cmd_reproduce(args: argparse.Namespace) -> int:
    try:
        rows, folder = reproduce(args.reference, name=args.name, runs_dir=Path(args.runs),
                                 notebooks_dir=Path(args.notebooks), loosen=args.tolerance, exact=args.exact,
                                 timeout=args.cell_timeout)
    except ValueError as err:  # the kit's own errors among them; `cxrkit.cli.main` would print those the same way
        print(f"cxrkit reproduce: {err}", file=sys.stderr)
        return 2
    text = "\n".join(environment_lines(args.reference, folder) + ["", format_table(rows)])
    print(text)
    (folder / "reproduction.txt").write_text(text + "\n")
    return 0 if passed(rows) else 1


def register(subparsers: Any) -> None:
    """Add ``cxrkit reproduce`` to the command line."""
    p = subparsers.add_parser("reproduce", help="re-run a recorded run and compare every metric with its spread over seeds")
    p.add_argument("reference", nargs="?", default=str(REPO_ROOT / "reference" / "class"),
                   help="the recorded run folder, with spread.json (default: reference/class)")
    p.add_argument("--name", help="run folder for the re-execution (default: reproduce-<reference name>)")
    p.add_argument("--exact", action="store_true",
                   help=f"same-machine mode: every number within {SAME_MACHINE_ABS:g} of the reference run's value")
    p.add_argument("--tolerance", type=float, default=None,
                   help="loosen every numeric tolerance to at least this absolute value (either mode)")
    p.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="notebook folder")
    p.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="folder that holds run folders")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    p.set_defaults(func=_cmd_reproduce)
