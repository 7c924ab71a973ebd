"""``cxrkit prep`` and ``cxrkit label`` on fixture trees in the real datasets' formats."""
import pandas as pd

from cxrkit import cli
from cxrkit.labels import CHEXPERT_LABELS
from fixtures.real_trees import NIH_ROWS, make_chexpert, make_iu_xray, make_mimic_cxr, make_nih_cxr14


def test_prep_writes_table_cache_and_quarantine(tmp_path, capsys):
    root = make_nih_cxr14(tmp_path / "data", truncated_png=True)
    out = tmp_path / "prepared"
    assert cli.main(["prep", "--dataset", "nih-cxr14", "--root", str(root), "--out", str(out),
                     "--size", "16", "--workers", "1"]) == 0
    studies = pd.read_csv(out / "studies.csv", dtype={"image_id": str})
    quarantine = pd.read_csv(out / "quarantine.csv", dtype={"image_id": str})
    truncated = NIH_ROWS[0][0].removesuffix(".png")
    assert len(studies) > 0 and set(studies["split"]) <= {"train", "validate", "test"}
    assert quarantine["image_id"].tolist() == [truncated]  # the truncated PNG, with its reason
    assert "truncated" in quarantine["reason"].iloc[0]
    assert truncated not in set(studies["image_id"])
    assert (out / "cache" / "cache.json").exists()
    assert "quarantined" in capsys.readouterr().out


def test_label_reads_mimic_txt_and_openi_xml(tmp_path):
    mimic = make_mimic_cxr(tmp_path / "mimic")
    iu = make_iu_xray(tmp_path / "iu")
    out = tmp_path / "labels.csv"
    assert cli.main(["label", str(mimic), str(iu), "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"report_id": str})
    assert list(table.columns) == ["report_id", *CHEXPERT_LABELS]
    n_txt = len(list(mimic.rglob("s*.txt")))
    n_xml = len(list(iu.rglob("*.xml")))
    assert len(table) == n_txt + n_xml > 0
    assert set(table[list(CHEXPERT_LABELS)].stack().unique()) <= {1.0, 0.0, -1.0}


def test_label_never_shifts_labels_past_an_unreadable_report(tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "s1.txt").write_text(" IMPRESSION:  Cardiomegaly.\n")
    (folder / "s2.txt").write_text("")  # empty: cannot be read
    (folder / "s3.txt").write_text(" IMPRESSION:  Large right pneumothorax.\n")
    out = tmp_path / "labels.csv"
    assert cli.main(["label", str(folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "s2.txt" in captured.err and "1 skipped" in captured.out
    table = pd.read_csv(out, dtype={"report_id": str}).set_index("report_id")
    assert list(table.index) == ["s1", "s3"]
    assert table.loc["s1", "Cardiomegaly"] == 1.0 and pd.isna(table.loc["s1", "Pneumothorax"])
    assert table.loc["s3", "Pneumothorax"] == 1.0 and pd.isna(table.loc["s3", "Cardiomegaly"])


def test_label_with_nothing_readable_is_an_error(tmp_path, capsys):
    (tmp_path / "s1.txt").write_text("   \n")
    out = tmp_path / "labels.csv"
    assert cli.main(["label", str(tmp_path / "s1.txt"), "--out", str(out)]) == 2
    assert "no readable report" in capsys.readouterr().err and not out.exists()
    assert cli.main(["label", str(tmp_path / "s1.txt")]) == 2  # --out is needed to write labels
    assert "--out is required" in capsys.readouterr().err


def test_label_section_policy_per_format_and_as_an_option(tmp_path):
    iu = make_iu_xray(tmp_path / "iu")
    default, impression = tmp_path / "default.csv", tmp_path / "impression.csv"
    assert cli.main(["label", str(iu), "--out", str(default)]) == 0
    assert cli.main(["label", str(iu), "--out", str(impression), "--sections", "impression"]) == 0
    by_default = pd.read_csv(default, dtype={"report_id": str}).set_index("report_id")
    by_impression = pd.read_csv(impression, dtype={"report_id": str}).set_index("report_id")
    assert by_default.loc["5", "Cardiomegaly"] == 1.0  # named only in FINDINGS ("mildly enlarged")
    assert pd.isna(by_impression.loc["5", "Cardiomegaly"])


def test_prep_chexpert_accepts_the_release_folder_and_the_folder_holding_it(tmp_path, capsys):
    release = make_chexpert(tmp_path / "data")
    for n, root in enumerate((release, release.parent)):
        out = tmp_path / f"prepared{n}"
        assert cli.main(["prep", "--dataset", "chexpert", "--root", str(root), "--out", str(out),
                         "--size", "16", "--workers", "1"]) == 0, capsys.readouterr().err
        assert "prepared 4 frontal films from chexpert" in capsys.readouterr().out  # AP/PA frontal rows of the fixture
        assert len(pd.read_csv(out / "studies.csv")) == 4


def test_prep_with_a_wrong_root_is_one_message_and_exit_2(tmp_path, capsys):
    assert cli.main(["prep", "--dataset", "chexpert", "--root", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--size", "16", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cxrkit prep: ") and "train.csv or valid.csv (MISSING)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "a wrong root must not leave an empty, marked --out folder behind"
