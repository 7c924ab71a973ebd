"""cxrkit.outdir.claim_folder: which folders a command may write into, and what ``--overwrite`` means."""
from __future__ import annotations

import json

import pytest

from cxrkit.errors import CxrkitError
from cxrkit.outdir import (
    OutputFolderError,
    check_file_target,
    claim_folder,
    is_adopted,
    marker_path,
    read_marker,
    update_marker,
)


def test_a_missing_or_empty_folder_is_created_and_marked(tmp_path):
    for folder in (tmp_path / "new" / "deep", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        assert claim_folder(folder, "synth") == folder and folder.is_dir()
        info = json.loads(marker_path(folder, "synth").read_text())
        assert info["owner"] == "synth" and info["kit"] == "cxrkit" and info["adopted"] is False


def test_the_marker_is_the_same_bytes_for_folders_made_alike(tmp_path):
    claim_folder(tmp_path / "a", "synth")
    claim_folder(tmp_path / "b", "synth")
    assert marker_path(tmp_path / "a", "synth").read_bytes() == marker_path(tmp_path / "b", "synth").read_bytes()


def test_a_folder_with_the_owners_marker_is_accepted_again(tmp_path):
    folder = claim_folder(tmp_path / "run", "prep", key={"seed": 0})
    (folder / "studies.csv").write_text("written by prep\n")
    assert claim_folder(folder, "prep", key={"seed": 0}) == folder  # a resume
    assert (folder / "studies.csv").read_text() == "written by prep\n"


def test_a_folder_with_other_files_is_refused_naming_it_the_files_and_the_flag(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("a.csv", "b.csv", "c.csv", "d.csv", "e.csv", "f.csv"):
        (folder / name).write_text("mine")
    with pytest.raises(OutputFolderError) as err:
        claim_folder(folder, "prep")
    text = str(err.value)
    assert str(folder) in text and "--overwrite" in text and "a.csv" in text and "6 entries" in text
    assert isinstance(err.value, CxrkitError) and err.value.folder == folder
    assert not marker_path(folder, "prep").exists()


def test_another_owners_marker_does_not_make_the_folder_ours(tmp_path):
    folder = claim_folder(tmp_path / "x", "synth")
    with pytest.raises(OutputFolderError, match="--overwrite"):
        claim_folder(folder, "prep")


def test_another_runs_key_is_refused_unless_overwrite(tmp_path):
    folder = claim_folder(tmp_path / "run", "prep", key={"seed": 0})
    with pytest.raises(OutputFolderError, match="another `prep` run"):
        claim_folder(folder, "prep", key={"seed": 1})
    claim_folder(folder, "prep", overwrite=True, key={"seed": 1})
    assert read_marker(folder, "prep")["key"] == {"seed": 1}


def test_overwrite_adopts_the_folder_and_deletes_nothing(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "keep.txt").write_text("mine")
    claim_folder(folder, "synth", overwrite=True)
    assert (folder / "sub" / "keep.txt").read_text() == "mine"
    assert is_adopted(folder, "synth")
    claim_folder(folder, "synth")  # marked now: accepted, and stays adopted
    assert is_adopted(folder, "synth")


def test_a_legacy_folder_the_kit_made_is_accepted_as_its_own(tmp_path):
    folder = tmp_path / "old"
    (folder / "truth").mkdir(parents=True)
    (folder / "truth" / "params.json").write_text("{}")
    claim_folder(folder, "synth", legacy=lambda f: (f / "truth" / "params.json").is_file())
    assert not is_adopted(folder, "synth")


def test_a_file_or_a_path_under_a_file_is_refused(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file"):
        claim_folder(a_file, "prep")
    with pytest.raises(OutputFolderError, match="cannot create the output folder"):
        claim_folder(a_file / "sub", "prep")
    assert a_file.read_text() == "x"


def test_update_marker_keeps_the_record(tmp_path):
    folder = claim_folder(tmp_path / "s", "student")
    update_marker(folder, "student", notebooks={"01.ipynb": "abc"})
    info = read_marker(folder, "student")
    assert info["notebooks"] == {"01.ipynb": "abc"} and info["owner"] == "student" and info["adopted"] is False


def test_check_file_target(tmp_path):
    target = tmp_path / "out" / "labels.csv"
    assert check_file_target(target) == target and target.parent.is_dir()
    target.write_text("old")
    with pytest.raises(OutputFolderError, match="already exists.*--overwrite"):
        check_file_target(target)
    assert check_file_target(target, overwrite=True) == target
    with pytest.raises(OutputFolderError, match="is a folder"):
        check_file_target(tmp_path)
    with pytest.raises(OutputFolderError, match="is empty"):
        check_file_target("")
