"""Notebook 01's coded exercises: the MONOCHROME1 inversion and finding patients that cross splits."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from cxrkit.exercises import Case, exercise
from cxrkit.io.dicom import dicom_to_display
from cxrkit.prep import patients_in_several_splits

NOTEBOOK = "01_data_prep"


def _display_cases() -> Iterator[Case]:
    rng = np.random.default_rng(1)
    film = rng.integers(0, 4096, (6, 5)).astype(np.uint16)
    yield Case((film, "MONOCHROME2"), description="a MONOCHROME2 film: scale only")
    yield Case((film, "MONOCHROME1"), description="a MONOCHROME1 film: scale, then invert once")
    yield Case((np.array([[100, 300], [200, 500]], dtype=np.int16), "MONOCHROME1"),
               description="signed stored values that do not start at 0")


@exercise("nb01_display_values", NOTEBOOK, _display_cases,
          hint="scale with (x - min) / (max - min), then return 1 - scaled when photometric == 'MONOCHROME1'")
def display_values(pixels: np.ndarray, photometric: str) -> np.ndarray:
    """Reference: min–max scale stored pixels to [0, 1] and invert a MONOCHROME1 film once (notebook 01, exercise)."""
    ds = Dataset()  # the kit's display pipeline on a header-less film: no LUT, no window → min–max
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(np.issubdtype(pixels.dtype, np.signedinteger))
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.int16 if ds.PixelRepresentation else np.uint16)).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return dicom_to_display(ds, "<exercise film>").astype(float)


def _split_cases() -> Iterator[Case]:
    clean = pd.DataFrame({"subject_id": ["p1", "p1", "p2", "p3", "p3"],
                          "split": ["train", "train", "test", "validate", "validate"]})
    yield Case((clean,), description="a patient-disjoint split: nobody crosses")
    leaky = pd.DataFrame({"subject_id": ["p1", "p1", "p2", "p3", "p3", "p3", "p4"],
                          "split": ["train", "test", "test", "train", "validate", "test", "train"]})
    yield Case((leaky,), description="two patients have films in several splits")
    numeric = pd.DataFrame({"subject_id": [10, 10, 2, 2, 7], "split": ["test", "train", "train", "train", "test"]})
    yield Case((numeric,), description="numeric subject ids, returned as strings")


@exercise("nb01_leaky_patients", NOTEBOOK, _split_cases,
          hint="group the rows by subject_id (as strings) and keep those with more than one distinct split; sort them")
def leaky_patients(table: pd.DataFrame) -> list[str]:
    """Reference: the sorted subject ids (as strings) whose films fall in more than one split (notebook 01, exercise)."""
    return sorted(patients_in_several_splits(table).index.astype(str))
