"""``cxrkit report``: one HTML page per run — the summary, then every executed notebook — scrubbed of patient identifiers.

``cxrkit run`` writes ``runs/<name>/report.html`` at its end (README "For reviewers"); ``cxrkit report
<run_dir>`` rebuilds it. Notebooks are rendered with nbconvert's HTML exporter.

**Patient identifiers.** Before rendering, every string in every notebook (sources, text, HTML and JSON
outputs such as plotly hover text, titles and axis labels, tracebacks, saved widget state) and the summary
passes through :class:`Scrubber`, in three layers:

1. *Values read from the run's own data*: for every ``data_root`` the run's records name (a real dataset),
   the identifying attributes (:data:`IDENTIFIER_KEYWORDS`: names, IDs, birth date, address, accession
   number, institution, physicians) of every DICOM header the readers would take — ``.dcm``/``.dicom`` in any
   letter case, or any other file with the ``DICM`` marker — are read, and each value is masked as a whole
   token in any letter case, plain or HTML-escaped, by the rules of :class:`Scrubber` (a person name in every
   rendering and part by part; an ID and its digits, also as JSON numbers and inside plotly's base64 typed
   arrays; an institution or address as the full phrase only, so "Chest Imaging Center" never takes "chest").
2. *Header dumps*: a line of pydicom's dataset listing for the patient module (group 0010) or another
   identifying tag, and ``Keyword: value`` / ``'Keyword': 'value'`` pairs for those keywords, lose their value.
3. *DICOM person-name strings*: anything shaped ``Family^Given`` is masked.

Limits: an identifier that is neither in a DICOM header under the run's ``data_root`` nor shaped like a
header line or a DICOM person name (say, a name typed into a report's free text, or a value from a folder
the run did not record) is not recognised; a PNG/JPEG output cannot carry a header value as text, but text
burned into *pixels* (films with annotations) is not read; a name part shorter than three characters, or one
that is an ordinary word (:data:`ORDINARY_WORDS`), is masked only as part of the full name; inside JavaScript
(an HTML output's ``<script>``) only layer 1 applies and a bare numeric identifier becomes ``null`` (plotly
figures are scrubbed as JSON before they are drawn); a typed array that cannot be decoded is replaced by the
mask; ipywidgets' binary buffers (which record no dtype) are not decoded; the executed ``.ipynb`` files
beside the report are the raw outputs and are *not* scrubbed. The synthetic cohort carries no real
identifiers (its names are ``SYNTHETIC^PATIENT…``), so a class run exercises layers 2–3 only. Review a
report before you publish it.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import datetime as _dt
import html
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import plotly.io as pio
import pydicom
from plotly.offline import get_plotlyjs
from pydicom.multival import MultiValue

from cxrkit.io.images import DICOM_SUFFIXES, RASTER_SUFFIXES
from cxrkit.lazy import lazy_import

nbconvert = lazy_import("nbconvert")  # seconds to import; only the HTML export needs it
nbformat = lazy_import("nbformat")

MASK = "[patient identifier removed]"

#: DICOM attributes whose values identify a patient (a subset of the PS3.15 basic de-identification profile).
IDENTIFIER_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "MedicalRecordLocator",
    "IssuerOfPatientID", "AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "StudyID",
)
_IDENTIFYING_TAGS = {"(0008,0050)", "(0008,0080)", "(0008,0081)", "(0008,0090)", "(0008,1050)", "(0008,1070)",
                     "(0020,0010)"}
_DUMP_LINE = re.compile(r"^(?P<head>\s*\((?P<tag>[0-9A-Fa-f]{4},\s?[0-9A-Fa-f]{4})\)[^\n:]*?\b[A-Z]{2}:\s*)(?P<value>.*)$",
                        re.MULTILINE)
_KEYWORDS = "|".join(IDENTIFIER_KEYWORDS + ("Patient's Name", "Patient ID", "Patient's Birth Date",
                                            "Patient's Address", "Referring Physician's Name", "Accession Number"))
_KEY_VALUE = re.compile(rf"""(?P<key>['"]?\b(?:{_KEYWORDS})['"]?\s*[:=]\s*)(?P<value>'[^'\n]*'|"[^"\n]*"|[^\n,;}}<]*)""")
_PERSON_NAME = re.compile(r"\b[A-Za-z][\w'\-]*(?:\^[\w'\-]*){1,4}")


#: PN attributes: each name part is masked alone too (see :class:`Scrubber`).
_PERSON_KEYWORDS = frozenset({"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                              "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName"})
#: ID attributes: the value, and each run of five or more digits in it, are masked (also as JSON numbers).
_ID_KEYWORDS = frozenset({"PatientID", "OtherPatientIDs", "MedicalRecordLocator", "AccessionNumber", "StudyID"})
_DATE_KEYWORDS = frozenset({"PatientBirthDate"})
_MIN_DIGITS = 5  # a shorter number is a count or a size on every page, not an identifier on its own

#: Words a report prints as ordinary text: a name part or one-word value that is one of these is masked
#: only as part of the full value ("Chest Imaging Center" the phrase, never every "chest").
ORDINARY_WORDS: frozenset[str] = frozenset("""
a an and are as at be by for from has have in is it no not of on or the this to was with yes none all any new old
left right upper lower middle base apex front back side view film image images study series report reports patient
patients subject test train valid val model data label labels case cases center centre hospital clinic imaging
medical health general university institute department radiology radiograph radiography chest thorax lung lungs
heart cardiac rib ribs spine bone bones tube line lines mass nodule normal abnormal finding findings impression
indication technique comparison history atelectasis cardiomegaly consolidation edema effusion emphysema fibrosis
fracture hernia infiltration opacity pneumonia pneumothorax pleural support devices lesion enlarged
cardiomediastinum thickening synthetic frontal lateral portable upright supine adult child male female unknown
identifier removed dr mr mrs ms md phd jr sr
""".split())


def _digit_runs(value: str) -> list[str]:
    return [m for m in re.findall(r"\d+", value) if len(m.lstrip("0") or "0") >= _MIN_DIGITS]


def _join(*words: str) -> str:
    return " ".join(w for w in words if w)


def _name_forms(value: str) -> tuple[set[str], set[str]]:
    """The renderings of a DICOM person name (``Family^Given^Middle^Prefix^Suffix``) and its distinctive parts."""
    forms: set[str] = set()
    parts: set[str] = set()
    for group in value.split("="):  # alphabetic = ideographic = phonetic
        comps = ([c.strip() for c in group.split("^")] + [""] * 5)[:5]
        family, given, middle, prefix, suffix = comps
        forms |= {group.strip().rstrip("^"), _join(*comps), _join(prefix, given, middle, family, suffix),
                  _join(given, middle, family), _join(given, family), _join(family, given, middle)}
        if family and given:
            forms.add(f"{family}, {_join(given, middle)}")
        parts.update(w for c in comps for w in c.split() if len(w) >= 3 and w.lower() not in ORDINARY_WORDS)
    return forms, parts


def _value_forms(keyword: str, value: str) -> tuple[set[str], set[int]]:
    """The strings to mask and the numbers to mask for one header value (keyword ``""``: judged by its shape)."""
    if keyword in _PERSON_KEYWORDS or (not keyword and "^" in value):
        forms, parts = _name_forms(value)
        return forms | parts, set()
    if keyword in _ID_KEYWORDS or (not keyword and any(ch.isdigit() for ch in value)):
        runs = _digit_runs(value)
        keep = bool(runs) or not (value.isdigit() or value.lower() in ORDINARY_WORDS)
        return ({value} if keep else set()) | set(runs) | {r.lstrip("0") for r in runs}, {int(r) for r in runs}
    if keyword in _DATE_KEYWORDS and re.fullmatch(r"\d{8}", value):
        y, m, d = value[:4], value[4:6], value[6:]
        return {value, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}.{m}.{y}"}, {int(value)}
    one_word = len(value.split()) == 1
    return (set() if one_word and value.lower() in ORDINARY_WORDS else {value}), set()


_ESCAPES = {"'": "(?:'|&#39;|&#x27;)", '"': '(?:"|&quot;|&#34;)', "&": "(?:&|&amp;)", "<": "(?:<|&lt;)",
            ">": "(?:>|&gt;)", "^": r"(?:\^|&#94;)"}


def _token_pattern(form: str) -> str:
    """A regex for ``form`` as a whole token: any case, any run of white space, HTML-escaped or not."""
    body = "".join(r"(?:\s|&nbsp;|&#160;)+" if ch.isspace() else _ESCAPES.get(ch, re.escape(ch))
                   for ch in re.sub(r"\s+", " ", form))
    left = r"(?<!\w)(?<!\d\.)" if form[0].isdigit() else r"(?<!\w)"
    right = r"(?!\w)(?!\.0*[1-9])" if form[-1].isdigit() else r"(?!\w)"  # "55555.0" is the ID, "55555.5" is not
    return left + body + right


class Scrubber:
    """Masks patient identifiers in text and JSON: values read from DICOM headers, header dumps, ``Family^Given`` names.

    ``values`` are ``(keyword, value)`` pairs from :func:`dicom_identifiers` (or bare strings, judged by shape:
    with ``^`` a person name, with a digit an ID, else a phrase). Every match is a whole token, in any case:

    * a person name is masked in its renderings (``POE^EDGAR``, ``POE EDGAR``, ``Edgar Poe``, ``Poe, Edgar``) and
      each part of three or more characters alone, unless that part is in :data:`ORDINARY_WORDS`;
    * an ID is masked as a whole (``MRN55555``) and each run of five or more digits in it alone (``55555``), also
      where a JSON value (plotly ``customdata``, a typed ``bdata`` array) is that number; an all-digit ID shorter
      than five digits (a ``StudyID`` of ``42``) is left alone — such numbers fill every page;
    * a birth date as ``19470101``, ``1947-01-01``, ``1947/01/01``, ``01.01.1947``;
    * any other value (institution, address, telephone) as the full phrase only, never word by word, and a
      one-word value that is an ordinary word not at all.
    """

    def __init__(self, values: Iterable[str | tuple[str, str]] = ()) -> None:
        forms: set[str] = set()
        self.numbers: set[int] = set()
        for item in values:
            keyword, value = item if isinstance(item, tuple) else ("", item)
            value = str(value).strip()
            found, numbers = _value_forms(keyword, value)
            forms.update(f for f in found if len(f) >= 3)
            self.numbers |= numbers
        self.values = sorted(forms, key=lambda f: (-len(f), f))
        self._known = re.compile("|".join(_token_pattern(f) for f in self.values), re.IGNORECASE) if forms else None

    def values_only(self, text: str) -> str:
        """Layer 1: mask the identifier values read from the run's DICOM headers (also in HTML-escaped form)."""
        return text if self._known is None else self._known.sub(MASK, text)

    def script(self, text: str) -> str:
        """Scrub JavaScript/JSON: known values only; typed arrays decoded; a bare numeric identifier becomes ``null``."""
        out = []
        for i, piece in enumerate(_TYPED_ARRAY.split(text)):
            if i % 2:
                try:
                    obj = json.loads(piece)
                except ValueError:
                    obj = None
                if isinstance(obj, dict) and {"dtype", "bdata"} <= obj.keys():
                    scrubbed = self._typed_array(obj)
                    out.append(piece if scrubbed is obj else json.dumps(scrubbed))
                    continue
            out.append(piece if self._known is None else self._known.sub(
                lambda m: "null" if m.group(0).isdigit() else MASK, piece))
        return "".join(out)

    @staticmethod
    def patterns(text: str) -> str:
        """Layers 2–3: mask the values of identifying header lines and ``Keyword: value`` pairs, and ``Family^Given`` names."""
        def dump(m: re.Match[str]) -> str:
            tag = "(" + m.group("tag").replace(" ", "") + ")"
            identifying = tag.startswith("(0010,") or tag in _IDENTIFYING_TAGS
            return m.group("head") + MASK if identifying and m.group("value").strip() else m.group(0)

        text = _DUMP_LINE.sub(dump, text)
        text = _KEY_VALUE.sub(lambda m: m.group("key") + (MASK if m.group("value").strip(" '\"") else m.group("value")),
                              text)
        return _PERSON_NAME.sub(MASK, text)

    def __call__(self, text: str) -> str:
        """Return plain ``text`` with every recognised identifier replaced by :data:`MASK`."""
        return self.patterns(self.values_only(text))

    def html(self, text: str) -> str:
        """Scrub HTML: every layer outside ``<script>``/``<style>``; inside them :meth:`script` (layer 1 only).

        Code is not text: person-name and key-value patterns would corrupt JavaScript (``a^b`` is XOR), so a
        figure's data is scrubbed as JSON *before* it is rendered (see :meth:`notebook`). Base64 ``data:``
        URIs (images) are never touched.
        """
        out = []
        for part in _BASE64.split(text):
            if _BASE64.fullmatch(part):
                out.append(part)
                continue
            pieces = _SCRIPT.split(part)
            out.append("".join(self.script(piece) if i % 2 else self(piece) for i, piece in enumerate(pieces)))
        return "".join(out)

    def notebook(self, nb: dict[str, Any]) -> dict[str, Any]:
        """Return a scrubbed copy of a notebook: sources, streams, tracebacks, text/HTML/JSON outputs, widget state (images untouched)."""
        nb = json.loads(json.dumps(nb))
        if "widgets" in nb.get("metadata", {}):  # nbconvert embeds the saved widget state in the page
            nb["metadata"]["widgets"] = self.scrub_json(nb["metadata"]["widgets"])
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            cell["source"] = self("".join(src) if isinstance(src, list) else src)
            for output in cell.get("outputs", []):
                if "text" in output:
                    text = output["text"]
                    output["text"] = self("".join(text) if isinstance(text, list) else text)
                if "traceback" in output:
                    output["traceback"] = [self(line) for line in output["traceback"]]
                if "evalue" in output:
                    output["evalue"] = self(output["evalue"])
                for mime, value in list(output.get("data", {}).items()):
                    value = "".join(value) if isinstance(value, list) and mime.startswith(("text/", "image/")) else value
                    if mime.startswith("image/") and mime != "image/svg+xml":
                        continue
                    if mime == "text/html" or mime == "image/svg+xml":
                        output["data"][mime] = self.html(value)
                    elif mime == "application/javascript":
                        output["data"][mime] = self.script(value)
                    elif isinstance(value, str):
                        output["data"][mime] = self(value)
                    else:
                        output["data"][mime] = self.scrub_json(value)
        return nb

    def scrub_json(self, value: Any) -> Any:
        """Scrub every string, key, identifier number and typed array inside a JSON-like value (a summary, a plotly figure)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return MASK if self._is_identifier_number(value) else value
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        if isinstance(value, dict):
            if {"dtype", "bdata"} <= value.keys():
                return self._typed_array(value)
            return {self(k) if isinstance(k, str) else k: self.scrub_json(v) for k, v in value.items()}
        return value

    def _is_identifier_number(self, value: float) -> bool:
        return bool(self.numbers) and math.isfinite(value) and float(value).is_integer() and int(value) in self.numbers

    def _typed_array(self, obj: dict[str, Any]) -> Any:
        """A plotly typed array (``{"dtype", "bdata", "shape"}``): itself if clean, a list with the identifier numbers
        masked if not, and :data:`MASK` in its place when it cannot be decoded (an opaque blob is not shown)."""
        try:
            dtype = np.dtype("<" + ("u1" if obj["dtype"] == "u1c" else str(obj["dtype"])))
            if dtype.kind not in "biuf":
                raise ValueError(f"dtype {obj['dtype']!r}")
            array = np.frombuffer(base64.b64decode(obj["bdata"], validate=True), dtype)
            shape = [int(n) for n in str(obj.get("shape") or len(array)).split(",")]
            array = array.reshape(shape)
        except (TypeError, ValueError, binascii.Error):
            return MASK
        if not self.numbers or dtype.kind == "b":
            return obj
        hits = np.isin(array, np.array(sorted(self.numbers), dtype=np.int64 if dtype.kind != "f" else np.float64))
        if not hits.any():
            return obj
        masked = np.where(hits, MASK, array.astype(object))
        return masked.tolist()


_BASE64 = re.compile(r"(data:[\w/+.\-]+;base64,[A-Za-z0-9+/=\s]+)")
_SCRIPT = re.compile(r"(<script\b.*?</script>|<style\b.*?</style>)", re.S | re.I)
_TYPED_ARRAY = re.compile(r"(\{[^{}]*\"bdata\"[^{}]*\})")


def _is_dicom_file(path: Path) -> bool:
    """True for a file the kit's readers take as DICOM: a ``.dcm``/``.dicom`` suffix in any case, or the ``DICM`` marker."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in RASTER_SUFFIXES or suffix in _NOT_DICOM:
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


_NOT_DICOM = frozenset({".txt", ".csv", ".gz", ".json", ".md", ".html", ".xml", ".tgz", ".zip", ".npy", ".npz",
                        ".parquet", ".yaml", ".yml", ".py", ".ipynb"})


def _dicom_files(roots: Iterable[str | Path]) -> list[Path]:
    """Every DICOM file under ``roots``, linked folders followed once each (as the dataset readers walk them)."""
    files: list[Path] = []
    seen: set[str] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            if os.path.realpath(dirpath) in seen:
                dirnames[:] = []
                continue
            seen.add(os.path.realpath(dirpath))
            dirnames.sort()
            files.extend(p for p in (Path(dirpath) / n for n in sorted(filenames)) if _is_dicom_file(p))
    return files


def dicom_identifiers(roots: Iterable[str | Path], echo: Any = print) -> set[tuple[str, str]]:
    """``(keyword, value)`` for the identifying attributes of every DICOM under ``roots``, any suffix case or none (headers only)."""
    found: set[tuple[str, str]] = set()
    files = _dicom_files(roots)
    if len(files) > 2000:
        echo(f"report: reading identifiers from {len(files)} DICOM headers …")
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(IDENTIFIER_KEYWORDS))
        except Exception as err:  # InvalidDicomError, EOFError, struct errors …: the readers refuse such a file too
            echo(f"report: skipped {path}: {err}")
            continue
        for keyword in IDENTIFIER_KEYWORDS:
            value = ds.get(keyword)
            for item in (value if isinstance(value, (list, tuple, MultiValue)) else [value]):
                if item is not None and str(item).strip():
                    found.add((keyword, str(item).strip()))
    return found


def dicom_identifier_values(roots: Iterable[str | Path], echo: Any = print) -> set[str]:
    """The identifying values of every DICOM header under ``roots`` (:func:`dicom_identifiers` without keywords)."""
    return {value for _, value in dicom_identifiers(roots, echo=echo)}


def run_data_roots(run_folder: Path) -> list[Path]:
    """The real-data folders a run read: each record's ``data_root`` parameter that exists on disk."""
    roots = set()
    for record in sorted(Path(run_folder).glob("*.record.json")):
        root = json.loads(record.read_text()).get("params", {}).get("data_root")
        if root and Path(root).exists():
            roots.add(Path(root).resolve())
    return sorted(roots)


PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _render_plotly(nb: dict[str, Any]) -> bool:
    """Give each plotly figure output an HTML rendering (nbconvert cannot draw the plotly mimetype); True if any."""
    found = False
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                found = True
                if "text/html" not in data:
                    data["text/html"] = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False, full_html=False,
                                                    validate=False)
    return found


def _export(nb: dict[str, Any]) -> tuple[str, str]:
    """Render one notebook with nbconvert's HTML exporter; return its <head> styles and its <body> content."""
    _render_plotly(nb)
    body, _ = nbconvert.HTMLExporter(template_name="lab").from_notebook_node(nbformat.from_dict(nb))
    head = "\n".join(re.findall(r"<style[^>]*>.*?</style>|<script[^>]*>.*?</script>", body.split("</head>")[0], re.S))
    inner = re.search(r"<body[^>]*>(.*)</body>", body, re.S)
    return head, inner.group(1) if inner else body


def _summary_html(summary: dict[str, Any]) -> str:
    rows = []
    for nb in summary.get("notebooks", []):
        metrics = "<br>".join(f"{html.escape(k)} = {html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}"
                              for k, v in nb.get("metrics", {}).items()) or "—"
        rows.append(f"<tr><td><a href='#nb-{html.escape(nb['notebook'])}'>{html.escape(nb['notebook'])}</a></td>"
                    f"<td>{html.escape(nb['status'])}</td><td>{nb['seconds']:.1f}</td><td>{metrics}</td></tr>")
    failure = next((nb.get("error") for nb in summary.get("notebooks", []) if nb.get("status") == "failed"), None)
    return (f"<h1>Run <code>{html.escape(str(summary.get('run')))}</code></h1>"
            f"<p>profile <b>{html.escape(str(summary.get('profile')))}</b>, seed <b>{html.escape(str(summary.get('seed')))}"
            f"</b>, parameters <code>{html.escape(json.dumps(summary.get('parameters', {})))}</code></p>"
            "<table class='cxrkit-summary'><tr><th>notebook</th><th>status</th><th>seconds</th><th>metrics</th></tr>"
            + "".join(rows) + "</table>"
            + (f"<h2>Failure</h2><pre>{html.escape(failure)}</pre>" if failure else ""))


_PAGE_CSS = """<style>
.cxrkit-page { page-break-before: always; border-top: 3px solid #888; margin-top: 2em; padding-top: 1em; }
table.cxrkit-summary { border-collapse: collapse; margin: 1em 0; font-family: sans-serif; }
table.cxrkit-summary td, table.cxrkit-summary th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
.cxrkit-report-head { font-family: sans-serif; margin: 1em 2em; }
</style>"""


_PLOTLY_PLACEHOLDER = "<!-- cxrkit: plotly.js -->"


def _plotly_script() -> str:
    """plotly.js inline, once per report, so figures draw offline."""
    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def build_report(run_folder: str | Path, out: str | Path | None = None, *, extra_identifiers: Iterable[str] = (),
                 echo: Any = print) -> Path:
    """Write ``report.html`` for a run folder: the summary, then one page per executed notebook, identifiers scrubbed (``cxrkit report``)."""
    run_folder = Path(run_folder)
    summary_path = run_folder / "summary.json"
    if not summary_path.exists():
        raise ValueError(f"{summary_path}: no such file — is {run_folder} a run folder written by `cxrkit run`?")
    summary = json.loads(summary_path.read_text())
    scrub = Scrubber(set(extra_identifiers) | dicom_identifiers(run_data_roots(run_folder), echo=echo))
    summary = scrub.scrub_json(summary)
    heads: list[str] = []
    pages: list[str] = []
    plotly = False
    for entry in summary.get("notebooks", []):
        path = run_folder / f"{entry['notebook']}.ipynb"
        if not path.exists():
            pages.append(f"<section class='cxrkit-page' id='nb-{html.escape(entry['notebook'])}'>"
                         f"<p>{html.escape(path.name)} was not written (status {html.escape(entry['status'])}).</p></section>")
            continue
        nb = scrub.notebook(json.loads(path.read_text()))
        plotly = plotly or any(PLOTLY_MIME in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        head, body = _export(nb)
        if not heads:
            heads.append(head)
        pages.append(f"<section class='cxrkit-page' id='nb-{html.escape(entry['notebook'])}'>{body}</section>")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    document = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                f"<title>cxrkit run {html.escape(str(summary.get('run')))}</title>" + "".join(heads) + _PAGE_CSS
                + _PLOTLY_PLACEHOLDER
                + "</head><body class='jp-Notebook'>"
                + f"<div class='cxrkit-report-head'>{_summary_html(summary)}<p><small>written {created} by "
                  "cxrkit report; patient identifiers scrubbed (see cxrkit.report for what is and is not "
                  "recognised)</small></p></div>" + "".join(pages) + "</body></html>")
    document = scrub.html(document)  # a last pass over the assembled page (values HTML-escaped by the exporter)
    document = document.replace(_PLOTLY_PLACEHOLDER, _plotly_script() if plotly else "", 1)  # the library, not data
    out = Path(out) if out else run_folder / "report.html"
    out.write_text(document, encoding="utf-8")
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        out = build_report(args.run_dir, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``cxrkit report`` to the command line."""
    p = subparsers.add_parser("report", help="write runs/<name>/report.html: summary + every notebook, scrubbed")
    p.add_argument("run_dir", help="a run folder, e.g. runs/20250101-120000")
    p.add_argument("--out", help="where to write the page (default: <run_dir>/report.html)")
    p.set_defaults(func=_cmd_report)
