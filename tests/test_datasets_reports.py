"""Adapters whose labels come from report text: MIMIC-CXR (DICOM + reports), the synthetic cohort, IU X-ray (Open-i)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

from cxrkit.datasets import DatasetFileError, load_study_table, study_columns
from cxrkit.errors import DatasetLayoutError
from cxrkit.labels import CHEXPERT_LABELS
from fixtures.real_trees import XML_BOMB, dicom_id, make_iu_xray, make_mimic_cxr


def row(table: pd.DataFrame, image_id: str) -> pd.Series:
    hits = table[table["image_id"] == image_id]
    assert len(hits) == 1, f"{image_id} appears {len(hits)} times"
    return hits.iloc[0]


# ---------------------------------------------------------------- MIMIC-CXR (DICOM + reports)

@pytest.fixture(scope="module")
def mimic_table(tmp_path_factory) -> tuple[Path, pd.DataFrame, list[str]]:
    root = make_mimic_cxr(tmp_path_factory.mktemp("mimic"), corrupt_dicom=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_study_table("mimic-cxr", root)
    return root, table, [str(w.message) for w in caught]


def test_mimic_cxr_table(mimic_table):
    root, table, _ = mimic_table
    assert list(table.columns) == study_columns(["site", "age", "sex"])
    assert len(table) == 5  # four images + the corrupt file, which is listed for the prep step to quarantine
    pa = row(table, dicom_id(11))
    assert (pa["dataset"], pa["subject_id"], pa["study_id"], pa["view"], pa["sex"], pa["age"], pa["site"]) == (
        "mimic-cxr", "10000032", "50414267", "PA", "M", 65.0, "BIDMC")
    assert pa["image_path"] == str(root / f"files/p10/p10000032/s50414267/{dicom_id(11)}.dcm")
    assert pa["indication"].endswith("eval pneumonia") and pa["findings"].startswith("Mild cardiomegaly")
    assert pa["impression"] == "Moderate cardiomegaly. No pneumothorax."
    assert row(table, dicom_id(12))["view"] == "LATERAL"  # the metadata CSV wins over the DICOM header's LL
    assert row(table, dicom_id(14))["view"] is None
    assert table["split"].isna().all()


def test_mimic_cxr_labels_come_from_the_reports(mimic_table):
    _, table, _ = mimic_table
    for image in (dicom_id(11), dicom_id(12)):  # one report, broadcast to the study's images
        assert row(table, image)["Cardiomegaly"] == 1.0 and row(table, image)["Pneumothorax"] == 0.0
    assert row(table, dicom_id(14))["Pleural Effusion"] == 1.0


def test_mimic_cxr_history_and_unsectioned_report(mimic_table):
    _, table, _ = mimic_table
    assert row(table, dicom_id(14))["indication"] == "Shortness of breath."
    plain = row(table, dicom_id(13))  # a report without any headings still yields its row
    assert plain["findings"].startswith("Heart size is normal.") and plain["impression"] is None
    assert plain["Pleural Effusion"] == 0.0 and plain["Pneumothorax"] == 0.0


def test_mimic_cxr_corrupt_dicom_warns_but_builds(mimic_table):
    _, table, messages = mimic_table
    bad = row(table, dicom_id(15))
    assert bad["view"] is None and bad["sex"] is None and math.isnan(bad["age"])
    assert any("DICOM header" in m and dicom_id(15) in m for m in messages)


def test_mimic_cxr_reports_beside_images_and_without_metadata(tmp_path):
    root = make_mimic_cxr(tmp_path, reports_top="", with_metadata=False)
    table = load_study_table("mimic-cxr", root, read_headers=True)
    assert row(table, dicom_id(12))["view"] == "LL"  # from the DICOM header
    assert row(table, dicom_id(11))["impression"] == "Moderate cardiomegaly. No pneumothorax."
    light = load_study_table("mimic-cxr", root, read_headers=False)
    assert "sex" not in light.columns and "age" not in light.columns and light["view"].isna().all()


def test_mimic_cxr_reports_root_elsewhere(tmp_path):
    root = make_mimic_cxr(tmp_path / "images", reports_top="unzipped/mimic-cxr-reports")
    moved = tmp_path / "reports"
    (root / "unzipped").rename(moved)
    with pytest.raises(DatasetLayoutError, match=r"files/p\*/p\*/s\*\.txt .*MISSING"):
        load_study_table("mimic-cxr", root)
    table = load_study_table("mimic-cxr", root, reports_root=moved)
    assert row(table, dicom_id(14))["impression"] == "Large right pleural effusion."


def test_mimic_cxr_chexpert_label_file_must_exist(tmp_path):
    root = make_mimic_cxr(tmp_path)
    with pytest.raises(DatasetFileError, match=r"mimic-cxr-2\.0\.0-chexpert\.csv\.gz: file not found"):
        load_study_table("mimic-cxr", root, labeler="chexpert")


def test_mimic_cxr_wrong_root(tmp_path):
    root = make_iu_xray(tmp_path)
    with pytest.raises(DatasetLayoutError) as info:
        load_study_table("mimic-cxr", root)
    assert "files/p*/p*/s*/*.dcm (MISSING)" in str(info.value) and "ecgen-radiology/" in info.value.found


# ---------------------------------------------------------------- synthetic

def test_synthetic_reads_reports_not_truth(tmp_path):
    root = make_mimic_cxr(tmp_path, reports_top="", institution="Hospital", truth_decoys=True)
    table = load_study_table("synthetic", root)
    assert (table["dataset"] == "synthetic").all() and len(table) == 4
    assert not table["image_path"].str.contains("/truth/").any()
    assert row(table, dicom_id(11))["site"] == "Hospital 1" and row(table, dicom_id(12))["site"] == "Hospital 0"
    assert row(table, dicom_id(11))["view"] == "PA" and row(table, dicom_id(12))["view"] == "LATERAL"
    assert row(table, dicom_id(13))["sex"] == "F" and row(table, dicom_id(13))["age"] == 71.0
    assert row(table, dicom_id(11))["Pneumothorax"] == 0.0  # the report says no; truth/ says yes


def test_synthetic_default_root_uses_the_generator(tmp_path, monkeypatch):
    import cxrkit.datasets.synthetic

    root = make_mimic_cxr(tmp_path, reports_top="", institution="Hospital")
    seen = []

    def fake_cohort(profile):
        seen.append(profile["profile"])
        return root

    monkeypatch.delenv("CXRKIT_SYNTHETIC_ROOT", raising=False)
    monkeypatch.setattr(cxrkit.datasets.synthetic, "cohort_for_profile", fake_cohort)
    assert len(load_study_table("synthetic")) == 4 and seen == ["class"]


# ---------------------------------------------------------------- IU X-ray

IU_IMAGE_IDS = ["1_IM-0001-3001", "1_IM-0001-4001", "2_IM-0652-1001", "2_IM-0652-2001", "4_IM-2050-1001",
                "4_IM-2050-1001-0001", "4_IM-2050-2001", "5_IM-2117-1003002", "5_IM-2117-1004003", "6_IM-2192-12012",
                "7_IM-2263-82420001", "7_IM-2263-84654001"]


def test_iu_xray_png_table(tmp_path):
    root = make_iu_xray(tmp_path, truncated_png=True)
    with pytest.warns(UserWarning, match="iu-xray views"):
        table = load_study_table("iu-xray", root)
    assert list(table.columns) == study_columns(["site"])
    assert len(table) == len(IU_IMAGE_IDS)  # report 3 has no image; every published id form is read
    first = row(table, "1_IM-0001-3001")
    assert (first["subject_id"], first["study_id"], first["split"]) == ("1", "1", None)
    assert first["image_path"] == str(root / "CXR1_1_IM-0001-3001.png")
    assert first["indication"] == "Positive TB test" and first["impression"] == "Normal chest x-XXXX."
    assert sorted(table["image_id"]) == sorted(IU_IMAGE_IDS)
    assert row(table, "2_IM-0652-2001")["Pleural Effusion"] == 1.0  # the truncated PNG is still listed
    assert (table[table["subject_id"] == "4"]["Pneumothorax"] == 1.0).all()
    assert set(table["subject_id"]) == {"1", "2", "4", "5", "6", "7"}


def test_iu_xray_dicom_variant(tmp_path):
    root = make_iu_xray(tmp_path, images="dcm")
    table = load_study_table("iu-xray", root)
    assert len(table) == len(IU_IMAGE_IDS)
    assert row(table, "1_IM-0001-3001")["image_path"] == str(root / "NLMCXR_dcm/batch1/1_IM-0001-3001.dcm")
    assert row(table, "1_IM-0001-3001")["view"] == "PA" and row(table, "1_IM-0001-4001")["view"] == "LATERAL"


def test_iu_xray_bomb_and_malformed_xml_are_skipped_with_a_warning(tmp_path):
    root = make_iu_xray(tmp_path)
    (root / "ecgen-radiology" / "9.xml").write_text(XML_BOMB)
    (root / "ecgen-radiology" / "10.xml").write_text("<eCitation><uId id='CXR10'/>")
    with pytest.warns(UserWarning, match=r"2 report XML file\(s\).*10\.xml.*9\.xml"):
        table = load_study_table("iu-xray", root)
    assert len(table) == len(IU_IMAGE_IDS)


def test_iu_xray_all_reports_unreadable(tmp_path):
    root = tmp_path / "iu"
    (root / "ecgen-radiology").mkdir(parents=True)
    (root / "ecgen-radiology" / "9.xml").write_text(XML_BOMB)
    (root / "CXR9_IM-0001-1001.png").write_bytes(b"\x89PNG")
    with pytest.warns(UserWarning), pytest.raises(DatasetLayoutError, match="readable Open-i report"):
        load_study_table("iu-xray", root)


def test_iu_xray_missing_image_is_left_out(tmp_path):
    root = make_iu_xray(tmp_path)
    (root / "CXR4_IM-2050-2001.png").unlink()
    (root / "notes.png").write_bytes(b"not an Open-i image")  # ignored: not an Open-i name
    with pytest.warns(UserWarning, match="1 image.*4_IM-2050-2001"):
        table = load_study_table("iu-xray", root)
    assert len(table) == len(IU_IMAGE_IDS) - 1


def test_iu_xray_no_image_on_disk_is_an_error(tmp_path):
    root = make_iu_xray(tmp_path)
    for png in root.glob("CXR*.png"):
        png.rename(png.with_name("renamed-" + png.name.removeprefix("CXR")))
    with pytest.raises(DatasetFileError, match="none of the 12 images named in the reports has a PNG or DICOM file"):
        load_study_table("iu-xray", root)


def test_iu_xray_wrong_root(tmp_path):
    root = make_mimic_cxr(tmp_path)
    with pytest.raises(DatasetLayoutError) as info:
        load_study_table("iu-xray", root)
    assert "ecgen-radiology/*.xml" in str(info.value) and "files/" in info.value.found


def test_labels_are_valid_values(tmp_path):
    table = load_study_table("iu-xray", make_iu_xray(tmp_path))
    values = set(pd.unique(table[list(CHEXPERT_LABELS)].to_numpy().ravel()))
    assert {v for v in values if not math.isnan(v)} <= {1.0, 0.0, -1.0}

