"""Errors about one GBS storage server, as the client sees them.

| class               | what happened                                              | retryable |
|---------------------|------------------------------------------------------------|-----------|
| ``ServerUnreachable`` | refused, reset, DNS, TLS failure, timeout                | yes       |
| ``SpkiMismatch``    | the certificate's public key is not the one the NURL names | never     |
| ``ServerRefused``   | an HTTP 4xx/5xx answer; ``status`` and ``reason`` kept     | 5xx only  |
| ``ConflictingWrite``| 409: overlapping bytes differ from what is already stored  | no        |
| ``BadResponse``     | a body, status or header the protocol does not allow       | no        |

``BadResponse`` is also a ``uploader.errors.RemoteProtocolError``. Every message names the server
as ``host:port`` and never holds the swissnum or a secret.
"""

from __future__ import annotations

from uploader.errors import RemoteProtocolError, UploaderError


class ServerError(UploaderError):
    """Base class of errors about one storage server; ``server`` is its ``host:port``."""

    http_status = 502
    retryable = False

    def __init__(self, server: str, message: str) -> None:
        super().__init__(message)
        self.server = server


class ServerUnreachable(ServerError):
    """No usable connection or no timely answer: refused, reset, DNS, TLS failure, timeout."""

    http_status = 503
    retryable = True


class SpkiMismatch(ServerError):
    """The server's certificate does not have the SPKI hash its NURL pins (never retry)."""


class ServerRefused(ServerError):
    """The server answered 4xx or 5xx. ``reason`` is the start of its body (at most 10,000 bytes)."""

    def __init__(self, server: str, message: str, status: int, reason: str) -> None:
        super().__init__(server, message)
        self.status = status
        self.reason = reason
        self.retryable = status >= 500


class ConflictingWrite(ServerRefused):
    """409: the written bytes differ from bytes already stored there; abort the share's upload."""


class BadResponse(RemoteProtocolError, ServerError):
    """The server answered something the protocol does not allow (status, header or body)."""


__all__ = [
    "BadResponse",
    "ConflictingWrite",
    "RemoteProtocolError",
    "ServerError",
    "ServerRefused",
    "ServerUnreachable",
    "SpkiMismatch",
]
