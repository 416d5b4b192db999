"""The CLI shell: a named command loads only its own module; help and errors still list them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from uploader import cli


def test_command_named_only_when_first_argument_is_a_command() -> None:
    assert cli._command_named(["get", "URI:LIT:"]) == "get"
    assert cli._command_named(["--version"]) is None
    assert cli._command_named(["--help"]) is None
    assert cli._command_named([]) is None
    assert cli._command_named(["nope", "get"]) is None


def test_one_command_parser_parses_that_command() -> None:
    args = cli.build_parser("cap").parse_args(["cap", "some-file"])
    assert args.command == "cap"


def test_unknown_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for name in cli.COMMANDS:
        assert f"'{name}'" in err


def test_a_command_does_not_import_the_others() -> None:
    code = (
        "import sys; from uploader import cli; cli.build_parser('cap'); "
        "print(sorted(m for m in sys.modules if m.startswith('uploader.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['uploader.commands.cap']"
