"""MIMIC-CXR report sections and Open-i XML, including unsafe XML."""
from __future__ import annotations

import pytest

from cxrkit.errors import ReportParseError
from cxrkit.io.reports import (HEADING_VARIANTS, SECTION_POLICIES, OpenIFigure, OpenIReport, canonical_heading,
                               labeling_text, normalise_openi_image_id, parse_mimic_report, parse_openi_xml,
                               read_mimic_report)

EXAMPLE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old man with cough  // eval pneumonia
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  ___
 
 FINDINGS: 
 
 Mild cardiomegaly. No focal consolidation, effusion or pneumothorax.
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
"""


def test_data_formats_example():
    sections = parse_mimic_report(EXAMPLE)
    assert sections == {
        "examination": "CHEST (PA AND LAT)",
        "indication": "___ year old man with cough // eval pneumonia",
        "technique": "Chest PA and lateral",
        "comparison": "___",
        "findings": "Mild cardiomegaly. No focal consolidation, effusion or pneumothorax.",
        "impression": "No acute cardiopulmonary process.",
    }
    assert labeling_text(sections) == "No acute cardiopulmonary process."


def test_line_wraps_collapse_and_placeholders_survive():
    text = (" FINDINGS:  The heart is mildly enlarged.  There is a small\n right pleural effusion, seen on\n"
            " the ___ study.\n \n IMPRESSION:  Small right effusion.\n")
    sections = parse_mimic_report(text)
    assert sections["findings"] == ("The heart is mildly enlarged. There is a small right pleural effusion, "
                                    "seen on the ___ study.")


@pytest.mark.parametrize("heading, name", [
    ("HISTORY", "history"), ("CLINICAL HISTORY", "history"), ("REASON FOR EXAM", "indication"),
    ("REASON FOR EXAMINATION", "indication"), ("INDICATIONS", "indication"), ("CONCLUSION", "impression"),
    ("IMPRESSIONS", "impression"), ("WET READ", "wet_read"), ("WET READ VERSION #1", "wet_read"),
    ("NOTIFICATION", "notification"), ("RECOMMENDATION(S)", "recommendation"), ("RECOMMENDATIONS", "recommendation"),
    ("ADDENDUM", "addendum"), ("COMPARISONS", "comparison"), ("PROCEDURE", "examination"),
    ("CHEST SERIES", "chest_series"),
])
def test_heading_variants(heading, name):
    assert canonical_heading(heading) == name
    sections = parse_mimic_report(f" {heading}:  some text\n \n FINDINGS:  Clear lungs.\n")
    assert sections[name] == "some text" and sections["findings"] == "Clear lungs."


def test_variant_table_is_data_of_the_expected_size():
    assert 40 <= len(HEADING_VARIANTS) <= 120
    assert set(HEADING_VARIANTS.values()) >= {"examination", "indication", "history", "technique", "comparison",
                                              "findings", "impression", "addendum", "wet_read", "notification",
                                              "recommendation"}


def test_findings_and_impression_fills_both():
    sections = parse_mimic_report(" HISTORY:  Fever.\n \n FINDINGS AND IMPRESSION:  Left lower lobe pneumonia.\n")
    assert sections["impression"] == "Left lower lobe pneumonia."
    assert sections["findings"] == "Left lower lobe pneumonia."
    separate = parse_mimic_report(" FINDINGS:  Opacity.\n FINDINGS/IMPRESSION:  Pneumonia.\n")
    assert separate == {"findings": "Opacity.", "impression": "Pneumonia."}


def test_addendum_first_separated_by_underscores():
    text = ("                                 FINAL ADDENDUM\n"
            " ADDENDUM:  Findings were discussed with Dr. ___ at 10:30 on ___.\n"
            " \n"
            " ______________________________________________________________________________\n"
            "                                 FINAL REPORT\n"
            " INDICATION:  Dyspnea.\n \n"
            " IMPRESSION:  Small left pleural effusion.\n")
    sections = parse_mimic_report(text)
    assert sections["addendum"] == "Findings were discussed with Dr. ___ at 10:30 on ___."
    assert sections["indication"] == "Dyspnea."
    assert sections["impression"] == "Small left pleural effusion."
    assert "preamble" not in sections
    assert list(sections)[0] == "addendum"


def test_underscore_rule_without_addendum_is_dropped():
    text = (" WET READ: ___ ___ 8:27 PM\n  No pneumonia.\n"
            " ______________________________________________________________________________\n"
            "                                 FINAL REPORT\n IMPRESSION:  No acute process.\n")
    sections = parse_mimic_report(text)
    assert sections == {"wet_read": "___ ___ 8:27 PM No pneumonia.", "impression": "No acute process."}


def test_report_without_sections_is_preamble():
    text = "                                 FINAL REPORT\n Heart size normal.\n Lungs are clear.\n"
    sections = parse_mimic_report(text)
    assert sections == {"preamble": "Heart size normal. Lungs are clear."}
    assert labeling_text(sections) == "Heart size normal. Lungs are clear."


def test_labeling_text_fallbacks():
    assert labeling_text({"findings": "Opacity.", "impression": ""}) == "Opacity."
    assert labeling_text({"indication": "Cough.", "wet_read": "No pneumonia.", "comparison": "None."}) == "No pneumonia."
    assert labeling_text({"indication": "Cough."}) == ""
    assert labeling_text({}) == ""


def test_section_policies():
    assert set(SECTION_POLICIES) == {"impression", "findings+impression"}
    both = {"findings": "Mild cardiomegaly", "impression": "No acute cardiopulmonary abnormality."}
    assert labeling_text(both) == "No acute cardiopulmonary abnormality."  # the default: impression (MIMIC, CheXpert)
    text = labeling_text(both, "findings+impression")
    assert text == "Mild cardiomegaly\n\nNo acute cardiopulmonary abnormality."  # its own paragraph: no run-on sentence
    assert labeling_text({"findings": "", "impression": "Clear."}, "findings+impression") == "Clear."
    assert labeling_text({"findings": "Opacity.", "impression": ""}, "findings+impression") == "Opacity."
    assert labeling_text({"indication": "Cough.", "wet_read": "No pneumonia."}, "findings+impression") == "No pneumonia."
    with pytest.raises(ValueError, match="findings\\+impression"):
        labeling_text(both, "everything")


def test_repeated_heading_is_joined_and_times_are_not_headings():
    text = " IMPRESSION:  First.\n Discussed at 10:30 am.\n IMPRESSION:  Second.\n"
    assert parse_mimic_report(text) == {"impression": "First. Discussed at 10:30 am. Second."}


def test_read_mimic_report_files(tmp_path):
    good = tmp_path / "s50414267.txt"
    good.write_text(EXAMPLE)
    assert read_mimic_report(good)["impression"] == "No acute cardiopulmonary process."
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage \x81\x82")
    with pytest.raises(ReportParseError, match="bad.txt"):
        read_mimic_report(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n \n")
    with pytest.raises(ReportParseError, match="empty"):
        read_mimic_report(empty)
    with pytest.raises(ReportParseError, match="missing.txt"):
        read_mimic_report(tmp_path / "missing.txt")


# ------------------------------------------------------------------------------------------ Open-i

OPENI = b"""<eCitation><uId id="CXR7"/><MedlineCitation><Article><Abstract>
 <AbstractText Label="COMPARISON">None.</AbstractText>
 <AbstractText Label="INDICATION">Cough.</AbstractText>
 <AbstractText Label="FINDINGS">Heart size normal. No effusion.</AbstractText>
 <AbstractText Label="IMPRESSION">No acute disease.</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>normal</major></MeSH>
<parentImage id="CXR7_IM-2263-1001"><figureId>F1</figureId><caption>PA and lateral chest</caption></parentImage>
</eCitation>"""


def test_openi_example(tmp_path):
    report = parse_openi_xml(OPENI)
    assert report == OpenIReport(
        uid="7",
        sections={"comparison": "None.", "indication": "Cough.", "findings": "Heart size normal. No effusion.",
                  "impression": "No acute disease."},
        mesh_major=["normal"], mesh_automatic=[], image_ids=["7_IM-2263-1001"],
        figures=[OpenIFigure("7_IM-2263-1001", "F1", "PA and lateral chest")])
    path = tmp_path / "7.xml"
    path.write_bytes(OPENI)
    assert parse_openi_xml(path) == report
    assert parse_openi_xml(str(path)) == report


def test_openi_empty_sections_mesh_and_several_images():
    xml = b"""<?xml version="1.0" encoding="utf-8"?>
<eCitation><meta type="rr"/><uId id="CXR1"/><MedlineCitation><Article><Abstract>
 <AbstractText Label="COMPARISON"/><AbstractText Label="INDICATION">Positive TB test</AbstractText>
 <AbstractText Label="FINDINGS">The cardiac silhouette and mediastinum size are within normal limits.
   There is no pulmonary edema.</AbstractText><AbstractText Label="IMPRESSION">Normal chest x-XXXX.</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>Cardiomegaly/borderline</major><major>Opacity/lung/base/left/streaky</major>
<automatic>Lung/hypoinflation</automatic></MeSH>
<parentImage id="CXR1_1_IM-0001-3001"><figureId>F1</figureId></parentImage>
<parentImage id="CXR1_1_IM-0001-4001"><figureId>F2</figureId></parentImage></eCitation>"""
    report = parse_openi_xml(xml)
    assert report.uid == "1"
    assert report.sections["comparison"] == ""
    assert report.sections["findings"].endswith("limits. There is no pulmonary edema.")
    assert report.sections["impression"] == "Normal chest x-XXXX."
    assert report.mesh_major == ["Cardiomegaly/borderline", "Opacity/lung/base/left/streaky"]
    assert report.mesh_automatic == ["Lung/hypoinflation"]
    assert report.image_ids == ["1_IM-0001-3001", "1_IM-0001-4001"]


@pytest.mark.parametrize("raw, expected", [
    ("CXR1_1_IM-0001-3001", "1_IM-0001-3001"), ("CXR7_IM-2263-1001", "7_IM-2263-1001"),
    # every published form (DATA_FORMATS.md): 4, 5, 7 and 8 digits, and 4 digits then -<4 digits>
    ("CXR960_IM-2451-11001", "960_IM-2451-11001"), ("CXR1102_IM-0069-12012", "1102_IM-0069-12012"),
    ("CXR962_IM-2453-1002001", "962_IM-2453-1002001"), ("CXR961_IM-2452-84646001", "961_IM-2452-84646001"),
    ("CXR1063_IM-0044-84654001", "1063_IM-0044-84654001"), ("CXR2199_IM-0809-0001-0002", "2199_IM-0809-0001-0002"),
    ("CXR2890_IM-1293-22001", "2890_IM-1293-22001"), ("CXR3618_IM-1790-82420001.png", "3618_IM-1790-82420001"),
    ("3742_IM-1869-1002001.dcm", "3742_IM-1869-1002001"),
    ("CXR3955_IM-2020-1001-0001", "3955_IM-2020-1001-0001"), ("1000_IM-0003-2001.dcm", "1000_IM-0003-2001"),
    ("1_IM-0001-4001.dcm.png", "1_IM-0001-4001"), ("NLMCXR_png/CXR10_IM-0002-1001.png", "10_IM-0002-1001"),
])
def test_normalise_openi_image_id(raw, expected):
    assert normalise_openi_image_id(raw) == expected


@pytest.mark.parametrize("raw", ["00000123_004.png", "CXR7_IM-263-1001", "CXR7_IM-2263-123", "CXR7_IM-2263-123456789",
                                 "CXR7_IM-2263-1001-01", "CXRx_IM-2263-1001", "CXR7-IM-2263-1001"])
def test_normalise_openi_image_id_rejects_what_cannot_be_an_id(raw):
    with pytest.raises(ValueError, match="Open-i image id.*4 to 8 digits"):
        normalise_openi_image_id(raw)


def test_a_report_with_an_impossible_image_id_names_its_file(tmp_path):
    path = tmp_path / "12.xml"
    path.write_bytes(OPENI.replace(b"CXR7_IM-2263-1001", b"CXR7_IM-22-1"))
    with pytest.raises(ReportParseError, match=r"12\.xml.*CXR7_IM-22-1"):
        parse_openi_xml(path)


def test_openi_figures_keep_figure_id_and_caption_in_file_order():
    xml = OPENI.replace(b"</eCitation>", b'<parentImage id="CXR7_IM-2263-2001"><figureId>F2</figureId>'
                                         b"<caption>PA and lateral chest</caption></parentImage></eCitation>")
    report = parse_openi_xml(xml)
    assert [(f.image_id, f.figure_id, f.caption) for f in report.figures] == [
        ("7_IM-2263-1001", "F1", "PA and lateral chest"), ("7_IM-2263-2001", "F2", "PA and lateral chest")]
    assert report.image_ids == ["7_IM-2263-1001", "7_IM-2263-2001"]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<eCitation><uId id="CXR9"/><MedlineCitation><Article><Abstract>
 <AbstractText Label="FINDINGS">&lol9;</AbstractText></Abstract></Article></MedlineCitation></eCitation>"""


def test_xml_bomb_is_rejected(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_bytes(BILLION_LAUGHS)
    with pytest.raises(ReportParseError) as info:
        parse_openi_xml(path)
    assert "bomb.xml" in str(info.value) and "unsafe" in str(info.value)


def test_external_entity_is_rejected(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xml = (f'<?xml version="1.0"?>\n<!DOCTYPE e [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
           '<eCitation><uId id="CXR2"/><MedlineCitation><Article><Abstract>'
           '<AbstractText Label="FINDINGS">&xxe;</AbstractText></Abstract></Article></MedlineCitation></eCitation>')
    with pytest.raises(ReportParseError, match="unsafe"):
        parse_openi_xml(xml.encode())


@pytest.mark.parametrize("xml, message", [
    (b"<eCitation><uId id='CXR2'/>", "malformed"),
    (b"<html><body/></html>", "eCitation"),
    (b"<eCitation><MeSH/></eCitation>", "uId"),
    (b"<eCitation><uId id='patient'/></eCitation>", "CXR"),
])
def test_malformed_openi(xml, message):
    with pytest.raises(ReportParseError, match=message):
        parse_openi_xml(xml)
