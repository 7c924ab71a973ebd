"""Modules declared at the top of a file but imported on first use, so the import graph stays visible and fast.

Some dependencies cost seconds to import (papermill, nbconvert, nbval, scikit-learn's metrics, transformers,
torchvision) and a module's main path often never needs them — ``cxrkit --help`` should not wait for
papermill, nor ``cxrkit prep`` for torch. Instead of hiding ``import`` statements inside function bodies, a
module names such a dependency once, at its top::

    papermill = lazy_import("papermill")

and uses ``papermill.execute_notebook(...)`` as usual; the real import happens at the first attribute access,
through :func:`importlib.import_module`, so the module enters ``sys.modules`` only when it is really imported.
``tests/test_import_graph.py`` reads these declarations as edges of the import graph (cycles are checked
through them) and refuses a ``lazy_import`` inside a function. Taught nowhere on the page: it is plumbing
(README "For maintainers").
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class LazyModule(types.ModuleType):
    """A stand-in for the module ``name`` that imports it when an attribute is first asked for.

    It defines no public attribute of its own, so none can shadow one of the real module's (see :func:`is_loaded`).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, f"imported on first use by cxrkit.lazy: {name}")

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes this stand-in does not hold itself: ask the real module every time, so a test
        # that patches the real module is seen here, and one that patches this stand-in shadows it.
        return getattr(importlib.import_module(self.__name__), attr)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}{' (loaded)' if is_loaded(self) else ''}>"


def lazy_import(name: str) -> types.ModuleType:
    """The module ``name`` (absolute, e.g. ``"sklearn.metrics"``), imported when first used (plumbing, no notebook; README "For maintainers")."""
    if not name or name.startswith("."):
        raise ValueError(f"lazy_import needs an absolute module name, got {name!r}")
    return LazyModule(name)


def is_loaded(module: types.ModuleType) -> bool:
    """Whether the real module behind ``module`` (a stand-in or a module) has been imported, by anyone (plumbing)."""
    return module.__name__ in sys.modules
