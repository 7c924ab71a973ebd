"""scripts/course_models_rekey.py: two builds compared model by model, and a build re-keyed only onto the same data."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

SCRIPT = Path(__file__).parent.parent / "scripts" / "course_models_rekey.py"
spec = importlib.util.spec_from_file_location("course_models_rekey", SCRIPT)
rekey_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rekey_script)


def _build(root: Path, code: str, weight: float, seconds: float, fingerprint: str = "fp") -> Path:
    folder = root / "image_models" / f"key-{code}"
    folder.mkdir(parents=True)
    key = {"epochs": 40, "code": code, "data_code": f"d{code}", "inner": {"report_vectors_code": code, "k": 1}}
    (folder / "meta.json").write_text(json.dumps({"key": key, "data_fingerprint": fingerprint, "best_epoch": 3,
                                                  "settings": {"epochs": 40, **({"world_size": 1} if code == "new" else {})}}))
    torch.save({"w": torch.tensor([weight, 2.0])}, folder / "model.pt")
    pd.DataFrame({"epoch": [1, 2], "val_auroc": [0.5, 0.6], "seconds": [seconds, seconds]}).to_csv(folder / "history.csv", index=False)
    return folder


def test_builds_that_differ_only_in_code_versions_and_timings_compare_equal(tmp_path):
    _build(tmp_path / "old", "old", 1.0, seconds=9.0)
    _build(tmp_path / "new", "new", 1.0, seconds=4.0)
    assert rekey_script.compare(tmp_path / "old", tmp_path / "new") == []


def test_a_changed_weight_is_a_difference_and_the_script_exits_1(tmp_path, capsys):
    _build(tmp_path / "old", "old", 1.0, seconds=9.0)
    _build(tmp_path / "new", "new", 1.0000001, seconds=9.0)
    assert rekey_script.main(["compare", str(tmp_path / "old"), str(tmp_path / "new")]) == 1
    assert "model.pt: differs" in capsys.readouterr().out


def test_rekey_copies_the_reference_files_and_keeps_the_new_key(tmp_path):
    _build(tmp_path / "reference", "old", 7.0, seconds=9.0)
    new = _build(tmp_path / "new", "new", 1.0, seconds=4.0)
    assert rekey_script.rekey(tmp_path / "reference", tmp_path / "new") == [new]
    assert torch.equal(torch.load(new / "model.pt", weights_only=True)["w"], torch.tensor([7.0, 2.0]))
    meta = json.loads((new / "meta.json").read_text())
    assert meta["key"]["code"] == "new" and meta["settings"] == {"epochs": 40, "world_size": 1}


def test_rekey_refuses_a_model_trained_on_other_data(tmp_path):
    _build(tmp_path / "reference", "old", 7.0, seconds=9.0, fingerprint="other")
    _build(tmp_path / "new", "new", 1.0, seconds=4.0)
    with pytest.raises(SystemExit, match="trained on other data"):
        rekey_script.rekey(tmp_path / "reference", tmp_path / "new")
