"""The outputs nbval checks, as data: extract, sanitize and compare the ``# NBVAL_CHECK_OUTPUT`` cells of notebooks.

``make test`` runs nbval with ``--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg``: a code cell is
compared only when it is marked to be checked (the ``# NBVAL_CHECK_OUTPUT`` comment or the
``nbval-check-output`` tag) and its frozen copy ran; its outputs are compared after nbval's own steps —
streams of one name joined (carriage returns and backspaces applied), every output field except
``metadata``, ``traceback``, ``execution_count``, ``output_type``, stream ``name``, images and widget ids
flattened into ``{field: [values in order]}``, each string passed through the sanitize regexes. This module
reuses nbval's functions for those steps, so what it calls equal is what nbval calls equal.

``cxrkit spread`` records, for every seed, the checked outputs of the executed notebooks
(``spread_checked_outputs.json``) and prints the cells whose output depends on the seed;
``tests/test_checked_outputs.py`` fails when a frozen output in ``notebooks/`` differs from any seed's
(DESIGN.md, "Notebook standard": a checked cell asserts only what holds on every seed).
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from cxrkit.lazy import lazy_import
from cxrkit.paths import REPO_ROOT

nbformat = lazy_import("nbformat")
nbval_plugin = lazy_import("nbval.plugin")

#: The sanitize file ``make test`` gives nbval.
SANITIZE_CONFIG = REPO_ROOT / "tests" / "nbval_sanitize.cfg"

#: Output fields nbval never compares (``nbval.plugin.IPyNbFile.skip_compare`` without ``--nbdime``).
SKIP_COMPARE: frozenset[str] = frozenset({
    "metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
    "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg",
})

INJECTED_TAG = "injected-parameters"  # papermill's cell of injected parameters

#: One cell's comparable outputs: ``{field: [sanitized values in order]}``, nbval's view of them.
Outputs = dict[str, list[Any]]


def sanitize_patterns(path: str | Path = SANITIZE_CONFIG) -> list[tuple[str, str]]:
    """Read the ``regex:``/``replace:`` pairs of an nbval sanitize file, as nbval does (``cxrkit spread``)."""
    path = Path(path)
    try:
        return list(nbval_plugin.get_sanitize_patterns(path.read_text()))
    except OSError as err:
        raise ValueError(f"{path}: cannot read the nbval sanitize file ({err.strerror or err})") from None


def _sanitize(value: Any, patterns: Iterable[tuple[str, str]]) -> Any:
    if not isinstance(value, str):
        return value
    for regex, replace in patterns:
        value = re.sub(regex, replace, value)
    return value


def _as_notebook(nb: Mapping[str, Any] | Any) -> Any:
    """A NotebookNode with multi-line text joined, as ``nbformat.read`` gives nbval."""
    return nb if isinstance(nb, nbformat.NotebookNode) else nbformat.reads(json.dumps(nb), as_version=4)


def is_checked(cell: Mapping[str, Any]) -> bool:
    """True when nbval in lax mode compares this code cell's outputs (comment marker or tag; a skipped cell never) (``cxrkit spread``)."""
    if cell.get("cell_type") != "code":
        return False
    options = dict(nbval_plugin.find_metadata_tags(cell.get("metadata", {})))
    options.update(nbval_plugin.find_comment_markers(cell.get("source", "")))
    return bool(options.get("check")) and not options.get("skip")


def comparable_outputs(outputs: list[Any], patterns: Iterable[tuple[str, str]]) -> Outputs:
    """Flatten one cell's outputs the way nbval compares them: joined streams, ``{field: [sanitized values]}`` (``cxrkit spread``)."""
    patterns = list(patterns)
    flat: dict[str, list[Any]] = defaultdict(list)
    copies = [nbformat.from_dict(o) for o in outputs]  # nbval joins streams in place: work on copies
    for output in nbval_plugin.transform_streams_for_comparison(nbval_plugin.coalesce_streams(copies)):
        for key, value in output.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP_COMPARE:
                        flat[mime].append(_sanitize(content, patterns))
            else:
                flat[key].append(_sanitize(value, patterns))
    return {k: flat[k] for k in sorted(flat)}


def cell_keys(nb: Mapping[str, Any] | Any) -> list[tuple[str, int, Any]]:
    """Each code cell (papermill's injected one left out) as ``(key, nbval cell number, cell)``; key = the cell ``id`` when every cell has one, else ``"cell N"`` (``cxrkit spread``)."""
    nb = _as_notebook(nb)
    code = [c for c in nb.cells if c.get("cell_type") == "code"
            and INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    with_ids = all(c.get("id") for c in nb.cells)
    return [(str(c["id"]) if with_ids else f"cell {i}", i, c) for i, c in enumerate(code)]


def checked_outputs(nb: Mapping[str, Any] | Any, patterns: Iterable[tuple[str, str]], *,
                    frozen: bool = False) -> dict[str, Outputs]:
    """Return ``{cell key: comparable outputs}`` of a notebook's checked cells; ``frozen=True`` leaves out cells whose frozen copy never ran, as nbval does (``cxrkit spread``)."""
    patterns = list(patterns)
    return {key: comparable_outputs(cell.get("outputs", []), patterns) for key, _, cell in cell_keys(nb)
            if is_checked(cell) and not (frozen and cell.get("execution_count") is None)}


def show(outputs: Outputs | None) -> str:
    """One checked cell's outputs as readable text, one line per output field, for a difference report (``cxrkit spread``)."""
    if outputs is None:
        return "(no record)"
    parts = [f"[{field}] {value}" if not isinstance(value, str) else f"[{field}] {value.rstrip()}"
             for field, values in outputs.items() for value in values]
    return "\n".join(parts) if parts else "(no output)"


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def _first_difference(texts: list[str]) -> list[str]:
    """The first line on which the texts differ, from each text."""
    split = [t.splitlines() or [""] for t in texts]
    for i in range(max(len(lines) for lines in split)):
        row = [lines[i] if i < len(lines) else "" for lines in split]
        if len(set(row)) > 1:
            return row
    return [lines[0] for lines in split]


def seed_dependent_cells(record: Mapping[str, Any]) -> list[str]:
    """Name each checked cell whose output is not the same on every seed of a spread record, with its first differing line per group of seeds (``cxrkit spread``)."""
    lines = []
    for notebook, cells in record.get("notebooks", {}).items():
        for key, by_seed in cells.items():
            groups: dict[str, list[str]] = {}
            for seed, outputs in by_seed.items():
                groups.setdefault(json.dumps(outputs, sort_keys=True), []).append(str(seed))
            if len(groups) > 1:
                firsts = _first_difference([show(json.loads(o)) for o in groups])
                shown = "; ".join(f"seed {','.join(seeds)}: {line.strip()[:80]!r}"
                                  for seeds, line in zip(groups.values(), firsts))
                lines.append(f"{notebook} cell {key}: differs between seeds ({shown})")
    return lines


def frozen_differences(notebooks_dir: str | Path, record: Mapping[str, Any], *, min_seeds: int = 0,
                       patterns: Iterable[tuple[str, str]] | None = None,
                       notebooks: Iterable[str] | None = None) -> list[str]:
    """Compare every frozen checked output in ``notebooks_dir`` with every seed's recorded one; one line per problem, naming notebook, cell and seed (``tests/test_checked_outputs.py``)."""
    patterns = sanitize_patterns() if patterns is None else list(patterns)
    problems: list[str] = []
    seeds = [str(s) for s in record.get("seeds", [])]
    if len(seeds) < min_seeds:
        problems.append(f"the record covers {len(seeds)} seed(s) {seeds}; at least {min_seeds} are needed")
    recorded = record.get("notebooks", {})
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if notebooks is not None:
        wanted = set(notebooks)
        paths = [p for p in paths if p.stem in wanted]
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        frozen = checked_outputs(nb, patterns, frozen=True)
        numbers = {key: number for key, number, _ in cell_keys(nb)}
        if frozen and path.stem not in recorded:
            problems.append(f"{path.stem}: not in the record (it has {len(frozen)} checked cells)")
            continue
        for key, want in frozen.items():
            where = f"{path.stem} cell {key} (nbval Cell {numbers[key]})"
            cells = recorded.get(path.stem, {})
            if key not in cells:
                problems.append(f"{where}: checked cell missing from the record")
                continue
            for seed in seeds:
                got = cells[key].get(seed)
                if got is None:
                    problems.append(f"{where}, seed {seed}: no recorded output")
                elif {k: [_sanitize(v, patterns) for v in vs] for k, vs in got.items()} != want:
                    problems.append(f"{where}, seed {seed}: output differs from the frozen one\n"
                                    f"    frozen:\n{_indent(show(want))}\n    seed {seed}:\n{_indent(show(got))}")
    return problems
