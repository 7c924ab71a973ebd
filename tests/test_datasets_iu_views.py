"""Open-i in its official layout (ecgen-radiology/*.xml + NLMCXR_png/CXR<id>.png, no indiana_projections.csv):
views decided from the files (cxrkit.datasets.iu_views), never "0 films" with exit 0, and the labeled-section
policy of every dataset (issue 16)."""
from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest

from cxrkit import cli
from cxrkit.datasets import list_datasets, load_manifest, load_study_table
from cxrkit.datasets.iu_views import OpenIViewError, caption_views, decide_views
from cxrkit.io.reports import SECTION_POLICIES, OpenIFigure
from cxrkit.prep import frontal_only
from fixtures.real_trees import make_iu_xray

#: Fixture films the method makes frontal with the published (shared) captions: F1 of the two-image reports
#: 1, 2, 5, 7 (figure order) and report 6's single image ("PA chest"); report 4 has three images: unknown.
FRONTAL = {"1_IM-0001-3001", "2_IM-0652-1001", "5_IM-2117-1003002", "6_IM-2192-12012", "7_IM-2263-82420001"}


def figures(*captions: str, ids=None, figure_ids=None):
    ids = ids or [f"9_IM-0001-{n + 1}001" for n in range(len(captions))]
    figure_ids = figure_ids or [f"F{n + 1}" for n in range(len(captions))]
    return [OpenIFigure(i, f, c) for i, f, c in zip(ids, figure_ids, captions)]


@pytest.mark.parametrize("caption, views", [
    ("PA and lateral chest x-XXXX", {"PA", "LATERAL"}), ("Xray Chest PA and Lateral", {"PA", "LATERAL"}),
    ("AP portable chest", {"AP"}), ("Lateral chest x-XXXX", {"LATERAL"}), ("Chest, frontal and lateral views", {"FRONTAL", "LATERAL"}),
    ("P.A. chest", {"PA"}), ("Chest x-XXXX", set()), ("", set()), ("Palpable mass", set()),
])
def test_caption_views(caption, views):
    assert caption_views(caption) == views


def test_a_shared_two_view_caption_decides_by_figure_order():
    shared = figures("Xray Chest PA and Lateral", "Xray Chest PA and Lateral")
    assert decide_views(shared, {}) == {"9_IM-0001-1001": ("PA", "order"), "9_IM-0001-2001": ("LATERAL", "order")}
    # figure order is figureId order, not file order
    swapped = figures("PA and lateral chest", "PA and lateral chest", figure_ids=["F2", "F1"])
    assert decide_views(swapped, {})["9_IM-0001-2001"] == ("PA", "order")
    # method "files" states only what a file says about one image
    assert decide_views(shared, {}, "files") == {}


def test_per_image_captions_decide_each_image():
    assert decide_views(figures("PA chest x-XXXX", "Lateral chest x-XXXX"), {}) == {
        "9_IM-0001-1001": ("PA", "caption"), "9_IM-0001-2001": ("LATERAL", "caption")}
    assert decide_views(figures("AP portable chest"), {}) == {"9_IM-0001-1001": ("AP", "caption")}


def test_what_the_files_cannot_decide_stays_unknown():
    assert decide_views(figures("PA and lateral chest"), {}) == {}  # one image, two views named
    assert decide_views(figures(*["PA and lateral chest"] * 3), {}) == {}  # three images, two views named
    assert decide_views(figures("PA chest", "PA chest"), {}) == {}  # a study caption naming one view for two images
    assert decide_views(figures("Chest x-XXXX", "Chest x-XXXX"), {}) == {}


def test_a_known_view_wins_and_the_other_image_takes_the_other_view():
    shared = figures("PA and lateral chest", "PA and lateral chest")
    known = {"9_IM-0001-1001": ("LL", "header")}  # the header says the first figure is the lateral
    assert decide_views(shared, known) == {"9_IM-0001-1001": ("LL", "header"), "9_IM-0001-2001": ("PA", "order")}
    with pytest.raises(ValueError, match="views must be one of"):
        decide_views(shared, {}, "guess")


def test_official_layout_prepares_its_frontal_films(tmp_path, capsys):
    root = make_iu_xray(tmp_path / "data", png_dir="NLMCXR_png")
    assert not (root / "indiana_projections.csv").exists()
    with pytest.warns(UserWarning, match=r"'order': 8.*'unknown': 3.*F1|first figure"):
        table = load_study_table("iu-xray", root)
    assert set(frontal_only(table)["image_id"]) == FRONTAL
    assert table.set_index("image_id").loc["1_IM-0001-4001", "view"] == "LATERAL"
    out = tmp_path / "prepared"
    assert cli.main(["prep", "--dataset", "iu-xray", "--root", str(root), "--out", str(out), "--size", "16",
                     "--workers", "1"]) == 0
    assert f"prepared {len(FRONTAL)} frontal films from iu-xray" in capsys.readouterr().out
    assert set(pd.read_csv(out / "studies.csv")["image_id"]) == FRONTAL


def test_no_decidable_view_is_an_error_naming_the_fixes(tmp_path, capsys):
    root = make_iu_xray(tmp_path / "data", captions="none", png_dir="NLMCXR_png")
    with pytest.raises(OpenIViewError, match="none of its 12 films has a frontal view") as info:
        load_study_table("iu-xray", root)
    message = str(info.value)
    assert "indiana_projections.csv" in message and "NLMCXR_dcm.tgz" in message and "views='keep-unknown'" in message
    out = tmp_path / "prepared"
    assert cli.main(["prep", "--dataset", "iu-xray", "--root", str(root), "--out", str(out), "--size", "16",
                     "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "cxrkit prep: iu-xray at" in err and "indiana_projections.csv" in err and "Traceback" not in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = load_study_table("iu-xray", root, views="keep-unknown")
    assert len(kept) == 12 and kept["view"].isna().all()


def test_views_files_method_drops_the_order_rule(tmp_path):
    per_image = make_iu_xray(tmp_path / "a", captions="per-image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each image's own caption decides it: nothing by order, nothing unknown
        table = load_study_table("iu-xray", per_image, views="files")
    assert set(frontal_only(table)["image_id"]) == FRONTAL | {"4_IM-2050-1001"}
    shared = make_iu_xray(tmp_path / "b")
    with pytest.warns(UserWarning, match="'unknown': 11"):
        table = load_study_table("iu-xray", shared, views="files")
    assert set(frontal_only(table)["image_id"]) == {"6_IM-2192-12012"}  # the one single-image "PA chest" report
    with pytest.raises(ValueError, match="views must be one of"):
        load_study_table("iu-xray", shared, views="aspect-ratio")


# ---------------------------------------------------------------- labeled-section policy per dataset

def test_every_manifest_states_its_section_policy_and_view_source():
    expected = {"synthetic": "impression", "mimic-cxr": "impression", "iu-xray": "findings+impression",
                "mimic-cxr-jpg": None, "chexpert": None, "nih-cxr14": None}
    for name in list_datasets():
        manifest = load_manifest(name)
        assert "sections" in manifest["labels"], name
        assert manifest["labels"]["sections"] == expected[name], name
        assert manifest["labels"]["sections"] in (None, *SECTION_POLICIES)
        assert str(manifest["views"]["source"]).strip(), name


def test_open_i_labels_findings_and_impression_by_default(tmp_path):
    root = make_iu_xray(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = load_study_table("iu-xray", root).drop_duplicates("study_id").set_index("study_id")
        impression = load_study_table("iu-xray", root, sections="impression").drop_duplicates("study_id").set_index("study_id")
    # report 5: "The cardiac silhouette is mildly enlarged." only in FINDINGS; IMPRESSION "No acute … abnormality."
    assert both.loc["5", "Cardiomegaly"] == 1.0 and math.isnan(impression.loc["5", "Cardiomegaly"])
    assert both.loc["5", "Pneumothorax"] == 0.0 and both.loc["5", "Pleural Effusion"] == 0.0  # negated list with modifiers
    assert both.loc["6", "Atelectasis"] == 1.0 and math.isnan(both.loc["6", "Cardiomegaly"])  # "Stable heart size." is blank
    assert both.loc["7", "Pneumothorax"] == 1.0 and both.loc["7", "Cardiomegaly"] == 0.0  # pleural air; upper limits of normal
    with pytest.raises(ValueError, match="labeled-section policy 'all'"):
        load_study_table("iu-xray", root, sections="all")
