"""Typed errors with exit codes (CONVENTIONS.md) and HTTP statuses.

Errors we caused stay apart from errors a peer caused; ``str(exc)`` says what was expected and
what arrived. The base class lives in ``workers.errors`` so both sides share it.
"""

from __future__ import annotations

import signal

from workers.errors import FormatError, IntegrityError, MessageError, ParameterError, UploaderError


class Terminated(Exception):
    """SIGTERM or SIGHUP stopped a command, which cleaned up first (exit 128 + the signal's number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


class ConfigError(UploaderError):
    """A setting with a bad value: names the setting, where it came from, and what is expected."""

    exit_code = 3
    http_status = 500


class UsageError(UploaderError):
    """Arguments that cannot work together, or a cap that does not parse (exit 2, like argparse's own)."""

    exit_code = 2
    http_status = 400


class NotEnoughServers(UploaderError):
    """Too few servers accepted shares for servers-of-happiness, or too few hold shares to read."""

    exit_code = 4
    http_status = 503


class NotFound(UploaderError):
    """No shares for the cap were found on any server."""

    exit_code = 6
    http_status = 404


class LocalIOError(UploaderError):
    """A local file could not be read or written (source unreadable, destination not writable)."""

    exit_code = 7
    http_status = 500


class SourceChanged(LocalIOError):
    """The source file changed while it was being encoded; no cap is given for it."""


class RemoteProtocolError(UploaderError):
    """A storage server answered something the protocol does not allow."""

    http_status = 502


__all__ = [
    "ConfigError",
    "FormatError",
    "IntegrityError",
    "LocalIOError",
    "MessageError",
    "NotEnoughServers",
    "NotFound",
    "ParameterError",
    "RemoteProtocolError",
    "SourceChanged",
    "UploaderError",
    "UsageError",
]
