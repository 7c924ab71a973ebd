"""Property tests: a negated mention, built from any phrase in the packaged lists, is never labelled positive."""
from __future__ import annotations

from importlib import resources

import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cxrkit.labeler import PHRASES_FILE, find_mentions, label_report

PHRASES = yaml.safe_load(resources.files("cxrkit").joinpath(PHRASES_FILE).read_text(encoding="utf-8"))
MENTIONS: list[tuple[str, str]] = sorted(
    (name, phrase)
    for name, spec in PHRASES["observations"].items()
    for phrase in spec.get("mentions", []) + spec.get("neutral", [])
    if not phrase.startswith("re:")
)
UNMENTIONS = {u.lower() for spec in PHRASES["observations"].values() for u in spec.get("unmentions", [])}
NEGATIONS = ["No", "There is no", "No evidence of", "Without", "No definite", "Negative for", "No radiographic evidence of"]
MODIFIERS = ["", "left ", "right ", "small ", "large ", "acute ", "focal ", "bilateral ", "significant ", "definite "]

mention = st.sampled_from(MENTIONS)


def test_the_phrase_lists_are_not_empty():
    assert len(MENTIONS) > 150
    assert {name for name, _ in MENTIONS} == set(PHRASES["observations"])


@settings(max_examples=300, deadline=None)
@given(mention, st.sampled_from(NEGATIONS), st.sampled_from(MODIFIERS))
def test_negated_mention_is_never_positive(item, negation, modifier):
    observation, phrase = item
    text = f"{negation} {modifier}{phrase}."
    assert label_report(text)[observation] != 1.0, text


@settings(max_examples=200, deadline=None)
@given(st.lists(mention, min_size=2, max_size=4), st.sampled_from(NEGATIONS))
def test_negated_list_of_mentions_is_never_positive(items, negation):
    phrases = [phrase for _, phrase in items]
    text = f"{negation} {', '.join(phrases[:-1])} or {phrases[-1]}."
    labels = label_report(text)
    for observation, _ in items:
        assert labels[observation] != 1.0, text


@settings(max_examples=200, deadline=None)
@given(mention, st.sampled_from(MODIFIERS))
def test_a_plain_finding_mention_is_found_and_positive(item, modifier):
    """The counterpart: the same phrase without a cue is found (so the property above is not vacuous)."""
    observation, phrase = item
    text = f"{modifier.capitalize()}{phrase}."
    assume(not any(u in text.lower() for u in UNMENTIONS))  # "right heart" is deliberately not cardiomegaly
    found = [m for m in find_mentions(text) if m.observation == observation]
    assert found, text
    neutral = phrase in PHRASES["observations"][observation].get("neutral", [])
    if not neutral:
        assert label_report(text)[observation] == 1.0, text


ITEM_MODIFIERS = ["", "large ", "small ", "lobar ", "suspicious ", "moderate-sized ", "trace ", "small left ", "sizable "]
CLOSERS = [" or ", "/", ", or ", " and/or "]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(mention, st.sampled_from(ITEM_MODIFIERS)), min_size=2, max_size=4),
       st.sampled_from(NEGATIONS), st.sampled_from(CLOSERS))
def test_negated_list_whose_items_carry_modifiers_is_never_positive(items, negation, closer):
    """Issue 16: "No lobar consolidation, large pleural effusion or pneumothorax." — every item is negated."""
    words = [f"{modifier}{phrase}" for (_, phrase), modifier in items]
    text = f"{negation} {', '.join(words[:-1])}{closer}{words[-1]}."
    labels = label_report(text)
    for (observation, _), _ in items:
        assert labels[observation] != 1.0, text
