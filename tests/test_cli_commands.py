"""The ``cxrkit`` command table: every subcommand is found where the table says, and one command imports only its module."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cxrkit import cli


def test_the_table_names_every_registered_subcommand_and_only_those():
    parser = cli.build_parser()
    registered = next(a for a in parser._actions if a.dest == "command").choices
    assert list(registered) == list(cli.SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(cli.SUBCOMMANDS))
def test_one_command_builds_a_parser_with_its_module_alone(command):
    parser = cli.build_parser(command)
    registered = next(a for a in parser._actions if a.dest == "command").choices
    assert command in registered
    assert {cli.SUBCOMMANDS[name] for name in registered} == {cli.SUBCOMMANDS[command]}


@pytest.mark.parametrize("argv, expected", [
    (["prep", "--dataset", "x"], "prep"), (["--debug", "train", "--stop-after", "1"], "train"),
    (["--help"], None), ([], None), (["no-such-command"], "no-such-command"), (["--help", "prep"], None),
    (["prep", "--help"], "prep"),
])
def test_the_command_is_the_first_word_that_is_not_a_flag(argv, expected):
    assert cli.command_of(argv) == expected


def test_an_unknown_command_is_refused_listing_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["no-such-command"])
    assert stop.value.code == cli.USAGE_ERROR
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err
    assert all(name in err for name in cli.SUBCOMMANDS)


def test_prep_starts_without_the_training_or_notebook_modules():
    """In a fresh interpreter, ``cxrkit prep --help`` imports neither torch nor the notebook runner."""
    code = textwrap.dedent("""
        import contextlib, io, sys
        from cxrkit import cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                cli.main(["prep", "--help"])
            except SystemExit:
                pass
        assert "--dataset" in out.getvalue(), out.getvalue()
        print(",".join(m for m in ("torch", "cxrkit.runner", "cxrkit.recipes.course", "papermill") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"cxrkit prep --help imported: {out}"
