"""cxrkit.lazy: a module declared at the top of a file is imported at its first use, and behaves as the real one."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cxrkit.lazy import LazyModule, is_loaded, lazy_import


def test_the_real_module_is_imported_at_the_first_attribute_and_not_before():
    code = textwrap.dedent("""
        import sys
        from cxrkit.lazy import is_loaded, lazy_import
        colorsys = lazy_import("colorsys")
        before = "colorsys" in sys.modules
        value = colorsys.rgb_to_hsv(1.0, 0.0, 0.0)
        print(before, "colorsys" in sys.modules, value, is_loaded(colorsys))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["False", "True"]
    assert out[-1] == "True"


def test_a_patch_of_the_real_module_is_seen_through_the_stand_in(monkeypatch):
    import json

    stand_in = lazy_import("json")
    monkeypatch.setattr(json, "dumps", lambda value: "patched")
    assert stand_in.dumps({}) == "patched"
    monkeypatch.undo()
    assert stand_in.dumps({}) == "{}"
    assert "dumps" in dir(stand_in)
    assert repr(stand_in) == "<lazy module 'json' (loaded)>"


def test_a_missing_module_fails_at_first_use_naming_it():
    stand_in = lazy_import("cxrkit_no_such_module")
    assert isinstance(stand_in, LazyModule) and not is_loaded(stand_in)
    with pytest.raises(ModuleNotFoundError, match="cxrkit_no_such_module"):
        stand_in.anything


@pytest.mark.parametrize("name", ["", ".relative"])
def test_only_absolute_names_are_accepted(name):
    with pytest.raises(ValueError, match="absolute"):
        lazy_import(name)
