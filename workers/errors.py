"""The project's base error type, shared by both sides (``workers`` never imports ``uploader``).

``str(exc)`` is a sentence an operator can act on: what was wrong and what was expected.
Exit codes follow CONVENTIONS.md; ``uploader.errors`` adds the network-side classes.
"""

from __future__ import annotations


class UploaderError(Exception):
    """Base class of every error the project raises on purpose."""

    exit_code = 1
    http_status = 500


class FormatError(UploaderError):
    """Bytes or text that are not valid CHK data (caps, UEB, share layout, base32)."""

    http_status = 400


class ParameterError(UploaderError):
    """Encoding parameters outside their domain (k, N, segment size)."""

    http_status = 400


class IntegrityError(UploaderError):
    """A hash did not match: corrupt data, or data that is not what the cap names."""

    exit_code = 5
    http_status = 502


class MessageError(UploaderError):
    """A malformed, oversized or unknown message between the network process and a worker."""
