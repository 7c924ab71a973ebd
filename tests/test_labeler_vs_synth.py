"""The rule labeler against the synthetic cohort's truth: F1 ≥ 0.95 for every rendered finding (issue: data prep).

The synthetic reports are generated without pixels here (fast). The truth the labeler is held to is what
the report says: the generator's findings minus the ones the report deliberately missed.
"""
import numpy as np
import pandas as pd
import pytest

from cxrkit.io.reports import labeling_text
from cxrkit.labeler import agreement_table, label_reports
from cxrkit.labels import RENDERED_FINDINGS
from cxrkit.synth import SynthParams, sample_plans
from cxrkit.synth.reports import report_sections


@pytest.fixture(scope="module")
def reports_and_truth():
    params = SynthParams(patients=400, seed=11)
    texts, reported, drawn = [], [], []
    rng = np.random.default_rng(0)
    for patient in sample_plans(params):
        for study in patient.studies:
            s = report_sections(study, rng)
            texts.append(labeling_text({"findings": s["FINDINGS"], "impression": s["IMPRESSION"]}))
            truth = study.labels()
            drawn.append(truth)
            reported.append({k: (0 if k in study.findings and study.findings[k].missed else v) for k, v in truth.items()})
    return label_reports(texts, progress=False), pd.DataFrame(reported), pd.DataFrame(drawn)


def test_labeler_f1_at_least_095_per_rendered_finding(reports_and_truth):
    predicted, reported, _ = reports_and_truth
    present = [f for f in RENDERED_FINDINGS if reported[f].sum() >= 10]
    assert len(present) == len(RENDERED_FINDINGS)  # every finding is exercised
    table = agreement_table(predicted[present], reported[present], uncertain_as_positive=True)
    low = table[table["f1"] < 0.95]
    assert low.empty, f"labeler F1 below 0.95:\n{low}"


def test_missed_findings_make_labels_noisier_than_the_labeler(reports_and_truth):
    predicted, reported, drawn = reports_and_truth
    vs_report = agreement_table(predicted[list(RENDERED_FINDINGS)], reported[list(RENDERED_FINDINGS)],
                                uncertain_as_positive=True)
    vs_film = agreement_table(predicted[list(RENDERED_FINDINGS)], drawn[list(RENDERED_FINDINGS)],
                              uncertain_as_positive=True)
    assert vs_film["recall"].mean() < vs_report["recall"].mean()
