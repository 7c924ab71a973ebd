"""Exceptions the kit raises, each naming the file or value at fault (used by every notebook)."""
from __future__ import annotations

from pathlib import Path


class CxrkitError(Exception):
    """Base class of the kit's own errors."""


class DatasetLayoutError(CxrkitError):
    """A dataset root does not look like the dataset it was named as."""

    def __init__(self, dataset: str, root: str | Path, expected: list[str], found: list[str]):
        self.dataset, self.root, self.expected, self.found = dataset, Path(root), expected, found
        shown = ", ".join(found[:12]) + (" …" if len(found) > 12 else "") if found else "(nothing)"
        super().__init__(
            f"{root} does not look like the {dataset!r} dataset.\n"
            f"  expected: {'; '.join(expected)}\n"
            f"  found:    {shown}"
        )


class ImageReadError(CxrkitError):
    """An image file could not be read or decoded; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot read image {path}: {reason}")


class ReportParseError(CxrkitError):
    """A report file could not be parsed; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot parse report {path}: {reason}")


class ParameterError(CxrkitError, ValueError):
    """One or more notebook parameters (``-p KEY VALUE``, a profile name) are unknown or out of range; lists each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("bad parameter(s): " + "; ".join(self.problems))


class UnknownParameterError(ParameterError, KeyError):
    """A profile or knob name the kit does not know (a ``KeyError`` too, as ``get_profile`` always raised)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
