"""Messages between the network process and the workers: msgpack, versioned, stable numeric kinds.

Each message is a frozen dataclass packed as ``[PROTOCOL_VERSION, kind, [fields…]]`` (msgpack,
``use_bin_type=True`` / ``raw=False``) and sent in a frame: ``u32be length ‖ body``. Bulk bytes
(the N blocks of an encoded segment) normally do not travel in frames at all: the worker writes
them into a shared-memory slot named by the job (see ``workers.slots``) and the reply carries
only hashes. ``slot = -1`` asks for the blocks inline in the reply frame instead.

| kind | message | direction |
|---|---|---|
| 1 | EncodeSegment | network → worker |
| 2 | SegmentEncoded | worker → network |
| 3 | JobFailed | worker → network |
| 4 | KeyPass | network → worker |
| 5 | KeyReady | worker → network |
| 6 | DecodeSegment | network → worker |
| 7 | SegmentDecoded | worker → network |
| 8 | Shutdown | network → worker |
| 9 | WorkerReady | worker → network |

Paths (``FsPath`` fields) are local file names, which are bytes and need not be UTF-8: they travel
as msgpack bin (``os.fsencode``) and come back as the same ``str`` (``os.fsdecode``), so a name like
``b"bad\\xffname"`` reaches the worker intact instead of failing to pack.

Kinds are never reused. ``unpack`` rejects an unknown version or kind, a wrong field count or
type, and an oversized frame, with MessageError.
"""

from __future__ import annotations

import os
import struct
import types
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any

import msgpack

from workers.errors import MessageError

PROTOCOL_VERSION = 2  # 2: FsPath fields travel as bin, not str
FRAME_HEADER = struct.Struct(">L")
MAX_CONTROL_FRAME = 1 << 20  # frames without inline bulk data
MAX_FRAME = 1 << 30  # hard ceiling for any frame (inline blocks of a huge segment)

_FS_PATH = "fs-path"
FsPath = Annotated[str, _FS_PATH]  # a local path: a str to Python, bytes (os.fsencode) on the wire


@dataclass(frozen=True, slots=True)
class EncodeSegment:
    job: int
    segment: int
    key: bytes  # 16-byte AES key
    offset: int  # byte offset of the segment in the file; sets the CTR counter
    length: int  # plaintext bytes in this segment (the tail may be short)
    source: FsPath  # path the worker reads from; "" when ``data`` carries the plaintext
    data: bytes | None
    k: int
    n: int
    slot: int  # shared-memory slot for the N blocks, or -1 for inline blocks in the reply


@dataclass(frozen=True, slots=True)
class SegmentEncoded:
    job: int
    segment: int
    crypttext_hash: bytes
    block_hashes: list[bytes]
    block_size: int  # bytes per block; block j sits at j * block_size in the slot
    slot: int
    blocks: list[bytes] | None  # only when slot == -1


@dataclass(frozen=True, slots=True)
class JobFailed:
    job: int
    segment: int
    error_class: str
    message: str


@dataclass(frozen=True, slots=True)
class KeyPass:
    job: int
    source: FsPath
    size: int
    secret: bytes  # convergence secret
    k: int
    n: int
    segment_size: int  # the adjusted segment size (part of the convergent key)


@dataclass(frozen=True, slots=True)
class KeyReady:
    job: int
    key: bytes


@dataclass(frozen=True, slots=True)
class DecodeSegment:
    """Verify, decode, check and decrypt one segment from k blocks.

    Blocks travel inline (``slot = -1``: ``blocks`` holds them) or in a shared-memory slot: block
    ``i`` of ``block_nums`` (ascending) at ``i * block_size``. After a slot job, ``slot[:length]``
    holds the segment's ciphertext (the network process feeds it to the flat hash), and when
    ``dest`` is "" the plaintext to output follows at ``k * block_size``.

    Only the plaintext of file bytes ``[out_start, out_end)`` (clipped to this segment) is
    output: pwritten into ``dest`` at ``file offset - dest_base``, or returned when ``dest`` is "".
    """

    job: int
    segment: int
    key: bytes
    offset: int  # file offset of the segment (sets the CTR counter)
    length: int  # unpadded bytes of this segment
    k: int
    n: int
    block_nums: list[int]  # ascending
    blocks: list[bytes]  # inline blocks, same order; [] when slot >= 0
    block_hashes: list[bytes]  # the verified leaf hash of each block, same order
    crypttext_hash: bytes  # the verified crypttext-tree leaf of this segment
    slot: int  # shared-memory slot holding the blocks, or -1 for inline blocks
    block_size: int  # bytes per block of this segment
    out_start: int  # file offsets of the plaintext to output
    out_end: int
    dest: FsPath  # file to pwrite the plaintext into; "" returns it (in the slot, or inline)
    dest_base: int


@dataclass(frozen=True, slots=True)
class SegmentDecoded:
    job: int
    segment: int
    bad_blocks: list[int]  # block numbers whose hash did not match (nothing decoded if any);
    # [-1]: every block matched but the decoded segment does not match its crypttext hash
    plaintext: bytes | None  # inline output when dest was "" and slot was -1
    ciphertext: bytes | None  # the segment's ciphertext, inline jobs only (for the flat hash)


@dataclass(frozen=True, slots=True)
class Shutdown:
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerReady:
    pid: int
    backend: str


Message = (
    EncodeSegment
    | SegmentEncoded
    | JobFailed
    | KeyPass
    | KeyReady
    | DecodeSegment
    | SegmentDecoded
    | Shutdown
    | WorkerReady
)

# Messages that carry a job id and get exactly one reply.
JobMessage = EncodeSegment | KeyPass | DecodeSegment
ReplyMessage = SegmentEncoded | JobFailed | KeyReady | SegmentDecoded

KINDS: dict[type, int] = {
    EncodeSegment: 1,
    SegmentEncoded: 2,
    JobFailed: 3,
    KeyPass: 4,
    KeyReady: 5,
    DecodeSegment: 6,
    SegmentDecoded: 7,
    Shutdown: 8,
    WorkerReady: 9,
}
_BY_KIND = {kind: cls for cls, kind in KINDS.items()}


def _is_path(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and _FS_PATH in annotation.__metadata__


def _checker(annotation: Any) -> Any:
    """A predicate for one field's declared type (int, bytes, str, list[...], X | None) as it
    arrives on the wire (an FsPath arrives as bytes)."""
    if _is_path(annotation):
        return lambda v: isinstance(v, bytes)
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        parts = [_checker(a) for a in typing.get_args(annotation)]
        return lambda v: any(p(v) for p in parts)
    if origin is list:
        (item,) = typing.get_args(annotation)
        inner = _checker(item)
        return lambda v: isinstance(v, list) and all(inner(x) for x in v)
    if annotation is type(None):
        return lambda v: v is None
    if annotation is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    return lambda v: isinstance(v, annotation)


_HINTS = {cls: typing.get_type_hints(cls, include_extras=True) for cls in KINDS}
_SCHEMAS = {cls: [(f.name, _checker(_HINTS[cls][f.name])) for f in fields(cls)] for cls in KINDS}
# Where each message's FsPath fields sit in its body.
_PATHS = {cls: tuple(i for i, f in enumerate(fields(cls)) if _is_path(_HINTS[cls][f.name])) for cls in KINDS}


def pack(msg: Message) -> bytes:
    """The msgpack body of one message (no frame header). Raises UnicodeEncodeError for an FsPath
    holding a surrogate that ``surrogateescape`` cannot have made (no file system name does)."""
    body = [getattr(msg, f.name) for f in fields(msg)]
    for i in _PATHS[type(msg)]:
        body[i] = os.fsencode(body[i])
    packed: bytes = msgpack.packb([PROTOCOL_VERSION, KINDS[type(msg)], body], use_bin_type=True)
    return packed


def frame(msg: Message) -> bytes:
    body = pack(msg)
    return FRAME_HEADER.pack(len(body)) + body


def unpack(data: bytes | memoryview, max_size: int = MAX_FRAME) -> Message:
    """Decode one message body; raise MessageError for anything but a well-formed known message."""
    if len(data) > max_size:
        raise MessageError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=max_size, max_str_len=1 << 20)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MessageError(f"message is not valid msgpack: {type(exc).__name__}") from None
    if not (isinstance(obj, list) and len(obj) == 3):
        raise MessageError("message must be [version, kind, fields]")
    version, kind, body = obj
    if version != PROTOCOL_VERSION:
        raise MessageError(f"message protocol version {version!r}, expected {PROTOCOL_VERSION}")
    cls = _BY_KIND.get(kind) if isinstance(kind, int) else None
    if cls is None:
        raise MessageError(f"unknown message kind {kind!r}")
    schema = _SCHEMAS[cls]
    if not isinstance(body, list) or len(body) != len(schema):
        raise MessageError(f"{cls.__name__} needs {len(schema)} fields")
    for (name, ok), value in zip(schema, body, strict=True):
        if not ok(value):
            raise MessageError(f"{cls.__name__}.{name} has the wrong type ({type(value).__name__})")
    for i in _PATHS[cls]:
        body[i] = os.fsdecode(body[i])
    msg: Message = cls(*body)
    return msg


def read_frame_length(header: bytes, max_size: int = MAX_FRAME) -> int:
    length: int = FRAME_HEADER.unpack(header)[0]
    if length > max_size:
        raise MessageError(f"frame of {length} bytes exceeds the limit of {max_size}")
    return length
