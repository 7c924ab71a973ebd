"""The labeler on real-report phrasing (issue 16): one test per error class, generalised over the class, not the sentence.

Classes: negation over coordinated lists whose items carry modifiers or are joined by slashes; mentions
the phrase lists missed; stability is not uncertainty; "upper limits of normal" is a normal size while
"borderline" is uncertain; a local
cue qualifies a list only as its adjective. The section policy is tested with the adapters
(tests/test_datasets_iu_views.py) and the MeSH evaluation in tests/test_labeler_eval.py.
"""
from __future__ import annotations

import itertools
import math

import pytest

from cxrkit.labeler import Labeler, classify_mention, find_mentions, label_report

NEGATIONS = ["No", "There is no", "No evidence of", "Without", "Negative for", "No radiographic evidence of"]
MODIFIERS = ["large", "small", "lobar", "suspicious", "moderate-sized", "sizable", "trace", "small left",
             "large right", "focal airspace"]
ITEMS = [("consolidation", "Consolidation"), ("pleural effusion", "Pleural Effusion"), ("pneumothorax", "Pneumothorax"),
         ("pulmonary edema", "Edema"), ("effusion", "Pleural Effusion"), ("atelectasis", "Atelectasis")]
CLOSERS = [" or ", "/", ", or ", " and/or ", " nor "]


def _values(text: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for mention in find_mentions(text):
        out.setdefault(mention.observation, []).append(classify_mention(mention))
    return out


# ------------------------------------------------------------------ negated coordinated lists with modifiers

def _negated_lists():
    for n, (a, b, c) in enumerate(itertools.permutations(ITEMS, 3)):
        if a[1] == b[1] or b[1] == c[1] or a[1] == c[1]:
            continue
        negation, modifier = NEGATIONS[n % len(NEGATIONS)], MODIFIERS[n % len(MODIFIERS)]
        closer = CLOSERS[n % len(CLOSERS)]
        for where in range(3):  # the modifier on the first, middle or last item
            words = [f"{modifier} {p}" if i == where else p for i, (p, _) in enumerate((a, b, c))]
            yield f"{negation} {words[0]}, {words[1]}{closer}{words[2]}.", [a[1], b[1], c[1]]


@pytest.mark.parametrize("text, observations", list(_negated_lists()))
def test_negation_scopes_over_a_coordinated_list_whose_items_carry_modifiers(text, observations):
    labels = label_report(text)
    assert all(labels[o] == 0.0 for o in observations), (text, {o: labels[o] for o in observations})


@pytest.mark.parametrize("text", [
    "No lobar consolidation, large pleural effusion or pneumothorax.",
    "No evidence of pulmonary consolidation, large pleural effusion/pneumothorax.",
    "No focal consolidation, suspicious pulmonary opacity, pneumothorax or definite pleural effusion.",
    "Lungs are clear without focal airspace disease, large effusion, or pneumothorax.",
    "No focal consolidation, XXXX effusion, or pneumothorax.",  # Open-i's XXXX may stand for a modifier
    # a long list: the modifiers of the items crossed do not use up the cue's window
    "No focal airspace consolidation, large pleural effusion, moderate-sized pneumothorax, suspicious pulmonary nodule "
    "or pulmonary edema.",
])
def test_the_reported_list_sentences_are_all_negative(text):
    assert set().union(*[set(v) for v in _values(text).values()]) == {0.0}, _values(text)


@pytest.mark.parametrize("text, observation, value", [
    ("No pneumothorax, the heart is enlarged.", "Cardiomegaly", 1.0),  # a clause, not a list item
    ("No pneumothorax, small left effusion.", "Pleural Effusion", 1.0),  # no coordinator closes a list
    ("There is no pneumothorax and there is a large left pleural effusion.", "Pleural Effusion", 1.0),
    ("No effusion, possible pneumothorax or consolidation.", "Pneumothorax", -1.0),  # a cue is not a modifier
    ("No focal consolidation, large pleural effusion, or pneumothorax, but there is mild cardiomegaly.", "Cardiomegaly", 1.0),
    ("No acute osseous abnormality is seen in the visualized thoracic spine, effusion.", "Pleural Effusion", 1.0),
])
def test_list_scope_still_stops_at_clauses(text, observation, value):
    assert label_report(text)[observation] == value


def test_modifier_limit_is_a_parameter_of_the_phrase_file():
    phrases = {"scope": {"modifiers": 0}, "joiners": [","], "open_joiners": ["or"], "coordinators": ["or"],
               "cues": {"negation": {"pre": ["no"]}},
               "observations": {"Consolidation": {"mentions": ["consolidation"]},
                                "Pleural Effusion": {"mentions": ["effusion"]},
                                "Pneumothorax": {"mentions": ["pneumothorax"]}}}
    text = "No consolidation, large effusion or pneumothorax."
    assert Labeler(phrases).label_report(text)["Pleural Effusion"] == 1.0
    phrases["scope"]["modifiers"] = 1
    assert Labeler(phrases).label_report(text)["Pleural Effusion"] == 0.0


def test_a_post_cue_reaches_back_over_a_list_item_with_a_modifier():
    assert _values("Effusion and small pneumothorax have resolved.") == {"Pleural Effusion": [0.0], "Pneumothorax": [0.0]}
    assert _values("Interval resolution of the right pleural effusion and pneumothorax.") == {
        "Pleural Effusion": [0.0], "Pneumothorax": [0.0]}


def test_a_local_cue_qualifies_a_list_only_as_its_adjective():
    assert _values("Normal heart size and mediastinal contours.") == {"Cardiomegaly": [0.0], "Enlarged Cardiomediastinum": [0.0]}
    assert _values("Heart size is normal, bilateral effusions.")["Pleural Effusion"] == [1.0]
    assert _values("Normal heart size and small bilateral effusions.")["Pleural Effusion"] == [1.0]


# ------------------------------------------------------------------ mentions the lists missed

@pytest.mark.parametrize("text, observation, value", [
    ("Small right apical pleural air collection.", "Pneumothorax", 1.0),
    ("Air in the pleural space on the right.", "Pneumothorax", 1.0),
    ("Right hemopneumothorax.", "Pneumothorax", 1.0), ("Right hemopneumothorax.", "Pleural Effusion", 1.0),
    ("Left hydropneumothorax.", "Pneumothorax", 1.0), ("Left hydro-pneumothorax.", "Pleural Effusion", 1.0),
    ("Small left hemothorax.", "Pleural Effusion", 1.0),
    ("Heart size borderline enlarged.", "Cardiomegaly", -1.0),
    ("The cardiac silhouette is mildly enlarged.", "Cardiomegaly", 1.0),
    ("Heart size appears enlarged.", "Cardiomegaly", 1.0),
    ("The heart size is mildly increased.", "Cardiomegaly", 1.0),
    ("Compressive atelectasis at the left base.", "Atelectasis", 1.0),
    ("Left basilar subsegmental atelectasis.", "Atelectasis", 1.0),
    ("Atelectatic changes at both bases.", "Atelectasis", 1.0),
    ("The right costophrenic angle is blunted.", "Pleural Effusion", 1.0),
    ("Blunting of the left CP angle.", "Pleural Effusion", 1.0),
    ("Bilateral costophrenic XXXX blunting is present.", "Pleural Effusion", 1.0),  # Open-i de-identification
    ("Blunting of the posterior costophrenic XXXX.", "Pleural Effusion", 1.0),
    ("Fluid in the right minor fissure.", "Pleural Effusion", 1.0),
])
def test_real_report_mentions_are_found(text, observation, value):
    assert label_report(text)[observation] == value


@pytest.mark.parametrize("text, observation", [
    ("No pleural air collection.", "Pneumothorax"), ("No hemopneumothorax.", "Pneumothorax"),
    ("No compressive atelectasis.", "Atelectasis"), ("The cardiac silhouette is not enlarged.", "Cardiomegaly"),
    ("Costophrenic angles are not blunted.", "Pleural Effusion"),
    ("The costophrenic XXXX are not blunted.", "Pleural Effusion"),
])
def test_the_new_mentions_negate_like_the_others(text, observation):
    assert label_report(text)[observation] == 0.0


# ------------------------------------------------------------------ stability is not uncertainty

@pytest.mark.parametrize("text, observation", [
    ("Stable heart size.", "Cardiomegaly"), ("Heart size is stable.", "Cardiomegaly"),
    ("Heart size unchanged.", "Cardiomegaly"), ("No change in heart size.", "Cardiomegaly"),
    ("Unchanged cardiac silhouette.", "Cardiomegaly"), ("Cardiomediastinal silhouette is stable.", "Enlarged Cardiomediastinum"),
    ("Stable appearance of the heart and mediastinum.", "Cardiomegaly"),
    ("Stable mediastinal contours.", "Enlarged Cardiomediastinum"),
])
def test_a_stable_anatomy_phrase_is_blank_not_uncertain(text, observation):
    assert math.isnan(label_report(text)[observation]), text


@pytest.mark.parametrize("text, observation, value", [
    ("Stable cardiomegaly.", "Cardiomegaly", 1.0), ("Mild cardiomegaly, unchanged.", "Cardiomegaly", 1.0),
    ("Stable enlarged cardiac silhouette.", "Cardiomegaly", 1.0), ("Heart size is enlarged but stable.", "Cardiomegaly", 1.0),
    ("Stable small left pleural effusion.", "Pleural Effusion", 1.0), ("Stable normal heart size.", "Cardiomegaly", 0.0),
])
def test_a_stable_finding_keeps_its_value(text, observation, value):
    assert label_report(text)[observation] == value


def test_a_phrase_file_with_stability_cues_is_refused_with_the_policy():
    with pytest.raises(ValueError, match="stability"):
        Labeler({"observations": {"Cardiomegaly": {"neutral": ["heart size"], "stability": {"post": ["stable"]}}}})


# ------------------------------------------------------------------ upper limits of normal

@pytest.mark.parametrize("text", [
    "Heart size is at the upper limits of normal.", "Heart size upper limits of normal.", "Heart size upper limits normal.",
    "Upper limits of normal heart size.", "The heart is at the upper limit of normal in size.", "Heart size is upper normal.",
    "Heart size is in the high normal range.", "Heart size is top-normal.", "Cardiac silhouette is at the upper range of normal.",
])
def test_upper_limits_of_normal_is_a_normal_size(text):
    mention = next(m for m in find_mentions(text) if m.observation == "Cardiomegaly")
    assert classify_mention(mention) == 0.0, text
    assert mention.rule.startswith("negation") and "normal" in mention.cue


@pytest.mark.parametrize("text", ["Borderline cardiomegaly.", "Heart size borderline enlarged.",
                                  "Heart size is borderline.", "The cardiac silhouette is borderline in size."])
def test_borderline_stays_uncertain(text):
    assert label_report(text)["Cardiomegaly"] == -1.0, text
