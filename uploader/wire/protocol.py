"""The pure GBS codec: headers, CBOR bodies and byte ranges of the immutable storage API.

Follows ``shared/spec/gbs-http-protocol.md`` (§3 headers, §4 encoding, §6 messages), and where the
written Tahoe spec and its code differ, the code (§10). Both our server (parsing requests, building
responses) and our client (building requests, parsing responses) use this module, so every protocol
decision lives here. No I/O: everything works on ``bytes``, ``str`` and frozen dataclasses.

| message (§)                | direction | CBOR shape                                                       |
|----------------------------|-----------|------------------------------------------------------------------|
| version (6.1)              | response  | ``{b"http://…/storage/v1": {b"maximum-immutable-share-size": u,  |
|                            |           | b"maximum-mutable-share-size": u, b"available-space": u},        |
|                            |           | b"application-version": bstr}`` — every key a *byte* string      |
| allocate (6.2)             | request   | ``{"share-numbers": tag258([u…≤256]), "allocated-size": u}``     |
| allocate (6.2)             | response  | ``{"already-have": tag258([u…]), "allocated": tag258([u…])}``    |
| write (6.3)                | response  | ``{"required": [{"begin": u, "end": u}, …]}`` (a plain array)    |
| list shares (6.5)          | response  | ``tag258([u…])``                                                 |
| corruption advisory (6.8)  | request   | ``{"reason": tstr}`` (1..32765 bytes of UTF-8)                   |

| header                     | form                                                                |
|----------------------------|---------------------------------------------------------------------|
| ``Authorization``          | ``Tahoe-LAFS <standard base64 of the swissnum>``                    |
| ``X-Tahoe-Authorization``  | one line per secret: ``<name> <standard base64 of the secret>``     |
| ``Content-Range`` (PATCH)  | ``bytes <first>-<last>/<total or *>``, both ends inclusive          |
| ``Range`` (GET request)    | ``bytes=<first>-<last>``: one range, both ends given               |
| ``Content-Range`` (206)    | ``bytes <first>-<last>/*``                                          |

CBOR here is a strict subset (RFC 8949) decoded by a small decoder of our own, so that anything a
schema does not allow — unknown or missing keys, a plain array where a set (tag 258) is needed, other
tags, floats, bignums, indefinite lengths, duplicate keys or set members, trailing bytes — raises
``WireError`` and nothing else. Every integer is below 2**64. Errors: ``WireError`` (HTTP 400) and its
subclasses ``SecretsError`` (400) and ``RangeError`` (416).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.base32 import b32decode, b32encode
from workers.errors import FormatError, UploaderError

CBOR_MIME_TYPE = "application/cbor"
OCTET_STREAM = "application/octet-stream"
AUTH_SCHEME = "Tahoe-LAFS"
SECRETS_HEADER = "X-Tahoe-Authorization"
V1_KEY = b"http://allmydata.org/tahoe/protocols/storage/v1"
MAX_UINT = 2**64 - 1
MAX_SHARE_NUMBERS = 256
MAX_SHNUM = 255
LEASE_SECRET_SIZE = 32
MAX_REASON_BYTES = 32765

# Request body limits (§7).
ALLOCATE_BODY_LIMIT = 8192
CORRUPT_BODY_LIMIT = 32768
DEFAULT_BODY_LIMIT = 1024 * 1024

_SET_TAG = 258
_MAX_DEPTH = 16


class WireError(UploaderError):
    """A GBS message, header or path that does not follow the protocol (says what was expected)."""

    http_status = 400


class SecretsError(WireError):
    """``X-Tahoe-Authorization`` headers that are not exactly the endpoint's set of valid secrets."""


class RangeError(WireError):
    """A ``Range`` or ``Content-Range`` header this protocol does not allow."""

    http_status = 416


# ---------------------------------------------------------------------------------------------
# Paths (§4, §5)

_SI_TEXT = re.compile(r"[a-z2-7]{25}[aeimquy4]")


def storage_index_text(storage_index: bytes) -> str:
    """The 26-character lower-case base32 form used in paths and on disk."""
    if len(storage_index) != 16:
        raise WireError(f"a storage index is 16 bytes, got {len(storage_index)}")
    return b32encode(storage_index)


def parse_storage_index(text: str) -> bytes:
    """Decode a path's ``{si}``: exactly 26 lower-case base32 characters with clean spare bits."""
    if not _SI_TEXT.fullmatch(text):
        raise WireError(f"a storage index is 26 lower-case base32 characters, got {text[:40]!r}")
    try:
        return b32decode(text, 16)
    except FormatError as exc:  # pragma: no cover - the pattern admits only clean 16-byte text
        raise WireError(str(exc)) from None


def parse_share_number(text: str) -> int:
    """Decode a path's ``{shnum}``: unsigned decimal, 0..255."""
    if not text.isascii() or not text.isdigit() or len(text) > 3 or int(text) > MAX_SHNUM:
        raise WireError(f"a share number is 0..{MAX_SHNUM} in decimal, got {text[:20]!r}")
    return int(text)


def version_path() -> str:
    return "/storage/v1/version"


def allocate_path(storage_index: bytes) -> str:
    return f"/storage/v1/immutable/{storage_index_text(storage_index)}"


def share_path(storage_index: bytes, shnum: int) -> str:
    """PATCH (write) and GET (read) of one share."""
    return f"/storage/v1/immutable/{storage_index_text(storage_index)}/{shnum}"


def abort_path(storage_index: bytes, shnum: int) -> str:
    return f"{share_path(storage_index, shnum)}/abort"


def list_shares_path(storage_index: bytes) -> str:
    return f"/storage/v1/immutable/{storage_index_text(storage_index)}/shares"


def lease_path(storage_index: bytes) -> str:
    return f"/storage/v1/lease/{storage_index_text(storage_index)}"


def corrupt_path(storage_index: bytes, shnum: int) -> str:
    return f"{share_path(storage_index, shnum)}/corrupt"


# ---------------------------------------------------------------------------------------------
# Authorization (§3.1)


def _swissnum_bytes(swissnum: bytes | str) -> bytes:
    return swissnum.encode("ascii") if isinstance(swissnum, str) else swissnum


def build_authorization(swissnum: bytes | str) -> str:
    """The ``Authorization`` value: ``Tahoe-LAFS `` + standard base64 of the swissnum's bytes."""
    return f"{AUTH_SCHEME} {base64.b64encode(_swissnum_bytes(swissnum)).decode('ascii')}"


def parse_authorization(value: str) -> bytes:
    """The swissnum bytes in an ``Authorization`` value; WireError if it is not that form."""
    scheme, sep, b64 = value.partition(" ")
    if scheme != AUTH_SCHEME or not sep:
        raise WireError(f"Authorization must be '{AUTH_SCHEME} <base64>'")
    try:
        raw = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise WireError("Authorization value is not standard base64") from None
    if not raw or base64.b64encode(raw).decode("ascii") != b64:
        raise WireError("Authorization value is not canonical, non-empty base64")
    return raw


def authorization_matches(value: str | None, swissnum: bytes | str) -> bool:
    """Tahoe's check: the whole header value equals the expected one, compared in constant time."""
    if value is None:
        return False
    try:
        got = value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(got, build_authorization(swissnum).encode("ascii"))


# ---------------------------------------------------------------------------------------------
# Secrets (§3.2)


class Secret(enum.Enum):
    LEASE_RENEW = "lease-renew-secret"
    LEASE_CANCEL = "lease-cancel-secret"
    UPLOAD = "upload-secret"
    WRITE_ENABLER = "write-enabler"


NO_SECRETS: frozenset[Secret] = frozenset()
ALLOCATE_SECRETS = frozenset({Secret.LEASE_RENEW, Secret.LEASE_CANCEL, Secret.UPLOAD})
UPLOAD_SECRETS = frozenset({Secret.UPLOAD})
LEASE_SECRETS = frozenset({Secret.LEASE_RENEW, Secret.LEASE_CANCEL})
_BY_NAME = {s.value: s for s in Secret}


def _check_secret(secret: Secret, value: bytes) -> None:
    if not value:
        raise SecretsError(f"{secret.value} must not be empty")
    if secret in LEASE_SECRETS and len(value) != LEASE_SECRET_SIZE:
        raise SecretsError(f"{secret.value} must be {LEASE_SECRET_SIZE} bytes, got {len(value)}")


def build_secret_headers(secrets: Mapping[Secret, bytes]) -> list[tuple[str, str]]:
    """One ``(X-Tahoe-Authorization, "<name> <base64>")`` pair per secret, in a stable order."""
    out = []
    for secret in sorted(secrets, key=lambda s: s.value):
        value = secrets[secret]
        _check_secret(secret, value)
        out.append((SECRETS_HEADER, f"{secret.value} {base64.b64encode(value).decode('ascii')}"))
    return out


def parse_secret_headers(values: Sequence[str], required: frozenset[Secret]) -> dict[Secret, bytes]:
    """Decode every ``X-Tahoe-Authorization`` value; the set sent must be exactly ``required``.

    Raises SecretsError for an unknown name, a repeated secret, a value that is not standard
    base64, an empty value, a lease secret that is not 32 bytes, or a missing or extra secret.
    Error texts name secrets, never their values.
    """
    found: dict[Secret, bytes] = {}
    for raw in values:
        name, sep, b64 = raw.strip().partition(" ")
        secret = _BY_NAME.get(name)
        if secret is None or not sep:
            raise SecretsError(f"unknown secret name {name[:40]!r} in {SECRETS_HEADER}")
        if secret in found:
            raise SecretsError(f"{secret.value} sent more than once")
        try:
            value = base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SecretsError(f"{secret.value} is not standard base64") from None
        _check_secret(secret, value)
        found[secret] = value
    if found.keys() != required:
        expected = sorted(s.value for s in required) or "none"
        got = sorted(s.value for s in found) or "none"
        raise SecretsError(f"expected secrets {expected} in {SECRETS_HEADER}, got {got}")
    return found


# ---------------------------------------------------------------------------------------------
# Content negotiation (§4)


def accepts_cbor(accept: str | None) -> bool:
    """Tahoe's rule: no Accept at all means CBOR; otherwise the highest-quality entry of the first
    header must be literally ``application/cbor`` (so ``*/*`` alone is refused with 406)."""
    if accept is None:
        return True
    best: tuple[float, str] | None = None
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(val.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, media.lower())
    return best is not None and best[1] == CBOR_MIME_TYPE


def is_cbor_content_type(content_type: str | None) -> bool:
    """A request body is CBOR when it has no Content-Type or ``application/cbor`` (any parameters)."""
    if content_type is None or not content_type.strip():
        return True
    return content_type.split(";", 1)[0].strip().lower() == CBOR_MIME_TYPE


# ---------------------------------------------------------------------------------------------
# The strict CBOR subset

_HEAD = struct.Struct(">B")
_ARG = {24: struct.Struct(">B"), 25: struct.Struct(">H"), 26: struct.Struct(">I"), 27: struct.Struct(">Q")}


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    if arg < 2**8:
        return bytes([major << 5 | 24, arg])
    if arg < 2**16:
        return bytes([major << 5 | 25]) + arg.to_bytes(2, "big")
    if arg < 2**32:
        return bytes([major << 5 | 26]) + arg.to_bytes(4, "big")
    return bytes([major << 5 | 27]) + arg.to_bytes(8, "big")


def _encode(value: object, out: bytearray) -> None:
    if isinstance(value, bool):
        out.append(0xF5 if value else 0xF4)
    elif value is None:
        out.append(0xF6)
    elif isinstance(value, int):
        if not -(2**64) <= value <= MAX_UINT:
            raise WireError(f"integer {value} does not fit CBOR's 64-bit range")
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out += _head(2, len(data))
        out += data
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out += _head(3, len(data))
        out += data
    elif isinstance(value, list | tuple):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, frozenset | set):
        out += _head(6, _SET_TAG)
        out += _head(4, len(value))
        for item in sorted(value):
            _encode(item, out)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(key, out)
            _encode(item, out)
    else:
        raise WireError(f"cannot encode {type(value).__name__} as CBOR")


def encode_cbor(value: object) -> bytes:
    """Definite-length, shortest-form CBOR; Python sets become tag 258 with sorted members."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


class _Decoder:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise WireError(f"CBOR ends early: needed {n} more bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _head(self) -> tuple[int, int]:
        (initial,) = _HEAD.unpack(self._take(1))
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info
        if info in _ARG:
            fmt = _ARG[info]
            return major, int(fmt.unpack(self._take(fmt.size))[0])
        if info == 31:
            raise WireError("indefinite-length CBOR items are not accepted")
        raise WireError(f"reserved CBOR additional information {info} at offset {self.pos - 1}")

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise WireError(f"CBOR nested deeper than {_MAX_DEPTH} levels")
        start = self.pos
        major, arg = self._head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self._take(arg)
        if major == 3:
            try:
                return self._take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise WireError(f"CBOR text string at offset {start} is not UTF-8") from None
        if major == 4:
            self._room(arg)
            return [self.value(depth + 1) for _ in range(arg)]
        if major == 5:
            self._room(2 * arg)
            out: dict[Any, Any] = {}
            for _ in range(arg):
                key = self.value(depth + 1)
                if not isinstance(key, str | bytes | int):
                    raise WireError(f"CBOR map key of type {type(key).__name__} is not accepted")
                if key in out:
                    raise WireError(f"CBOR map has the key {key!r} twice")
                out[key] = self.value(depth + 1)
            return out
        if major == 6:
            if arg != _SET_TAG:
                raise WireError(f"CBOR tag {arg} is not accepted (only tag 258, a set)")
            items = self.value(depth + 1)
            if not isinstance(items, list):
                raise WireError("CBOR tag 258 (set) must wrap an array")
            if not all(isinstance(i, int | str | bytes) for i in items):
                raise WireError("CBOR set members must be integers or strings")
            members = frozenset(items)
            if len(members) != len(items):
                raise WireError("CBOR set has a repeated member")
            return members
        # major 7: only false, true and null.
        if arg in (20, 21, 22) and self.data[start] & 0x1F == arg:
            return (False, True, None)[arg - 20]
        raise WireError(f"CBOR simple value or float at offset {start} is not accepted")

    def _room(self, items: int) -> None:
        # Every item needs at least one byte: refuse absurd counts before allocating anything.
        if items > len(self.data) - self.pos:
            left = len(self.data) - self.pos
            raise WireError(f"CBOR container claims {items} items but only {left} bytes remain")


def decode_cbor(data: bytes) -> Any:
    """Decode exactly one item of the strict subset (no trailing bytes); WireError otherwise."""
    decoder = _Decoder(bytes(data))
    value = decoder.value(0)
    if decoder.pos != len(decoder.data):
        raise WireError(f"{len(decoder.data) - decoder.pos} bytes follow the CBOR item")
    return value


# ---------------------------------------------------------------------------------------------
# Schema helpers


def _map(value: Any, keys: frozenset[Any], what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{what} must be a CBOR map, got {type(value).__name__}")
    if value.keys() != keys:
        missing = sorted(map(repr, keys - value.keys()))
        extra = sorted(map(repr, value.keys() - keys))
        raise WireError(f"{what} keys: missing {missing or 'none'}, unexpected {extra or 'none'}")
    return value


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT:
        raise WireError(f"{what} must be an unsigned integer below 2**64, got {type(value).__name__}")
    return value


def _share_set(value: Any, what: str) -> frozenset[int]:
    if not isinstance(value, frozenset):
        raise WireError(f"{what} must be a set (CBOR tag 258), got {type(value).__name__}")
    if len(value) > MAX_SHARE_NUMBERS:
        raise WireError(f"{what} may hold at most {MAX_SHARE_NUMBERS} share numbers, got {len(value)}")
    for n in value:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SHNUM:
            raise WireError(f"{what} must hold share numbers 0..{MAX_SHNUM}, got {n!r}")
    return value


def _shares(values: Iterable[int], what: str) -> frozenset[int]:
    out = frozenset(values)
    return _share_set(out, what)


# ---------------------------------------------------------------------------------------------
# Version (§6.1)

_K_IMM = b"maximum-immutable-share-size"
_K_MUT = b"maximum-mutable-share-size"
_K_AVAIL = b"available-space"
_K_APP = b"application-version"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    maximum_immutable_share_size: int  # bytes
    maximum_mutable_share_size: int  # bytes
    available_space: int  # bytes
    application_version: bytes  # e.g. b"uploader/0.1.0"


def build_version(info: VersionInfo) -> bytes:
    inner = {
        _K_IMM: _uint(info.maximum_immutable_share_size, "maximum-immutable-share-size"),
        _K_MUT: _uint(info.maximum_mutable_share_size, "maximum-mutable-share-size"),
        _K_AVAIL: _uint(info.available_space, "available-space"),
    }
    return encode_cbor({V1_KEY: inner, _K_APP: bytes(info.application_version)})


def parse_version(body: bytes) -> VersionInfo:
    outer = _map(decode_cbor(body), frozenset({V1_KEY, _K_APP}), "version response")
    inner = _map(outer[V1_KEY], frozenset({_K_IMM, _K_MUT, _K_AVAIL}), "version v1 map")
    app = outer[_K_APP]
    if not isinstance(app, bytes):
        raise WireError("application-version must be a byte string")
    return VersionInfo(
        _uint(inner[_K_IMM], "maximum-immutable-share-size"),
        _uint(inner[_K_MUT], "maximum-mutable-share-size"),
        _uint(inner[_K_AVAIL], "available-space"),
        app,
    )


# ---------------------------------------------------------------------------------------------
# Allocate (§6.2)


@dataclass(frozen=True, slots=True)
class AllocateRequest:
    share_numbers: frozenset[int]
    allocated_size: int  # bytes of ONE share; every listed share gets this size


@dataclass(frozen=True, slots=True)
class AllocateResponse:
    already_have: frozenset[int]  # every complete share the server holds for the SI
    allocated: frozenset[int]  # buckets created by this call


def build_allocate_request(share_numbers: Iterable[int], allocated_size: int) -> bytes:
    shares = _shares(share_numbers, "share-numbers")
    return encode_cbor({"share-numbers": shares, "allocated-size": _uint(allocated_size, "allocated-size")})


def parse_allocate_request(body: bytes) -> AllocateRequest:
    msg = _map(decode_cbor(body), frozenset({"share-numbers", "allocated-size"}), "allocate request")
    return AllocateRequest(
        _share_set(msg["share-numbers"], "share-numbers"), _uint(msg["allocated-size"], "allocated-size")
    )


def build_allocate_response(already_have: Iterable[int], allocated: Iterable[int]) -> bytes:
    return encode_cbor(
        {"already-have": _shares(already_have, "already-have"), "allocated": _shares(allocated, "allocated")}
    )


def parse_allocate_response(body: bytes) -> AllocateResponse:
    msg = _map(decode_cbor(body), frozenset({"already-have", "allocated"}), "allocate response")
    return AllocateResponse(
        _share_set(msg["already-have"], "already-have"), _share_set(msg["allocated"], "allocated")
    )


# ---------------------------------------------------------------------------------------------
# Write response: the required ranges (§6.3)


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Bytes ``begin`` (inclusive) .. ``end`` (exclusive) of a share."""

    begin: int
    end: int


def _check_spans(spans: Sequence[Span]) -> tuple[Span, ...]:
    last = -1
    for span in spans:
        _uint(span.begin, "begin")
        _uint(span.end, "end")
        if not span.begin < span.end:
            raise WireError(f"a required range must have begin < end, got {span.begin}..{span.end}")
        if span.begin <= last:
            raise WireError("required ranges must be ascending and not touch or overlap")
        last = span.end
    return tuple(spans)


def build_required_ranges(spans: Iterable[Span]) -> bytes:
    """``{"required": [...]}``; an empty list means the share is complete."""
    checked = _check_spans(list(spans))
    return encode_cbor({"required": [{"begin": s.begin, "end": s.end} for s in checked]})


def parse_required_ranges(body: bytes) -> tuple[Span, ...]:
    msg = _map(decode_cbor(body), frozenset({"required"}), "write response")
    items = msg["required"]
    if not isinstance(items, list):
        raise WireError("required must be a CBOR array")
    spans = []
    for item in items:
        entry = _map(item, frozenset({"begin", "end"}), "required range")
        spans.append(Span(_uint(entry["begin"], "begin"), _uint(entry["end"], "end")))
    return _check_spans(spans)


# ---------------------------------------------------------------------------------------------
# List shares (§6.5)


def build_share_list(share_numbers: Iterable[int]) -> bytes:
    return encode_cbor(_shares(share_numbers, "share list"))


def parse_share_list(body: bytes) -> frozenset[int]:
    return _share_set(decode_cbor(body), "share list")


# ---------------------------------------------------------------------------------------------
# Corruption advisory (§6.8)


def build_corruption_advisory(reason: str) -> bytes:
    _check_reason(reason)
    return encode_cbor({"reason": reason})


def parse_corruption_advisory(body: bytes) -> str:
    msg = _map(decode_cbor(body), frozenset({"reason"}), "corruption advisory")
    reason = msg["reason"]
    if not isinstance(reason, str):
        raise WireError("reason must be a text string")
    _check_reason(reason)
    return reason


def _check_reason(reason: str) -> None:
    # CDDL's ``tstr .size (1..32765)`` counts UTF-8 bytes.
    size = len(reason.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_REASON_BYTES:
        raise WireError(f"reason must be 1..{MAX_REASON_BYTES} bytes of UTF-8, got {size}")


# ---------------------------------------------------------------------------------------------
# Byte ranges (§6.3, §6.6)

_NUM = r"(0|[1-9][0-9]{0,19})"
_CONTENT_RANGE = re.compile(rf"bytes {_NUM}-{_NUM}/({_NUM}|\*)")
_RANGE = re.compile(rf"bytes={_NUM}-{_NUM}")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``first`` .. ``last`` of a share, both inclusive, as HTTP writes them."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def end(self) -> int:
        """One past ``last`` (exclusive end)."""
        return self.last + 1


def _byte_range(first: int, last: int, what: str) -> ByteRange:
    if last > MAX_UINT or first > last:
        raise RangeError(f"{what} must have first <= last < 2**64, got {first}-{last}")
    return ByteRange(first, last)


def format_content_range(first: int, last: int, total: int | None = None) -> str:
    """``bytes first-last/*`` (or ``/total``); both ends inclusive."""
    r = _byte_range(first, last, "Content-Range")
    return f"bytes {r.first}-{r.last}/{'*' if total is None else total}"


def parse_content_range(value: str | None) -> ByteRange:
    """Parse a PATCH request's (or a 206 response's) ``Content-Range``; the total, if given, must
    exceed ``last`` and is otherwise ignored. RangeError (416) when missing or malformed."""
    if value is None:
        raise RangeError("Content-Range is required")
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if not m:
        raise RangeError(f"Content-Range must be 'bytes <first>-<last>/<total or *>', got {value[:60]!r}")
    r = _byte_range(int(m[1]), int(m[2]), "Content-Range")
    if m[4] is not None and int(m[4]) <= r.last:
        raise RangeError(f"Content-Range total {m[4]} must exceed its last byte {r.last}")
    return r


def format_range(first: int, last: int) -> str:
    """A GET request's ``Range``: ``bytes=first-last`` (inclusive)."""
    r = _byte_range(first, last, "Range")
    return f"bytes={r.first}-{r.last}"


def parse_range(value: str) -> ByteRange:
    """Parse a GET ``Range``: one byte range with both ends; anything else is RangeError (416)."""
    m = _RANGE.fullmatch(value.strip())
    if not m:
        raise RangeError(f"Range must be one 'bytes=<first>-<last>' range, got {value[:60]!r}")
    return _byte_range(int(m[1]), int(m[2]), "Range")


def parse_response_content_range(value: str | None) -> ByteRange:
    """A 206 response's ``Content-Range`` (client side): the range actually sent."""
    return parse_content_range(value)


__all__ = [
    "ALLOCATE_BODY_LIMIT",
    "ALLOCATE_SECRETS",
    "CBOR_MIME_TYPE",
    "CORRUPT_BODY_LIMIT",
    "DEFAULT_BODY_LIMIT",
    "LEASE_SECRETS",
    "NO_SECRETS",
    "OCTET_STREAM",
    "SECRETS_HEADER",
    "UPLOAD_SECRETS",
    "AllocateRequest",
    "AllocateResponse",
    "ByteRange",
    "RangeError",
    "Secret",
    "SecretsError",
    "Span",
    "VersionInfo",
    "WireError",
    "abort_path",
    "accepts_cbor",
    "allocate_path",
    "authorization_matches",
    "build_allocate_request",
    "build_allocate_response",
    "build_authorization",
    "build_corruption_advisory",
    "build_required_ranges",
    "build_secret_headers",
    "build_share_list",
    "build_version",
    "corrupt_path",
    "decode_cbor",
    "encode_cbor",
    "format_content_range",
    "format_range",
    "is_cbor_content_type",
    "lease_path",
    "list_shares_path",
    "parse_allocate_request",
    "parse_allocate_response",
    "parse_authorization",
    "parse_content_range",
    "parse_corruption_advisory",
    "parse_range",
    "parse_required_ranges",
    "parse_response_content_range",
    "parse_secret_headers",
    "parse_share_list",
    "parse_share_number",
    "parse_storage_index",
    "parse_version",
    "share_path",
    "storage_index_text",
    "version_path",
]
