"""Dataset adapters on fixture trees in the real formats: registry, manifests, study-table validation,
MIMIC-CXR-JPG, CheXpert and NIH ChestX-ray14 (the report-based adapters are in test_datasets_reports.py)."""
from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from cxrkit.prep import FRONTAL_VIEWS

from cxrkit.datasets import (
    DATASETS,
    DatasetFileError,
    DatasetRootError,
    PathEscapeError,
    StudyTableError,
    list_datasets,
    load_boxes,
    load_manifest,
    load_nih_boxes,
    load_study_table,
    nih_finding_to_observation,
    root_env_var,
    study_columns,
    validate_study_table,
)
from cxrkit.datasets.mimic_files import pad_study_time
from cxrkit.datasets.nih_cxr14 import parse_age
from cxrkit.errors import CxrkitError, DatasetLayoutError
from cxrkit.labels import CHEXPERT_LABELS
from fixtures.real_trees import (
    CHEXPERT_COLUMNS,
    MIMIC_IMAGES,
    NIH_ROWS,
    dicom_id,
    make_chexpert,
    make_mimic_cxr_jpg,
    make_nih_cxr14,
    write_csv,
)


def row(table: pd.DataFrame, image_id: str) -> pd.Series:
    hits = table[table["image_id"] == image_id]
    assert len(hits) == 1, f"{image_id} appears {len(hits)} times"
    return hits.iloc[0]


def labels_of(series: pd.Series) -> dict[str, float]:
    return {k: series[k] for k in CHEXPERT_LABELS if not math.isnan(series[k])}


# ---------------------------------------------------------------- registry, manifests, validation

def test_registry_names_and_manifests():
    assert list_datasets() == ["synthetic", "mimic-cxr", "mimic-cxr-jpg", "iu-xray", "chexpert", "nih-cxr14"]
    assert set(DATASETS) == set(list_datasets())
    for name in list_datasets():
        manifest = load_manifest(name)
        assert manifest["name"] == name
        assert manifest["env_var"] == "CXRKIT_" + name.upper().replace("-", "_") + "_ROOT"
        frontal = [v.upper() for v in manifest["views"]["frontal"]]
        assert frontal[:2] == ["PA", "AP"] and set(frontal) <= set(FRONTAL_VIEWS)  # prep agrees with the manifest
        assert manifest["layout"]["required"]
    nih_map = load_manifest("nih-cxr14")["labels"]["map"]
    assert nih_map["Effusion"] == "Pleural Effusion" and nih_map["Infiltration"] == "Lung Opacity"
    assert nih_map["Mass"] == nih_map["Nodule"] == "Lung Lesion" and nih_map["Hernia"] is None
    assert {v for v in nih_map.values() if v} <= set(CHEXPERT_LABELS)


def test_manifest_copy_is_independent():
    first = load_manifest("chexpert")
    first["files"]["train"] = "changed.csv"
    assert load_manifest("chexpert")["files"]["train"] == "train.csv"


def test_manifest_dir_env_override(tmp_path, monkeypatch):
    text = (Path(__file__).parent.parent / "data_manifests" / "chexpert.yaml").read_text()
    (tmp_path / "chexpert.yaml").write_text(text.replace("site: Stanford", "site: Elsewhere"))
    monkeypatch.setenv("CXRKIT_MANIFEST_DIR", str(tmp_path))
    assert load_manifest("chexpert")["site"] == "Elsewhere"


def test_missing_root_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("CXRKIT_CHEXPERT_ROOT", raising=False)
    with pytest.raises(DatasetRootError, match="CXRKIT_CHEXPERT_ROOT"):
        load_study_table("chexpert")


def test_root_from_environment_variable(tmp_path, monkeypatch):
    root = make_chexpert(tmp_path)
    monkeypatch.setenv("CXRKIT_CHEXPERT_ROOT", str(root))
    assert len(load_study_table("chexpert")) == 7


def test_unknown_dataset_and_option(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset 'padchest'"):
        load_study_table("padchest", tmp_path)
    root = make_chexpert(tmp_path)
    with pytest.raises(TypeError, match="labeller"):
        load_study_table("chexpert", root, labeller="x")


def test_nonexistent_root_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_study_table("nih-cxr14", tmp_path / "nope")


def _valid_table() -> pd.DataFrame:
    data = {c: ["x", "y"] for c in study_columns()}
    data.update({"image_id": ["a", "b"], "image_path": [os.path.abspath("a.png"), os.path.abspath("b.png")], "split": ["train", None]})
    data.update({label: [1.0, math.nan] for label in CHEXPERT_LABELS})
    return pd.DataFrame(data)


def test_validate_study_table_accepts_and_rejects():
    table = _valid_table()
    validate_study_table(table)
    bad = table.drop(columns=["view", "Edema"]).assign(colour="red")
    bad["Cardiomegaly"] = [2.0, 1.0]
    bad["split"] = ["val", "train"]
    with pytest.raises(StudyTableError) as info:
        validate_study_table(bad)
    message = str(info.value)
    for expected in ("'view'", "'Edema'", "'colour'", "Cardiomegaly", "2.0", "'val'"):
        assert expected in message


def test_validate_rejects_duplicate_ids_and_relative_paths():
    table = _valid_table()
    table["image_id"] = ["a", "a"]
    table["image_path"] = ["rel/a.png", table["image_path"][1]]
    with pytest.raises(StudyTableError, match="not unique") as info:
        validate_study_table(table)
    assert "absolute" in str(info.value)


# ---------------------------------------------------------------- MIMIC-CXR-JPG

@pytest.fixture(scope="module")
def jpg_root(tmp_path_factory) -> Path:
    return make_mimic_cxr_jpg(tmp_path_factory.mktemp("jpg"), with_reports=False)


def test_mimic_jpg_table(jpg_root):
    table = load_study_table("mimic-cxr-jpg", jpg_root)
    assert list(table.columns) == study_columns(["site"])
    assert len(table) == len(MIMIC_IMAGES)
    first = row(table, dicom_id(1))
    assert (first["subject_id"], first["study_id"], first["view"], first["split"]) == ("10000032", "50414267", "PA", "train")
    assert first["image_path"] == str(jpg_root / f"files/p10/p10000032/s50414267/{dicom_id(1)}.jpg")
    assert os.path.isabs(first["image_path"]) and os.path.isfile(first["image_path"])
    assert labels_of(first) == {"Cardiomegaly": 1.0, "Pleural Effusion": 0.0, "Support Devices": 1.0}
    # labels selected by name although the CSV is alphabetical
    assert labels_of(row(table, dicom_id(5))) == {"Atelectasis": -1.0, "Cardiomegaly": 1.0, "Pleural Effusion": 1.0,
                                                   "Pneumothorax": 0.0, "Support Devices": 1.0}
    assert row(table, dicom_id(5))["view"] == "LL" and row(table, dicom_id(2))["view"] == "LATERAL"
    assert row(table, dicom_id(6))["view"] is None
    assert labels_of(row(table, dicom_id(7))) == {}  # study without a label row
    assert dict(table.groupby("subject_id")["split"].first()) == {
        "10000032": "train", "10000099": "validate", "11000011": "test", "12000012": "train"}
    assert table["findings"].isna().all() and (table["site"] == "BIDMC").all()


def test_mimic_jpg_negbio_and_frontal_filter(jpg_root):
    negbio = load_study_table("mimic-cxr-jpg", jpg_root, labeler="negbio")
    assert labels_of(row(negbio, dicom_id(1))) == {"Cardiomegaly": 1.0, "Pleural Effusion": -1.0}
    frontal = load_study_table("mimic-cxr-jpg", jpg_root, frontal_only=True)
    assert sorted(frontal["view"]) == ["AP", "AP", "PA", "PA"]
    with pytest.raises(ValueError, match="labeler"):
        load_study_table("mimic-cxr-jpg", jpg_root, labeler="rules")


def test_mimic_jpg_missing_images_are_left_out_with_a_warning(tmp_path):
    root = make_mimic_cxr_jpg(tmp_path, with_reports=False, extra_missing_image=True)
    with pytest.warns(UserWarning, match="1 image"):
        table = load_study_table("mimic-cxr-jpg", root)
    assert len(table) == len(MIMIC_IMAGES)
    kept = load_study_table("mimic-cxr-jpg", root, check_files=False)
    assert len(kept) == len(MIMIC_IMAGES) + 1


def test_mimic_jpg_missing_label_column_names_file_and_column(tmp_path):
    root = make_mimic_cxr_jpg(tmp_path, with_reports=False)
    path = root / "mimic-cxr-2.0.0-chexpert.csv.gz"
    frame = pd.read_csv(path, dtype=str).drop(columns=["Edema"])
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    with pytest.raises(DatasetFileError, match=r"chexpert\.csv\.gz.*'Edema'"):
        load_study_table("mimic-cxr-jpg", root)


def test_mimic_jpg_bad_label_value_names_file(tmp_path):
    root = make_mimic_cxr_jpg(tmp_path, with_reports=False)
    path = root / "mimic-cxr-2.0.0-negbio.csv.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b"-1.0", b"2.0", 1)))
    with pytest.raises(StudyTableError, match=r"negbio\.csv\.gz.*'2\.0'"):
        load_study_table("mimic-cxr-jpg", root, labeler="negbio")


def test_mimic_jpg_id_that_would_escape_the_root_is_refused(tmp_path):
    root = make_mimic_cxr_jpg(tmp_path, with_reports=False)
    path = root / "mimic-cxr-2.0.0-metadata.csv.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(dicom_id(3).encode(), b"../../../etc/passwd")))
    with pytest.raises(DatasetFileError, match=r"metadata\.csv\.gz.*dicom_id.*etc/passwd"):
        load_study_table("mimic-cxr-jpg", root)


def test_mimic_jpg_wrong_root_lists_expected_and_found(tmp_path):
    other = make_chexpert(tmp_path)
    with pytest.raises(DatasetLayoutError) as info:
        load_study_table("mimic-cxr-jpg", other)
    message = str(info.value)
    assert "mimic-cxr-2.0.0-metadata.csv.gz (MISSING)" in message and "files/p*/p*/s*/*.jpg (MISSING)" in message
    assert "train.csv" in message and "valid/" in message  # what was found instead
    assert info.value.found == sorted(info.value.found)


def test_pad_study_time():
    assert pad_study_time("80556.875") == "080556.875"
    assert pad_study_time("143012") == "143012"
    assert pad_study_time("") == ""


# ---------------------------------------------------------------- CheXpert

@pytest.mark.parametrize("prefix", ["CheXpert-v1.0-small/", "CheXpert-v1.0/"])
def test_chexpert_table(tmp_path, prefix):
    root = make_chexpert(tmp_path, prefix=prefix)
    table = load_study_table("chexpert", root)
    assert list(table.columns) == study_columns(["site", "age", "sex"])
    assert len(table) == 7
    lateral = row(table, "patient00002_study2_view2_lateral")
    assert (lateral["subject_id"], lateral["study_id"], lateral["view"], lateral["split"]) == ("patient00002", "patient00002_study2", "LATERAL", None)
    assert lateral["image_path"] == str(root / "train/patient00002/study2/view2_lateral.jpg")
    frontal = row(table, "patient00002_study2_view1_frontal")
    assert labels_of(frontal) == {"Cardiomegaly": -1.0, "Lung Opacity": 1.0, "Pleural Effusion": -1.0, "Fracture": 1.0}
    assert (frontal["sex"], frontal["age"], frontal["view"]) == ("F", 87.0, "AP")
    assert row(table, "patient00003_study1_view1_frontal")["view"] == "LL"
    valid = table[table["split"] == "validate"]
    assert sorted(valid["subject_id"]) == ["patient64541", "patient64542"]
    assert row(table, "patient64542_study1_view2_lateral")["sex"] is None
    assert table[table["split"].isna()]["subject_id"].str.startswith("patient0000").all()


def test_chexpert_columns_selected_by_name(tmp_path):
    root = make_chexpert(tmp_path)
    frame = pd.read_csv(root / "valid.csv", dtype=str, keep_default_na=False)
    frame = frame[list(CHEXPERT_COLUMNS[:5]) + list(reversed(CHEXPERT_COLUMNS[5:]))]
    frame.to_csv(root / "valid.csv", index=False)
    table = load_study_table("chexpert", root, include_train=False)
    assert labels_of(row(table, "patient64541_study1_view1_frontal")) == {
        "Cardiomegaly": 1.0, "Lung Opacity": 1.0, "Edema": 0.0, "Pleural Effusion": 0.0, "No Finding": 0.0}


@pytest.mark.parametrize("bad_path", ["CheXpert-v1.0-small/../../../etc/passwd", "/etc/passwd", "train/../../outside.jpg"])
def test_chexpert_path_escaping_the_root_is_refused(tmp_path, bad_path):
    extra = [[bad_path, "Male", "50", "Frontal", "PA", *[""] * 14]]
    root = make_chexpert(tmp_path, extra_rows=extra)
    with pytest.raises(PathEscapeError, match=r"train\.csv row 7.*refused"):
        load_study_table("chexpert", root)


def test_chexpert_missing_column_is_named(tmp_path):
    root = make_chexpert(tmp_path)
    frame = pd.read_csv(root / "train.csv", dtype=str).drop(columns=["AP/PA"])
    frame.to_csv(root / "train.csv", index=False)
    with pytest.raises(DatasetFileError, match=r"train\.csv: required column 'AP/PA'"):
        load_study_table("chexpert", root)


@pytest.mark.parametrize("prefix", ["CheXpert-v1.0-small/", "CheXpert-v1.0/"])
def test_chexpert_root_may_be_the_folder_holding_the_release(tmp_path, prefix):
    release = make_chexpert(tmp_path, prefix=prefix)  # the CSV Path column is relative to tmp_path
    inner, outer = load_study_table("chexpert", release), load_study_table("chexpert", tmp_path)
    pd.testing.assert_frame_equal(inner, outer)
    assert row(outer, "patient00002_study2_view2_lateral")["image_path"] == str(
        tmp_path / prefix / "train/patient00002/study2/view2_lateral.jpg")


def test_chexpert_root_holding_both_releases_must_choose(tmp_path):
    make_chexpert(tmp_path, prefix="CheXpert-v1.0-small/")
    make_chexpert(tmp_path, prefix="CheXpert-v1.0/")
    with pytest.raises(DatasetLayoutError, match=r"CheXpert-v1\.0-small/ and CheXpert-v1\.0/ both"):
        load_study_table("chexpert", tmp_path)


def test_chexpert_folder_without_the_release_lists_what_is_missing(tmp_path):
    (tmp_path / "CheXpert-v1.0-small").mkdir()  # an empty, half-extracted release
    with pytest.raises(DatasetLayoutError, match=r"train\.csv or valid\.csv \(MISSING\)") as info:
        load_study_table("chexpert", tmp_path)
    assert "CheXpert-v1.0-small/" in info.value.found and "or the folder that holds it" in str(info.value)


# ---------------------------------------------------------------- NIH ChestX-ray14

@pytest.mark.parametrize("variant,mirror", [("v2020", False), ("2017", True)])
def test_nih_table(tmp_path, variant, mirror):
    root = make_nih_cxr14(tmp_path, variant=variant, mirror=mirror)
    table = load_study_table("nih-cxr14", root)
    assert list(table.columns) == study_columns(["site", "age", "sex"])
    assert len(table) == len(NIH_ROWS)
    effusion = row(table, "00000123_004")
    assert (effusion["subject_id"], effusion["study_id"], effusion["view"], effusion["split"], effusion["sex"], effusion["age"]) == (
        "00000123", "00000123_004", "AP", "test", "F", 61.0)
    expected_dir = "images_001/images" if mirror else "images"
    assert effusion["image_path"] == str(root / expected_dir / "00000123_004.png")
    assert labels_of(effusion) == {
        "No Finding": 0.0, "Cardiomegaly": 0.0, "Lung Lesion": 0.0, "Lung Opacity": 1.0, "Edema": 0.0, "Consolidation": 0.0,
        "Pneumonia": 0.0, "Atelectasis": 0.0, "Pneumothorax": 0.0, "Pleural Effusion": 1.0, "Pleural Other": 0.0}
    lesion = labels_of(row(table, "00000200_000"))
    assert lesion["Lung Lesion"] == 1.0 and lesion["Pleural Other"] == 1.0 and lesion["No Finding"] == 0.0
    assert labels_of(row(table, "00000123_005"))["No Finding"] == 1.0
    hernia = labels_of(row(table, "00000201_000"))
    assert set(hernia.values()) == {0.0}  # Hernia has no CheXpert counterpart
    assert math.isnan(row(table, "00000201_000")["Fracture"])
    assert row(table, "00000001_000")["split"] == "train"


def test_nih_truncated_and_rgba_pngs_still_list(tmp_path):
    root = make_nih_cxr14(tmp_path, truncated_png=True)
    table = load_study_table("nih-cxr14", root)
    assert len(table) == len(NIH_ROWS)
    assert os.path.getsize(row(table, "00000001_000")["image_path"]) < os.path.getsize(row(table, "00000001_001")["image_path"])


def test_nih_unknown_label_and_escaping_name(tmp_path):
    root = make_nih_cxr14(tmp_path / "a", extra_rows=[["00000300_000.png", "Cardiomegaly|Covid", 0, 300, 50, "M", "PA", 1, 1, 1, 1]])
    with pytest.raises(DatasetFileError, match=r"row 8: unknown finding label 'Covid'"):
        load_study_table("nih-cxr14", root)
    root = make_nih_cxr14(tmp_path / "b", extra_rows=[["../../etc/passwd", "Hernia", 0, 300, 50, "M", "PA", 1, 1, 1, 1]])
    with pytest.raises(PathEscapeError, match=r"Data_Entry_2017_v2020\.csv row 8.*'\.\./\.\./etc/passwd'"):
        load_study_table("nih-cxr14", root)


def test_nih_missing_column_is_named(tmp_path):
    root = make_nih_cxr14(tmp_path)
    path = root / "Data_Entry_2017_v2020.csv"
    path.write_text(path.read_text().replace("View Position", "ViewPos", 1))
    with pytest.raises(DatasetFileError, match=r"Data_Entry_2017_v2020\.csv: required column 'View Position'"):
        load_study_table("nih-cxr14", root)


def test_nih_boxes(tmp_path):
    root = make_nih_cxr14(tmp_path)
    boxes = load_nih_boxes(root)
    assert list(boxes.columns) == ["image_id", "finding", "x", "y", "w", "h"]
    assert boxes["image_id"].tolist() == ["00000123_004", "00000123_004", "00000200_000"]
    assert boxes["finding"].tolist() == ["Effusion", "Infiltration", "Nodule"]
    assert boxes.iloc[0][["x", "y", "w", "h"]].tolist() == [612.4, 388.0, 170.7, 301.5]
    assert boxes["x"].dtype == "float64"
    assert nih_finding_to_observation("Infiltrate") == "Lung Opacity"
    assert nih_finding_to_observation("Hernia") is None


def test_boxes_are_found_through_the_registry(tmp_path, monkeypatch):
    """The registry resolves the root (argument or environment variable); only NIH publishes boxes."""
    root = make_nih_cxr14(tmp_path)
    pd.testing.assert_frame_equal(load_boxes("nih-cxr14", root), load_nih_boxes(root))
    monkeypatch.setenv(root_env_var("nih-cxr14"), str(root))
    pd.testing.assert_frame_equal(load_boxes("nih-cxr14"), load_nih_boxes(root))
    with pytest.raises(CxrkitError, match="publishes no ground-truth boxes"):
        load_boxes("chexpert", tmp_path)


def test_nih_boxes_bad_header_and_value(tmp_path):
    root = make_nih_cxr14(tmp_path)
    path = root / "BBox_List_2017.csv"
    path.write_text(path.read_text().replace("612.4", "abc"))
    with pytest.raises(DatasetFileError, match=r"row 2: box field 'x' is 'abc'"):
        load_nih_boxes(root)
    write_csv(path, ("Image", "Label"), [["a.png", "Mass"]])
    with pytest.raises(DatasetFileError, match="BBox_List_2017.csv: header"):
        load_nih_boxes(root)


def test_parse_age():
    assert parse_age("61") == 61.0 and parse_age("058Y") == 58.0 and parse_age("006M") == 0.5
    assert math.isnan(parse_age("")) and math.isnan(parse_age("414"))
