"""``cxrkit fetch``: resumable, checksummed downloads from a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import argparse
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

import cxrkit.fetch as fetch
from cxrkit.fetch import FetchError, fetch_dataset, register
from fixtures.real_trees import IU_REPORTS, make_iu_xray, openi_xml, tgz_bytes


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with ``Range: bytes=N-`` support; names in ``server.drop_once`` are cut off half-way once."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        name = self.path.lstrip("/")
        self.server.requests.append((name, self.headers.get("Range")))
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start, requested = 0, self.headers.get("Range")
        if requested:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.server.drop_once:  # send half, then hang up
            self.server.drop_once.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.drop_once = {}, [], set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/collections/"
    httpd.files_under = lambda name: f"collections/{name}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any test that would open a non-loopback URL."""
    real = fetch.urlopen

    def guarded(request, *args, **kwargs):
        host = urlparse(request.full_url if hasattr(request, "full_url") else request).hostname
        assert host == "127.0.0.1", f"test tried to reach {host}"
        return real(request, *args, **kwargs)

    monkeypatch.setattr(fetch, "urlopen", guarded)


def reports_archive() -> bytes:
    members = {f"ecgen-radiology/{uid}.xml": openi_xml(uid, *spec).encode() for uid, spec in IU_REPORTS.items()}
    members["ecgen-radiology/padding.bin"] = hashlib.sha256(b"x").digest() * 4000  # make it a few chunks long
    return tgz_bytes(members)


def serve(server, name: str, data: bytes) -> str:
    server.files[server.files_under(name)] = data
    return hashlib.sha256(data).hexdigest()


def test_resume_after_dropped_connection(server, tmp_path):
    data = reports_archive()
    digest = serve(server, "NLMCXR_reports.tgz", data)
    server.drop_once.add(server.files_under("NLMCXR_reports.tgz"))
    kwargs = dict(base_url=server.url, archives=["reports"], progress=False, sha256={"NLMCXR_reports.tgz": digest})
    with pytest.raises(FetchError, match="interrupted.*run the same command again to resume"):
        fetch_dataset("iu-xray", tmp_path, **kwargs)
    part = tmp_path / "NLMCXR_reports.tgz.part"
    assert 0 < part.stat().st_size < len(data)
    half = part.stat().st_size
    paths = fetch_dataset("iu-xray", tmp_path, **kwargs)
    assert paths == [tmp_path / "NLMCXR_reports.tgz"]
    assert paths[0].read_bytes() == data and not part.exists()
    assert server.requests[-1] == ("collections/NLMCXR_reports.tgz", f"bytes={half}-")
    assert (tmp_path / "ecgen-radiology" / "2.xml").read_text().startswith("<?xml")
    count = len(server.requests)
    assert fetch_dataset("iu-xray", tmp_path, **kwargs) == paths  # complete and verified: nothing fetched again
    assert len(server.requests) == count


def test_checksum_mismatch_deletes_the_partial_and_says_so(server, tmp_path):
    serve(server, "NLMCXR_reports.tgz", reports_archive())
    with pytest.raises(FetchError, match=r"checksum mismatch for NLMCXR_reports\.tgz.*partial download NLMCXR_reports\.tgz\.part was deleted"):
        fetch_dataset("iu-xray", tmp_path, base_url=server.url, archives=["reports"], progress=False,
                      sha256={"reports": "0" * 64})
    assert not (tmp_path / "NLMCXR_reports.tgz.part").exists()
    assert not (tmp_path / "NLMCXR_reports.tgz").exists()
    assert not (tmp_path / "ecgen-radiology").exists()


def test_missing_checksum_is_refused_before_any_request(server, tmp_path):
    serve(server, "NLMCXR_reports.tgz", reports_archive())
    with pytest.raises(FetchError, match="no sha256 is known for NLMCXR_reports.tgz.*--allow-unverified"):
        fetch_dataset("iu-xray", tmp_path, base_url=server.url, archives=["reports"], progress=False)
    assert server.requests == []


def test_allow_unverified_records_the_checksum(server, tmp_path, capsys):
    digest = serve(server, "NLMCXR_reports.tgz", reports_archive())
    fetch_dataset("iu-xray", tmp_path, base_url=server.url, archives=["NLMCXR_reports.tgz"], progress=False,
                  allow_unverified=True, extract=False)
    assert (tmp_path / "SHA256SUMS").read_text() == f"{digest}  NLMCXR_reports.tgz\n"
    assert digest in capsys.readouterr().err
    assert not (tmp_path / "ecgen-radiology").exists()


@pytest.mark.parametrize("name,message", [
    ("mimic-cxr-jpg", "cannot be downloaded by cxrkit.*credentialed.*CXRKIT_MIMIC_CXR_JPG_ROOT"),
    ("mimic-cxr", "cannot be downloaded by cxrkit.*credentialed"),
    ("chexpert", "cannot be downloaded by cxrkit.*Research Use Agreement"),
    ("nih-cxr14", "cannot be downloaded by cxrkit"),
    ("synthetic", "cxrkit synth"),
    ("padchest", "unknown dataset 'padchest'"),
])
def test_other_datasets_are_never_fetched(server, tmp_path, name, message):
    with pytest.raises(FetchError, match=message):
        fetch_dataset(name, tmp_path / "dest", base_url=server.url, progress=False)
    assert server.requests == [] and not (tmp_path / "dest").exists()


def test_unknown_archive_and_bad_scheme(server, tmp_path):
    with pytest.raises(FetchError, match="unknown archive 'jpg'"):
        fetch_dataset("iu-xray", tmp_path, base_url=server.url, archives=["jpg"], progress=False)
    with pytest.raises(FetchError, match="only http"):
        fetch_dataset("iu-xray", tmp_path, base_url="file:///etc/", archives=["reports"], progress=False,
                      sha256={"reports": "0" * 64})


def test_archive_member_escaping_dest_is_refused(server, tmp_path):
    digest = serve(server, "NLMCXR_reports.tgz", tgz_bytes({"../escaped.txt": b"no"}))
    dest = tmp_path / "dest"
    with pytest.raises(FetchError, match="cannot extract"):
        fetch_dataset("iu-xray", dest, base_url=server.url, archives=["reports"], progress=False,
                      sha256={"reports": digest})
    assert not (tmp_path / "escaped.txt").exists()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cxrkit")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli(server, tmp_path, capsys):
    digest = serve(server, "NLMCXR_reports.tgz", reports_archive())
    code = cli(["fetch", "iu-xray", str(tmp_path), "--base-url", server.url, "--archive", "reports",
                "--sha256", f"NLMCXR_reports.tgz={digest}", "--quiet"])
    assert code == 0 and str(tmp_path / "NLMCXR_reports.tgz") in capsys.readouterr().out
    assert cli(["fetch", "mimic-cxr", str(tmp_path / "m")]) == 1
    assert "cannot be downloaded" in capsys.readouterr().err
    assert cli(["fetch", "iu-xray", str(tmp_path), "--sha256", "reports=xyz"]) == 1
    assert "64 hex digits" in capsys.readouterr().err


def test_fetched_archives_load_as_a_study_table(server, tmp_path):
    from cxrkit.datasets import load_study_table

    tree = make_iu_xray(tmp_path / "source")
    pngs = {p.name: p.read_bytes() for p in sorted(tree.glob("*.png"))}
    digests = {"reports": serve(server, "NLMCXR_reports.tgz", reports_archive()),
               "png": serve(server, "NLMCXR_png.tgz", tgz_bytes(pngs))}
    dest = tmp_path / "iu"
    paths = fetch_dataset("iu-xray", dest, base_url=server.url, progress=False, sha256=digests)
    assert [p.name for p in paths] == ["NLMCXR_reports.tgz", "NLMCXR_png.tgz"]
    table = load_study_table("iu-xray", dest)
    assert len(table) == sum(len(images) for *_, images in IU_REPORTS.values())
    assert table["image_path"].str.startswith(str(dest.resolve())).all()
