"""One table of knobs: every parameter's name, type and range checked up front (cxrkit.profiles.validate_params, #17 item 7)."""
import ast
import json
from pathlib import Path

import pytest

from cxrkit import profiles
from cxrkit.errors import CxrkitError, ParameterError
from cxrkit.profiles import KNOBS, PROFILES, use_profile, validate_params

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def parameters_cells() -> dict[str, dict]:
    """Each notebook's ``parameters`` cell as ``{name: value}`` (the cells are plain assignments of literals)."""
    cells = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                tree = ast.parse("".join(cell["source"]))
                cells[path.name] = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}
    return cells


def test_the_table_covers_every_profile_knob_and_every_parameters_cell():
    assert set(KNOBS) == set(profiles.CLASS)
    cells = parameters_cells()
    assert len(cells) == len(list(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))) >= 7
    for name, values in cells.items():
        unknown = set(values) - set(KNOBS) - {"profile"}
        assert not unknown, f"{name}: parameters {sorted(unknown)} are not in cxrkit.profiles.KNOBS"
        assert values.pop("profile") == "class"
        assert validate_params(values) == values, name  # the class values the cells hold are valid, unchanged


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_value_is_valid_and_comes_back_unchanged(profile):
    values = {k: v for k, v in PROFILES[profile].items()}
    checked = validate_params(values, profile)
    assert checked == values and all(type(checked[k]) is type(v) for k, v in values.items())


def test_the_choices_are_the_codes_own():
    from cxrkit.datasets import list_datasets
    from cxrkit.models.image import IMAGE_MODELS, SMALL_CNN_HEADS
    from cxrkit.text import TEXT_SOURCES
    from cxrkit.train import SCHEDULES, UNCERTAINTY_POLICIES

    assert set(KNOBS["dataset"].choices) == set(list_datasets())
    assert set(KNOBS["image_model"].choices) == set(IMAGE_MODELS)
    assert set(KNOBS["image_head"].choices) == set(SMALL_CNN_HEADS)
    assert set(KNOBS["schedule"].choices) == set(SCHEDULES)
    assert set(KNOBS["uncertainty"].choices) == set(UNCERTAINTY_POLICIES)
    assert set(KNOBS["text_source"].choices) == set(TEXT_SOURCES)


def test_text_from_the_command_line_becomes_the_knobs_type():
    got = validate_params({"seed": "3", "lr": "1e-3", "augment": "false", "data_root": "null", "pos_weight": "none",
                           "epochs": 2, "difficulty": 1, "image_model": "resnet18"})
    assert got == {"seed": 3, "lr": 1e-3, "augment": False, "data_root": None, "pos_weight": "none", "epochs": 2,
                   "difficulty": 1.0, "image_model": "resnet18"}
    assert type(got["difficulty"]) is float and type(got["seed"]) is int


def test_every_bad_knob_is_named_at_once_with_a_suggestion_for_typos():
    with pytest.raises(ParameterError) as info:
        validate_params({"sed": 7, "unknown_knob": 3, "epochs": -1, "image_size": 7, "lr": 0, "batch_size": 2.5,
                         "augment": "maybe", "image_head": "lse2", "dataset": "mimic"})
    err = info.value
    assert isinstance(err, CxrkitError) and isinstance(err, ValueError) and "\n" not in str(err)
    text = str(err)
    assert "unknown parameter 'sed' (did you mean 'seed'?)" in text
    assert "unknown parameter 'unknown_knob'" in text
    for piece in ("epochs=-1", "image_size=7", "lr=0", "batch_size=2.5", "augment='maybe'", "image_head=",
                  "dataset='mimic'", "did you mean 'mimic-cxr'?"):
        assert piece in text, piece
    assert len(err.problems) == 9


@pytest.mark.parametrize("bad", [{"image_size": 31}, {"image_size": 4096}, {"epochs": 0}, {"seed": -1},
                                 {"lr": float("nan")}, {"weight_decay": -0.1}, {"patients": 3}, {"patience": True},
                                 {"confounders": "2"}, {"data_root": ""}, {"profile": "smoke"}, {"text_source": None}])
def test_out_of_range_or_wrong_type_is_refused(bad):
    with pytest.raises(ParameterError):
        validate_params(bad)


def test_tilde_in_a_path_is_expanded_and_a_missing_folder_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cxr").mkdir()
    assert validate_params({"data_root": "~/cxr"}) == {"data_root": str(tmp_path / "cxr")}
    assert use_profile("class", data_root="~/cxr")["data_root"] == str(tmp_path / "cxr")
    with pytest.raises(ParameterError, match=f"data_root='{tmp_path / 'nope'}': no such folder"):
        validate_params({"data_root": "~/nope"})


def test_use_profile_checks_changed_values_but_keeps_valid_ones_exactly():
    for profile in PROFILES:  # the notebooks' class values: the profile's values, nothing converted
        assert use_profile(profile, **profiles.CLASS) == {**PROFILES[profile], "profile": profile}
    p = use_profile("class", lr=1, epochs=3)
    assert p["lr"] == 1 and type(p["lr"]) is int and p["epochs"] == 3  # as papermill passed them
    with pytest.raises(ParameterError, match="image_size=7"):
        use_profile("class", image_size=7)
    with pytest.raises(KeyError, match="did you mean 'seed'"):
        use_profile("class", sed=1)
    with pytest.raises(KeyError, match="unknown profile 'clas' \\(did you mean 'class'\\?\\)"):
        use_profile("clas")
