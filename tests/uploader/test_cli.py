"""The CLI shell: a named command loads only its own module; help and errors still list them all."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["put", "--json", "--workers", "abc", "f"],
            "argument --workers: expected a whole number written in the digits 0-9, got 'abc'",
        ),
        (["cap", "--json"], "the following arguments are required: FILE"),
        (["get", "--js", "URI:LIT:", "--offset", "-1"], "argument --offset"),  # an abbreviation
        (["--json"], "the following arguments are required: COMMAND"),
    ],
)
def test_argparse_usage_errors_under_json_are_one_json_object(argv: list[str], expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "uploader", *argv], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    (line,) = out.stdout.splitlines()
    obj = json.loads(line)
    assert obj["error_class"] == "UsageError" and obj["exit_code"] == 2 and obj["error"].startswith(expected)
    assert "usage:" in out.stderr and expected in out.stderr  # the human message stays


def test_argparse_usage_errors_without_json_print_nothing_on_stdout() -> None:
    cmd = [sys.executable, "-m", "uploader", "put", "--workers", "abc", "f", "--", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == "" and "--workers: expected a whole number" in out.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--workers", "١٠"), ("-k", "1_0"), ("--happy", " 3"), ("--max-segment-size", "²"), ("--window", "+4")],
)
def test_number_flags_take_ascii_digits_only(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """int() would take these (as 10, 10, 3, an error, 4): a flag that changes caps must mean what it shows."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["put", "f", f"{flag}={value}"])
    assert exc.value.code == 2
    assert f"expected a whole number written in the digits 0-9, got {value!r}" in capsys.readouterr().err
