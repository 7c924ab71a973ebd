"""The rule labeler, stage by stage: mentions, cues and their scopes, aggregation, speed, agreement."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cxrkit.labeler import (Labeler, agreement_table, classify_mention, find_mentions, label_report, label_reports,
                            split_sentences)
from cxrkit.labels import CHEXPERT_LABELS


def values(text: str) -> dict[str, list[float]]:
    """Observation → the classified values of its mentions in ``text``."""
    out: dict[str, list[float]] = {}
    for mention in find_mentions(text):
        out.setdefault(mention.observation, []).append(classify_mention(mention))
    return out


def one(text: str, observation: str) -> float:
    """The single mention of ``observation`` in ``text``, classified."""
    got = values(text).get(observation)
    assert got is not None and len(got) == 1, f"expected one {observation} mention in {text!r}, got {values(text)}"
    return got[0]


# ---------------------------------------------------------------------------------------- stage 1

def test_find_mentions_reports_observation_span_and_sentence():
    text = "Heart size is normal. Moderate right pleural effusion."
    mentions = [m for m in find_mentions(text) if m.observation == "Pleural Effusion"]
    assert len(mentions) == 1
    m = mentions[0]
    assert text[m.span[0]:m.span[1]] == "pleural effusion" == m.text
    assert m.sentence == "Moderate right pleural effusion."


@pytest.mark.parametrize("text, observation", [
    ("Moderate right pleural effusion.", "Pleural Effusion"), ("Small bilateral effusions.", "Pleural Effusion"),
    ("Blunting of the left costophrenic angle.", "Pleural Effusion"),
    ("Small left apical pneumothorax.", "Pneumothorax"), ("Right lower lobe pneumonia.", "Pneumonia"),
    ("Enlarged cardiac silhouette.", "Cardiomegaly"), ("Cardiomegaly.", "Cardiomegaly"),
    ("Widened mediastinum.", "Enlarged Cardiomediastinum"),
    ("Endotracheal tube terminates 4 cm above the carina.", "Support Devices"),
    ("Right chest tube.", "Support Devices"), ("Left-sided pacemaker.", "Support Devices"),
    ("Right PICC line ends in the SVC.", "Support Devices"),
    ("Displaced fracture of the left sixth rib.", "Fracture"), ("Pulmonary nodule.", "Lung Lesion"),
    ("Right hilar mass.", "Lung Lesion"), ("Plate-like atelectasis.", "Atelectasis"),
    ("Platelike atelectasis.", "Atelectasis"), ("Pulmonary edema.", "Edema"), ("Vascular congestion.", "Edema"),
    ("Consolidation.", "Consolidation"), ("Patchy opacities.", "Lung Opacity"),
    ("Left apical pleural thickening.", "Pleural Other"),
])
def test_mentions_of_each_observation_are_positive(text, observation):
    assert one(text, observation) == 1.0
    assert label_report(text)[observation] == 1.0


def test_unmention_cancels_an_overlapping_mention():
    assert "Pleural Effusion" not in values("Small pericardial effusion.")
    assert values("Small pericardial effusion and small pleural effusion.")["Pleural Effusion"] == [1.0]
    assert "Lung Lesion" not in values("No mass effect.")
    assert "Cardiomegaly" not in values("History of heart failure.")  # "heart" is not a heart-size mention here


def test_split_sentences():
    text = "No effusion. Heart size 1.5 cm? Yes!\n\nNew line here"
    assert [text[s:e] for s, e in split_sentences(text)] == ["No effusion.", "Heart size 1.5 cm?", "Yes!", "New line here"]


# ---------------------------------------------------------------------------------------- negation

@pytest.mark.parametrize("text, observation, cue", [
    ("No pneumothorax.", "Pneumothorax", "no"),
    ("Without pneumothorax.", "Pneumothorax", "without"),
    ("Pneumothorax is absent.", "Pneumothorax", "absent"),
    ("Negative for pneumonia.", "Pneumonia", "negative for"),
    ("No evidence of pneumonia.", "Pneumonia", "no evidence of"),
    ("Lungs are free of consolidation.", "Consolidation", "free of"),
    ("Lungs are clear of consolidation.", "Consolidation", "clear of"),
    ("The right pleural effusion has resolved.", "Pleural Effusion", "resolved"),
    ("The chest tube has been removed.", "Support Devices", "removed"),
    ("Normal heart size.", "Cardiomegaly", "normal"),
    ("Heart size is normal.", "Cardiomegaly", "normal"),
    ("Unremarkable cardiomediastinal silhouette.", "Enlarged Cardiomediastinum", "unremarkable"),
    ("The cardiomediastinal silhouette is unremarkable.", "Enlarged Cardiomediastinum", "unremarkable"),
    ("Heart size is within normal limits.", "Cardiomegaly", "within normal limits"),
    ("Interval removal of the NG tube.", "Support Devices", "interval removal of"),
    ("Pneumothorax is no longer seen.", "Pneumothorax", "no longer"),
    ("The heart is not enlarged.", "Cardiomegaly", "not"),
    ("Heart size is top normal.", "Cardiomegaly", "top normal"),
])
def test_each_negation_cue(text, observation, cue):
    mention = next(m for m in find_mentions(text) if m.observation == observation)
    assert classify_mention(mention) == 0.0
    assert mention.cue == cue and mention.rule.startswith("negation")


def test_negation_spreads_over_a_list():
    got = values("No focal consolidation, effusion or pneumothorax.")
    assert got == {"Consolidation": [0.0], "Pleural Effusion": [0.0], "Pneumothorax": [0.0]}
    long = values("No evidence of pleural effusion, pneumothorax, focal consolidation, or pulmonary edema.")
    assert all(v == [0.0] for v in long.values()) and len(long) == 4
    assert values("Effusion and pneumothorax have resolved.") == {"Pleural Effusion": [0.0], "Pneumothorax": [0.0]}
    assert values("Cardiac, mediastinal and hilar contours are normal.") == {
        "Cardiomegaly": [0.0], "Enlarged Cardiomediastinum": [0.0]}


# ---------------------------------------------------------------------------------------- uncertainty

@pytest.mark.parametrize("text, observation, cue", [
    ("Possible pneumonia.", "Pneumonia", "possible"),
    ("Probable atelectasis.", "Atelectasis", "probable"),
    ("Questionable nodule.", "Lung Lesion", "questionable"),
    ("Suspicious for mass.", "Lung Lesion", "suspicious for"),
    ("Findings may represent pneumonia.", "Pneumonia", "may represent"),
    ("Findings might represent edema.", "Edema", "might represent"),
    ("This could represent atelectasis.", "Atelectasis", "could represent"),
    ("Compatible with pneumonia.", "Pneumonia", "compatible with"),
    ("Atelectasis versus pneumonia.", "Pneumonia", "versus"),
    ("Borderline cardiomegaly.", "Cardiomegaly", "borderline"),
    ("Concerning for pneumonia.", "Pneumonia", "concerning for"),
])
def test_each_uncertainty_cue_before(text, observation, cue):
    mention = next(m for m in find_mentions(text) if m.observation == observation)
    assert classify_mention(mention) == -1.0
    assert mention.cue == cue and mention.rule.endswith("(pre)")


@pytest.mark.parametrize("text, observation, cue", [
    ("Pneumonia is possible.", "Pneumonia", "is possible"),
    ("Pneumonia cannot be excluded.", "Pneumonia", "cannot be excluded"),
    ("Pneumonia is not excluded.", "Pneumonia", "is not excluded"),
    ("Atelectasis versus pneumonia.", "Atelectasis", "versus"),
    ("Pneumonia?", "Pneumonia", "?"),
    ("Heart size is borderline.", "Cardiomegaly", "borderline"),
    ("Atelectasis is likely.", "Atelectasis", "is likely"),
])
def test_each_uncertainty_cue_after(text, observation, cue):
    mention = next(m for m in find_mentions(text) if m.observation == observation)
    assert classify_mention(mention) == -1.0
    assert mention.cue == cue and mention.rule.endswith("(post)")


@pytest.mark.parametrize("text, observation, cue", [
    ("Cannot exclude early pneumonia.", "Pneumonia", "cannot exclude"),
    ("Cannot rule out pneumothorax.", "Pneumothorax", "cannot rule out"),
    ("Pneumothorax is not excluded.", "Pneumothorax", "is not excluded"),
    ("No new consolidation.", "Consolidation", "no new"),
    ("Pneumothorax cannot be entirely excluded.", "Pneumothorax", "cannot be entirely excluded"),
])
def test_uncertainty_before_negation_wins_over_the_negation_inside_it(text, observation, cue):
    mention = next(m for m in find_mentions(text) if m.observation == observation)
    assert classify_mention(mention) == -1.0
    assert mention.cue == cue and mention.rule.startswith("uncertain_before_negation")


def test_negation_is_checked_before_uncertainty():
    mention = next(m for m in find_mentions("No findings to suggest pneumonia.") if m.observation == "Pneumonia")
    assert classify_mention(mention) == 0.0 and mention.cue == "no"
    assert one("No consolidation concerning for pneumonia.", "Pneumonia") == 0.0


def test_heart_size_stable_or_unchanged_is_blank_but_stable_cardiomegaly_is_positive():
    # stability is not uncertainty (more cases in test_labeler_real_reports.py)
    assert math.isnan(one("Heart size is stable.", "Cardiomegaly"))
    assert math.isnan(one("Heart size unchanged.", "Cardiomegaly"))
    assert math.isnan(one("No change in heart size.", "Cardiomegaly"))
    assert one("Stable mild cardiomegaly.", "Cardiomegaly") == 1.0
    assert one("The heart is mildly enlarged.", "Cardiomegaly") == 1.0
    assert one("Stable small right pleural effusion.", "Pleural Effusion") == 1.0


def test_neutral_mention_without_an_asserting_word_is_not_counted():
    mention = find_mentions("Heart size is difficult to assess.")[0]
    assert math.isnan(classify_mention(mention))
    assert math.isnan(label_report("Heart size is difficult to assess.")["Cardiomegaly"])


def test_pseudo_negation_does_not_negate():
    assert one("No change in the large right pleural effusion.", "Pleural Effusion") == 1.0
    assert one("ET tube in normal position.", "Support Devices") == 1.0


# ---------------------------------------------------------------------------------------- scope

def test_scope_stops_at_but_and_however_and_semicolon():
    assert values("No pneumothorax, but there is a small left effusion.")["Pleural Effusion"] == [1.0]
    assert values("No effusion; however, there is consolidation.")["Consolidation"] == [1.0]
    assert values("No effusion; consolidation.")["Consolidation"] == [1.0]


def test_scope_stops_at_sentence_end():
    assert values("No effusion. Pneumothorax.") == {"Pleural Effusion": [0.0], "Pneumothorax": [1.0]}
    assert values("Pneumothorax. Possible effusion.")["Pneumothorax"] == [1.0]


def test_scope_stops_at_a_new_clause_after_a_conjunction():
    got = values("There is no pneumothorax and there is a large left pleural effusion.")
    assert got == {"Pneumothorax": [0.0], "Pleural Effusion": [1.0]}
    got = values("Mild cardiomegaly and the pleural effusion is resolved.")
    assert got == {"Cardiomegaly": [1.0], "Pleural Effusion": [0.0]}
    assert values("Normal heart size with small bilateral effusions.") == {
        "Cardiomegaly": [0.0], "Pleural Effusion": [1.0]}


def test_or_continues_a_negated_list_but_a_local_cue_does_not_cross_a_comma():
    assert values("There is no pneumothorax or large pleural effusion.") == {
        "Pneumothorax": [0.0], "Pleural Effusion": [0.0]}
    assert values("Normal heart size, small bilateral effusions.")["Pleural Effusion"] == [1.0]
    assert values("Heart size is normal, bilateral effusions.")["Pleural Effusion"] == [1.0]


def test_scope_window_is_limited():
    far = "No acute osseous abnormality is seen in the visualized thoracic spine, effusion."
    assert values(far)["Pleural Effusion"] == [1.0]
    near = "No large left pleural effusion."
    assert values(near)["Pleural Effusion"] == [0.0]


def test_post_uncertainty_does_not_reach_an_earlier_finding_across_a_comma():
    assert values("Opacity, likely atelectasis.") == {"Lung Opacity": [1.0], "Atelectasis": [-1.0]}


# ---------------------------------------------------------------------------------------- aggregation

def test_aggregation_positive_beats_uncertain_beats_negative():
    assert label_report("No effusion. Possible effusion. Small effusion.")["Pleural Effusion"] == 1.0
    assert label_report("No effusion. Possible effusion.")["Pleural Effusion"] == -1.0
    assert label_report("No effusion. Effusion has resolved.")["Pleural Effusion"] == 0.0
    assert math.isnan(label_report("No effusion.")["Pneumothorax"])


def test_heart_failure_adds_uncertain_cardiomegaly():
    assert label_report("Findings consistent with CHF.")["Cardiomegaly"] == -1.0
    assert label_report("Mild congestive heart failure.")["Cardiomegaly"] == -1.0
    assert label_report("Possible heart failure.")["Cardiomegaly"] == -1.0
    assert label_report("CHF with cardiomegaly.")["Cardiomegaly"] == 1.0
    assert label_report("Heart size normal, with congestive heart failure.")["Cardiomegaly"] == -1.0
    assert math.isnan(label_report("No evidence of CHF.")["Cardiomegaly"])


def test_no_finding_rule():
    normal = label_report("No acute cardiopulmonary process. No effusion or pneumothorax.")
    assert normal["No Finding"] == 1.0 and normal["Pleural Effusion"] == 0.0
    devices = label_report("Endotracheal tube in standard position. No pneumothorax.")
    assert devices["No Finding"] == 1.0 and devices["Support Devices"] == 1.0
    assert math.isnan(label_report("Small left effusion.")["No Finding"])
    assert math.isnan(label_report("Possible small left effusion.")["No Finding"])
    assert math.isnan(label_report("Old healed rib fracture.")["No Finding"])


def test_empty_text_is_all_nan():
    assert all(math.isnan(v) for v in label_report("   ").values())


def test_label_report_keys_and_values():
    labels = label_report("Moderate right pleural effusion. No pneumothorax. Cannot exclude early pneumonia.")
    assert list(labels) == list(CHEXPERT_LABELS)
    assert labels["Pleural Effusion"] == 1.0 and labels["Pneumothorax"] == 0.0 and labels["Pneumonia"] == -1.0


def test_synthetic_cohort_style_report():
    text = ("Enlarged cardiac silhouette / cardiomegaly. Widened mediastinum. Endotracheal tube terminates 5 cm "
            "above the carina. Right chest tube. Left-sided pacemaker. Displaced fracture of the left sixth rib. "
            "Pulmonary nodule in the left upper lobe. Plate-like atelectasis at the right base. Mild pulmonary edema. "
            "Consolidation in the left lower lobe. Moderate right pleural effusion. No pneumothorax.")
    labels = label_report(text)
    for name in ("Cardiomegaly", "Enlarged Cardiomediastinum", "Support Devices", "Fracture", "Lung Lesion",
                 "Atelectasis", "Edema", "Consolidation", "Pleural Effusion"):
        assert labels[name] == 1.0, name
    assert labels["Pneumothorax"] == 0.0 and math.isnan(labels["No Finding"])


def test_label_reports_frame():
    texts = pd.Series(["No pneumothorax.", None, "Small effusion."], index=[10, 11, 12])
    frame = label_reports(texts, progress=False)
    assert list(frame.columns) == list(CHEXPERT_LABELS) and list(frame.index) == [10, 11, 12]
    assert frame.loc[10, "Pneumothorax"] == 0.0 and frame.loc[12, "Pleural Effusion"] == 1.0
    assert frame.loc[11].isna().all()
    assert set(np.unique(frame.to_numpy()[~np.isnan(frame.to_numpy())])) <= {1.0, 0.0, -1.0}
    assert list(label_reports(["A", "B"], progress=False).index) == [0, 1]


# ---------------------------------------------------------------------------------------- agreement

def test_agreement_table():
    truth = pd.DataFrame({"Pleural Effusion": [1, 1, 0, np.nan, -1], "Pneumothorax": [0, 0, 0, 0, 0]}, dtype=float)
    pred = pd.DataFrame({"Pleural Effusion": [1, 0, 1, np.nan, -1], "Pneumothorax": [0, 0, 0, 0, 0]}, dtype=float)
    table = agreement_table(pred, truth)
    row = table.loc["Pleural Effusion"]
    assert (row["precision"], row["recall"], row["support"], row["predicted_positive"]) == (0.5, 0.5, 2, 2)
    assert row["f1"] == pytest.approx(0.5)
    assert math.isnan(table.loc["Pneumothorax", "precision"]) and table.loc["Pneumothorax", "support"] == 0
    u = agreement_table(pred, truth, uncertain_as_positive=True).loc["Pleural Effusion"]
    assert (u["precision"], u["recall"], u["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)


def test_agreement_table_matches_rows_by_index_and_checks_inputs():
    truth = pd.DataFrame({"Edema": [1.0, 0.0]}, index=["s2", "s1"])
    pred = pd.DataFrame({"Edema": [0.0, 1.0]}, index=["s1", "s2"])
    assert agreement_table(pred, truth).loc["Edema", "f1"] == 1.0
    with pytest.raises(ValueError, match="index"):
        agreement_table(pred, pd.DataFrame({"Edema": [1.0]}, index=["x"]))
    with pytest.raises(ValueError, match="label columns"):
        agreement_table(pred, pd.DataFrame({"Other": [1.0, 0.0]}, index=["s1", "s2"]))


# ---------------------------------------------------------------------------------------- configuration

def test_phrase_file_errors_are_clear():
    with pytest.raises(ValueError, match="quote"):
        Labeler({"cues": {"negation": {"pre": [False]}}})
    with pytest.raises(ValueError, match="not one of"):
        Labeler({"observations": {"Emphysema": {"mentions": ["emphysema"]}}})
    with pytest.raises(ValueError, match="unknown tier"):
        Labeler({"cues": {"maybe": {"pre": ["maybe"]}}})


def test_a_custom_labeler_uses_its_own_phrases():
    custom = Labeler({"cues": {"negation": {"pre": ["nope"]}},
                      "observations": {"Pneumothorax": {"mentions": ["ptx"]}}})
    assert custom.label_report("nope ptx.")["Pneumothorax"] == 0.0
    assert custom.label_report("ptx.")["Pneumothorax"] == 1.0
    assert math.isnan(custom.label_report("pneumothorax.")["Pneumothorax"])
