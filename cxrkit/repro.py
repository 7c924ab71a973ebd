"""Reproducibility: one seed per run, an environment report, and the run record every notebook writes.

Taught in notebook 00 (setup); every notebook's first cell ends with :func:`environment_report`
and its last cells call :meth:`RunRecord.save`.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.io as pio

from cxrkit import __version__
from cxrkit.atomic import write_text
from cxrkit.lazy import lazy_import
from cxrkit.paths import REPO_ROOT

torch = lazy_import("torch")  # `cxrkit prep` and the run records start without torch; seeding and reports load it

#: Environment variable the runner sets so every notebook of one run writes into one folder.
RUN_DIR_ENV = "CXRKIT_RUN_DIR"


def seed_everything(seed: int, *, threads: int | None = None, deterministic: bool = True) -> dict[str, Any]:
    """Seed python, numpy and torch, ask torch for deterministic algorithms, and fix the thread count (notebook 00).

    Same machine + same seed + same thread count → the same numbers. Returns what was set, for the run record.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # affects subprocesses (data-loader workers), not this one
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        _use_deterministic_algorithms(torch)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return {"seed": seed, "threads": torch.get_num_threads(), "deterministic": deterministic}


def _use_deterministic_algorithms(torch: Any) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without importing the compiler when nothing compiles.

    The public call also sets ``torch._inductor.config.deterministic``, and so imports ``torch._inductor`` and
    ``torch._dynamo``: 2.6 s on this kit's CPU machine, in every notebook kernel, for a flag only
    ``torch.compile`` reads (the kit never compiles). Where the compiler is already imported, the public call runs.
    """
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def rng(seed: int, *stream: int | str) -> np.random.Generator:
    """Return a numpy Generator for ``seed`` and a named sub-stream, independent of call order (notebook 00)."""
    words = [int(seed)] + [s if isinstance(s, int) else int.from_bytes(str(s).encode()[:8].ljust(8, b"\0"), "little")
                           for s in stream]
    return np.random.default_rng(np.random.SeedSequence(words))


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """Return the repository's HEAD commit (with ``+dirty`` when the tree has changes), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_description() -> dict[str, str]:
    """Describe the accelerator torch will use: CUDA (with the GPU's name), MPS, or CPU."""
    if torch.cuda.is_available():
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(0)}
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return {"device": "mps", "device_name": "Apple Metal (MPS)"}
    return {"device": "cpu", "device_name": platform.processor() or platform.machine()}


@dataclass
class EnvironmentReport:
    """What a run ran on; prints as a short table in the first cell of every notebook (notebook 00)."""

    facts: dict[str, Any]

    def __str__(self) -> str:
        width = max(len(k) for k in self.facts)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.facts.items())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython display
        p.text(str(self))

    def as_dict(self) -> dict[str, Any]:
        """Return the facts as a plain dict (what the run record stores)."""
        return dict(self.facts)


#: Environment variables that change which kernels and how many threads torch, OpenMP and the BLAS use.
NUMERIC_ENV_VARS: tuple[str, ...] = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")


def cpu_model() -> str:
    """Return the CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS), else what ``platform`` knows (notebook 00)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def numeric_libraries() -> dict[str, str]:
    """Return what moves the last digits of CPU arithmetic: torch's CPU capability, BLAS and OpenMP, numpy's BLAS (notebook 00)."""
    config = torch.__config__.show()
    blas = _first(r"BLAS_INFO=([\w.-]+)", config) or "unknown"
    if blas.lower() == "mkl":
        version = _first(r"Math Kernel Library Version ([\d.]+)", config)
        blas = f"MKL {version}" if version else "MKL"
    openmp = _first(r"a\.k\.a\. (OpenMP [\d.]+)", config) or _first(r"(OpenMP \d+)", config) or "none"
    backend = _first(r"ATen parallel backend: (.+)", torch.__config__.parallel_info())
    facts = {
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch_blas": blas,
        "openmp": openmp + (f" (ATen backend: {backend.strip()})" if backend else ""),
    }
    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        info = deps.get("blas", {})
        facts["numpy_blas"] = f"{info.get('name', 'unknown')} {info.get('version', '')}".strip()
    except (TypeError, AttributeError):  # numpy < 1.26 has no mode="dicts"
        facts["numpy_blas"] = "unknown"
    return facts


def environment_report() -> EnvironmentReport:
    """Report python, torch, numpy, device, CPU model and capability, BLAS/OpenMP, threads, the numeric environment variables, cxrkit version and git commit (notebook 00)."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        **device_description(),
        "cpu_model": cpu_model(),
        **numeric_libraries(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        **{name: os.environ[name] for name in NUMERIC_ENV_VARS if os.environ.get(name)},
        "cxrkit": __version__,
        "git_commit": git_commit() or "unknown",
    }
    return EnvironmentReport(facts)


def environment_differences(reference: dict[str, Any], now: dict[str, Any],
                            ignore: tuple[str, ...] = ("git_commit",)) -> list[str]:
    """Return one line per fact that differs between two environment reports, e.g. ``cpu_capability: AVX512 (reference) vs AVX2 (now)`` (``cxrkit reproduce``)."""
    lines = []
    for key in list(reference) + [k for k in now if k not in reference]:
        if key in ignore:
            continue
        was, is_ = reference.get(key, "—"), now.get(key, "—")
        if str(was) != str(is_):
            lines.append(f"{key}: {was} (reference) vs {is_} (now)")
    return lines


def run_dir() -> Path:
    """Return this run's folder: ``$CXRKIT_RUN_DIR`` (set by ``cxrkit run``) or ``runs/interactive``."""
    path = Path(os.environ.get(RUN_DIR_ENV) or REPO_ROOT / "runs" / "interactive")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(value: Any) -> Any:
    """Turn numpy/torch scalars and non-finite floats into JSON-safe values."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # torch / numpy 0-d
        return _jsonable(value.item())
    return value


@dataclass
class RunRecord:
    """Parameters, seed, environment, named metrics and figures of one notebook run, saved as JSON (notebook 00)."""

    notebook: str
    params: dict[str, Any]
    seed: int | None = None
    folder: Path = field(default_factory=run_dir)
    environment: dict[str, Any] = field(default_factory=lambda: environment_report().as_dict())
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        """The JSON file this record is saved to: ``<run folder>/<notebook>.record.json``."""
        return self.folder / f"{self.notebook}.record.json"

    def metric(self, name: str, value: Any) -> Any:
        """Record one named metric (a number, or text such as a method's name) and return it."""
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"metric names are identifiers like 'image_test_macro_auroc', got {name!r}")
        self.metrics[name] = _jsonable(value)
        return value

    def figure(self, name: str, fig: Any) -> Path:
        """Save a plotly figure as JSON beside the record and remember its path."""
        out = self.folder / "figures" / f"{self.notebook}-{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(pio.to_json(fig))
        self.figures[name] = str(out.relative_to(self.folder))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return the record as the JSON-ready dict that :meth:`save` writes."""
        return _jsonable({
            "notebook": self.notebook,
            "params": self.params,
            "seed": self.seed if self.seed is not None else self.params.get("seed"),
            "environment": self.environment,
            "metrics": self.metrics,
            "figures": self.figures,
            "started": _dt.datetime.fromtimestamp(self.started, _dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 3),
            "argv": sys.argv[:1],
        })

    def save(self) -> Path:
        """Write the record atomically to :attr:`path` and return that path."""
        write_text(self.path, json.dumps(self.as_dict(), indent=2, sort_keys=False))
        return self.path


def start_run(notebook: str, params: dict[str, Any]) -> RunRecord:
    """Seed everything from ``params['seed']`` and open this notebook's run record (called once per notebook)."""
    seed = int(params.get("seed", 0))
    seed_everything(seed)
    return RunRecord(notebook=notebook, params=dict(params), seed=seed)


def load_record(path: str | Path) -> dict[str, Any]:
    """Read a saved run record."""
    return json.loads(Path(path).read_text())
