"""The ``cxrkit`` command line: one subcommand per module that registers itself (``cxrkit run``, ``cxrkit synth`` …).

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``, which adds an
argparse parser whose ``func`` default takes the parsed namespace and returns an exit code; :data:`SUBCOMMANDS`
names that module, so a command imports only its own module (``cxrkit prep`` never waits for torch).
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

#: Each subcommand and the module that registers it (``register(subparsers)``), in the order ``--help`` lists them.
SUBCOMMANDS: dict[str, str] = {
    "run": "cxrkit.runner",
    "synth": "cxrkit.synth.cli",
    "prep": "cxrkit.prep",
    "label": "cxrkit.prep",
    "fetch": "cxrkit.fetch",
    "student": "cxrkit.student",
    "course-models": "cxrkit.recipes.course",
    "train": "cxrkit.recipes.train_command",
    "spread": "cxrkit.spread",
    "reproduce": "cxrkit.reproduce",
    "report": "cxrkit.report",
}
#: The modules behind :data:`SUBCOMMANDS`, each once.
SUBCOMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(SUBCOMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser: with only ``command``'s module imported when it names a subcommand, else with all.

    ``cxrkit prep …`` then starts without importing what ``cxrkit train`` needs (torch, the recipes); ``cxrkit
    --help`` and an unknown command import every module, so the help and argparse's error list every subcommand.
    """
    parser = argparse.ArgumentParser(prog="cxrkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = (SUBCOMMANDS[command],) if command in SUBCOMMANDS else SUBCOMMAND_MODULES
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):
                continue  # that subcommand's module is not part of this checkout

            raise
        module.register(sub)
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of any error (or set {DEBUG_ENV}=1)")
    for parsed in sub.choices.values():  # also accepted after the command: `cxrkit run --debug`
        if "--debug" not in parsed._option_string_actions:
            parsed.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` asks for: its first word that is not a flag (``cxrkit --debug prep …`` → ``prep``).

    None when a help flag comes first (``cxrkit --help prep`` shows the whole help, every command listed).
    """
    for word in argv:
        if word in ("-h", "--help"):
            return None
        if not word.startswith("-"):
            return word
    return None


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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(argv))
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
