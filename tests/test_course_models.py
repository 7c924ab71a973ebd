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
    names = course_keys(get_profile("class"))
    assert all(name in err for name in names) and "make course-models" in err
    assert {kind for kind, _ in names.values()} == set(COURSE_KINDS)
    from cxrkit.paths import SHIPPED_ROOT, shipped_dir

    for kind, key in names.values():
        folder = shipped_dir(kind, key)
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}")
    assert main(["course-models", "--check"]) == 0
    shutil.rmtree(SHIPPED_ROOT / "planted_models")
    assert missing_course_models(get_profile("class")) == ["planted_models"]


def test_keys_differ_by_seed_and_by_kind():
    a, b = course_keys(get_profile("class")), course_keys(get_profile("class", seed=1))
    assert all(a[name] != b[name] for name in a if name != "sentence_embeddings")
    assert a["sentence_embeddings"] == b["sentence_embeddings"]  # the report vectors depend on the data, not the seed
    assert a["alignment_models/aligned"][1]["pairs"] != a["alignment_models/shuffled"][1]["pairs"]
    assert a["shuffled_label_models"][1]["control"] != a["planted_models"][1]["control"]
    assert len({str(key) for _, key in a.values()}) == len(a)  # no two course models share a key


def test_a_fusion_on_the_minilm_text_cnn_never_shares_the_plain_ones_key():
    """The fusion key holds its text submodel's own key, so the two text CNNs of notebook 03 give two fusion folders."""
    from cxrkit.recipes.fusion import fusion_model_key
    from cxrkit.recipes.text import text_model_key

    P = get_profile("class")
    plain, minilm = text_model_key(P, "indication"), text_model_key(P, "indication", True)
    on_plain = fusion_model_key(P, "early", "indication", text_key=plain)
    assert on_plain == fusion_model_key(P, "early", "indication")  # the default: P's plain text CNN
    assert fusion_model_key(P, "early", "indication", text_key=minilm) != on_plain
