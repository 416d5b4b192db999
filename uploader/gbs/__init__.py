"""The async GBS (HTTP storage protocol) client: one ``StorageClient`` per storage server."""

from uploader.gbs.client import StorageClient
from uploader.gbs.errors import (
    BadResponse,
    ConflictingWrite,
    RemoteProtocolError,
    ServerError,
    ServerRefused,
    ServerUnreachable,
    SpkiMismatch,
)
from uploader.wire.protocol import AllocateResponse, Span, VersionInfo

__all__ = [
    "AllocateResponse",
    "BadResponse",
    "ConflictingWrite",
    "RemoteProtocolError",
    "ServerError",
    "ServerRefused",
    "ServerUnreachable",
    "Span",
    "SpkiMismatch",
    "StorageClient",
    "VersionInfo",
]
