"""``cxrkit report``: one HTML page per run — the summary, then every executed notebook — scrubbed of patient identifiers.

``cxrkit run`` writes ``runs/<name>/report.html`` at its end (README "For reviewers"); ``cxrkit report
<run_dir>`` rebuilds it. Notebooks are rendered with nbconvert's HTML exporter.

**Patient identifiers.** Before rendering, every string in every notebook (sources, text, HTML and JSON
outputs such as plotly hover text, tracebacks) and the summary passes through :class:`Scrubber`, in three layers:

1. *Values read from the run's own data*: for every ``data_root`` the run's records name (a real dataset),
   the identifying attributes of each DICOM header (:data:`IDENTIFIER_KEYWORDS`: names, IDs, birth date,
   address, accession number, institution, physicians) are read and each value — and each part of a person
   name (``Family^Given``) of three or more characters — is masked wherever it appears, in any letter case.
2. *Header dumps*: a line of pydicom's dataset listing for the patient module (group 0010) or another
   identifying tag, and ``Keyword: value`` / ``'Keyword': 'value'`` pairs for those keywords, lose their value.
3. *DICOM person-name strings*: anything shaped ``Family^Given`` is masked.

Limits: an identifier that is neither in a DICOM header under the run's ``data_root`` nor shaped like a
header line or a DICOM person name (say, a name typed into a report's free text, or a value from a folder
the run did not record) is not recognised; text burned into *pixels* (PNG outputs, films with annotations)
is not read; a name part shorter than three characters is masked only as part of the full name; inside
JavaScript (an HTML output's ``<script>``) only layer 1 applies — plotly figures are scrubbed as JSON before
they are drawn, but a figure saved as ready-made HTML is not; the executed ``.ipynb`` files beside the
report are the raw outputs and are *not* scrubbed. The
synthetic cohort carries no real identifiers (its names are ``SYNTHETIC^PATIENT…``), so a class run
exercises layers 2–3 only. Review a report before you publish it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable


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


class Scrubber:
    """Masks patient identifiers in text: known values from DICOM headers, header dumps, and ``Family^Given`` names."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        words: set[str] = set()
        for value in values:
            value = str(value).strip()
            if len(value) < 3:
                continue
            words.add(value)
            words.update(value.replace("^", " ").split())  # the person name's parts, and "Given Family"
            words.add(" ".join(reversed([p for p in value.split("^") if p])))
        self.values = sorted((w for w in words if len(w) >= 3), key=len, reverse=True)
        self._known = re.compile("|".join(rf"(?<![\w]){re.escape(w)}(?![\w])" for w in self.values),
                                 re.IGNORECASE) if self.values else None

    def values_only(self, text: str) -> str:
        """Layer 1: mask the identifier values read from the run's DICOM headers (also in HTML-escaped form)."""
        if self._known is None:
            return text
        text = self._known.sub(MASK, text)
        for value in self.values:
            escaped = html.escape(value)
            if escaped != value:
                text = re.sub(re.escape(escaped), MASK, text, flags=re.IGNORECASE)
        return text

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
        """Scrub HTML: every layer outside ``<script>``/``<style>``; inside them only the known values (layer 1).

        Code is not text: person-name and key-value patterns would corrupt JavaScript (``a^b`` is XOR), so a
        figure's data is scrubbed as JSON *before* it is rendered (see :meth:`notebook`). Base64 ``data:``
        URIs (images) are never touched.
        """
        out = []
        for part in _BASE64.split(text):
            if _BASE64.fullmatch(part):
                out.append(part)
                continue
            pieces = _SCRIPT.split(self.values_only(part))
            out.append("".join(piece if i % 2 else self.patterns(piece) for i, piece in enumerate(pieces)))
        return "".join(out)

    def notebook(self, nb: dict[str, Any]) -> dict[str, Any]:
        """Return a scrubbed copy of a notebook: sources, streams, tracebacks, text/HTML/JSON outputs (images untouched)."""
        nb = json.loads(json.dumps(nb))
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
                    value = "".join(value) if isinstance(value, list) else value
                    if mime.startswith("image/") and mime != "image/svg+xml":
                        continue
                    if mime == "text/html" or mime == "image/svg+xml":
                        output["data"][mime] = self.html(value)
                    elif mime == "application/javascript":
                        output["data"][mime] = self.values_only(value)
                    elif isinstance(value, str):
                        output["data"][mime] = self(value)
                    else:
                        output["data"][mime] = self.scrub_json(value)
        return nb

    def scrub_json(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value (a summary, a plotly figure), returning a new value."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub_json(v) for k, v in value.items()}
        return value


_BASE64 = re.compile(r"(data:[\w/+.\-]+;base64,[A-Za-z0-9+/=\s]+)")
_SCRIPT = re.compile(r"(<script\b.*?</script>|<style\b.*?</style>)", re.S | re.I)


def dicom_identifier_values(roots: Iterable[str | Path], echo: Any = print) -> set[str]:
    """Read the identifying attributes of every DICOM header under ``roots`` (headers only, no pixels) (``cxrkit report``)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    values: set[str] = set()
    files = [p for root in roots if Path(root).exists() for p in sorted(Path(root).rglob("*.dcm"))]
    if len(files) > 2000:
        echo(f"report: reading identifiers from {len(files)} DICOM headers …")
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(IDENTIFIER_KEYWORDS))
        except (InvalidDicomError, OSError, ValueError) as err:
            echo(f"report: skipped {path}: {err}")
            continue
        for keyword in IDENTIFIER_KEYWORDS:
            value = ds.get(keyword)
            if value is None:
                continue
            for item in (value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]):
                if str(item).strip():
                    values.add(str(item).strip())
    return values


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
    import plotly.io as pio

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
    import nbformat
    from nbconvert import HTMLExporter

    _render_plotly(nb)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.from_dict(nb))
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
    from plotly.offline import get_plotlyjs

    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def build_report(run_folder: str | Path, out: str | Path | None = None, *, extra_identifiers: Iterable[str] = (),
                 echo: Any = print) -> Path:
    """Write ``report.html`` for a run folder: the summary, then one page per executed notebook, identifiers scrubbed (``cxrkit report``)."""
    run_folder = Path(run_folder)
    summary_path = run_folder / "summary.json"
    if not summary_path.exists():
        raise ValueError(f"{summary_path}: no such file — is {run_folder} a run folder written by `cxrkit run`?")
    summary = json.loads(summary_path.read_text())
    scrub = Scrubber(set(extra_identifiers) | dicom_identifier_values(run_data_roots(run_folder), echo=echo))
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
