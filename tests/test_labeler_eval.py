"""The labeler measured against Open-i MeSH major terms: the term → finding mapping, the truth table, the
per-finding table, and ``cxrkit label --evaluate-mesh`` on fixture XML in the published format."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from cxrkit import cli
from cxrkit.labeler_eval import (MeshEvaluationError, evaluate_mesh, load_mesh_map, mesh_truth, read_openi_reports,
                                 unmatched_terms)
from fixtures.real_trees import IU_REPORTS, make_iu_xray, make_mimic_cxr, openi_xml


@pytest.mark.parametrize("major, expected", [
    ("Cardiomegaly/borderline", {"Cardiomegaly"}), ("cardiomegaly/mild", {"Cardiomegaly"}),
    ("Pulmonary Atelectasis/base/left", {"Atelectasis"}), ("Pleural Effusion/right/large", {"Pleural Effusion"}),
    ("Pneumothorax/right/apex/small", {"Pneumothorax"}), ("Hydropneumothorax/right", {"Pneumothorax", "Pleural Effusion"}),
    ("Heart/enlarged", {"Cardiomegaly"}), ("Mediastinum/wide", {"Enlarged Cardiomediastinum"}),
    ("Opacity/lung/base/left/streaky", {"Lung Opacity"}), ("normal", set()),
    ("Calcified Granuloma/lung/upper lobe/right", None), ("Heart/normal", None), ("Spine/degenerative", None),
])
def test_the_packaged_mapping(major, expected):
    assert load_mesh_map().map_term(major) == expected


def test_mesh_truth_table():
    truth = mesh_truth({"1": ["normal"], "2": ["Cardiomegaly/borderline", "Pleural Effusion/right/large"],
                        "3": ["Calcified Granuloma"], "4": ["No Indexing"], "5": []})
    assert list(truth.index) == ["1", "2", "3"]  # not indexed / no terms: left out
    assert truth.loc["1", "No Finding"] == 1.0 and truth.loc["1"].drop("No Finding").eq(0.0).all()
    assert truth.loc["2", "Cardiomegaly"] == 1.0 and truth.loc["2", "Pleural Effusion"] == 1.0
    assert truth.loc["2", "No Finding"] == 0.0 and truth.loc["2", "Pneumothorax"] == 0.0
    assert truth.loc["3"].eq(0.0).all()  # an unmapped finding: none of the 14 present, and not "normal"
    assert "No Finding" == truth.columns[0] and "Cardiomegaly" in truth.columns


def test_unmatched_terms_are_counted_to_check_the_mapping():
    counts = unmatched_terms(["Calcified Granuloma/lung", "Calcified Granuloma", "Cardiomegaly", "normal", "No Indexing"])
    assert counts == {"Calcified Granuloma": 2}


def test_a_bad_mapping_file_names_itself(tmp_path):
    bad = tmp_path / "map.yaml"
    bad.write_text("terms:\n  Cardiomegaly: [Big Heart]\n")
    with pytest.raises(MeshEvaluationError, match=r"map\.yaml.*Cardiomegaly.*Big Heart"):
        load_mesh_map(bad)
    with pytest.raises(MeshEvaluationError, match="missing.yaml"):
        load_mesh_map(tmp_path / "missing.yaml")


def test_a_custom_mapping_is_used(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("terms:\n  Calcified Granuloma: [Lung Lesion]\n")
    assert load_mesh_map(path).map_term("Calcified Granuloma/lung") == {"Lung Lesion"}
    assert load_mesh_map(path).map_term("Cardiomegaly") is None


def test_evaluate_mesh_on_fixture_reports_shows_what_the_section_policy_buys(tmp_path):
    reports, skipped = read_openi_reports([make_iu_xray(tmp_path) / "ecgen-radiology"])
    assert skipped == [] and len(reports) == len(IU_REPORTS)
    both = evaluate_mesh(reports)  # Open-i's policy: findings + impression
    impression = evaluate_mesh(reports, sections="impression")
    for finding in ("Cardiomegaly", "Atelectasis", "Pneumothorax", "Pleural Effusion"):
        assert both.loc[finding, "f1"] == 1.0, finding  # every fixture report is read right
    assert list(both.columns) == ["precision", "recall", "f1", "mesh_present", "labeler_present", "n"]
    assert both.loc["Cardiomegaly", "mesh_present"] == 2 and both.loc["Pneumothorax", "mesh_present"] == 2
    assert (both["n"] == len(IU_REPORTS)).all()
    # impression alone misses what only FINDINGS names (reports 5, 6, 7)
    assert impression.loc["Cardiomegaly", "f1"] == 0.0 and impression.loc["Atelectasis", "f1"] == 0.0
    assert impression.loc["Pneumothorax", "recall"] == 0.5
    assert math.isnan(both.loc["Fracture", "precision"])  # nothing to find, nothing found


def test_reports_without_mesh_terms_cannot_be_evaluated(tmp_path):
    (tmp_path / "1.xml").write_text(openi_xml(1, {"FINDINGS": "Cardiomegaly."}, [], []))
    reports, _ = read_openi_reports([tmp_path])
    with pytest.raises(MeshEvaluationError, match="none of the 1 Open-i report"):
        evaluate_mesh(reports)


def test_cli_evaluate_mesh(tmp_path, capsys):
    root = make_iu_xray(tmp_path / "iu")
    (root / "ecgen-radiology" / "99.xml").write_text("<eCitation><uId id='CXR99'/>")  # malformed: listed, not fatal
    out = tmp_path / "mesh.csv"
    assert cli.main(["label", str(root), "--evaluate-mesh", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "7 Open-i reports, sections 'findings+impression'" in printed.out
    assert "Cardiomegaly" in printed.out and "99.xml" in printed.err
    table = pd.read_csv(out, index_col=0)
    assert table.loc["Cardiomegaly", "f1"] == 1.0
    assert cli.main(["label", str(root), "--evaluate-mesh", "--sections", "impression"]) == 0
    assert "sections 'impression'" in capsys.readouterr().out


def test_cli_evaluate_mesh_on_no_open_i_report_is_an_error(tmp_path, capsys):
    mimic = make_mimic_cxr(tmp_path / "mimic")
    assert cli.main(["label", str(mimic), "--evaluate-mesh"]) == 2
    err = capsys.readouterr().err
    assert "none of the 0 Open-i report" in err and "Traceback" not in err
