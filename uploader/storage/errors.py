"""Typed errors of the storage server, each carrying the HTTP status the endpoint answers with.

The status codes follow gbs-http-protocol §6; the handlers in ``app.py`` turn any ``UploaderError``
into its ``http_status`` with ``str(exc)`` as a short plain-text body (never a secret).
"""

from __future__ import annotations

from workers.errors import UploaderError


class StorageError(UploaderError):
    """Base of the store's own errors (and a local disk problem: 500)."""

    http_status = 500


class ShareNotFound(StorageError):
    """No such in-progress upload, or no such complete share."""

    http_status = 404


class UploadSecretMismatch(StorageError):
    """A well-formed upload secret that is not the one recorded for this in-progress share."""

    http_status = 401


class ConflictingWrite(StorageError):
    """Overlapping bytes differ from what was already written to this share."""

    http_status = 409


class AlreadyComplete(StorageError):
    """The share is complete: it can no longer be aborted."""

    http_status = 405


class WriteOutOfBounds(StorageError):
    """A write that runs past the share's allocated size."""

    http_status = 416


class BadBody(StorageError):
    """A request body whose length does not match its Content-Range or Content-Length."""

    http_status = 400


class BodyTooLarge(StorageError):
    """A structured request body over its limit (gbs-http-protocol §7)."""

    http_status = 413


class ContainerError(StorageError):
    """A share file on disk that is not a valid immutable container."""


__all__ = [
    "AlreadyComplete",
    "BadBody",
    "BodyTooLarge",
    "ConflictingWrite",
    "ContainerError",
    "ShareNotFound",
    "StorageError",
    "UploadSecretMismatch",
    "WriteOutOfBounds",
]
