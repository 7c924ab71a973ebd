"""End-to-end checks of a tiny synthetic cohort on disk: layout, DICOM validity, truth, reports, determinism, resume."""
from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxrkit.errors import CxrkitError
from cxrkit.labels import RENDERED_FINDINGS, label_slug
from cxrkit.synth import SynthParams, display_array, gallery_figure, generate_cohort, is_complete
from cxrkit.synth import cohort as cohort_mod
from cxrkit.synth.course import patient_rngs, sample_plans
from cxrkit.synth.dicom_writer import build_dataset, dicom_bytes
from cxrkit.synth.render import render_study
from cxrkit.synth.rle import rle_encode_frame

PARAMS = SynthParams(patients=10, seed=7)
DICOM_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return generate_cohort(tmp_path_factory.mktemp("one") / "cohort", PARAMS, workers=1, progress=False)


@pytest.fixture(scope="module")
def truth(cohort):
    studies = pd.read_csv(cohort / "truth" / "studies.csv")
    images = pd.read_csv(cohort / "truth" / "images.csv")
    misses = pd.read_csv(cohort / "truth" / "report_misses.csv")
    return studies, images, misses


def _dcm_path(root: Path, row) -> Path:
    pf = f"p{int(row.subject_id)}"
    return root / "files" / pf[:3] / pf / f"s{int(row.study_id)}" / f"{row.dicom_id}.dcm"


def test_identical_bytes_with_other_worker_count(cohort, tmp_path):
    other = generate_cohort(tmp_path / "two", PARAMS, workers=2, progress=False)
    assert _hashes(other) == _hashes(cohort)


def test_layout_like_mimic(cohort, truth):
    studies, images, _ = truth
    assert is_complete(cohort)
    meta = pd.read_csv(cohort / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
    assert list(meta.columns) == list(cohort_mod.METADATA_COLUMNS)
    assert len(meta) == len(images) == len(studies) >= PARAMS.patients
    for row in meta.itertuples():
        assert DICOM_ID.match(row.dicom_id)
        assert re.fullmatch(r"1\d{7}", row.subject_id) and re.fullmatch(r"5\d{7}", row.study_id)
        assert re.fullmatch(r"2[1-2]\d{6}", row.StudyDate)
        assert re.fullmatch(r"[1-9]\d{0,5}\.\d{1,3}", row.StudyTime)
        assert row.ViewPosition in ("PA", "AP")
        assert row.ViewCodeSequence_CodeMeaning == ("antero-posterior" if row.ViewPosition == "AP" else "postero-anterior")
        assert _dcm_path(cohort, row).exists()
        pf = f"p{row.subject_id}"
        assert (cohort / "files" / pf[:3] / pf / f"s{row.study_id}.txt").exists()
    # study ids are random, not chronological
    order = studies.sort_values(["subject_id", "study_index"]).groupby("subject_id")["study_id"].apply(list)
    assert any(ids != sorted(ids) for ids in order if len(ids) > 1) or not any(len(i) > 1 for i in order)
    with gzip.open(cohort / "mimic-cxr-2.0.0-metadata.csv.gz") as fh:
        assert fh.read(9) == b"dicom_id,"
    assert json.loads((cohort / "truth" / "params.json").read_text()) == PARAMS.to_dict()


def test_bbox_file_in_nih_format(cohort, truth):
    _, images, _ = truth
    lines = (cohort / "truth" / "BBox_List_2017.csv").read_text().splitlines()
    assert lines[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    for line in lines[1:]:
        name, label, x, y, w, h = line.split(",")
        assert name.endswith(".dcm") and name[:-4] in set(images.dicom_id)
        assert label in RENDERED_FINDINGS
        x, y, w, h = map(float, (x, y, w, h))
        assert 0 <= x < PARAMS.image_size and 0 <= y < PARAMS.image_size and w > 0 and h > 0


def test_every_dicom_reads_back_and_displays_a_chest(cohort, truth):
    _, images, _ = truth
    seen = set()
    for row in images.itertuples():
        ds = pydicom.dcmread(_dcm_path(cohort, row))
        arr = ds.pixel_array
        assert arr.shape == (PARAMS.image_size, PARAMS.image_size) and arr.dtype == np.uint16
        assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and arr.max() <= 4095
        assert ds.Modality in ("CR", "DX") and ds.Modality == row.modality
        assert ds.PhotometricInterpretation == row.photometric
        assert ds.ViewPosition == row.view
        assert ds.InstitutionName == f"Synthetic Site {row.site}"
        assert "SYNTHETIC" in str(ds.PatientName) and ds.PatientID.startswith("SYN")
        assert ds.StudyDate.startswith("2") and int(ds.StudyDate[:4]) >= 2100
        assert len(ds.ImagerPixelSpacing) == 2 and ds.PatientSex in ("M", "F") and ds.PatientAge.endswith("Y")
        assert ("VOILUTSequence" in ds) == (row.voi == "lut")
        assert ("WindowCenter" in ds) == (row.voi == "window")
        seen.add((ds.PhotometricInterpretation, ds.file_meta.TransferSyntaxUID.name))
        img = display_array(_dcm_path(cohort, row))
        n = img.shape[0]
        heart = img[int(0.45 * n) : int(0.6 * n), int(0.45 * n) : int(0.55 * n)].mean()
        lungs = np.r_[img[int(0.3 * n) : int(0.45 * n), int(0.2 * n) : int(0.3 * n)].ravel(),
                      img[int(0.3 * n) : int(0.45 * n), int(0.7 * n) : int(0.8 * n)].ravel()].mean()
        assert heart > lungs + 0.15, (row.dicom_id, heart, lungs)  # white mediastinum, dark lungs, whatever the storage
        assert img[: n // 20, n // 2 - 5 : n // 2 + 5].mean() > img[: n // 20, :4].mean()  # neck brighter than air
    assert {p for p, _ in seen} == {"MONOCHROME1", "MONOCHROME2"}
    assert {t for _, t in seen} == {"RLE Lossless"}


@pytest.mark.parametrize("voi", ["window", "lut"])
def test_monochrome1_displays_like_monochrome2(voi):
    params = SynthParams(patients=2, seed=1)
    patient = sample_plans(params)[0]
    study = patient.studies[0]
    film = render_study(patient, study, params, patient_rngs(params.seed, 0)[1])
    shown, raw = {}, {}
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        s = copy.deepcopy(study)
        s.image.update(photometric=photometric, voi=voi)
        ds = pydicom.dcmread(io.BytesIO(dicom_bytes(build_dataset(film, s, params.seed))))
        raw[photometric] = ds.pixel_array.astype(np.int32)
        shown[photometric] = display_array(io.BytesIO(dicom_bytes(build_dataset(film, s, params.seed))))
    assert np.array_equal(raw["MONOCHROME1"], 4095 - raw["MONOCHROME2"])  # stored inverted ...
    assert np.abs(shown["MONOCHROME1"] - shown["MONOCHROME2"]).max() < 1.5 / 4095  # ... displayed identically


def test_rle_encoder_round_trips_through_pydicom():
    from pydicom.pixels.decoders.rle import _rle_decode_frame

    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 4096, (37, 53)), np.full((16, 300), 7), np.zeros((5, 129)),
             np.repeat(rng.integers(0, 4096, (9, 40)), 7, axis=1)]
    case = np.full((4, 260), 3)
    case[:, 128] = 9  # runs split at the packet limit
    cases.append(case)
    for arr in cases:
        arr = arr.astype(np.uint16)
        out = _rle_decode_frame(rle_encode_frame(arr), arr.shape[0], arr.shape[1], 1, 16)
        assert np.array_equal(np.frombuffer(out, "<u2").reshape(arr.shape), arr)


KEYWORDS = {
    "Pleural Effusion": [r"pleural effusion"], "Pneumothorax": [r"pneumothorax"], "Consolidation": [r"consolidation"],
    "Pneumonia": [r"pneumonia"], "Atelectasis": [r"atelectasis"], "Edema": [r"edema"],
    "Lung Lesion": [r"\bnodule\b", r"\bmass\b"], "Cardiomegaly": [r"cardiomegaly", r"enlarged heart"],
    "Enlarged Cardiomediastinum": [r"mediastinum is widened", r"widened mediastinum", r"widening of the mediastinum",
                                   r"mediastinal widening"],
    "Fracture": [r"fracture"], "Support Devices": [r"\btubes?\b", r"central (venous )?line", r"pacemaker"],
}
NEGATED = re.compile(r"^(no|there is no) |without|has resolved|has been removed")


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"\n ([A-Z][A-Z ]+):", "\n" + text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_reports_have_mimic_sections(cohort, truth):
    studies, _, _ = truth
    for row in studies.itertuples():
        pf = f"p{row.subject_id}"
        text = (cohort / "files" / pf[:3] / pf / f"s{row.study_id}.txt").read_text()
        lines = text.split("\n")[:-1]
        assert lines[0].strip() == "FINAL REPORT" and lines[0].startswith(" " * 20)
        assert all(line.startswith(" ") and len(line) <= 79 for line in lines)
        heads = list(_sections(text))
        assert heads[:6] == ["EXAMINATION", "INDICATION", "TECHNIQUE", "COMPARISON", "FINDINGS", "IMPRESSION"]
        assert "___" in _sections(text)["INDICATION"]
        sec = _sections(text)
        assert sec["FINDINGS"].strip() and sec["IMPRESSION"].strip()
        assert ("None." in sec["COMPARISON"]) == (row.study_index == 0)


def test_report_mentions_match_masks_except_recorded_misses(cohort, truth):
    studies, images, misses = truth
    missed = set(zip(misses.study_id, misses.finding))
    checked = 0
    for _, row in studies.merge(images[["study_id", "dicom_id"]], on="study_id").iterrows():
        pf = f"p{row.subject_id}"
        sec = _sections((cohort / "files" / pf[:3] / pf / f"s{row.study_id}.txt").read_text())
        text = " ".join((sec["FINDINGS"] + " " + sec["IMPRESSION"]).lower().split())
        sentences = [s.strip() for s in re.split(r"(?<=[.:;])\s+|\d\.\s", text) if s.strip()]
        with np.load(cohort / "truth" / "masks" / f"{row.dicom_id}.npz") as z:
            in_mask = set(z.files)
            assert all(z[k].dtype == bool and z[k].any() for k in z.files)
        for name in RENDERED_FINDINGS:
            present = bool(row[name])
            assert (label_slug(name) in in_mask) == present, (row.study_id, name)
            mentioned = any(re.search(k, s) and not NEGATED.search(s) for s in sentences for k in KEYWORDS[name])
            if present and (row.study_id, name) not in missed:
                assert mentioned, (row.study_id, name, text)
                checked += 1
            elif not present or (row.study_id, name) in missed:
                assert not mentioned, (row.study_id, name, text)
    assert checked > 5


def test_resume_after_interrupted_run(cohort, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    real = cohort_mod._write_patient
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            (out / "files").mkdir(parents=True, exist_ok=True)
            (out / "files" / ".half-written.dcm.tmp-999").write_bytes(b"partial")  # what a crash leaves behind
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort_mod, "_write_patient", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(out, PARAMS, workers=1, progress=False)
    assert not is_complete(out)
    assert len(list((out / "truth" / "parts").iterdir())) == 3
    monkeypatch.setattr(cohort_mod, "_write_patient", real)
    done = {"n": 0}

    def counting(*args, **kwargs):
        done["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort_mod, "_write_patient", counting)
    generate_cohort(out, PARAMS, workers=1, progress=False)
    assert done["n"] == PARAMS.patients - 3  # finished patients were skipped
    assert _hashes(out) == _hashes(cohort)
    generate_cohort(out, PARAMS, workers=1, progress=False)  # a finished cohort is left alone
    assert done["n"] == PARAMS.patients - 3
    with pytest.raises(CxrkitError):
        generate_cohort(out, SynthParams(patients=10, seed=8), workers=1, progress=False)


def test_gallery_figure_has_toggleable_outlines(cohort):
    fig = gallery_figure(cohort)
    images = [t for t in fig.data if t.type == "image"]
    outlines = [t for t in fig.data if t.type == "scatter"]
    assert len(images) == len(outlines) >= 3
    assert sum(bool(t.showlegend) for t in outlines) == 1
    buttons = fig.layout.updatemenus[0].buttons
    hide = buttons[1].args[0]["visible"]
    assert [v for v, t in zip(hide, fig.data) if t.type == "scatter"] == [False] * len(outlines)
    assert all(v for v, t in zip(hide, fig.data) if t.type == "image")


def test_cli_and_profile_entry_points(tmp_path, monkeypatch):
    from cxrkit.cli import main
    from cxrkit.paths import artifact_dir
    from cxrkit.profiles import get_profile
    from cxrkit.synth import cohort_for_profile

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--patients", "3", "--seed", "1", "--workers", "1", "--no-progress",
                 "--no-confounders"]) == 0
    assert is_complete(out)
    saved = json.loads((out / "truth" / "params.json").read_text())
    assert (saved["patients"], saved["seed"], saved["confounders"]) == (3, 1, False)
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    profile = get_profile("smoke", patients=3)
    root = cohort_for_profile(profile, workers=1, progress=False)
    assert root == artifact_dir("cohorts", SynthParams.from_profile(profile).to_dict()) and is_complete(root)
    stamp = (root / "truth" / "COMPLETE").stat().st_mtime_ns
    assert cohort_for_profile(profile, workers=1, progress=False) == root  # reused, not regenerated
    assert (root / "truth" / "COMPLETE").stat().st_mtime_ns == stamp


def test_openi_xml_reports(tmp_path):
    from defusedxml import ElementTree as DET

    root = generate_cohort(tmp_path / "openi", SynthParams(patients=3, seed=2, write_openi=True), workers=1,
                           progress=False)
    files = sorted((root / "openi" / "ecgen-radiology").glob("*.xml"))
    assert len(files) == len(pd.read_csv(root / "truth" / "studies.csv"))
    for f in files:
        doc = DET.parse(f).getroot()
        assert doc.tag == "eCitation" and doc.find("uId").get("id") == f"CXR{f.stem}"
        labels = [e.get("Label") for e in doc.iter("AbstractText")]
        assert labels == ["COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"]
        assert "___" not in "".join(e.text or "" for e in doc.iter("AbstractText"))
        assert doc.find("MeSH/major") is not None
        assert re.fullmatch(r"CXR\d+_IM-\d{4}-\d{4}", doc.find("parentImage").get("id"))


def test_boxes_and_masks_agree(cohort, truth):
    _, images, _ = truth
    boxes = pd.read_csv(cohort / "truth" / "BBox_List_2017.csv", header=None, skiprows=1,
                        names=["image", "label", "x", "y", "w", "h"])
    assert len(boxes) > 0
    for dicom_id in images.dicom_id:
        with np.load(cohort / "truth" / "masks" / f"{dicom_id}.npz") as z:
            masks = {k: z[k] for k in z.files}
        mine = boxes[boxes.image == f"{dicom_id}.dcm"]
        assert {label_slug(lab) for lab in mine.label} == set(masks)
        for b in mine.itertuples():
            m = masks[label_slug(b.label)]
            assert m.shape == (PARAMS.image_size, PARAMS.image_size)
            inside = m[b.y : b.y + b.h, b.x : b.x + b.w]
            assert inside.any() and inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
