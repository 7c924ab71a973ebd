"""Generate the synthetic cohort on disk, laid out exactly like MIMIC-CXR, in parallel and resumably (notebook 01).

Layout under the cohort root::

    files/pXX/p<subject>/s<study>/<dicom_id>.dcm   one frontal film per study
    files/pXX/p<subject>/s<study>.txt              the study's report
    mimic-cxr-2.0.0-metadata.csv.gz                the real column order
    .cxrkit-synth                                  the folder's owner (cxrkit.outdir): a later run may resume here
    truth/                                         generator truth; models never read it
        studies.csv images.csv report_misses.csv BBox_List_2017.csv params.json COMPLETE
        masks/<dicom_id>.npz                       one boolean array per present finding
        parts/<index>.json                         per-patient records (what resume trusts)

Every file is written under a temporary name tagged ``.cxrkit-synth-tmp-`` and renamed into place; a
patient counts as done only once its part record exists, and the cohort only once ``truth/COMPLETE``
exists, so an interrupted run leaves nothing a later run trusts. Each patient draws from its own seeded generator, so the
bytes do not depend on the number of workers.
"""
from __future__ import annotations

import ctypes
import gzip
import io
import json
import os
import re
import signal
import sys
import threading
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrkit.atomic import write_bytes
from cxrkit.errors import CxrkitError
from cxrkit.labels import CHEXPERT_LABELS
from cxrkit.outdir import claim_folder, is_adopted
from cxrkit.paths import artifact_dir, cxrkit_home, params_key
from cxrkit.synth.course import draw_ids, patient_rngs, sample_patient, study_row
from cxrkit.synth.dicom_writer import build_dataset, dicom_bytes
from cxrkit.synth.params import SynthParams
from cxrkit.synth.render import render_study
from cxrkit.synth.reports import format_report, openi_xml, report_sections

METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
IMAGE_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "view", "site", "photometric", "modality", "voi", "has_chest_tube",
    "devices", "marker_side", "marker_style", "portable_text", "ecg_leads", "sickness", "ctr", "rows", "columns",
    "noise_dn",
)
COMPLETE = "COMPLETE"
OWNER = "synth"  # the cohort folder's marker: ``.cxrkit-synth`` (cxrkit.outdir)
_TMP = ".cxrkit-synth-tmp-"  # the generator's own temporaries: ``.<name>.cxrkit-synth-tmp-<pid>``
#: temporaries of kit versions before the tag (``.<name>.tmp-<pid>``); removed only in a folder the kit made itself
_LEGACY_TMP = re.compile(r"^\..+\.tmp-\d+$")
#: the folders below the cohort root that the generator writes into (cleanup looks nowhere else)
_OWN_SUBTREES = ("files", "truth", "openi")


# ---------------------------------------------------------------------------- deterministic, atomic writers
def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling tagged as the generator's and rename it over ``path`` (notebook 01, data prep)."""
    write_bytes(path, data, tag=f"{_TMP}{os.getpid()}")


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` reproducibly (mtime 0, no file name) (notebook 01, data prep)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Return a compressed ``.npz`` with fixed zip timestamps, readable by ``np.load`` (notebook 01, data prep)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


def csv_bytes(df: pd.DataFrame) -> bytes:
    """Serialise a table as CSV with Unix newlines (notebook 01, data prep)."""
    return df.to_csv(index=False, lineterminator="\n").encode()


def study_time_text(t: float) -> str:
    """Format a study time as MIMIC's float HHMMSS.fff without leading zeros (``80556.875``) (notebook 01)."""
    s = f"{t:.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


# ---------------------------------------------------------------------------- one patient
def study_dir(root: Path, subject_id: int, study_id: int) -> Path:
    """Return ``files/pXX/p<subject>/s<study>`` under ``root`` (notebook 01, data prep)."""
    pfolder = f"p{subject_id}"
    return root / "files" / pfolder[:3] / pfolder / f"s{study_id}"


def _part_path(root: Path, index: int) -> Path:
    return root / "truth" / "parts" / f"{index:06d}.json"


def _write_patient(root: str, params_dict: dict[str, Any], index: int, subject_id: int, study_ids: list[int]) -> int:
    """Render and write one patient's films, reports and masks, then its part record (the resume checkpoint)."""
    out = Path(root)
    params = SynthParams.from_dict(params_dict)
    patient = sample_patient(params, index, subject_id, np.asarray(study_ids))
    _, render_rng = patient_rngs(params.seed, index)
    report_rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(index, 7)))
    record: dict[str, list] = {"studies": [], "images": [], "metadata": [], "boxes": [], "misses": []}
    n = params.image_size
    for study in patient.studies:
        film = render_study(patient, study, params, render_rng)
        spacing = round(430.0 / n * float(render_rng.uniform(0.95, 1.05)), 4)
        ds = build_dataset(film, study, params.seed, params.transfer_syntax, pixel_spacing=spacing)
        sdir = study_dir(out, study.subject_id, study.study_id)
        atomic_write(sdir / f"{study.dicom_id}.dcm", dicom_bytes(ds))
        sections = report_sections(study, report_rng)
        atomic_write(sdir.with_name(sdir.name + ".txt"), format_report(sections).encode())
        if params.write_openi:
            number = index * 4 + study.index + 1
            atomic_write(out / "openi" / "ecgen-radiology" / f"{number}.xml", openi_xml(study, sections, number))
        atomic_write(out / "truth" / "masks" / f"{study.dicom_id}.npz", npz_bytes(film.masks))
        desc = "CHEST (PORTABLE AP)" if study.view == "AP" else "CHEST (PA)"
        orient = ("Erect" if study.view == "PA" else str(render_rng.choice(["Recumbent", "Erect", ""])))
        record["metadata"].append([study.dicom_id, study.subject_id, study.study_id, desc, study.view, n, n,
                                   study.date, study_time_text(study.time), desc,
                                   "antero-posterior" if study.view == "AP" else "postero-anterior", orient])
        record["studies"].append(study_row(patient, study))
        img = study.image
        record["images"].append([study.dicom_id, study.subject_id, study.study_id, study.view, study.site,
                                 img["photometric"], img["modality"], img["voi"],
                                 int(any(d.startswith("chest_tube") for d in study.devices)), "|".join(study.devices),
                                 img["marker_side"], img["marker_style"], int(bool(img["portable_text"])), int(bool(img["ecg_leads"])),
                                 round(study.sickness, 4), round(film.style["ctr"], 4), n, n,
                                 round(film.style["noise_dn"], 3)])
        for label, (x, y, w, h) in film.boxes:
            record["boxes"].append([f"{study.dicom_id}.dcm", label, x, y, w, h])
        for name, f in study.findings.items():
            if f.missed:
                record["misses"].append([study.subject_id, study.study_id, name])
    atomic_write(_part_path(out, index), json.dumps(record, sort_keys=True).encode())
    return len(patient.studies)


def _worker_init(parent_pid: int) -> None:
    """Pool initializer: leave Ctrl-C to the parent, and end this worker as soon as the parent process dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cancels the work and ends the pool
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """Fallback off Linux: poll the parent's pid and end the worker once it is gone."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _run_pool(root: str, pdict: dict[str, Any], chunks: list, workers: int, bar: Any) -> None:
    """Write the chunks in worker processes; on Ctrl-C or an error cancel the queued chunks and end the workers now."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        futures = [pool.submit(_write_chunk, root, pdict, chunk) for chunk in chunks]
        for fut in as_completed(futures):
            bar.update(fut.result())
    except BaseException:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # a half-written patient leaves only tagged temporaries; resume redoes it
        for proc in procs:
            proc.join(timeout=5)
        raise
    pool.shutdown(wait=True)


def _write_chunk(root: str, params_dict: dict[str, Any], jobs: list[tuple[int, int, list[int]]]) -> int:
    for i, s, st in jobs:
        _write_patient(root, params_dict, i, s, st)
    return len(jobs)


# ---------------------------------------------------------------------------- the cohort
def is_complete(out_dir: str | Path) -> bool:
    """Return whether a cohort folder holds a finished cohort (its completion marker exists) (notebook 01)."""
    return (Path(out_dir) / "truth" / COMPLETE).exists()


def _clean_temporaries(root: Path, legacy: bool) -> None:
    """Delete the temporaries an interrupted run left: the generator's tagged ones, in the folders it writes.

    ``legacy``: also the untagged ``.<name>.tmp-<pid>`` of older kit versions (only in a folder the kit made itself).
    """
    def ours(p: Path) -> bool:
        return p.is_file() and (_TMP in p.name or (legacy and _LEGACY_TMP.match(p.name) is not None))

    candidates = [p for p in root.iterdir() if p.name.startswith(".")]
    for sub in _OWN_SUBTREES:
        if (root / sub).is_dir():
            candidates += (root / sub).rglob(".*")
    for p in candidates:
        if ours(p):
            p.unlink(missing_ok=True)


def _is_kit_cohort(folder: Path) -> bool:
    """A cohort folder the kit generated before folder markers: its ``truth/params.json``, or its keyed home folder."""
    if (folder / "truth" / "params.json").is_file():
        return True

    return folder.resolve().parent == (cxrkit_home() / "cohorts").resolve()  # CXRKIT_HOME/cohorts/<key>


def generate_cohort(out_dir: str | Path, params: SynthParams | None = None, workers: int | None = None,
                    progress: bool = True, overwrite: bool = False) -> Path:
    """Write the synthetic cohort under ``out_dir`` (MIMIC-CXR layout + truth), resuming unfinished work (notebook 01).

    ``out_dir`` must be missing, empty, or a cohort folder the kit made; ``overwrite`` lets the generator write
    its files into a folder holding other data (nothing else there is deleted).
    """
    params = params or SynthParams()
    root = Path(out_dir)
    truth = root / "truth"
    pdict = params.to_dict()
    pjson = truth / "params.json"
    if pjson.exists():
        try:
            old = json.loads(pjson.read_text())
        except (OSError, ValueError) as err:
            raise CxrkitError(f"{pjson} is not a cohort's parameter record ({err}); choose another folder") from err
        if old != pdict:
            raise CxrkitError(f"{root} holds a cohort made with other parameters ({pjson}); choose another folder "
                              "(--overwrite never mixes two cohorts in one folder)")
        if is_complete(root):
            return root
    claim_folder(root, OWNER, overwrite, legacy=_is_kit_cohort)
    truth.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(root, legacy=not is_adopted(root, OWNER))
    atomic_write(pjson, json.dumps(pdict, indent=2, sort_keys=True).encode() + b"\n")
    subjects, study_ids = draw_ids(params)
    todo = [(i, int(subjects[i]), [int(s) for s in study_ids[i]]) for i in range(params.patients)
            if not _part_path(root, i).exists()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = _progress(total=params.patients, initial=params.patients - len(todo), enabled=progress)
    try:
        if workers == 1:
            for job in todo:
                _write_patient(str(root), pdict, *job)
                bar.update(1)
        else:
            size = max(1, min(16, len(todo) // (workers * 8) or 1))
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            _run_pool(str(root), pdict, chunks, workers, bar)
    finally:
        bar.close()
    _assemble(root, params)
    atomic_write(truth / COMPLETE, json.dumps({"params_key": params_key(pdict), "patients": params.patients}).encode())
    return root


def _progress(total: int, initial: int, enabled: bool):
    return tqdm(total=total, initial=initial, disable=not enabled, desc="synthetic patients", unit="patient")


def _assemble(root: Path, params: SynthParams) -> None:
    """Join the per-patient records into the cohort-wide CSVs, in patient order (independent of workers)."""
    parts = [json.loads(_part_path(root, i).read_text()) for i in range(params.patients)]
    rows = lambda key: [r for p in parts for r in p[key]]  # noqa: E731
    meta = pd.DataFrame(rows("metadata"), columns=list(METADATA_COLUMNS))
    atomic_write(root / "mimic-cxr-2.0.0-metadata.csv.gz", gzip_bytes(csv_bytes(meta)))
    studies = pd.DataFrame(rows("studies"))
    studies = studies[["subject_id", "study_id", "study_index", "site", "sex", "age", "view", "story", "sickness",
                       *CHEXPERT_LABELS]]
    atomic_write(root / "truth" / "studies.csv", csv_bytes(studies))
    atomic_write(root / "truth" / "images.csv", csv_bytes(pd.DataFrame(rows("images"), columns=list(IMAGE_COLUMNS))))
    misses = pd.DataFrame(rows("misses"), columns=["subject_id", "study_id", "finding"])
    atomic_write(root / "truth" / "report_misses.csv", csv_bytes(misses))
    lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    lines += [f"{name},{label},{x},{y},{w},{h}" for name, label, x, y, w, h in rows("boxes")]
    atomic_write(root / "truth" / "BBox_List_2017.csv", ("\n".join(lines) + "\n").encode())


def cohort_for_profile(profile: dict[str, Any], workers: int | None = None, progress: bool = True) -> Path:
    """Return the cohort for a profile under ``CXRKIT_HOME/cohorts/<key>``, generating it when missing (notebook 01)."""
    params = SynthParams.from_profile(profile)
    out = artifact_dir("cohorts", params.to_dict())
    if not is_complete(out):
        generate_cohort(out, params, workers=workers, progress=progress)
    return out
