"""How good is the rule labeler on real reports? Open-i's MeSH major terms as the truth, per finding (notebook 01).

Every Open-i report (``ecgen-radiology/<N>.xml``) carries MeSH *major* terms that people assigned to it
("Cardiomegaly/borderline", "Pulmonary Atelectasis/base/left", or ``normal``). A documented mapping
(``cxrkit/labeler_mesh.yaml``, see its header) turns them into the CheXpert observations they name:
an observation is present when any major term of the report maps to it, absent otherwise; ``normal``
makes No Finding present. The labeler reads each report under a labeled-section policy
(:data:`cxrkit.io.reports.SECTION_POLICIES`, Open-i's default: findings + impression); its 1 and -1
count as present, 0 and blank as absent. :func:`evaluate_mesh` returns precision, recall and F1 per
observation the mapping can name; ``cxrkit label --evaluate-mesh DIR`` prints the same table.

Limits: MeSH majors are an index, not a label set — annotators listed major findings, so a finding a
report mentions in passing may be missing from them (it then counts against the labeler's precision),
and terms outside the 14 observations are ignored (:func:`unmatched_terms` lists them, to check the mapping).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd
import yaml

from cxrkit.errors import CxrkitError
from cxrkit.io.reports import OpenIReport, labeling_text, parse_openi_xml
from cxrkit.labeler import agreement_table, label_reports
from cxrkit.labels import CHEXPERT_LABELS

__all__ = ["MESH_MAP_FILE", "MeshMap", "MeshEvaluationError", "load_mesh_map", "mesh_truth", "unmatched_terms",
           "evaluate_mesh", "read_openi_reports"]

MESH_MAP_FILE = "labeler_mesh.yaml"


class MeshEvaluationError(CxrkitError, ValueError):
    """The MeSH evaluation has nothing to evaluate (no readable Open-i report with MeSH terms) or a bad mapping file (notebook 01)."""


@dataclass(frozen=True)
class MeshMap:
    """MeSH rules (``term`` or ``term/qualifier``, lower case) → observations, the ``normal`` and not-indexed terms (notebook 01)."""

    rules: dict[tuple[str, str | None], tuple[str, ...]]
    normal: frozenset[str]
    not_indexed: frozenset[str]

    @property
    def observations(self) -> list[str]:
        """The observations the mapping can name, in CheXpert order, No Finding first (notebook 01)."""
        named = {o for targets in self.rules.values() for o in targets} | {"No Finding"}
        return [o for o in CHEXPERT_LABELS if o in named]

    def map_term(self, major: str) -> set[str] | None:
        """Return the observations one major term names (empty for ``normal``), or None when no rule matches it (notebook 01)."""
        parts = [p.strip().lower() for p in str(major).split("/")]
        term, qualifiers = parts[0], set(parts[1:])
        if term in self.normal:
            return set()
        hits = [targets for (t, q), targets in self.rules.items() if t == term and (q is None or q in qualifiers)]
        return {o for targets in hits for o in targets} if hits else None


def load_mesh_map(path: str | Path | None = None) -> MeshMap:
    """Read a MeSH → observation mapping (default: the packaged ``labeler_mesh.yaml``); a bad entry names the file (notebook 01)."""
    if path is None:
        text, where = resources.files("cxrkit").joinpath(MESH_MAP_FILE).read_text(encoding="utf-8"), MESH_MAP_FILE
    else:
        try:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as err:
            raise MeshEvaluationError(f"cannot read the MeSH mapping {path}: {err}") from None
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("terms"), Mapping):
        raise MeshEvaluationError(f"{where}: expected a mapping with 'terms' (MeSH term → list of observations)")
    rules: dict[tuple[str, str | None], tuple[str, ...]] = {}
    for rule, targets in data["terms"].items():
        targets = [targets] if isinstance(targets, str) else list(targets or [])
        bad = [t for t in targets if t not in CHEXPERT_LABELS or t == "No Finding"]
        if bad or not targets:
            raise MeshEvaluationError(f"{where}: term {rule!r} must map to CheXpert findings, got {bad or 'nothing'}")
        term, _, qualifier = str(rule).partition("/")
        rules[(term.strip().lower(), qualifier.strip().lower() or None)] = tuple(targets)
    lower = lambda key: frozenset(str(t).strip().lower() for t in data.get(key) or [])  # noqa: E731
    return MeshMap(rules, lower("normal") or frozenset({"normal"}), lower("not_indexed"))


def _indexed(majors: Sequence[str], mapping: MeshMap) -> bool:
    return bool(majors) and not all(m.strip().lower() in mapping.not_indexed for m in majors)


def mesh_truth(majors_by_report: Mapping[str, Sequence[str]], mapping: MeshMap | None = None) -> pd.DataFrame:
    """Per report (index) and mapped observation: 1.0 when a MeSH major names it, else 0.0; reports without MeSH terms are left out (notebook 01)."""
    mapping = mapping or load_mesh_map()
    columns = mapping.observations
    rows = {}
    for report_id, majors in majors_by_report.items():
        if not _indexed(majors, mapping):
            continue
        present = set().union(*[mapping.map_term(m) or set() for m in majors])
        row = {o: float(o in present) for o in columns}
        row["No Finding"] = float(any(m.strip().lower() in mapping.normal for m in majors) and not present)
        rows[report_id] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype="float64")


def unmatched_terms(majors: Iterable[str], mapping: MeshMap | None = None) -> Counter:
    """Count the MeSH terms (before the first "/") that no rule of the mapping matches — to check the mapping (notebook 01)."""
    mapping = mapping or load_mesh_map()
    return Counter(m.split("/")[0].strip() for m in majors
                   if mapping.map_term(m) is None and m.strip().lower() not in mapping.not_indexed)


def read_openi_reports(paths: Sequence[str | Path]) -> tuple[list[OpenIReport], list[str]]:
    """Parse the Open-i ``.xml`` reports under ``paths`` (files or folders); return (reports, 'file: reason' of the skipped ones) (notebook 01)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() == ".xml")
        elif p.is_file():
            files.append(p)
        else:
            raise MeshEvaluationError(f"no such report file or folder: {p}")
    reports, skipped = [], []
    for f in files:
        try:
            reports.append(parse_openi_xml(f))
        except CxrkitError as err:
            skipped.append(f"{f}: {err}")
    return reports, skipped


def evaluate_mesh(reports: Sequence[OpenIReport], *, sections: str = "findings+impression", mapping: MeshMap | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Precision, recall, F1 and support per observation of the rule labeler against the MeSH major terms of Open-i reports (notebook 01).

    ``reports`` are :class:`cxrkit.io.reports.OpenIReport` (from :func:`read_openi_reports`); ``sections``
    is the labeled-section policy. Reports without MeSH majors (or only "No Indexing") are left out;
    none left raises :class:`MeshEvaluationError`. The labeler's 1 and -1 count as present.
    """
    mapping = mapping or load_mesh_map()
    by_id = {r.uid: r for r in reports}
    truth = mesh_truth({uid: r.mesh_major for uid, r in by_id.items()}, mapping)
    if truth.empty:
        raise MeshEvaluationError(f"none of the {len(by_id)} Open-i report(s) has MeSH major terms to evaluate against")
    texts = pd.Series([labeling_text(by_id[uid].sections, sections) for uid in truth.index], index=truth.index)
    predicted = label_reports(texts, progress=progress)
    table = agreement_table(predicted, truth, uncertain_as_positive=True)
    return table.rename(columns={"support": "mesh_present", "predicted_positive": "labeler_present"})
