"""#17 defect 3: identifiers a run read never reach ``report.html``, in any output format, and ordinary words survive."""
import base64
import json

import numpy as np
import pydicom
import pytest
from plotly.offline import get_plotlyjs

from cxrkit.report import MASK, Scrubber, build_report, dicom_identifier_values, dicom_identifiers
from fixtures.real_trees import write_dicom

NAME, PATIENT_ID, ACCESSION = "POE^EDGAR", "MRN55555", "7654321"
NAME_FORMS = ("POE EDGAR", "EDGAR POE", "POE^EDGAR", "Edgar Poe", "Poe, Edgar", "poe&#94;edgar")


def _film(path, **attrs):
    """Write a tiny DICOM at ``path`` (any name) carrying ``attrs`` in its header."""
    tmp = write_dicom(path.parent / "_tmp_film.dcm", seed=3)
    ds = pydicom.dcmread(tmp)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    tmp.unlink()
    return path


def _typed(values, dtype="i4"):
    return {"dtype": dtype, "bdata": base64.b64encode(np.asarray(values, dtype="<" + dtype).tobytes()).decode()}


def _run(tmp_path, outputs, *, markdown="# Chest X-ray basics", metadata=None):
    """A run folder as `cxrkit run` leaves it: summary, one record naming ``data_root``, one executed notebook."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"run": "r", "profile": "smoke", "seed": 0, "parameters": {},
                                                 "notebooks": [{"notebook": "01_x", "status": "ok", "seconds": 1.0,
                                                                "metrics": {}}]}))
    (run / "01_x.record.json").write_text(json.dumps({"params": {"data_root": str(tmp_path / "data")}}))
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata or {}, "cells": [
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": markdown},
        {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 1, "source": "show()", "outputs": outputs}]}
    (run / "01_x.ipynb").write_text(json.dumps(nb))
    page = build_report(run, echo=lambda *a, **k: None).read_text()
    return page.replace(get_plotlyjs(), "")  # the library is not data


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


@pytest.mark.parametrize("name", ["film.DCM", "film.Dcm", "film.dicom", "film"])
def test_a_film_in_any_suffix_case_or_without_suffix_is_read_and_scrubbed(tmp_path, name):
    _film(tmp_path / "data" / "p10" / name, PatientName=NAME, PatientID=PATIENT_ID)
    (tmp_path / "data" / "notes.txt").write_text("not a film")
    page = _run(tmp_path, [_stream(" | ".join(NAME_FORMS + (PATIENT_ID, "mrn55555")) + "\n")])
    for secret in ("POE", "EDGAR", PATIENT_ID):
        assert secret.lower() not in page.lower(), f"{secret!r} from {name} leaked into report.html"
    assert page.count(MASK) >= len(NAME_FORMS)


def test_identifiers_inside_plotly_figures_are_scrubbed_strings_numbers_and_typed_arrays(tmp_path):
    _film(tmp_path / "data" / "film.dcm", PatientName=NAME, PatientID=PATIENT_ID, AccessionNumber=ACCESSION)
    figure = {"data": [{"type": "scatter", "x": [1, 2], "y": _typed([0.5, 0.25], "f8"),
                        "hovertext": ["EDGAR POE", "other"], "text": "id MRN55555",
                        "customdata": [55555, 7654321.0, 42], "ids": _typed([55555, 3])},
                       {"type": "bar", "x": ["a"], "y": [1], "customdata": _typed([[7654321, 9]], "i4") | {"shape": "1, 2"}}],
              "layout": {"title": {"text": "Films of Poe, Edgar"}, "xaxis": {"title": {"text": "55555"}}}}
    page = _run(tmp_path, [{"output_type": "display_data", "metadata": {},
                            "data": {"application/vnd.plotly.v1+json": figure, "text/plain": "Figure()"}}])
    for secret in ("POE", "EDGAR", "55555", "7654321", _typed([55555, 3])["bdata"], _typed([[7654321, 9]])["bdata"]):
        assert secret.lower() not in page.lower(), f"{secret!r} leaked into report.html"
    assert _typed([0.5, 0.25], "f8")["bdata"] in page  # a typed array without an identifier is left as it was
    assert "Plotly.newPlot" in page and '"other"' in page and 'removed]",42]' in page  # the rest is drawn as it was


def test_an_institution_phrase_is_scrubbed_but_not_each_of_its_words(tmp_path):
    _film(tmp_path / "data" / "film.dcm", PatientName=NAME, InstitutionName="Chest Imaging Center")
    page = _run(tmp_path, [_stream("Acquired at Chest  Imaging\nCenter; chest radiograph, imaging centre\n")],
                markdown="# Chest X-ray basics\nA chest film, imaging and a center line.")
    assert "chest imaging" not in page.lower()
    for kept in ("Chest X-ray basics", "A chest film, imaging and a center line", "chest radiograph, imaging centre"):
        assert kept in page, f"{kept!r} was over-scrubbed"


def test_saved_widget_state_is_scrubbed_with_the_notebook():
    # nbconvert writes the state after </body>, which the report drops today; scrubbed anyway, should that change
    state = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
        "w1": {"model_name": "TextModel", "state": {"value": "POE EDGAR MRN55555", "description": "patient"}}}}}
    nb = Scrubber([NAME, PATIENT_ID]).notebook(
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": state}, "cells": []})
    saved = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]["w1"]["state"]
    assert saved == {"value": f"{MASK} {MASK}", "description": "patient"}


def test_identifier_values_are_read_from_dicom_in_any_suffix_case_and_without_suffix(tmp_path):
    _film(tmp_path / "a.DCM", PatientID="A11111")
    _film(tmp_path / "b", PatientID="B22222")
    _film(tmp_path / "c.Dicom", PatientID="C33333")
    (tmp_path / "d.png").write_bytes(b"\x89PNG not a film")
    (tmp_path / "e").write_bytes(b"short")
    assert {"A11111", "B22222", "C33333"} <= dicom_identifier_values([tmp_path], echo=lambda *a: None)
    assert ("PatientID", "B22222") in dicom_identifiers([tmp_path], echo=lambda *a: None)


def test_mrn_in_a_longer_token_and_numbers_are_whole_tokens():
    scrub = Scrubber([PATIENT_ID, "42", ACCESSION])  # bare values: judged by shape
    for text in ("MRN55555", "mrn55555.", "(MRN-55555)", "id 55555", "acc=7654321", "id 55555.0 as a float"):
        assert MASK in scrub(text) and "5555" not in scrub(text) and "7654321" not in scrub(text), text
    for text in ("AUROC 0.55555", "n = 1555557", "step 42 of 55556", "XMRN55555Y", "55555.5 s"):
        assert scrub(text) == text, text
    assert Scrubber([("PatientID", "0012345")])("0012345 printed as 12345") == f"{MASK} printed as {MASK}"
    assert scrub.scrub_json({"customdata": [55555, 55555.0, 42, True, 0.55555], "MRN55555": 1}) == {
        "customdata": [MASK, MASK, 42, True, 0.55555], MASK: 1}


def test_person_name_parts_are_masked_alone_unless_they_are_ordinary_words():
    assert Scrubber(["Chest Imaging Center", NAME])(
        "Chest Imaging Center: chest, imaging, center; Poe") == f"{MASK}: chest, imaging, center; {MASK}"
    scrub = Scrubber(["Lung^Edgar^^Dr", "Wu^Li"])
    out = scrub("Dr Edgar Lung saw it; Lung, Edgar; lung opacity in edgar's film; Li Wu referred; Wu^Li")
    assert "Edgar" not in out and "edgar" not in out and "Lung" not in out and "Li Wu" not in out
    assert "lung opacity" in out and "Wu^Li" not in out


def test_undecodable_typed_arrays_are_replaced_and_script_numbers_stay_valid_javascript():
    scrub = Scrubber(["55555"])
    assert scrub.scrub_json({"y": {"dtype": "i4", "bdata": "not base64!"}}) == {"y": MASK}
    assert scrub.scrub_json({"y": {"dtype": "i4", "bdata": "AAA="}}) == {"y": MASK}  # 2 bytes: not whole int32s
    page = ('<script>Plotly.newPlot("d", [{"customdata": [55555, 1], "y": '
            + json.dumps(_typed([1, 55555])) + ', "x": ' + json.dumps(_typed([1, 2])) + '}])</script>')
    out = scrub.html(page)
    args = json.loads(out[out.index("[{"):out.rindex("])") + 1])
    assert args[0]["customdata"] == [None, 1] and args[0]["y"] == [1, MASK] and args[0]["x"] == _typed([1, 2])
