"""Labels-only checks of the synthetic cohort: prevalences, CheXpert label rules, confounders on and off."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cxrkit.labels import CHEXPERT_LABELS, RENDERED_FINDINGS
from cxrkit.synth import SynthParams, sample_labels

N_PATIENTS = 1500


@pytest.fixture(scope="module")
def labels_on():
    return sample_labels(SynthParams(patients=N_PATIENTS, seed=11))


@pytest.fixture(scope="module")
def labels_off():
    return sample_labels(SynthParams(patients=N_PATIENTS, seed=11, confounders=False))


def _tolerance(p: float, n: int, design_effect: float = 2.0) -> float:
    """Four standard errors of a proportion, inflated for repeated studies of one patient."""
    return 4.0 * math.sqrt(max(p * (1 - p), 1e-4) * design_effect / n)


@pytest.mark.parametrize("which", ["on", "off"])
def test_prevalences_match_parameters(which, labels_on, labels_off):
    df = labels_on if which == "on" else labels_off
    prev = SynthParams().prevalence
    for name in RENDERED_FINDINGS:
        observed = df[name].mean()
        if name == "Support Devices":  # chest tubes come on top of the device model
            assert observed >= prev[name] - _tolerance(prev[name], len(df)), name
            assert observed <= prev[name] + 0.06, name
        else:
            assert abs(observed - prev[name]) < _tolerance(prev[name], len(df)), (name, observed, prev[name])


def test_custom_prevalence_is_honoured():
    df = sample_labels(SynthParams(patients=800, seed=5, prevalence={"Pneumothorax": 0.3, "Fracture": 0.0}))
    assert abs(df["Pneumothorax"].mean() - 0.3) < _tolerance(0.3, len(df))
    assert df["Fracture"].sum() == 0


def test_label_rules(labels_on):
    df = labels_on
    assert set(df.columns) >= set(CHEXPERT_LABELS)
    assert df["Pleural Other"].eq(0).all()
    opacity = df[["Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion"]].max(axis=1)
    assert (df["Lung Opacity"] == opacity).all()
    others = df[[c for c in CHEXPERT_LABELS if c not in ("No Finding", "Support Devices")]].max(axis=1)
    assert (df["No Finding"] == 1 - others).all()
    # No Finding may coexist with support devices, as in CheXpert
    assert ((df["No Finding"] == 1) & (df["Support Devices"] == 1)).any()
    assert df.groupby("subject_id").size().between(1, 4).all()
    assert df["study_id"].is_unique and df["study_id"].between(50_000_000, 59_999_999).all()
    assert df["subject_id"].between(10_000_000, 19_999_999).all()


def test_findings_persist_resolve_and_appear(labels_on):
    df = labels_on.sort_values(["subject_id", "study_index"])
    nxt = df.groupby("subject_id")["Pleural Effusion"].shift(-1)
    pairs = df.assign(nxt=nxt).dropna(subset=["nxt"])
    persisted = ((pairs["Pleural Effusion"] == 1) & (pairs.nxt == 1)).sum()
    resolved = ((pairs["Pleural Effusion"] == 1) & (pairs.nxt == 0)).sum()
    appeared = ((pairs["Pleural Effusion"] == 0) & (pairs.nxt == 1)).sum()
    assert persisted > 0 and resolved > 0 and appeared > 0
    # persistence: a finding in one study makes it much likelier in the next
    assert pairs.loc[pairs["Pleural Effusion"] == 1, "nxt"].mean() > 2 * pairs.loc[pairs["Pleural Effusion"] == 0, "nxt"].mean()


def test_chest_tube_shortcut_on_and_off(labels_on, labels_off):
    on = labels_on.groupby("has_chest_tube")["Pneumothorax"].mean()
    assert on[1] > 0.3 and on[1] > 4 * on[0]
    off = labels_off.groupby("has_chest_tube")["Pneumothorax"].mean()
    assert labels_off["has_chest_tube"].sum() > 30
    assert abs(off[1] - off[0]) < 0.08


def test_chest_tube_follows_treated_pneumothorax(labels_on):
    df = labels_on.sort_values(["subject_id", "study_index"])
    prev_ptx = df.groupby("subject_id")["Pneumothorax"].shift(1)
    follow = df[prev_ptx == 1]
    assert len(follow) > 10
    assert follow["has_chest_tube"].mean() > 0.6  # "most follow-up films of treated pneumothorax"


def test_sick_portable_confounder(labels_on, labels_off):
    ap_on = labels_on["view"].eq("AP").astype(float)
    ap_off = labels_off["view"].eq("AP").astype(float)
    assert np.corrcoef(ap_on, labels_on["sickness"])[0, 1] > 0.2
    assert abs(np.corrcoef(ap_off, labels_off["sickness"])[0, 1]) < 0.08
    dev_on = np.corrcoef(labels_on["Support Devices"], labels_on["sickness"])[0, 1]
    dev_off = np.corrcoef(labels_off["Support Devices"], labels_off["sickness"])[0, 1]
    assert dev_on > 0.2 and abs(dev_off) < 0.08


def test_site_confounder(labels_on, labels_off):
    by_site = labels_on.groupby("site")["No Finding"].mean()
    assert by_site["B"] - by_site["A"] > 0.1  # Site A is sicker
    assert labels_on.groupby("site")["marker_style"].nunique().eq(1).all()
    assert labels_on["marker_style"].nunique() == 2
    off = labels_off.groupby("site")["No Finding"].mean()
    assert abs(off["B"] - off["A"]) < 0.06
    assert labels_off["marker_style"].nunique() == 1


def test_labels_are_deterministic():
    a = sample_labels(SynthParams(patients=50, seed=3))
    b = sample_labels(SynthParams(patients=50, seed=3))
    c = sample_labels(SynthParams(patients=50, seed=4))
    assert a.equals(b)
    assert not a.equals(c)


@pytest.mark.parametrize("bad", [{"patients": 0}, {"difficulty": 0}, {"image_size": 10}, {"transfer_syntax": "jpeg"},
                                 {"prevalence": {"Not A Finding": 0.1}}, {"prevalence": {"Edema": 1.5}}])
def test_params_are_validated(bad):
    with pytest.raises(ValueError):
        SynthParams(**bad)


def test_params_round_trip():
    p = SynthParams(patients=7, seed=2, difficulty=1.5, confounders=False)
    assert SynthParams.from_dict(p.to_dict()) == p
    q = SynthParams.from_profile({"patients": 9, "seed": 1, "difficulty": 1.0, "confounders": True, "image_size": 128})
    assert (q.patients, q.seed, q.image_size) == (9, 1, SynthParams().image_size)


def test_indication_names_only_the_known_history():
    """The requisition may name a prior or chronic finding, never one the clinician cannot know of yet."""
    from cxrkit.synth.course import sample_plans
    from cxrkit.synth.reports import _HISTORY_TEXT, indication, known_history

    plans = sample_plans(SynthParams(patients=300, seed=5))
    rng = np.random.default_rng(0)
    named_any, first_named = 0, 0
    for patient in plans:
        for study in patient.studies:
            text = indication(study, rng)
            named = {f for f, phrases in _HISTORY_TEXT.items() if any(p in text for p in phrases)}
            known = set(known_history(study))
            # "recent pneumonia" is written for Pneumonia and for Consolidation: either may be the known one
            shared = {"Pneumonia", "Consolidation"} if named & {"Pneumonia", "Consolidation"} & known else set()
            assert named <= known | shared, (text, known)
            named_any += bool(named)
            first_named += bool(named) and study.index == 0
            if study.index == 0:
                assert known <= set(study.findings), "a first film's history can only be a chronic present finding"
    assert named_any > 50 and first_named > 10  # the history is written often enough to carry signal


def test_chest_tube_rule_follows_its_parameters():
    """The drain rates and the drained size are SynthParams fields, and the generator obeys each of them."""
    base = dict(patients=800, seed=5)
    on_film = sample_labels(SynthParams(**base, chest_tube_on_ptx=1.0, chest_tube_after_ptx=0.0))
    ptx = on_film["Pneumothorax"] == 1
    assert ptx.sum() > 20 and on_film.loc[ptx, "has_chest_tube"].all()  # every pneumothorax film drained
    assert on_film.loc[~ptx, "has_chest_tube"].sum() == 0  # and no follow-up drains
    follow_only = sample_labels(SynthParams(**base, chest_tube_on_ptx=0.0, chest_tube_after_ptx=1.0))
    df = follow_only.sort_values(["subject_id", "study_index"])
    prev_ptx = df.groupby("subject_id")["Pneumothorax"].shift(1)
    assert df.loc[prev_ptx == 1, "has_chest_tube"].all()
    assert df.loc[prev_ptx != 1, "has_chest_tube"].sum() == 0
    none = sample_labels(SynthParams(**base, chest_tube_on_ptx=0.0, chest_tube_after_ptx=0.0))
    assert none["has_chest_tube"].sum() == 0


@pytest.mark.parametrize("name", ["chest_tube_on_ptx", "chest_tube_after_ptx", "drained_ptx_severity"])
def test_chest_tube_parameters_are_validated(name):
    with pytest.raises(ValueError, match=name):
        SynthParams(**{name: 1.5})
