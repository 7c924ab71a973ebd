"""The synthetic chest X-ray cohort: anatomy, findings with masks, reports, DICOM writers (notebook 01, data prep).

``generate_cohort(out_dir, SynthParams(...))`` writes a cohort laid out exactly like MIMIC-CXR (DICOM
films, reports, metadata) plus a ``truth/`` folder; ``cohort_for_profile(profile)`` is what the
notebooks call; ``sample_labels(params)`` draws the labels without pixels; ``gallery_figure`` shows
one film per finding with its mask outline.
"""
from __future__ import annotations

from cxrkit.synth.cohort import cohort_for_profile, generate_cohort, is_complete
from cxrkit.synth.course import sample_labels, sample_plans
from cxrkit.synth.gallery import display_array, gallery_figure, gallery_png
from cxrkit.synth.params import DEFAULT_PREVALENCE, SynthParams

__all__ = [
    "DEFAULT_PREVALENCE",
    "SynthParams",
    "cohort_for_profile",
    "display_array",
    "gallery_figure",
    "gallery_png",
    "generate_cohort",
    "is_complete",
    "sample_labels",
    "sample_plans",
]
