"""``cxrkit prep`` and ``cxrkit label`` on fixture trees in the real datasets' formats."""
import pandas as pd

from cxrkit import cli
from cxrkit.labels import CHEXPERT_LABELS
from fixtures.real_trees import NIH_ROWS, make_iu_xray, make_mimic_cxr, make_nih_cxr14


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
