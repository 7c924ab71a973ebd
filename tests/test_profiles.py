"""The named parameter sets (cxrkit.profiles)."""
import pytest

from cxrkit import profiles


def test_class_is_the_default_and_profiles_share_knobs():
    assert set(profiles.PROFILES) == {"smoke", "class", "full"}
    for p in profiles.PROFILES.values():
        assert set(p) == set(profiles.CLASS)


def test_get_profile_applies_overrides_and_rejects_unknowns():
    p = profiles.get_profile("smoke", seed=3)
    assert p["seed"] == 3 and p["profile"] == "smoke" and p["patients"] == profiles.SMOKE["patients"]
    with pytest.raises(KeyError, match="unknown profile"):
        profiles.get_profile("tiny")
    with pytest.raises(KeyError, match="unknown parameter"):
        profiles.get_profile("class", pateints=3)


def test_use_profile_follows_profile_for_untouched_values():
    untouched = dict(profiles.CLASS)
    p = profiles.use_profile("smoke", **untouched)
    assert p["patients"] == profiles.SMOKE["patients"]
    changed = {**untouched, "patients": 17}
    assert profiles.use_profile("smoke", **changed)["patients"] == 17
    assert profiles.use_profile("class", **untouched)["patients"] == profiles.CLASS["patients"]
