"""Radiology report readers: MIMIC-CXR free text → canonical sections, and Open-i (IU X-ray) XML → an OpenIReport.

MIMIC-CXR (taught in notebook 01): the text is split before every line that starts with optional
spaces, an ALL-CAPS heading and a colon (``" FINDINGS:"``). Headings map to canonical lower-case
names through :data:`HEADING_VARIANTS` (plain data, ~85 variants); an unknown heading keeps its own
name in snake case. Text before the first heading is ``preamble``; centred ``FINAL REPORT`` banner
lines are dropped wherever they are. Within a section, line wraps and runs of whitespace collapse to
single spaces (paragraph breaks are not kept); ``___`` de-identification marks are kept; empty sections are left
out; a heading that appears twice has its texts joined. An addendum printed *before* the report and
separated from it by a line of underscores becomes the ``addendum`` section.
``FINDINGS AND IMPRESSION`` (and its variants) fills ``impression`` and, when the report has no
separate findings, ``findings`` with the same text.

Open-i: parsed with defusedxml, so entity expansion (billion laughs) and external entities are
rejected with :class:`cxrkit.errors.ReportParseError` instead of being expanded or fetched.

Which sections the labeler reads is a *labeled-section policy* (:data:`SECTION_POLICIES`), chosen
per dataset in its manifest (``labels.sections``) and overridable by a parameter: MIMIC-CXR and the
synthetic cohort label the impression (as CheXpert does); Open-i labels findings + impression,
because its impressions often say only "No acute cardiopulmonary abnormality." while the findings
name the finding.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from xml.etree.ElementTree import ParseError

from cxrkit.errors import ReportParseError

__all__ = [
    "HEADING_VARIANTS", "COMBINED_FINDINGS_IMPRESSION", "canonical_heading", "parse_mimic_report", "labeling_text",
    "SECTION_POLICIES", "check_section_policy", "read_mimic_report", "OpenIReport", "OpenIFigure", "parse_openi_xml",
    "normalise_openi_image_id", "OPENI_SECTIONS", "ReportEncodingWarning", "decode_report_bytes",
]


class ReportEncodingWarning(UserWarning):
    """A report file is not UTF-8 and was read as Windows-1252 (or Latin-1); the warning names the file."""

#: Report headings as written (upper case, single spaces) → canonical section name.
HEADING_VARIANTS: dict[str, str] = {
    # examination
    "EXAMINATION": "examination", "EXAMINATIONS": "examination", "EXAM": "examination",
    "TYPE OF EXAMINATION": "examination", "STUDY": "examination", "PROCEDURE": "examination",
    # indication
    "INDICATION": "indication", "INDICATIONS": "indication", "CLINICAL INDICATION": "indication",
    "CLINICAL INDICATIONS": "indication", "INDICATION FOR EXAM": "indication",
    "INDICATION FOR EXAMINATION": "indication", "INDICATION FOR STUDY": "indication",
    "REASON FOR EXAM": "indication", "REASON FOR EXAMINATION": "indication", "REASON FOR STUDY": "indication",
    "REASON FOR THE EXAM": "indication", "REASON FOR THE EXAMINATION": "indication", "REASON": "indication",
    "CLINICAL QUESTION": "indication",
    # history
    "HISTORY": "history", "CLINICAL HISTORY": "history", "PATIENT HISTORY": "history",
    "MEDICAL HISTORY": "history", "CLINICAL INFORMATION": "history", "CLINICAL INFO": "history",
    "CLINICAL DATA": "history", "CLINICAL DETAILS": "history", "HX": "history", "CLINICAL HX": "history",
    # technique
    "TECHNIQUE": "technique", "TECHNIQUES": "technique", "PROCEDURE DETAILS": "technique",
    "VIEWS": "technique", "VIEW": "technique", "PROJECTIONS": "technique",
    # comparison
    "COMPARISON": "comparison", "COMPARISONS": "comparison", "COMPARISON STUDY": "comparison",
    "COMPARISON STUDIES": "comparison", "COMPARISON EXAM": "comparison", "COMPARISON EXAMS": "comparison",
    "PRIOR": "comparison", "PRIORS": "comparison", "PRIOR STUDY": "comparison", "PRIOR STUDIES": "comparison",
    "PREVIOUS STUDY": "comparison",
    # findings / impression
    "FINDINGS": "findings", "FINDING": "findings", "REPORT": "findings", "PA AND LATERAL VIEWS OF THE CHEST": "findings",
    "IMPRESSION": "impression", "IMPRESSIONS": "impression", "CONCLUSION": "impression",
    "CONCLUSIONS": "impression", "SUMMARY": "impression", "OPINION": "impression", "DIAGNOSIS": "impression",
    "FINAL IMPRESSION": "impression",
    "FINDINGS AND IMPRESSION": "findings_impression", "FINDINGS AND IMPRESSIONS": "findings_impression",
    "FINDINGS/IMPRESSION": "findings_impression", "FINDINGS / IMPRESSION": "findings_impression",
    "FINDINGS & IMPRESSION": "findings_impression", "IMPRESSION AND FINDINGS": "findings_impression",
    "IMPRESSION/FINDINGS": "findings_impression",
    # addendum, preliminary reads, communication
    "ADDENDUM": "addendum", "ADDENDA": "addendum", "ADDENDUM TO REPORT": "addendum", "FINAL ADDENDUM": "addendum",
    "WET READ": "wet_read", "PRELIMINARY READ": "wet_read", "PRELIMINARY REPORT": "wet_read",
    "PROVISIONAL FINDINGS IMPRESSION (PFI)": "wet_read", "PROVISIONAL FINDINGS IMPRESSION": "wet_read", "PFI": "wet_read",
    "NOTIFICATION": "notification", "NOTIFICATIONS": "notification", "COMMUNICATION": "notification",
    "RECOMMENDATION": "recommendation", "RECOMMENDATIONS": "recommendation",
    "RECOMMENDATION(S)": "recommendation", "FOLLOW UP": "recommendation", "FOLLOW-UP": "recommendation",
}

#: The pseudo-section that feeds both ``findings`` and ``impression``.
COMBINED_FINDINGS_IMPRESSION = "findings_impression"

#: Sections that describe the request rather than the image; :func:`labeling_text` never falls back to them.
NON_FINDING_SECTIONS: frozenset[str] = frozenset(
    {"examination", "indication", "history", "technique", "comparison", "notification"})

_HEADING = re.compile(r"^[ \t]*([A-Z][A-Z0-9 ()/#&,'\-]{0,59}?)[ \t]*:", re.MULTILINE)
_UNDERSCORE_RULE = re.compile(r"^[ \t]*_{8,}[ \t]*$", re.MULTILINE)
_BANNER = re.compile(r"^[ \t]*(?:FINAL REPORT|FINAL ADDENDUM|PRELIMINARY REPORT)[ \t]*$", re.MULTILINE)
_ADDENDUM_BANNER = re.compile(r"^[ \t]*ADDENDUM[ \t]*$", re.MULTILINE)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def canonical_heading(heading: str) -> str:
    """Map a report heading (``"CLINICAL HISTORY"``) to its canonical section name (``"history"``); unknown → snake case (notebook 01)."""
    name = _collapse(heading).upper().strip(" :")
    if name in HEADING_VARIANTS:
        return HEADING_VARIANTS[name]
    if name.startswith("WET READ"):  # "WET READ VERSION #1"
        return "wet_read"
    if name.startswith("ADDENDUM"):
        return "addendum"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unnamed"


def _split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Return (text before the first heading, [(canonical name, body), ...]) in report order."""
    matches = [m for m in _HEADING.finditer(text) if sum(c.isalpha() for c in m.group(1)) >= 2
               and len(m.group(1).split()) <= 8]
    if not matches:
        return text, []
    parts = []
    for match, nxt in zip(matches, matches[1:] + [None]):
        body = text[match.end(): nxt.start() if nxt is not None else len(text)]
        parts.append((canonical_heading(match.group(1)), body))
    return text[: matches[0].start()], parts


def parse_mimic_report(text: str) -> dict[str, str]:
    """Split MIMIC-CXR report text into canonical lower-case sections (``findings``, ``impression`` …; ``preamble`` before any heading) — notebook 01."""
    if not isinstance(text, str):
        raise TypeError(f"parse_mimic_report expects str, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    sections: dict[str, str] = {}

    def add(name: str, body: str) -> None:
        body = _collapse(body)
        if body:
            sections[name] = f"{sections[name]} {body}" if name in sections else body

    rule = _UNDERSCORE_RULE.search(text)
    if rule is not None and "ADDENDUM" in text[: rule.start()].upper() and text[: rule.start()].strip():
        # an addendum printed first, then a rule of underscores, then the original report
        head = _ADDENDUM_BANNER.sub(" ", _BANNER.sub(" ", text[: rule.start()]))
        head = re.sub(r"^\s*ADDENDUM\s*:", " ", head, count=1)
        add("addendum", head)
        text = text[rule.end():]
    text = _BANNER.sub(" ", _UNDERSCORE_RULE.sub(" ", text))

    preamble, parts = _split_sections(text)
    add("preamble", preamble)
    combined: list[str] = []
    for name, body in parts:
        if name == COMBINED_FINDINGS_IMPRESSION:
            combined.append(body)
            add("impression", body)
        else:
            add(name, body)
    if combined and "findings" not in sections:
        for body in combined:
            add("findings", body)
    return sections


#: The labeled-section policies: which report sections the rule labeler reads (notebook 01).
SECTION_POLICIES: dict[str, str] = {
    "impression": "the impression, else the findings, else the last section that describes the image "
                  "(the CheXpert/MIMIC-CXR reference)",
    "findings+impression": "the findings and the impression together (findings first, each its own paragraph); "
                           "when both are empty, the same fallback as 'impression'",
}


def check_section_policy(policy: str) -> str:
    """Return ``policy`` when it is one of :data:`SECTION_POLICIES`, else raise ValueError naming the choices (notebook 01)."""
    if policy not in SECTION_POLICIES:
        raise ValueError(f"unknown labeled-section policy {policy!r}; choose one of {list(SECTION_POLICIES)}")
    return policy


def labeling_text(sections: dict[str, str], policy: str = "impression") -> str:
    """Return the text a labeler reads under a labeled-section policy (:data:`SECTION_POLICIES`) — notebook 01.

    ``"impression"``: impression, else findings, else the last section that describes the image.
    Because sections are whitespace-collapsed, "the last paragraph" of the reference splitter is
    approximated by the last non-empty section that is not about the request (examination,
    indication, history, technique, comparison, notification); a report with no headings yields its
    whole ``preamble``. ``"findings+impression"``: both, joined by a blank line (so a section without
    final punctuation never runs into the next sentence). Returns ``""`` when nothing is left.
    """
    check_section_policy(policy)
    findings, impression = ((sections.get(name) or "").strip() for name in ("findings", "impression"))
    if policy == "findings+impression" and (findings or impression):
        return "\n\n".join(part for part in (findings, impression) if part)
    for value in (impression, findings):
        if value:
            return value
    content = [v.strip() for k, v in sections.items() if k not in NON_FINDING_SECTIONS and v and v.strip()]
    return content[-1] if content else ""


def decode_report_bytes(raw: bytes) -> tuple[str, str | None]:
    """Decode report bytes as UTF-8, else Windows-1252, else Latin-1; return (text, the fallback used or None) — notebook 01."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as err:
        note = f"not UTF-8 (byte {err.start}: {err.reason})"
    try:
        return raw.decode("cp1252"), f"{note}; read as Windows-1252"
    except UnicodeDecodeError:  # five bytes are undefined in Windows-1252; Latin-1 decodes every byte
        return raw.decode("latin-1"), f"{note}; read as Latin-1"


def read_mimic_report(path: str | Path) -> dict[str, str]:
    """Read and parse one MIMIC-CXR report file; unreadable, binary or empty files raise ReportParseError (notebook 01).

    A file that is not UTF-8 is read as Windows-1252 (else Latin-1) with a :class:`ReportEncodingWarning`
    naming it, instead of being dropped. A report without recognisable headings returns
    ``{"preamble": text}`` — the caller decides whether that counts as findings.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ReportParseError(path, f"cannot read the file ({type(err).__name__}: {err})") from err
    if b"\x00" in raw:
        raise ReportParseError(path, "the file contains NUL bytes; it is not a text report")
    text, fallback = decode_report_bytes(raw)
    if not text.strip():
        raise ReportParseError(path, "the report is empty")
    if fallback is not None:
        warnings.warn(f"report {path}: {fallback}", ReportEncodingWarning, stacklevel=2)
    return parse_mimic_report(text)


# ----------------------------------------------------------------------------------------- Open-i

#: The four AbstractText labels of every Open-i report, as section names.
OPENI_SECTIONS: tuple[str, ...] = ("comparison", "indication", "findings", "impression")

#: A normalised Open-i image id: ``<uid>_IM-<4 digits>-<4 to 8 digits>``, optionally ``-<4 digits>`` after it.
#: Over the 7,470 published ids the last group has 4 digits (6,908), 4 then ``-<4>`` (404,
#: ``CXR2199_IM-0809-0001-0002``), 5 (71, ``CXR1102_IM-0069-12012``), 7 (61, ``CXR962_IM-2453-1002001``) or
#: 8 digits (26, ``CXR961_IM-2452-84646001``) — see ``DATA_FORMATS.md``.
_OPENI_ID = re.compile(r"^\d+_IM-\d{4}-\d{4,8}(?:-\d{4})?$")
_IMAGE_SUFFIXES = (".dcm.png", ".png", ".dcm", ".jpg", ".jpeg")


@dataclass(frozen=True)
class OpenIFigure:
    """One ``parentImage`` of an Open-i report: its normalised image id, ``figureId`` (``"F1"``) and caption, in file order."""

    image_id: str
    figure_id: str = ""
    caption: str = ""


@dataclass
class OpenIReport:
    """One Open-i (IU X-ray) report: normalised uid, the four text sections, MeSH terms, normalised image ids and their figures."""

    uid: str
    sections: dict[str, str] = field(default_factory=dict)
    mesh_major: list[str] = field(default_factory=list)
    mesh_automatic: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    figures: list[OpenIFigure] = field(default_factory=list)


def normalise_openi_image_id(s: str) -> str:
    """Normalise an Open-i image id or file name: drop ``CXR``, the uid-1 ``_1`` quirk and image suffixes (``CXR1_1_IM-0001-3001`` → ``1_IM-0001-3001``) — notebook 01."""
    name = str(s).strip().replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name[:3].upper() == "CXR":
        name = name[3:]
    name = re.sub(r"^(\d+)_\1_(?=IM-)", r"\1_", name)
    if not _OPENI_ID.match(name):
        raise ValueError(f"{s!r} does not look like an Open-i image id (expected CXR<uid>_IM-<4 digits>-<4 to 8 digits>, "
                         "optionally -<4 digits> after it, like 'CXR7_IM-2263-1001' or 'CXR2199_IM-0809-0001-0002')")
    return name


def _normalise_uid(raw: str, where: str) -> str:
    uid = raw.strip()
    if uid[:3].upper() == "CXR":
        uid = uid[3:]
    if not uid.isdigit():
        raise ReportParseError(where, f"uId {raw!r} is not of the form 'CXR<number>'")
    return str(int(uid))


def parse_openi_xml(source: str | Path | bytes) -> OpenIReport:
    """Parse one Open-i ``ecgen-radiology/<N>.xml`` report (a path or the XML bytes) safely with defusedxml (notebook 01)."""
    if isinstance(source, (bytes, bytearray)):
        where, data = "<bytes>", bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise ReportParseError(where, f"cannot read the file ({type(err).__name__}: {err})") from err
    else:
        raise TypeError(f"parse_openi_xml expects a path or bytes, got {type(source).__name__}")
    try:
        root = DefusedET.fromstring(data)
    except DefusedXmlException as err:
        raise ReportParseError(where, f"unsafe XML rejected ({type(err).__name__}: {err})") from err
    except ParseError as err:
        raise ReportParseError(where, f"malformed XML ({err})") from err
    if root.tag != "eCitation":
        raise ReportParseError(where, f"root element is <{root.tag}>, expected <eCitation> (an Open-i report)")
    uid_el = root.find("uId")
    if uid_el is None or not uid_el.get("id"):
        raise ReportParseError(where, "no <uId id=...> element")
    uid = _normalise_uid(uid_el.get("id", ""), where)

    sections = {name: "" for name in OPENI_SECTIONS}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().lower()
        if label:
            text = _collapse("".join(el.itertext()))
            sections[label] = f"{sections[label]} {text}".strip() if sections.get(label) else text
    mesh = root.find("MeSH")
    major = [_collapse("".join(m.itertext())) for m in mesh.findall("major")] if mesh is not None else []
    automatic = [_collapse("".join(m.itertext())) for m in mesh.findall("automatic")] if mesh is not None else []
    figures = []
    for image in root.findall("parentImage"):
        raw_id = image.get("id")
        if raw_id:
            try:
                image_id = normalise_openi_image_id(raw_id)
            except ValueError as err:
                raise ReportParseError(where, str(err)) from err
            figures.append(OpenIFigure(image_id, _collapse(image.findtext("figureId") or ""),
                                       _collapse(image.findtext("caption") or "")))
    return OpenIReport(uid=uid, sections=sections, mesh_major=[m for m in major if m],
                       mesh_automatic=[a for a in automatic if a], image_ids=[f.image_id for f in figures],
                       figures=figures)
