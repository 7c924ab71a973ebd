"""Coded exercises: each one's reference solution and the plain-words check a student's function gets (notebooks 01–06).

An exercise in an instructor notebook is a function whose body sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; the next cell calls :func:`check` with the exercise's name and the function.
``cxrkit student`` replaces each solution with ``raise NotImplementedError`` so the student notebook
runs end to end, and every check there says what is missing instead of crashing the notebook.

Each notebook's exercises live in ``cxrkit/exercises/nbNN.py`` and register themselves with
:func:`exercise`; a check runs the student's function and the reference on the same small cases and
compares the results with :func:`compare_values` (or the exercise's own comparison).
"""
from __future__ import annotations

import importlib
import pkgutil
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["Case", "Exercise", "CheckResult", "exercise", "check", "compare_values", "registry"]


@dataclass
class Case:
    """One input an exercise is checked on: positional/keyword arguments and a short description for messages."""

    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass
class Exercise:
    """A registered exercise: its notebook, reference solution, cases and comparison (notebooks 01–06)."""

    name: str
    notebook: str
    reference: Callable[..., Any]
    cases: Callable[[], Iterable[Case]]
    compare: Callable[[Any, Any], str | None]
    hint: str = ""


@dataclass
class CheckResult:
    """What :func:`check` found: passed or not, and the message shown to the student."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("✓ " if self.passed else "✗ ") + f"{self.name}: {self.message}"


_REGISTRY: dict[str, Exercise] = {}


def exercise(name: str, notebook: str, cases: Callable[[], Iterable[Case]], *,
             compare: Callable[[Any, Any], str | None] | None = None, hint: str = "") -> Callable:
    """Register the decorated function as the reference solution of exercise ``name`` (notebooks 01–06)."""
    def register(reference: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].reference.__qualname__ != reference.__qualname__:
            raise ValueError(f"exercise {name!r} is registered twice")
        _REGISTRY[name] = Exercise(name, notebook, reference, cases, compare or compare_values, hint)
        return reference
    return register


def registry() -> dict[str, Exercise]:
    """Return every registered exercise by name, importing each notebook's ``cxrkit.exercises.nbNN`` module (notebooks 01–06)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(_REGISTRY)


def compare_values(got: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """Return None when ``got`` matches ``expected`` (arrays/tensors to a tolerance, else equality), else what differs."""
    if hasattr(expected, "detach"):
        expected = expected.detach().cpu().numpy()
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if isinstance(expected, (np.ndarray, float, np.floating)) or (
            isinstance(expected, (list, tuple)) and expected and isinstance(expected[0], (float, np.floating))):
        try:
            g, e = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
        except (TypeError, ValueError):
            return f"expected numbers, got {type(got).__name__}"
        if g.shape != e.shape:
            return f"expected shape {e.shape}, got shape {g.shape}"
        if not np.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            worst = float(np.nanmax(np.abs(g - e))) if g.size else 0.0
            return f"values differ from the reference (largest difference {worst:.3g})"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {type(got).__name__}"
        if set(got) != set(expected):
            return f"expected keys {sorted(map(str, expected))}, got {sorted(map(str, got))}"
        for key in expected:
            problem = compare_values(got[key], expected[key], rtol=rtol, atol=atol)
            if problem:
                return f"[{key!r}] {problem}"
        return None
    if isinstance(expected, list) and isinstance(got, (list, tuple)) and got != expected:
        extra = [g for g in got if g not in expected]
        missing = [e for e in expected if e not in got]
        if extra or missing:
            return (f"expected {len(expected)} items, got {len(got)}"
                    + (f"; should not be there: {_short(extra)}" if extra else "")
                    + (f"; missing: {_short(missing)}" if missing else ""))
        return f"the right items in the wrong order: expected {_short(expected)}, got {_short(list(got))}"
    return None if got == expected else f"expected {_short(expected)}, got {_short(got)}"


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a message stays one or two lines."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check(name: str, student: Callable[..., Any], *, verbose: bool = True) -> CheckResult:
    """Run a student's function on exercise ``name``'s cases against the reference and say in plain words what is wrong (notebooks 01–06).

    Never raises for a wrong or unfinished answer, so a problem-set notebook still runs end to end.
    """
    exercises = registry()
    if name not in exercises:
        raise KeyError(f"no exercise named {name!r}; known: {sorted(exercises)}")
    ex = exercises[name]
    cases = list(ex.cases())
    result = CheckResult(name, True, f"all {len(cases)} checks pass")
    for i, case in enumerate(cases, 1):
        where = f"check {i}/{len(cases)}" + (f" ({case.description})" if case.description else "")
        try:
            got = student(*case.args, **case.kwargs)
        except NotImplementedError:
            result = CheckResult(name, False, "not written yet: replace `raise NotImplementedError` with your code"
                                 + (f". Hint: {ex.hint}" if ex.hint else ""))
            break
        except Exception as error:  # the student's code crashed: show where, briefly
            last = traceback.extract_tb(error.__traceback__)[-1]
            result = CheckResult(name, False, f"{where}: your function raised {type(error).__name__}: {error} "
                                 f"(line {last.lineno}: {last.line})")
            break
        expected = ex.reference(*case.args, **case.kwargs)
        problem = ex.compare(got, expected)
        if problem:
            result = CheckResult(name, False, f"{where}: {problem}" + (f". Hint: {ex.hint}" if ex.hint else ""))
            break
    if verbose:
        print(repr(result))
    return result
