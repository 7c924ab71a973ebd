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


def test_each_shared_part_is_built_once_inside_the_timing_of_the_first_model_that_ships_it(tmp_path, monkeypatch):
    """The image model and the report vectors are timed as their own course models, not built before the timed loop."""
    import types

    from cxrkit import paths
    from cxrkit.recipes import course

    monkeypatch.setattr(paths, "SHIPPED_ROOT", tmp_path / "shipped")
    P = get_profile("class")
    keys, events = course_keys(P), []

    def built(name: str | None, event: str, **extra):
        events.append(event)
        folder = tmp_path / "home" / event.replace(" ", "_")
        if name is not None:  # a shipped course model: its folder is named after its key, as the real recipes'
            kind, key = keys[name]
            folder = tmp_path / "home" / kind / paths.shipped_dir(kind, key).name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").write_text("{}")
        return types.SimpleNamespace(folder=folder, loaded=False, **extra)

    monkeypatch.setattr(course, "prepare", lambda P, progress: events.append("prepare"))
    monkeypatch.setattr(course, "trained_image_model", lambda P, prepared, **kw: built("image_models", "image"))
    monkeypatch.setattr(course, "report_vectors", lambda P, prepared, **kw: built("sentence_embeddings", "vectors"))
    monkeypatch.setattr(course, "shuffled_label_control", lambda P, prepared, **kw: built("shuffled_label_models", "shuffled"))
    monkeypatch.setattr(course, "planted_control_model", lambda P, prepared, **kw: built("planted_models", "planted"))
    monkeypatch.setattr(course, "trained_text_model", lambda P, source, pretrained, prepared, **kw: built(
        name if (name := course._text_name(source, pretrained)) in keys else None, f"text {source} {pretrained}",
        source=source))
    monkeypatch.setattr(course, "trained_fusion_model", lambda P, method, prepared, image, text, **kw: built(
        f"fusion_models/{method}_{text.source}", f"fusion {method} {text.source}"))
    monkeypatch.setattr(course, "trained_alignment_model", lambda P, prepared, pairs, vectors, **kw: built(
        f"alignment_models/{pairs}", f"alignment {pairs}"))
    echo = lambda line: events.append(line.split(":")[0])  # noqa: E731 — "image_models: trained in 0 s → …"
    shipped = course.build_course_models(P, progress=False, echo=echo)
    assert set(shipped) == set(keys)
    assert events[:3] == ["prepare", "image", "image_models"]  # built inside its own timing, not before the loop
    assert events.count("image") == 1 and events.count("vectors") == 1
    assert events.count("text indication False") == 1  # three fusions share one plain text CNN
    assert events[events.index("vectors") + 1] == "sentence_embeddings"
