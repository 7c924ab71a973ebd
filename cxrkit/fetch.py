"""Download the one public dataset, IU X-ray (Open-i), with resumable transfers and SHA-256 checks: ``cxrkit fetch iu-xray DIR``.

Taught in notebook 01 (data preparation). Credentialed datasets (MIMIC-CXR, CheXpert …) are never
downloaded: their licences require each user to sign up, so the command explains where to get them.
Without a known checksum a download is refused unless one is supplied (``--sha256 FILE=HEX``) or
``--allow-unverified`` is given, which records the computed sha256 in ``DIR/SHA256SUMS``.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import re
import sys
import tarfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from cxrkit.datasets import list_datasets, load_manifest, root_env_var
from cxrkit.errors import CxrkitError

#: The datasets ``fetch`` may download (public, checksummed archives in their manifest).
FETCHABLE: tuple[str, ...] = ("iu-xray",)
CHUNK = 1 << 16


class FetchError(CxrkitError):
    """A download was refused, interrupted, or failed its checksum; the message says which and what to do (notebook 01)."""


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks (notebook 01)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_other(name: str) -> FetchError:
    if name not in list_datasets():
        return FetchError(f"unknown dataset {name!r}; cxrkit can download only {list(FETCHABLE)}")
    if name == "synthetic":
        return FetchError("the synthetic cohort is generated on your machine, not downloaded: run `cxrkit synth`")
    manifest = load_manifest(name)
    access = " ".join(str(manifest.get("access", "")).split())
    return FetchError(
        f"{name} cannot be downloaded by cxrkit ({access}). Obtain it from {manifest['source']['url']} under its "
        f"terms, then pass its folder as root= or set {root_env_var(name)}."
    )


def _select(download: dict[str, Any], archives: Iterable[str] | None) -> list[dict[str, Any]]:
    known = {a["key"]: a for a in download["archives"]}
    by_file = {a["file"]: a for a in download["archives"]}
    wanted = list(download.get("default", known)) if archives is None else list(archives)
    chosen = []
    for item in wanted:
        archive = known.get(item) or by_file.get(item)
        if archive is None:
            raise FetchError(f"unknown archive {item!r}; choose from {sorted(known)} or {sorted(by_file)}")
        chosen.append(dict(archive))
    return chosen


def _url(archive: dict[str, Any], base_url: str | None) -> str:
    url = base_url.rstrip("/") + "/" + archive["file"] if base_url else archive["url"]
    if urlparse(url).scheme not in {"http", "https"}:
        raise FetchError(f"refusing to fetch {url!r}: only http(s) URLs are allowed")
    return url


def _progress_bar(enabled: bool, total: int | None, initial: int, name: str) -> Any:
    if not enabled:
        return None

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)


def _download(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range from its current size); raise :class:`FetchError` if cut short."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "cxrkit-fetch", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the partial file is complete
            return
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError) as err:
        raise FetchError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        if offset and response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise FetchError(f"{url}: server answered the resume request with range {response.headers.get('Content-Range')!r}; "
                                 f"delete {part} and run again")
        else:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        bar = _progress_bar(progress, total, offset, part.name.removesuffix(".part"))
        written = offset
        try:
            with open(part, "ab" if offset else "wb") as out:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as err:
            raise FetchError(f"download of {url} was interrupted after {written} of {total or '?'} bytes ({type(err).__name__}); "
                             f"{part} was kept: run the same command again to resume") from None
        finally:
            if bar is not None:
                bar.close()
    if total is not None and written < total:
        raise FetchError(f"download of {url} was interrupted after {written} of {total} bytes; "
                         f"{part} was kept: run the same command again to resume")


def _record(dest: Path, file: str, digest: str) -> None:
    sums = dest / "SHA256SUMS"
    lines = [ln for ln in (sums.read_text().splitlines() if sums.exists() else []) if not ln.endswith(f"  {file}")]
    sums.write_text("\n".join([*lines, f"{digest}  {file}"]) + "\n")
    print(f"unverified download: sha256 of {file} is {digest} (recorded in {sums}); put it in data_manifests/iu-xray.yaml",
          file=sys.stderr)


def _extract(archive: Path, dest: Path, digest: str) -> None:
    marker = dest / f".{archive.name}.extracted"
    if marker.exists() and marker.read_text().strip() == digest:
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths, '..', links out of dest, devices
    except (tarfile.TarError, OSError) as err:
        raise FetchError(f"cannot extract {archive}: {err}") from None
    marker.write_text(digest + "\n")


def fetch_dataset(
    name: str,
    dest: str | Path,
    *,
    base_url: str | None = None,
    archives: Iterable[str] | None = None,
    progress: bool = True,
    sha256: Mapping[str, str] | None = None,
    allow_unverified: bool = False,
    extract: bool = True,
    timeout: float = 60.0,
) -> list[Path]:
    """Download (resuming ``.part`` files), SHA-256-check and unpack the public IU X-ray archives into ``dest``; returns the archive paths (notebook 01)."""
    if name not in FETCHABLE:
        raise _refuse_other(name)

    chosen = _select(load_manifest(name)["download"], archives)
    overrides = {k: v.lower() for k, v in (sha256 or {}).items()}
    for archive in chosen:  # refuse before fetching anything
        archive["sha256"] = overrides.get(archive["file"]) or overrides.get(archive["key"]) or archive.get("sha256")
        if not archive["sha256"] and not allow_unverified:
            raise FetchError(f"no sha256 is known for {archive['file']} (data_manifests/{name}.yaml has null): pass "
                             f"--sha256 {archive['file']}=HEX, or --allow-unverified to download it and record its checksum")
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    for archive in chosen:
        final, part, expected = dest / archive["file"], dest / (archive["file"] + ".part"), archive["sha256"]
        if final.exists():
            digest = sha256_of(final)
            if expected and digest != expected:
                warnings.warn(f"{final} does not match its sha256; it is downloaded again", stacklevel=2)
                final.unlink()
        if not final.exists():
            _download(_url(archive, base_url), part, timeout=timeout, progress=progress)
            digest = sha256_of(part)
            if expected and digest != expected:
                part.unlink()
                raise FetchError(f"checksum mismatch for {archive['file']}: expected sha256 {expected}, got {digest}; "
                                 f"the partial download {part.name} was deleted")
            part.replace(final)
        if not expected:
            _record(dest, archive["file"], digest)
        if extract:
            _extract(final, dest, digest)
        fetched.append(final)
    return fetched


def _parse_sha(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        file, sep, digest = value.partition("=")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise FetchError(f"--sha256 expects FILE=HEX with 64 hex digits, got {value!r}")
        out[file] = digest
    return out


def _run(args: argparse.Namespace) -> int:
    if not str(args.dest).strip():  # Path("") would be the current folder
        print("cxrkit fetch: the destination folder is empty (\"\"); give the folder to download into", file=sys.stderr)
        return 2
    try:
        paths = fetch_dataset(args.dataset, args.dest, base_url=args.base_url, archives=args.archive or None,
                              progress=not args.quiet, sha256=_parse_sha(args.sha256 or []),
                              allow_unverified=args.allow_unverified, extract=not args.no_extract)
    except FetchError as err:
        print(f"cxrkit fetch: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cxrkit fetch DATASET DIR [--base-url URL]`` to the command line (notebook 01 shows it)."""
    parser = subparsers.add_parser("fetch", help="download the public IU X-ray archives (resumable, SHA-256 checked)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="dataset name; only 'iu-xray' is downloadable")
    parser.add_argument("dest", help="folder to download and unpack into (then: load_study_table('iu-xray', DIR))")
    parser.add_argument("--base-url", default=None, help="a mirror folder holding the archives (default: the manifest's URLs)")
    parser.add_argument("--archive", action="append", help="archive key or file name (repeatable; default: reports and png)")
    parser.add_argument("--sha256", action="append", metavar="FILE=HEX", help="expected checksum of an archive (repeatable)")
    parser.add_argument("--allow-unverified", action="store_true", help="accept archives without a known checksum and record theirs")
    parser.add_argument("--no-extract", action="store_true", help="download only; do not unpack")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
