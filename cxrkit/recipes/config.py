"""A recipe's settings, read once from a profile's parameter dict (notebooks 02–05 pass ``P``; each recipe reads it here).

Every recipe (image, text, fusion, controls) declares the profile knobs it uses as the fields of a frozen dataclass
derived from :class:`RecipeConfig`. ``Config.read(P)`` takes each field from ``P``, or from the class profile when
``P`` leaves it out, and resolves a ``data_root`` to an absolute path. The
recipe then calls its steps with that config's fields, never with ``P`` again (nanoGPT's "a config read once per
component"). A config passed where ``P`` is expected is used as it is.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar

from cxrkit.profiles import CLASS

__all__ = ["RecipeConfig", "read_knob"]

C = TypeVar("C", bound="RecipeConfig")


def read_knob(P: Mapping[str, Any], name: str) -> Any:
    """Return knob ``name`` of ``P`` (the class profile's value when absent), as given: validation and types are
    :func:`cxrkit.profiles.validate_params`'s job; only a ``data_root`` becomes an absolute path and a ``pos_weight``
    of ``"none"`` becomes None, so two spellings of one setting share one key."""
    if name not in CLASS:
        raise KeyError(f"{name!r} is not a profile knob (cxrkit.profiles.CLASS)")
    value = P.get(name, CLASS[name])
    if name == "data_root" and value is not None:
        return str(Path(value).expanduser().resolve())
    if name == "pos_weight" and value == "none":
        return None
    return value


@dataclass(frozen=True)
class RecipeConfig:
    """Base of the recipes' configs: its fields are profile knobs, read once by :meth:`read` (notebook 02)."""

    @classmethod
    def read(cls: type[C], P: Mapping[str, Any] | C) -> C:
        """Return the config of ``P`` (a parameter dict, or a config of this class, returned as it is)."""
        if isinstance(P, cls):
            return P
        if isinstance(P, RecipeConfig):
            raise TypeError(f"{cls.__name__}.read needs a parameter dict, got a {type(P).__name__} (another recipe's config)")
        return cls(**{f.name: read_knob(P, f.name) for f in fields(cls)})

    def knobs(self) -> dict[str, Any]:
        """Return the knobs as a parameter dict (what a key holds)."""
        return asdict(self)
