"""IU X-ray PNGs get their view from ``indiana_projections.csv`` when it is present, so the frontal filter works."""
import warnings

import pytest

from cxrkit.datasets import DatasetFileError, load_study_table
from cxrkit.prep import frontal_only
from fixtures.real_trees import IU_REPORTS, iu_file_stem, make_iu_xray


def _write_projections(root, header="uid,filename,projection"):
    lines = [header]
    for uid, (_sections, _mesh, image_ids) in IU_REPORTS.items():
        for n, image_id in enumerate(image_ids):
            name = iu_file_stem(image_id, "dcm") + ".dcm.png"  # the derivative CSV's file naming
            lines.append(f"{uid},{name},{'Frontal' if n == 0 else 'Lateral'}")
    (root / "indiana_projections.csv").write_text("\n".join(lines) + "\n")


def test_projections_give_views_and_frontal_filter_keeps_first_images(tmp_path):
    root = make_iu_xray(tmp_path)
    _write_projections(root)
    table = load_study_table("iu-xray", root)
    assert set(table["view"].dropna()) == {"FRONTAL", "LATERAL"}
    frontal = frontal_only(table)
    assert len(frontal) == sum(1 for _s, _m, ids in IU_REPORTS.values() if ids)  # each report's first image
    assert set(frontal["view"]) == {"FRONTAL"} and len(frontal) < len(table)
    assert len(load_study_table("iu-xray", root, frontal_only=True)) == len(frontal)


def test_projections_win_over_captions_and_order(tmp_path):
    root = make_iu_xray(tmp_path)
    _write_projections(root)
    (root / "indiana_projections.csv").write_text((root / "indiana_projections.csv").read_text().replace(
        "1_IM-0001-3001.dcm.png,Frontal", "1_IM-0001-3001.dcm.png,Lateral").replace(
        "1_IM-0001-4001.dcm.png,Lateral", "1_IM-0001-4001.dcm.png,Frontal"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every film decided by the CSV: no 'order' or 'unknown' warning
        table = load_study_table("iu-xray", root).set_index("image_id")
    assert (table.loc["1_IM-0001-3001", "view"], table.loc["1_IM-0001-4001", "view"]) == ("LATERAL", "FRONTAL")


def test_projections_csv_missing_a_column_is_named(tmp_path):
    root = make_iu_xray(tmp_path)
    _write_projections(root, header="uid,file,projection")
    with pytest.raises(DatasetFileError, match="filename"):
        load_study_table("iu-xray", root)
