"""Issue #17 defect 2: a command never loses data in an ``--out`` it did not make (synth, prep, label, student).

Also the synth pool's interrupt handling: Ctrl-C stops it promptly and no worker outlives the command.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.real_trees import make_chexpert

from cxrkit import cli
from cxrkit.errors import CxrkitError
from cxrkit.paths import REPO_ROOT
from cxrkit.synth import SynthParams, generate_cohort, is_complete
from cxrkit.synth import cohort as cohort_mod

SYNTH = ["--patients", "3", "--seed", "1", "--workers", "1", "--no-progress"]


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _a_users_dataset(folder: Path) -> dict[str, str]:
    (folder / "files" / "p10" / "p10000032" / "s50414267").mkdir(parents=True)
    (folder / "files" / "p10" / "p10000032" / "s50414267" / "real.dcm").write_bytes(b"a real film")
    (folder / "mimic-cxr-2.0.0-metadata.csv.gz").write_bytes(b"the real metadata")
    (folder / "files" / ".upload.dcm.tmp-1234").write_bytes(b"a transfer in progress")
    (folder / "notes").mkdir()
    (folder / "notes" / ".draft.txt.tmp-77").write_bytes(b"an editor's swap file")
    return _tree(folder)


# ---------------------------------------------------------------------------------------------- synth
def test_synth_refuses_a_folder_holding_another_dataset(tmp_path, capsys):
    data = tmp_path / "mimic"
    before = _a_users_dataset(data)
    assert cli.main(["synth", "--out", str(data), *SYNTH]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "--overwrite" in err and "mimic-cxr-2.0.0-metadata.csv.gz" in err
    assert "Traceback" not in err
    assert _tree(data) == before  # nothing replaced, nothing mixed in, nothing deleted
    with pytest.raises(CxrkitError, match="--overwrite"):
        generate_cohort(data, SynthParams(patients=3, seed=1), workers=1, progress=False)
    assert _tree(data) == before


def test_synth_overwrite_writes_the_cohort_but_deletes_nothing_of_the_users(tmp_path):
    data = tmp_path / "mine"
    before = _a_users_dataset(data)
    before.pop("mimic-cxr-2.0.0-metadata.csv.gz")  # the one file the cohort itself writes there
    assert cli.main(["synth", "--out", str(data), "--overwrite", *SYNTH]) == 0
    assert is_complete(data)
    after = _tree(data)
    assert {k: after.get(k) for k in before} == before  # every other file of the user's is still there, unchanged


def _interrupted(out: Path, params: SynthParams, monkeypatch, after: int = 2) -> None:
    real = cohort_mod._write_patient
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort_mod, "_write_patient", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(out, params, workers=1, progress=False)
    monkeypatch.setattr(cohort_mod, "_write_patient", real)


def test_synth_resume_cleans_only_the_generators_own_temporaries(tmp_path, monkeypatch):
    out, params = tmp_path / "cohort", SynthParams(patients=4, seed=3)
    _interrupted(out, params, monkeypatch)
    left_by_crash = out / "files" / ".x.dcm.cxrkit-synth-tmp-4242"
    left_by_crash.write_bytes(b"partial")
    keep = [out / "extra" / ".keep.tmp-9", out / "truth" / ".notes.txt.tmp-abc", out / ".mine.tmp-x"]
    for path in keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not the generator's")
    generate_cohort(out, params, workers=1, progress=False)
    assert is_complete(out) and not left_by_crash.exists()
    assert all(p.read_bytes() == b"not the generator's" for p in keep)


def test_synth_resumes_a_cohort_the_kit_made_before_folder_markers(tmp_path, monkeypatch):
    out, params = tmp_path / "old", SynthParams(patients=4, seed=3)
    _interrupted(out, params, monkeypatch)
    (out / ".cxrkit-synth").unlink()  # what an interrupted cohort of an earlier kit version looks like
    assert generate_cohort(out, params, workers=1, progress=False) == out and is_complete(out)
    fresh = generate_cohort(tmp_path / "fresh", params, workers=1, progress=False)
    assert _tree(out) == _tree(fresh)  # resumed bit-identically


def test_synth_keeps_using_its_own_home_folder_made_before_markers(tmp_path, monkeypatch):
    from cxrkit.paths import artifact_dir
    from cxrkit.profiles import get_profile
    from cxrkit.synth import cohort_for_profile

    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    profile = get_profile("smoke", patients=3)
    home = artifact_dir("cohorts", SynthParams.from_profile(profile).to_dict())
    (home / "truth").mkdir(parents=True)  # an earlier kit version stopped right after making the folder
    assert cohort_for_profile(profile, workers=1, progress=False) == home and is_complete(home)


# ---------------------------------------------------------------------------------------------- synth: interrupts
def _start_synth(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "cohort"
    env = {**os.environ, "CXRKIT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cxrkit", "synth", "--out", str(out), "--profile", "smoke",
                             "--patients", "400", "--workers", "2", "--no-progress"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 90
    parts = out / "truth" / "parts"
    while not (parts.is_dir() and any(parts.iterdir())):  # the workers are writing patients
        assert proc.poll() is None, "synth ended before writing a patient"
        assert time.monotonic() < deadline, "synth wrote no patient within 90 s"
        time.sleep(0.1)
    return proc, out


def _as_in_a_terminal() -> None:
    """Give the child the default SIGINT disposition a terminal gives: a background job (``cmd &`` in a script, as
    CI or ``nohup`` may start pytest) inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _descendants(pid: int) -> list:
    psutil = pytest.importorskip("psutil")
    return psutil.Process(pid).children(recursive=True)


def test_ctrl_c_stops_synth_within_seconds_and_ends_its_workers(tmp_path):
    psutil = pytest.importorskip("psutil")
    proc, out = _start_synth(tmp_path)
    workers = _descendants(proc.pid)
    assert workers
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group gets SIGINT
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - start
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert took < 8, f"synth took {took:.1f} s to stop after Ctrl-C"
    assert not alive, f"workers still running after Ctrl-C: {[p.pid for p in alive]}"
    assert not is_complete(out)


def test_killing_synth_leaves_no_worker_running(tmp_path):
    psutil = pytest.importorskip("psutil")
    proc, _ = _start_synth(tmp_path)
    workers = _descendants(proc.pid)
    assert workers
    proc.kill()
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=8)
    for p in alive:  # do not leave them behind on a failing run
        p.kill()
    assert not alive, f"workers outlived the killed synth: {[p.pid for p in alive]}"


# ---------------------------------------------------------------------------------------------- prep
def _prep(root: Path, out: Path, *extra: str) -> int:
    return cli.main(["prep", "--dataset", "chexpert", "--root", str(root), "--out", str(out), "--size", "16",
                     "--workers", "1", *extra])


def test_prep_refuses_a_folder_holding_another_runs_files(tmp_path, capsys, monkeypatch):
    root = make_chexpert(tmp_path / "data")
    out = tmp_path / "results"
    out.mkdir()
    (out / "studies.csv").write_text("my,own\n1,2\n")
    (out / "splits.csv").write_text("hand,made\n")
    monkeypatch.setattr("cxrkit.prep.build_image_cache", lambda *a, **k: pytest.fail("cache built anyway"))
    assert _prep(root, out) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "studies.csv" in err and "Traceback" not in err
    assert (out / "studies.csv").read_text() == "my,own\n1,2\n" and (out / "splits.csv").read_text() == "hand,made\n"
    assert sorted(p.name for p in out.iterdir()) == ["splits.csv", "studies.csv"]


def test_prep_refuses_another_runs_output_and_resumes_its_own(tmp_path, capsys):
    root = make_chexpert(tmp_path / "data")
    out = tmp_path / "prepared"
    assert _prep(root, out) == 0
    first = (out / "studies.csv").read_bytes()
    assert _prep(root, out) == 0 and (out / "studies.csv").read_bytes() == first  # a rerun: same folder, same result
    capsys.readouterr()
    assert _prep(root, out, "--seed", "5") == 2  # another run's settings would replace this run's tables
    err = capsys.readouterr().err
    assert "another `prep` run" in err and "--overwrite" in err and str(out) in err
    assert (out / "studies.csv").read_bytes() == first
    assert _prep(root, out, "--seed", "5", "--overwrite") == 0
    (out / ".cxrkit-prep").unlink()  # a folder prep made before folder markers, same inputs: accepted
    assert _prep(root, out, "--seed", "5") == 0


def test_prepare_refuses_a_foreign_folder(tmp_path):
    from cxrkit import prep
    from cxrkit.outdir import OutputFolderError
    from cxrkit.profiles import get_profile

    out = tmp_path / "theirs"
    out.mkdir()
    (out / "studies.csv").write_text("x\n")
    params = get_profile("class", dataset="chexpert", data_root=str(make_chexpert(tmp_path / "data")), image_size=16)
    with pytest.raises(OutputFolderError, match="--overwrite"):
        prep.prepare(params, out=out, workers=1, progress=False)
    assert (out / "studies.csv").read_text() == "x\n"
    assert prep.prepare(params, out=out, workers=1, progress=False, overwrite=True).table.shape[0] == 4


@pytest.mark.parametrize("flag, value, expected", [
    ("--size", "0", "8 to 4096"), ("--size", "-5", "8 to 4096"), ("--size", "5000", "8 to 4096"),
    ("--workers", "0", "at least 1"), ("--workers", "-2", "at least 1"),
])
def test_prep_rejects_a_bad_size_or_worker_count_before_any_work(tmp_path, capsys, flag, value, expected):
    root = make_chexpert(tmp_path / "data")
    out = tmp_path / "out"
    args = ["prep", "--dataset", "chexpert", "--root", str(root), "--out", str(out), flag, value]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"{flag} {value}" in err and expected in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_prep_rejects_an_empty_root_never_reading_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(make_chexpert(tmp_path / "data"))  # the current folder is a valid dataset: still an error
    assert cli.main(["prep", "--dataset", "chexpert", "--root", "", "--out", str(tmp_path / "out")]) == 2
    assert "--root is empty" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert cli.main(["prep", "--dataset", "chexpert", "--root", str(tmp_path / "data"), "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err


def test_prep_detects_an_unwritable_out_before_building_the_cache(tmp_path, capsys, monkeypatch):
    root = make_chexpert(tmp_path / "data")
    monkeypatch.setattr("cxrkit.prep.build_image_cache", lambda *a, **k: pytest.fail("cache built anyway"))
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "prepared"):
        assert _prep(root, out) == 2
        err = capsys.readouterr().err
        assert str(out) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_prep_detects_a_read_only_out_before_building_the_cache(tmp_path, capsys, monkeypatch):
    root = make_chexpert(tmp_path / "data")
    monkeypatch.setattr("cxrkit.prep.build_image_cache", lambda *a, **k: pytest.fail("cache built anyway"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert _prep(root, locked / "prepared") == 2
        assert "cannot create the output folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------------------------- label
def test_label_never_replaces_an_existing_file_without_overwrite(tmp_path, capsys):
    from fixtures.real_trees import make_mimic_cxr

    reports = make_mimic_cxr(tmp_path / "m")
    out = tmp_path / "mine.csv"
    out.write_text("my precious table\n")
    assert cli.main(["label", str(reports), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_text() == "my precious table\n"
    assert cli.main(["label", str(reports), "--out", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("report_id,")


# ---------------------------------------------------------------------------------------------- student
def _student(out: Path, *extra: str) -> int:
    return cli.main(["student", "--only", "00,01", "--out", str(out), *extra])


def test_student_keeps_a_notebook_the_student_edited(tmp_path, capsys):
    out = tmp_path / "student"
    assert _student(out) == 0
    notebooks = sorted(out.glob("*.ipynb"))
    assert len(notebooks) == 2
    edited, untouched = notebooks[1], notebooks[0]
    nb = json.loads(edited.read_text())
    nb["cells"][0]["source"] = "my answers, three hours of work"
    edited.write_text(json.dumps(nb))
    mine = edited.read_bytes()
    untouched.write_bytes(untouched.read_bytes())  # saved unchanged: still the kit's copy
    capsys.readouterr()
    assert _student(out) == 0
    said = capsys.readouterr().out
    assert edited.read_bytes() == mine  # the student's work survives a re-run
    assert f"{edited}: kept" in said and "--overwrite" in said
    assert f"{untouched}: " in said and f"{untouched}: kept" not in said
    assert _student(out, "--overwrite") == 0
    assert edited.read_bytes() != mine and "student_version_of" in edited.read_text()


def test_student_refuses_a_folder_holding_other_files(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.docx").write_bytes(b"words")
    assert _student(out) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "chapter1.docx" in err
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.docx"]
    assert _student(out, "--overwrite") == 0
    assert (out / "chapter1.docx").read_bytes() == b"words" and len(list(out.glob("*.ipynb"))) == 2


def test_student_accepts_a_student_folder_made_before_markers(tmp_path, capsys):
    out = tmp_path / "student"
    assert _student(out) == 0
    (out / ".cxrkit-student").unlink()
    notebook = min(out.glob("*.ipynb"))
    nb = json.loads(notebook.read_text())
    nb["cells"][-1]["source"] = "x = 1  # mine"
    notebook.write_text(json.dumps(nb, indent=1))
    mine = notebook.read_bytes()
    capsys.readouterr()
    assert _student(out) == 0
    assert notebook.read_bytes() == mine and f"{notebook}: kept" in capsys.readouterr().out
