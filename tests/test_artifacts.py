"""Artifacts keyed by the code that made them (cxrkit.artifacts, cxrkit.paths.artifact_dir and the recipes' keys)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrkit import artifacts
from cxrkit.artifacts import ARTIFACT_CODE, artifact_code_version, code_version, data_code_version
from cxrkit.paths import artifact_dir, artifact_key
from cxrkit.profiles import get_profile

REPO = Path(__file__).parent.parent


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the cxrkit sources that the code versions read instead of the real package."""
    copy = tmp_path / "cxrkit"
    shutil.copytree(artifacts.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(artifacts, "PACKAGE_ROOT", copy.resolve())
    monkeypatch.setattr(artifacts, "_VERSIONS", {})
    monkeypatch.setattr(artifacts, "_FILE_DIGESTS", {})
    return copy


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")
    artifacts.forget_code_versions()


def test_every_listed_module_exists_and_every_kind_has_a_version():
    for kind, targets in ARTIFACT_CODE.items():
        for target in targets:
            assert (artifacts.PACKAGE_ROOT / target).exists(), (kind, target)
        assert len(artifact_code_version(kind)) == artifacts.VERSION_LENGTH
    with pytest.raises(ValueError, match="unknown artifact kind 'nope'.*ARTIFACT_CODE"):
        artifact_code_version("nope")
    with pytest.raises(ValueError, match="neither a file nor a folder"):
        code_version("no_such_module.py")


def test_equal_code_gives_an_equal_version_and_an_edit_changes_it(package_copy):
    before = code_version("recipes/image.py", "train")
    assert code_version("recipes/image.py", "train") == before
    assert code_version("recipes/image.py", "train", root=artifacts.PACKAGE_ROOT) == before
    _edit(package_copy / "train" / "loop.py")  # a file inside a listed folder
    assert code_version("recipes/image.py", "train") != before
    assert code_version("recipes/text.py") == code_version("recipes/text.py")


def test_a_data_file_the_code_reads_counts(package_copy):
    before = artifact_code_version("prepared")
    phrases = package_copy / "labeler_phrases.yaml"
    phrases.write_text(phrases.read_text() + "\n")
    artifacts.forget_code_versions()
    assert artifact_code_version("prepared") != before


def test_editing_a_recipe_changes_its_key_and_the_keys_built_on_it(package_copy, tmp_path, monkeypatch):
    from cxrkit.recipes import fusion, image, text
    from cxrkit.recipes.controls import control_key

    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    P = get_profile("smoke")
    keys = lambda: (image.image_model_key(P), text.text_model_key(P), fusion.fusion_model_key(P, "early"),  # noqa: E731
                    control_key(P, "shuffled_label_models", epochs=1), image.image_model_dir(P))
    first = keys()
    assert keys() == first  # equal code, equal keys
    _edit(package_copy / "recipes" / "image.py")
    img, txt, fus, shuf, folder = keys()
    assert img["code"] != first[0]["code"] and folder != first[4]
    assert fus != first[2] and shuf != first[3]  # built on the image model: inherit its code version
    assert txt == first[1]  # the text recipe does not read the image recipe (the targets live in labels.py)
    _edit(package_copy / "recipes" / "fusion.py")
    assert image.image_model_key(P) == img and fusion.fusion_model_key(P, "early") != fus
    for shared in ("store.py", "recipes/config.py"):  # the one artifact store and the config reader: every model's code
        before = keys()
        _edit(package_copy / shared)
        after = keys()
        assert all(a["code"] != b["code"] for a, b in zip(after[:3], before[:3])), shared


def test_editing_the_cohort_generator_changes_the_cohort_folder_and_the_models_keys(package_copy, tmp_path,
                                                                                     monkeypatch):
    from cxrkit.recipes import image
    from cxrkit.synth.params import SynthParams

    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path / "home"))
    P = get_profile("smoke")
    cohort, model = artifact_dir("cohorts", SynthParams.from_profile(P).to_dict()), image.image_model_key(P)
    real = get_profile("smoke", dataset="iu-xray", data_root=str(tmp_path))
    real_model = image.image_model_key(real)
    _edit(package_copy / "synth" / "render.py")
    assert artifact_dir("cohorts", SynthParams.from_profile(P).to_dict()) != cohort
    assert image.image_model_key(P)["data_code"] != model["data_code"]
    assert image.image_model_key(real) == real_model  # a real dataset does not depend on the generator
    _edit(package_copy / "cache.py")
    assert image.image_model_key(real)["data_code"] != real_model["data_code"]


def test_keys_are_stable_across_processes(tmp_path, monkeypatch):
    from cxrkit.recipes.image import image_model_dir

    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path))
    code = ("from cxrkit.paths import artifact_key\nfrom cxrkit.artifacts import artifact_code_version\n"
            "from cxrkit.recipes.image import image_model_dir\nfrom cxrkit.profiles import get_profile\n"
            "print(artifact_code_version('image_models'), artifact_key('prepared', {'a': 1}),"
            " image_model_dir(get_profile('smoke')).name)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    here = f"{artifact_code_version('image_models')} {artifact_key('prepared', {'a': 1})} " \
           f"{image_model_dir(get_profile('smoke')).name}"
    assert other.split() == here.split() and len(here.split()) == 3


def test_artifact_dir_holds_the_code_version(tmp_path, monkeypatch, package_copy):
    monkeypatch.setenv("CXRKIT_HOME", str(tmp_path))
    params = {"size": 64}
    key = artifact_key("prepared", params)
    assert artifact_dir("prepared", params) == tmp_path / "prepared" / key
    assert artifact_key("prepared", {"size": 32}) != key
    _edit(package_copy / "prep.py")
    assert artifact_key("prepared", params) != key
    with pytest.raises(ValueError, match="unknown artifact kind"):
        artifact_dir("unregistered", params)


def test_data_code_version_counts_the_generator_only_for_the_generated_cohort(package_copy):
    synthetic, real = {"dataset": "synthetic", "data_root": None}, {"dataset": "synthetic", "data_root": "/data"}
    a, b = data_code_version(synthetic), data_code_version(real)
    assert a != b
    _edit(package_copy / "synth" / "params.py")
    assert data_code_version(synthetic) != a and data_code_version(real) == b


def test_the_image_cache_is_rebuilt_when_its_code_changes(tmp_path, package_copy):
    import numpy as np
    import pandas as pd
    from PIL import Image

    from cxrkit.cache import build_image_cache

    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((20, 20), 40 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(3)], "image_path": paths})
    first = build_image_cache(table, tmp_path / "cache", size=8, workers=1, progress=False)
    stamp = (tmp_path / "cache" / "cache.json").stat().st_mtime_ns
    build_image_cache(table, tmp_path / "cache", size=8, workers=1, progress=False)
    assert (tmp_path / "cache" / "cache.json").stat().st_mtime_ns == stamp  # reused
    _edit(package_copy / "io" / "images.py")
    again = build_image_cache(table, tmp_path / "cache", size=8, workers=1, progress=False)
    assert again.info["params"]["code"] != first.info["params"]["code"]


def test_line_endings_do_not_change_a_code_version(package_copy):
    target = package_copy / "recipes" / "image.py"
    before = code_version("recipes/image.py", root=package_copy)
    target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))
    artifacts.forget_code_versions()
    assert code_version("recipes/image.py", root=package_copy) == before
