"""`cxrkit report`: one page per notebook plus the summary, and no patient identifier from a DICOM header in it."""
import json

import pydicom
import pytest

from cxrkit.cli import main
from cxrkit.report import MASK, Scrubber, dicom_identifier_values
from cxrkit.runner import run_notebooks
from fixtures.real_trees import write_dicom
from notebook_factory import standard_cells, write_notebook

NAME, GIVEN, FAMILY, PATIENT_ID = "Quixote^Alonso", "Alonso", "Quixote", "MRN-998877"

LEAKY_BODY = [
    'import pydicom\nimport plotly.graph_objects as go\nfrom pathlib import Path\n'
    'record = start_run("01_leak", {"seed": seed, "data_root": data_root})\nrecord.metric("n_files", 1)\nrecord.save()',
    'ds = pydicom.dcmread(next(Path(data_root).rglob("*.dcm")))\nprint(ds.PatientName, ds.PatientID)\n'
    'print(str(ds.PatientName).replace("^", " "))\nprint(ds)',
    '{"who": str(ds.PatientName), "id": ds.PatientID}',
    'go.Figure(go.Scatter(x=[1], y=[2], hovertext=[f"{ds.PatientName} {ds.PatientID}"]))',
    'raise_it = False\nif raise_it:\n    raise ValueError(ds.PatientID)',
]


@pytest.fixture
def dicom_root(tmp_path):
    path = write_dicom(tmp_path / "data" / "p10" / "s50" / "film.dcm", seed=1)
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PATIENT_ID, "19470101"
    ds.save_as(path)
    return tmp_path / "data"


def test_report_has_the_summary_and_a_page_per_notebook_and_no_identifier(tmp_path, dicom_root):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    params = 'profile = "class"\nseed = 0\ndata_root = None'
    write_notebook(notebooks / "01_leak.ipynb", standard_cells(LEAKY_BODY, params=params))
    write_notebook(notebooks / "02_plain.ipynb", standard_cells(['print("nothing personal")']))
    run_notebooks(notebooks_dir=notebooks, runs_dir=tmp_path / "runs", name="r", profile="smoke",
                  overrides={"data_root": str(dicom_root)}, echo=lambda *a, **k: None)
    run = tmp_path / "runs" / "r"
    executed = (run / "01_leak.ipynb").read_text()
    assert NAME in executed and PATIENT_ID in executed  # the notebook did print them: the test can fail

    report = (run / "report.html").read_text()
    assert "Run <code>r</code>" in report and "n_files = 1" in report
    assert "id='nb-01_leak'" in report and "id='nb-02_plain'" in report and "nothing personal" in report
    for secret in (NAME, GIVEN, FAMILY, PATIENT_ID, "19470101", NAME.replace("^", "&#94;")):
        assert secret.lower() not in report.lower(), f"{secret!r} leaked into report.html"
    assert report.count(MASK) >= 5
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in report  # plotly.js inline, byte for byte: figures draw offline
    assert "Plotly.newPlot" in report  # and the figure itself is drawn


def test_cxrkit_report_rebuilds_and_names_a_bad_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "summary.json: no such file" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text(json.dumps(
        {"run": "x", "profile": "smoke", "seed": 0, "parameters": {}, "notebooks": [
            {"notebook": "01_gone", "status": "failed", "seconds": 0.5, "metrics": {}, "error": "boom"}]}))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "01_gone.ipynb was not written" in page and "boom" in page


def test_identifier_values_come_from_the_dicom_headers(dicom_root):
    values = dicom_identifier_values([dicom_root], echo=lambda *a: None)
    assert {NAME, PATIENT_ID, "19470101"} <= values
    assert "PA" not in values  # the view position is not an identifier


@pytest.mark.parametrize("text", [
    "(0010,0010) Patient's Name                      PN: 'Someone^Else'",
    "(0010, 0020) Patient ID                          LO: 'ZX-1'",
    "{'PatientName': 'Smith', 'PatientID': 'Q77'}",
    "PatientID: ABC123",
    "Referring Physician's Name: Jones",
    "reported by Smith^Anna^B",
])
def test_header_dumps_and_person_names_are_masked_without_known_values(text):
    out = Scrubber()(text)
    assert MASK in out
    for value in ("Someone", "ZX-1", "Smith", "Q77", "ABC123", "Jones", "Anna"):
        assert value not in out


def test_scrubber_leaves_ordinary_text_code_and_images_alone():
    scrub = Scrubber([NAME])
    plain = "(0018,5101) View Position  CS: 'PA'\nmacro AUROC 0.81, n_test = 313, x**2"
    assert scrub(plain) == plain
    page = ('<script>var a=b^c;f({"hover":"Quixote^Alonso"})</script>'
            '<img src="data:image/png;base64,AAAA+Quixote/BBB="><p>alonso quixote, Other^Name</p>')
    out = scrub.html(page)
    assert "var a=b^c" in out and "AAAA+Quixote/BBB=" in out
    assert out.count(MASK) == 3 and "alonso" not in out and "Other" not in out
