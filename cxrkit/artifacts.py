"""The one owner of "which code made this artifact": a short hash of the source of the modules that produce it.

Every cached artifact under ``CXRKIT_HOME`` lives in ``<kind>/<key>``, where :func:`cxrkit.paths.artifact_dir`
hashes its parameters together with :func:`artifact_code_version` of its kind (the modules listed in
:data:`ARTIFACT_CODE`). Edit one of those files and the next run builds a new artifact beside the old one
instead of loading a stale model or cache. What each key holds:

- ``cohorts``: the synthetic cohort's parameters (``SynthParams``, with its ``generator_version``) + the generator's code;
- ``prepared``: dataset, its root folder (for the generated cohort, the cohort's keyed folder, so the cohort's code
  is inherited), film size, split seed and fractions + the preparation code; the image cache inside it also
  records the image ids and this code version in its marker;
- ``image_models``/``text_models``: the profile knobs that change the model, the recipe's settings and
  ``RECIPE_VERSION`` (kept as extra, manual salt), ``code`` (the recipe's modules) and ``data_code``
  (:func:`data_code_version`: the preparation's and, for the generated cohort, the generator's code); the
  input data themselves are checked at load time against the fingerprint in ``meta.json``;
- ``fusion_models``/``shuffled_label_models``/``planted_models``: the image (and text) model's whole key, so their code and data
  versions are inherited, + the method's settings + their own code.

Files are hashed once per process (``.py`` and the data files the code reads, such as ``labeler_phrases.yaml``),
in the order of their package-relative paths. Taught in notebook 00 (setup: where the kit keeps its
artifacts); README "For reviewers".
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

#: The ``cxrkit`` package folder; :data:`ARTIFACT_CODE` paths are relative to it.
PACKAGE_ROOT = Path(__file__).resolve().parent

#: Suffixes of the files a package folder contributes to its code version (sources and the data files they read).
HASHED_SUFFIXES: tuple[str, ...] = (".py", ".yaml", ".yml", ".json", ".txt")

#: Length of a code version in hex digits.
VERSION_LENGTH = 12

#: For each artifact kind (the folder under ``CXRKIT_HOME``): the package-relative files and folders whose code
#: produces it. Upstream code is inherited through the upstream artifact's key, which every downstream key holds.
ARTIFACT_CODE: dict[str, tuple[str, ...]] = {
    # the synthetic cohort (notebook 01): the generator and the label names it writes
    "cohorts": ("synth", "labels.py"),
    # the prepared cache (notebook 01): split, image cache, readers, adapters, the labeler and its phrases
    "prepared": ("prep.py", "cache.py", "io", "datasets", "labeler.py", "labeler_phrases.yaml", "labels.py"),
    # notebook 02's image model: its recipe, the training loop, the architecture, the predictions table
    "image_models": ("recipes/image.py", "recipes/config.py", "store.py", "predictions.py", "train", "models/image.py",
                     "models/torchvision_nets.py", "metrics.py", "labels.py"),
    # notebook 03's text models: the recipe, tokenizers, architectures
    "text_models": ("recipes/text.py", "recipes/config.py", "store.py", "predictions.py", "train", "models/text.py", "text",
                    "metrics.py", "labels.py"),
    # notebook 04's layer-level fusion models (their image and text submodels' keys are part of theirs)
    "fusion_models": ("recipes/fusion.py", "recipes/config.py", "store.py", "predictions.py", "models/fusion.py", "train",
                      "metrics.py"),
    # notebook 05's control models, the shuffled-label model (the image model's key is part of its key) …
    "shuffled_label_models": ("recipes/controls.py", "controls.py"),
    # notebook 05's planted-signal control model (the image model's key is part of its key)
    "planted_models": ("recipes/controls.py", "controls.py"),
    # notebook 07's frozen MiniLM report vectors (their data are keyed by a fingerprint of the texts themselves)
    "sentence_embeddings": ("sentence_embeddings.py", "store.py", "text/pretrained.py", "text/sources.py"),
    # notebook 07's alignment models and their shuffled-pair control (the report vectors' key and code are in theirs)
    "alignment_models": ("recipes/alignment.py", "recipes/config.py", "models/alignment.py", "store.py", "train",
                         "models/image.py", "models/torchvision_nets.py"),
}

_FILE_DIGESTS: dict[Path, bytes] = {}
_VERSIONS: dict[tuple[Path, tuple[str, ...]], str] = {}


def _files(root: Path, target: str) -> list[tuple[str, Path]]:
    """The (package-relative posix path, file) pairs one target names: a file, or every hashed file under a folder."""
    path = root / target
    if path.is_file():
        return [(Path(target).as_posix(), path)]
    if path.is_dir():
        return [(p.relative_to(root).as_posix(), p) for p in path.rglob("*")
                if p.is_file() and p.suffix in HASHED_SUFFIXES and "__pycache__" not in p.parts]
    raise ValueError(f"code_version: {path} is neither a file nor a folder of the package (target {target!r})")


def _digest(path: Path) -> bytes:
    if path not in _FILE_DIGESTS:
        # line endings normalised, so a checkout with CRLF (git on Windows) gets the same versions
        _FILE_DIGESTS[path] = hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).digest()
    return _FILE_DIGESTS[path]


def code_version(*targets: str, root: str | Path | None = None) -> str:
    """Return a short sha256 of the source bytes of the given package-relative files and folders (notebook 00).

    ``code_version("recipes/image.py", "train")`` changes whenever one of those files changes and is the same in
    every process for the same bytes. ``root`` is the package folder (default: the installed ``cxrkit``).
    """
    if not targets:
        raise ValueError("code_version needs at least one file or folder of the package")
    base = Path(root).resolve() if root is not None else PACKAGE_ROOT
    memo = (base, tuple(targets))
    if memo not in _VERSIONS:
        files = sorted({rel: path for target in targets for rel, path in _files(base, target)}.items())
        h = hashlib.sha256()
        for rel, path in files:
            h.update(rel.encode() + b"\0" + _digest(path) + b"\0")
        _VERSIONS[memo] = h.hexdigest()[:VERSION_LENGTH]
    return _VERSIONS[memo]


def artifact_code_version(kind: str) -> str:
    """Return the code version of artifact ``kind`` (a folder under ``CXRKIT_HOME``) from :data:`ARTIFACT_CODE` (notebook 00)."""
    if kind not in ARTIFACT_CODE:
        raise ValueError(f"unknown artifact kind {kind!r}: add it to cxrkit.artifacts.ARTIFACT_CODE with the "
                         f"modules that produce it (known: {sorted(ARTIFACT_CODE)})")
    return code_version(*ARTIFACT_CODE[kind])


def forget_code_versions(paths: Iterable[Path] | None = None) -> None:
    """Drop the per-process cache of file hashes (all, or those of ``paths``), so edited files are read again (``tests/test_artifacts.py``)."""
    if paths is None:
        _FILE_DIGESTS.clear()
    else:
        for p in paths:
            _FILE_DIGESTS.pop(Path(p).resolve(), None)
    _VERSIONS.clear()


def uses_generated_cohort(P: Mapping[str, Any]) -> bool:
    """True when profile ``P`` reads the generated synthetic cohort (no ``data_root``), as :func:`cxrkit.prep.prepare` does."""
    return P.get("dataset", "synthetic") == "synthetic" and P.get("data_root") is None


def data_code_version(P: Mapping[str, Any]) -> str:
    """Return the code version of the data a model of profile ``P`` reads: the prepared cache's, and the cohort's when generated (notebook 00)."""
    kinds = ("prepared", "cohorts") if uses_generated_cohort(P) else ("prepared",)
    return code_version(*(t for kind in kinds for t in ARTIFACT_CODE[kind]))
