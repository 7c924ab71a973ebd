"""The DICOM header cache (cxrkit.datasets.headers): read once per unchanged file, never kept when unreadable."""
from __future__ import annotations

import json
import os

import pytest

import cxrkit.datasets.headers as headers
from fixtures.real_trees import write_dicom


@pytest.fixture()
def films(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    paths = [tmp_path / "data" / f"p{i}" / f"{i}.dcm" for i in range(3)]
    for i, path in enumerate(paths):
        write_dicom(path, i, view="AP" if i else "PA", sex="F", age="071Y")
    return paths


def _counting(monkeypatch):
    read = []
    real = headers.dicom_header_fields
    monkeypatch.setattr(headers, "dicom_header_fields", lambda p: read.append(p) or real(p))
    return read


def test_unchanged_files_are_read_once_and_give_the_same_fields(films, monkeypatch):
    read = _counting(monkeypatch)
    first = headers.read_dicom_headers(films)
    assert len(read) == 3 and first[films[1]]["view"] == "AP" and first[films[0]]["sex"] == "F"
    again = headers.read_dicom_headers(films)
    assert len(read) == 3 and again == first  # all from the cache, equal values and types (tuples stay tuples)
    cache = headers.header_cache_file(films)
    assert cache.is_file() and cache.parent.name == headers.HEADER_CACHE
    assert [p.name for p in films[0].parent.iterdir()] == [films[0].name]  # nothing written beside the data


def test_a_changed_file_is_read_again(films, monkeypatch):
    headers.read_dicom_headers(films)
    write_dicom(films[2], 2, view="PA", sex="M", age="030Y")
    stat = films[2].stat()
    os.utime(films[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    read = _counting(monkeypatch)
    fields = headers.read_dicom_headers(films)
    assert read == [films[2]] and fields[films[2]]["view"] == "PA" and fields[films[2]]["sex"] == "M"


def test_an_unreadable_file_warns_every_time_and_is_never_kept(films):
    films[1].write_bytes(b"\x00" * 64 + b"not a dicom file")
    for _ in range(2):
        with pytest.warns(UserWarning, match="1 DICOM header"):
            fields = headers.read_dicom_headers(films)
        assert films[1] not in fields and len(fields) == 2
    kept = json.loads(headers.header_cache_file(films).read_text())
    assert str(films[1].resolve()) not in kept


def test_a_broken_cache_file_is_read_past(films, monkeypatch):
    first = headers.read_dicom_headers(films)
    headers.header_cache_file(films).write_text("{ half written")
    read = _counting(monkeypatch)
    assert headers.read_dicom_headers(films) == first and len(read) == 3
