"""``python -m uploader COMMAND``: argument parsing and error-to-exit-code mapping only.

Each command lives in ``uploader/commands/NAME.py`` with ``register(subparsers)``, which sets the
parser's ``run(args, config) -> int``. This module parses, loads the one Config (defaults < file <
environment < flags) and maps typed errors to the exit codes of CONVENTIONS.md.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import math
import os
import re
import select
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from uploader import interrupts
from uploader.config import Config, load_config
from uploader.errors import LocalIOError, Terminated, UploaderError, UsageError
from workers.text import printable

COMMANDS = ("cap", "put", "get", "verify", "storage", "grid", "serve", "doctor")
VERSION = "0.1.0"


def add_config_flags(parser: argparse.ArgumentParser, *, encoding: bool = True, pool: bool = True) -> None:
    """The flags every command shares (CONVENTIONS.md "Common flags"); None means "not given".
    ``pool``: the command runs workers (``--workers``, ``--erasure-backend``); ``encoding``: it
    encodes (k, N, happiness, segment size, convergence secret)."""
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: see README)")
    parser.add_argument(
        "--json", action="store_true", help="print JSON Lines on stdout, one object per result"
    )
    if pool:
        parser.add_argument(
            "--workers", type=whole_number, metavar="W", help="worker processes (default: CPU count)"
        )
        parser.add_argument(
            "--erasure-backend",
            choices=("auto", "isal", "zfec"),
            help="erasure coding: ISA-L, zfec, or auto (ISA-L when it loads, else zfec; default)",
        )
    if encoding:
        parser.add_argument(
            "-k", "--shares-needed", type=whole_number, metavar="K", help="shares needed to read (default 3)"
        )
        parser.add_argument(
            "-n", "--shares-total", type=whole_number, metavar="N", help="shares made (default 10)"
        )
        parser.add_argument(
            "--happy",
            dest="shares_happy",
            type=whole_number,
            metavar="H",
            help="servers of happiness (default min(7, N))",
        )
        parser.add_argument(
            "--max-segment-size",
            type=whole_number,
            metavar="BYTES",
            help="maximum segment size (default 1048576; changes caps)",
        )
        parser.add_argument(
            "--convergence-secret-file",
            type=str,
            metavar="PATH",
            help="file with the convergence secret in Tahoe base32 (default: created once per user)",
        )


def refuse_own_settings(
    config: Config, keys: Sequence[str], daemon: str, *, from_env: Sequence[str] = ()
) -> None:
    """A command sent through the daemon cannot honour settings of how it would work itself:
    refuse those set for this run rather than drop them without a word — ``keys`` when a flag set
    them, ``from_env`` (the ones that change caps) also when an UPLOADER_* variable did. A
    configuration file's are left alone: it may be the daemon's own."""
    given = [
        config.origin(key)
        for key in keys
        if config.origin(key).startswith("--")
        or (key in from_env and config.origin(key).startswith("UPLOADER_"))
    ]
    if given:
        raise UsageError(
            f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply through the daemon at {daemon}, "
            "which works with its own configuration: drop "
            f"{'it' if len(given) == 1 else 'them'}, or add --no-daemon to work in this process"
        )


def whole_number(text: str) -> int:
    """An argparse ``type``: ASCII decimal digits. Python's int() also takes other scripts' digits
    ("١٠"), underscores ("1_0") and spaces, each of which would quietly give a value (or, for the
    encoding flags, a cap) the user did not write. Ranges are the configuration's to check."""
    if not (text.isascii() and text.isdigit()) or len(text) > 40:
        raise argparse.ArgumentTypeError(f"expected a whole number written in the digits 0-9, got {text!r}")
    return int(text)


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds > 0. 0, negatives, ``nan`` and ``inf`` are
    usage errors (a deadline of nan or inf never fires; one of 0 or less has passed already)."""
    # ASCII decimals only: float() also takes "١٠", "1_0", " 5 ", "1e3"
    value = float(text) if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", text) else math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


_SETTING_FLAGS = (
    "workers",
    "shares_needed",
    "shares_total",
    "shares_happy",
    "max_segment_size",
    "convergence_secret_file",
    "pipeline_depth",
    "window",
    "erasure_backend",
    "api_listen",
    "log_level",
)


class ArgumentsRejected(SystemExit):
    """argparse's usage error (exit 2), with its message kept for ``--json``."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse's own parser (subparsers are made of this class too), whose usage error carries its
    message, so that ``main`` can also print it as the one ``--json`` object."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise ArgumentsRejected(message)


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` (or an abbreviation argparse would take for it) is among the options."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return any(len(a) >= 3 and "--json".startswith(a) for a in options)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` one command's subparser: each command module imports what
    it needs (aiohttp, the pool, ...), and a run of ``get`` should not pay for importing ``grid``."""
    parser = _Parser(
        prog="python -m uploader",
        description="Fast, multi-core uploads to Tahoe-LAFS grids: byte-identical CHK shares over GBS.",
    )
    parser.add_argument("--version", action="version", version=f"uploader {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"uploader.commands.{name}").register(sub)
    return parser


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    cli: dict[str, Any] = {k: getattr(args, k) for k in _SETTING_FLAGS if getattr(args, k, None) is not None}
    return load_config(getattr(args, "config", None), dict(os.environ) if env is None else env, cli)


def _printable_json(obj: Any) -> Any:
    """``obj`` with every string made printable (``workers.text``): a file name that is not UTF-8
    shows as ``bad\\xffname``, not as a lone surrogate that strict JSON readers refuse."""
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {_printable_json(k): _printable_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_printable_json(v) for v in obj]
    return obj


def emit(obj: Any) -> None:
    """Print one --json object on stdout; a stdout that cannot take it (closed, full) is exit 7.
    File names that are not UTF-8 are shown with ``\\xNN`` escapes (``workers.text.printable``)."""
    try:
        if sys.stdout is None:
            raise OSError(errno.EBADF, "stdout is closed")
        print(json.dumps(_printable_json(obj)), flush=True)
    except BrokenPipeError:
        raise  # `… | head`: main says nothing
    except OSError as exc:
        raise LocalIOError(f"cannot write to stdout: {exc.strerror or exc}") from None


def report_error(args: argparse.Namespace, exc: UploaderError, **fields: Any) -> int:
    """Print one failure (a JSON object with --json, else a sentence on stderr); return its exit code."""
    if getattr(args, "json", False):
        obj = {**fields, "error": str(exc), "error_class": type(exc).__name__, "exit_code": exc.exit_code}
        try:
            emit(obj)
        except LocalIOError as unsaid:  # stdout cannot take it: say both on stderr
            print(printable(f"uploader: error: {exc} (and {unsaid})"), file=sys.stderr)
    else:
        prefix = f"{fields['file']}: " if "file" in fields else ""
        print(printable(f"uploader: error: {prefix}{exc}"), file=sys.stderr)
    return exc.exit_code


def _command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, when its first argument is one (else None: help, errors, --version)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_named(argv))
    try:
        args = parser.parse_args(argv)
    except ArgumentsRejected as exc:  # already said on stderr; --json also wants its object
        if _wants_json(argv):
            report_error(argparse.Namespace(json=True), UsageError(exc.message))
        raise
    try:
        # `grid` and `storage` read no client configuration: a broken one must not stop a grid
        config = config_from_args(args) if getattr(args, "needs_config", True) else Config()
        if not getattr(args, "holds_interrupts", False):
            interrupts.release()
        code: int = args.run(args, config)
        interrupts.release()  # a command that ended before its own release point: its Ctrl-C still counts
        return code
    except UploaderError as exc:
        return report_error(args, exc)
    except KeyboardInterrupt:
        print("uploader: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"uploader: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError as exc:
        if not _stdout_closed():  # a pipe of ours broke, not `… | head`: say so
            print(f"uploader: error: a connection closed unexpectedly ({exc})", file=sys.stderr)
        return 1


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader is gone (`… | head`): nothing left to tell anyone."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return True
