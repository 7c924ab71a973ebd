"""Write a rendered film as a valid, compressed DICOM file with pydicom (notebook 01, data prep).

MONOCHROME1 films store the inverted pixels (minimum is white) with the window or VOI LUT inverted to
match, so a reader that applies the VOI transform and then inverts MONOCHROME1 once sees exactly the
same display as for the MONOCHROME2 version. UIDs are derived from the seed and the ids (no clock, no uuid4).
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from cxrkit.synth.course import StudyPlan
from cxrkit.synth.render import MAX_STORED, Film
from cxrkit.synth.rle import rle_encode_frame

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
#: Root under which the synthetic UIDs are generated (pydicom's registered example root).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def synthetic_uid(seed: int, *parts: Any) -> str:
    """Return a deterministic DICOM UID derived from the seed and ``parts`` (notebook 01, data prep)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=["cxrkit-synth", str(seed), *map(str, parts)])


def _dicom_time(t: float) -> str:
    whole = int(t)
    ms = int(round((t - whole) * 1000))
    return f"{whole:06d}.{ms:03d}"


def voi_lut(center: float, width: float) -> tuple[int, np.ndarray]:
    """Return (first mapped value, 12-bit LUT) giving a gently sigmoid display over the window (notebook 01)."""
    first = int(max(0, center - 0.55 * width))
    last = int(min(MAX_STORED, center + 0.55 * width))
    x = np.arange(first, last + 1, dtype=np.float64)
    y = 1.0 / (1.0 + np.exp(-(x - center) / (width / 5.0)))
    y = (y - y[0]) / (y[-1] - y[0])
    return first, np.rint(y * MAX_STORED).astype(np.uint16)


def build_dataset(film: Film, study: StudyPlan, seed: int, transfer_syntax: str = "rle",
                  pixel_spacing: float = 1.3) -> Dataset:
    """Build the DICOM dataset of one film: patient/study/series tags, pixels, contrast (notebook 01, data prep)."""
    img = study.image
    mono1 = img["photometric"] == "MONOCHROME1"
    modality = img["modality"]
    sop_class = CR_STORAGE if modality == "CR" else DX_STORAGE
    study_uid = synthetic_uid(seed, "study", study.study_id)
    series_uid = synthetic_uid(seed, "series", study.study_id, study.dicom_id)
    sop_uid = synthetic_uid(seed, "image", study.dicom_id)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "CXRKIT_SYNTH"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _dicom_time(study.time)
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "cxrkit synthetic"
    ds.InstitutionName = f"Synthetic Site {study.site}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CHEST (PORTABLE AP)" if study.view == "AP" else "CHEST (PA)"
    ds.SeriesDescription = "CHEST " + study.view
    ds.PatientName = f"SYNTHETIC^PATIENT{study.subject_id}"
    ds.PatientID = f"SYN{study.subject_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = study.sex
    ds.PatientAge = f"{min(study.age, 999):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = study.view
    ds.PatientOrientation = ["L", "F"]  # conventional display: patient right on image left
    ds.ImagerPixelSpacing = [f"{pixel_spacing:.4f}", f"{pixel_spacing:.4f}"]
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = str(study.study_id)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    pixels = film.pixels
    center, width = film.window
    if mono1:
        pixels = (MAX_STORED - pixels.astype(np.int32)).astype(np.uint16)
    ds.set_pixel_data(pixels, img["photometric"], 12, generate_instance_uid=False)
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = sop_uid
    if modality == "CR" and (study.study_id % 2 == 0):
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
    if modality == "DX":
        ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    if img["voi"] == "lut":
        first, lut = voi_lut(center, width)
        if mono1:  # index the LUT by inverted stored values and invert its output: display is unchanged
            first = MAX_STORED - (first + len(lut) - 1)
            lut = (MAX_STORED - lut[::-1].astype(np.int32)).astype(np.uint16)
        item = Dataset()
        item.LUTDescriptor = [len(lut), first, 12]
        item.LUTExplanation = "SYNTHETIC SOFT S-CURVE"
        item.add_new(0x00283006, "US", lut.tolist())  # LUTData as US so every reader decodes it
        ds.VOILUTSequence = Sequence([item])
    else:
        c = (MAX_STORED + 1 - center) if mono1 else center
        if study.study_id % 3 == 0:  # some films carry a second, softer window
            ds.WindowCenter = [f"{c:.1f}", f"{c:.1f}"]
            ds.WindowWidth = [f"{width:.1f}", f"{width * 1.3:.1f}"]
            ds.WindowCenterWidthExplanation = ["NORMAL", "SOFT"]
        else:
            ds.WindowCenter = f"{c:.1f}"
            ds.WindowWidth = f"{width:.1f}"
    if transfer_syntax == "rle":
        ds.PixelData = encapsulate([rle_encode_frame(pixels)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = RLELossless
    elif transfer_syntax == "deflate":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    """Serialise a dataset as a DICOM Part 10 file (preamble, meta, data) (notebook 01, data prep)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
