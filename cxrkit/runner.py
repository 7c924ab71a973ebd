"""``cxrkit run``: execute the numbered notebooks in order with papermill and summarise the run.

Each notebook runs into ``runs/<name>/``; its run record (:mod:`cxrkit.repro`) supplies the metrics of
``summary.json``/``summary.md``. The runner stops at the first failing notebook and names the notebook
and the failing cell. This is what ``make run`` calls (README, "The two commands").
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from cxrkit.errors import CxrkitError
from cxrkit.kernels import IPCKernelManager
from cxrkit.lazy import lazy_import
from cxrkit.paths import REPO_ROOT
from cxrkit.profiles import PROFILES, check_profile, validate_params
from cxrkit.report import build_report
from cxrkit.repro import RUN_DIR_ENV

papermill = lazy_import("papermill")  # seconds to import; `cxrkit --help` never needs it

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


@dataclass
class NotebookResult:
    """The outcome of one notebook in a run: status, wall time, metrics, and the failure when there was one."""

    notebook: str
    status: str
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"notebook": self.notebook, "status": self.status, "seconds": round(self.seconds, 1),
               "metrics": self.metrics}
        if self.error:
            out["error"] = self.error
        return out


class NotebookFailed(RuntimeError):
    """A notebook raised during a run; the message names the notebook and the failing cell."""


class NotebookSelectionError(CxrkitError, ValueError):
    """The notebook folder is missing, holds no ``NN_*.ipynb``, or ``--only`` names a number it lacks."""


def discover_notebooks(folder: Path, only: Sequence[str] | None = None) -> list[Path]:
    """Return ``NN_*.ipynb`` in ``folder`` in number order, optionally only those whose number is in ``only``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotebookSelectionError(f"notebook folder {folder} does not exist (or is not a folder)")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if not found:
        raise NotebookSelectionError(f"no notebooks named NN_*.ipynb in {folder}")
    if only is not None:
        wanted = {o.strip().zfill(2) for o in only if o.strip()}
        numbers = [p.name[:2] for p in found]
        missing = wanted - set(numbers)
        if missing or not wanted:
            asked = ", ".join(sorted(missing)) if missing else repr(",".join(only))
            raise NotebookSelectionError(f"no notebook numbered {asked} in {folder} (--only); "
                                         f"the numbers are {', '.join(numbers)}")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def parse_overrides(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Turn ``-p key value`` pairs into typed parameters (values read as YAML: ``3`` → int, ``null`` → None; ``""`` stays text)."""
    out: dict[str, Any] = {}
    for key, raw in pairs:
        if not raw.strip():  # YAML reads "" as null: an empty value would quietly mean "none"
            out[key] = raw
            continue
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key] = raw
    return out


def _describe_failure(nb_name: str, err: Exception) -> str:
    """Name the notebook, the failing cell and the exception, in one or two lines."""
    cell = getattr(err, "cell_index", None)
    count = getattr(err, "exec_count", None)
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    source = (getattr(err, "source", "") or "").strip().splitlines()
    where = f"cell {cell} (In [{count}])" if cell is not None else "before any cell ran"
    first = f" — `{source[0][:80]}`" if source else ""
    return f"{nb_name} failed in {where}{first}: {ename}: {evalue}"


def _read_metrics(run_folder: Path, nb_name: str) -> dict[str, Any]:
    record = run_folder / f"{nb_name}.record.json"
    if not record.exists():
        return {}
    return json.loads(record.read_text()).get("metrics", {})


def execute_notebook(src: Path, dst: Path, parameters: dict[str, Any], run_folder: Path,
                     timeout: int | None = None) -> None:
    """Run one notebook with papermill into ``dst``, with the run folder exported to its kernel."""
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_folder.resolve())
    try:
        papermill.execute_notebook(str(src), str(dst), parameters=parameters, cwd=str(src.parent),
                            progress_bar=False, request_save_on_cell_execute=True,
                            execution_timeout=timeout, kernel_name="python3",
                            kernel_manager_class=IPCKernelManager)
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous


def write_summary(run_folder: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and a human-readable ``summary.md`` into the run folder."""
    (run_folder / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [f"# Run `{summary['run']}`", "",
             f"profile **{summary['profile']}**, seed **{summary['seed']}**", "",
             "| notebook | status | seconds | metrics |", "|---|---|---:|---|"]
    for nb in summary["notebooks"]:
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in nb["metrics"].items()) or "—"
        lines.append(f"| {nb['notebook']} | {nb['status']} | {nb['seconds']:.1f} | {metrics} |")
    failed = [nb for nb in summary["notebooks"] if nb["status"] == "failed"]
    if failed:
        lines += ["", "## Failure", "", failed[0].get("error", "")]
    (run_folder / "summary.md").write_text("\n".join(lines) + "\n")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_notebooks(*, notebooks_dir: Path = REPO_ROOT / "notebooks", runs_dir: Path = REPO_ROOT / "runs",
                  name: str | None = None, profile: str = "class", overrides: dict[str, Any] | None = None,
                  only: Sequence[str] | None = None, timeout: int | None = None,
                  echo: Any = print, report: bool = True) -> dict[str, Any]:
    """Run every numbered notebook in order; always write the summary (and ``report.html``); raise :class:`NotebookFailed` on a failure.

    The profile, every override (:func:`cxrkit.profiles.validate_params`) and the notebook selection are checked
    before the run folder is made: a bad one raises a :class:`~cxrkit.errors.CxrkitError` and leaves nothing behind.
    """
    overrides = validate_params(overrides or {}, check_profile(profile))
    notebooks = discover_notebooks(Path(notebooks_dir), only)
    name = name or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_folder = Path(runs_dir) / name
    run_folder.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, **overrides}
    seed = overrides.get("seed", PROFILES[profile].get("seed"))
    summary: dict[str, Any] = {"run": name, "profile": profile, "seed": seed, "parameters": parameters,
                               "notebooks": []}
    failure: str | None = None
    try:
        for i, src in enumerate(notebooks, 1):
            nb_name = src.stem
            echo(f"[{i}/{len(notebooks)}] {nb_name} …", end="", flush=True)
            start = time.perf_counter()
            try:
                execute_notebook(src, run_folder / src.name, parameters, run_folder, timeout)
            except Exception as err:  # papermill's execution error, a timeout, a dead kernel
                seconds = time.perf_counter() - start
                failure = _describe_failure(nb_name, err)
                result = NotebookResult(nb_name, "failed", seconds, _read_metrics(run_folder, nb_name), failure)
                summary["notebooks"].append(result.as_dict())
                echo(f" FAILED ({seconds:.1f} s)", flush=True)
                break
            seconds = time.perf_counter() - start
            result = NotebookResult(nb_name, "ok", seconds, _read_metrics(run_folder, nb_name))
            summary["notebooks"].append(result.as_dict())
            echo(f" ok ({seconds:.1f} s)", flush=True)
    finally:
        write_summary(run_folder, summary)
        if report:
            _write_report(run_folder, echo)
    echo(f"summary: {run_folder / 'summary.md'}")
    if failure:
        raise NotebookFailed(failure)
    return summary


def _write_report(run_folder: Path, echo: Any) -> None:
    """Write ``report.html`` (:mod:`cxrkit.report`); a failure here is reported, never hides a notebook's failure."""
    try:
        echo(f"report: {build_report(run_folder, echo=echo)}")
    except Exception as err:  # the run's results are on disk either way; say what went wrong
        echo(f"report: not written ({type(err).__name__}: {err})")


def only_option(value: str | None) -> list[str] | None:
    """The notebook numbers of ``--only 02,03`` (None: every notebook); ``--only ""`` selects nothing and is refused."""
    return None if value is None else value.split(",")


def _cmd_run(args: argparse.Namespace) -> int:
    try:  # a bad parameter, profile or --only is a CxrkitError: `cxrkit.cli.main` prints it and exits 2
        run_notebooks(notebooks_dir=Path(args.notebooks), runs_dir=Path(args.runs), name=args.name,
                      profile=args.profile, overrides=parse_overrides(args.param or []), only=only_option(args.only),
                      timeout=args.cell_timeout, report=not args.no_report)
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def add_notebook_options(p: argparse.ArgumentParser, param_help: str) -> None:
    """Add the options every command that runs the notebooks takes: profile, only, -p, notebook folder, cell timeout."""
    p.add_argument("--profile", default="class", choices=sorted(PROFILES), help="parameter set (default: class)")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,03 (default: every notebook)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"), help=param_help)
    p.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="notebook folder")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")


def register(subparsers: Any) -> None:
    """Add ``cxrkit run`` to the command line."""
    p = subparsers.add_parser("run", help="run the notebooks in order with papermill into runs/<name>/")
    add_notebook_options(p, "override one parameter (repeatable), e.g. -p seed 1")
    p.add_argument("--name", help="run folder name under runs/ (default: a timestamp)")
    p.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="folder that holds run folders")
    p.add_argument("--no-report", action="store_true", help="skip runs/<name>/report.html")
    p.set_defaults(func=_cmd_run)
