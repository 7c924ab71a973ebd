"""The ``cxrkit`` command line: one subcommand per module that registers itself (``cxrkit run``, ``cxrkit synth`` …).

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``, which adds an
argparse parser whose ``func`` default takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: Modules that define a ``register(subparsers)`` function, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "cxrkit.runner",
    "cxrkit.synth.cli",
    "cxrkit.prep",
    "cxrkit.fetch",
    "cxrkit.student",
    "cxrkit.recipes.course",
    "cxrkit.spread",
    "cxrkit.reproduce",
    "cxrkit.report",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="cxrkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):
                continue  # that subcommand's module is not part of this checkout

            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cxrkit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
