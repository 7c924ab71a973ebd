"""The ``cxrkit`` command line: one subcommand per module that registers itself (``cxrkit run``, ``cxrkit synth`` …).

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``, which adds an
argparse parser whose ``func`` default takes the parsed namespace and returns an exit code.
An expected error — the kit's own (:class:`cxrkit.errors.CxrkitError`) or the system's about a named file
(missing, unwritable) — prints one message, ``cxrkit <command>: …``, and exits 2; anything else is a bug and
keeps its traceback (exit 1). ``--debug`` (or ``CXRKIT_DEBUG=1``) shows the traceback of expected errors too.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from cxrkit.errors import CxrkitError

#: Exit code of an error the user can fix (a bad flag, file, folder or value), as argparse uses for bad flags.
USAGE_ERROR = 2
#: The environment variable that, set to 1, makes every error show its traceback (as ``--debug`` does).
DEBUG_ENV = "CXRKIT_DEBUG"

#: Modules that define a ``register(subparsers)`` function, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "cxrkit.runner",
    "cxrkit.synth.cli",
    "cxrkit.prep",
    "cxrkit.fetch",
    "cxrkit.student",
    "cxrkit.recipes.course",
    "cxrkit.recipes.train_command",
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
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of any error (or set {DEBUG_ENV}=1)")
    for command in sub.choices.values():  # also accepted after the command: `cxrkit run --debug`
        if "--debug" not in command._option_string_actions:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def expected_error(err: BaseException) -> str | None:
    """The one-line-per-message text of an error the user can fix, or None when ``err`` is a bug (keep its traceback)."""
    if isinstance(err, CxrkitError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:  # a missing, unreadable or unwritable path
        where = f"{err.filename} → {err.filename2}" if err.filename2 is not None else str(err.filename)
        return f"{where}: {err.strerror or type(err).__name__}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cxrkit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE_ERROR
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"cxrkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message = expected_error(err)
        if message is None or args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"cxrkit {args.command}: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
