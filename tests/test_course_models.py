"""The course models the kit ships (cxrkit course-models): they must match the current code, or a fresh clone trains."""
from __future__ import annotations

import shutil

from cxrkit.cli import main
from cxrkit.profiles import get_profile
from cxrkit.recipes.course import COURSE_KINDS, course_keys, missing_course_models


def test_the_shipped_course_models_match_the_current_code():
    """Fails after a change to a recipe, the training loop, a model or the data code until `make course-models` ran."""
    assert missing_course_models(get_profile("class")) == [], "run `make course-models` and commit cxrkit/shipped/"


def test_check_names_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("cxrkit.paths.SHIPPED_ROOT", tmp_path / "shipped")
    assert main(["course-models", "--check"]) == 1
    err = capsys.readouterr().err
    assert all(kind in err for kind in COURSE_KINDS) and "make course-models" in err
    from cxrkit.paths import SHIPPED_ROOT, shipped_dir

    for kind, key in course_keys(get_profile("class")).items():
        folder = shipped_dir(kind, key)
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}")
    assert main(["course-models", "--check"]) == 0
    shutil.rmtree(SHIPPED_ROOT / "planted_models")
    assert missing_course_models(get_profile("class")) == ["planted_models"]


def test_keys_differ_by_seed_and_by_kind():
    a, b = course_keys(get_profile("class")), course_keys(get_profile("class", seed=1))
    assert all(a[k] != b[k] for k in COURSE_KINDS)
    assert a["shuffled_label_models"]["control"] != a["planted_models"]["control"]
