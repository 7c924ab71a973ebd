"""Reports that are not UTF-8 (#17, item 9): read as Windows-1252/Latin-1 with a warning naming the file, never dropped."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from cxrkit.errors import ReportParseError
from cxrkit.io import reports
from cxrkit.io.reports import read_mimic_report

ROOT = Path(__file__).resolve().parents[1]


def test_a_windows_1252_report_is_read_with_a_warning_naming_it(tmp_path):
    path = tmp_path / "s1.txt"
    path.write_bytes(" FINDINGS: Patient\x92s heart is enlarged, caf\xe9.\n IMPRESSION: Cardiomegaly.\n".encode("latin-1"))
    with pytest.warns(reports.ReportEncodingWarning, match=r"s1\.txt: not UTF-8 \(byte 18.*read as Windows-1252"):
        sections = read_mimic_report(path)
    assert sections["impression"] == "Cardiomegaly."
    assert sections["findings"] == "Patient\u2019s heart is enlarged, caf\u00e9."


def test_bytes_undefined_in_windows_1252_fall_back_to_latin_1():
    text, note = reports.decode_report_bytes(b"IMPRESSION: clear\x81 lungs.")
    assert text == "IMPRESSION: clear\x81 lungs." and note is not None and "Latin-1" in note


def test_utf8_reports_decode_as_before_without_a_warning(tmp_path):
    path = tmp_path / "s2.txt"
    path.write_text(" IMPRESSION: Caf\u00e9\u2019s pleural effusion.\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_mimic_report(path)["impression"] == "Caf\u00e9\u2019s pleural effusion."
    assert reports.decode_report_bytes("é".encode()) == ("é", None)


def test_binary_and_empty_files_are_still_refused(tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage \x81\x82")
    with pytest.raises(ReportParseError, match="NUL bytes"):
        read_mimic_report(binary)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \xa0\n")  # only a Latin-1 no-break space
    with pytest.raises(ReportParseError, match="empty"):
        read_mimic_report(blank)


def test_cxrkit_label_keeps_a_latin_1_report_and_names_it_on_stderr(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "s1.txt").write_bytes(" IMPRESSION:  Cardiomegaly, na\xefve read.\n".encode("latin-1"))
    (folder / "s2.txt").write_text(" IMPRESSION:  Large right pneumothorax.\n")
    out = tmp_path / "labels.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CXRKIT_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", "import sys; from cxrkit.cli import main; sys.exit(main(sys.argv[1:]))",
                           "label", str(folder), "--out", str(out)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "s1.txt" in done.stderr and "Windows-1252" in done.stderr and "ReportEncodingWarning" in done.stderr
    table = pd.read_csv(out, dtype={"report_id": str}).set_index("report_id")
    assert list(table.index) == ["s1", "s2"] and table.loc["s1", "Cardiomegaly"] == 1.0
