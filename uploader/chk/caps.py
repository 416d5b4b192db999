"""Capability strings: CHK read cap, CHK verify cap, LIT cap (chk-format §11).

| cap | form |
|---|---|
| read | ``URI:CHK:<b32 key, 26>:<b32 UEB hash, 52>:<k>:<N>:<size>`` |
| verify | ``URI:CHK-Verifier:<b32 SI, 26>:<b32 UEB hash, 52>:<k>:<N>:<size>`` |
| LIT | ``URI:LIT:<b32 plaintext>`` (files of at most 55 bytes; nothing is uploaded) |

Parsing is strict: canonical decimal (no leading zeros), clean base32, 1 <= k <= N <= 256, and a
CHK size above the LIT limit. Anything else raises CapError, which says what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.base32 import b32decode, b32encode
from workers.errors import FormatError
from workers.geometry import LIT_MAX_SIZE
from workers.keys import storage_index


class CapError(FormatError):
    """Text that is not a valid capability string."""


_NUM = r"(0|[1-9][0-9]*)"
_MAX_DIGITS = 20
_CHK = re.compile(rf"URI:CHK:([a-z2-7]{{25}}[aeimquy4]):([a-z2-7]{{51}}[aq]):{_NUM}:{_NUM}:{_NUM}")
_VERIFIER = re.compile(
    rf"URI:CHK-Verifier:([a-z2-7]{{25}}[aeimquy4]):([a-z2-7]{{51}}[aq]):{_NUM}:{_NUM}:{_NUM}"
)
_LIT = re.compile(r"URI:LIT:([a-z2-7]*)")


@dataclass(frozen=True, slots=True)
class VerifyCap:
    storage_index: bytes
    ueb_hash: bytes
    k: int
    n: int
    size: int

    def __str__(self) -> str:
        return f"URI:CHK-Verifier:{b32encode(self.storage_index)}:{b32encode(self.ueb_hash)}:{self.k}:{self.n}:{self.size}"


@dataclass(frozen=True, slots=True)
class ChkCap:
    key: bytes
    ueb_hash: bytes
    k: int
    n: int
    size: int

    def __str__(self) -> str:
        return f"URI:CHK:{b32encode(self.key)}:{b32encode(self.ueb_hash)}:{self.k}:{self.n}:{self.size}"

    def __repr__(self) -> str:  # read caps are secrets: never show them in reprs or logs
        return f"ChkCap(si={b32encode(self.storage_index)}, k={self.k}, n={self.n}, size={self.size})"

    @property
    def storage_index(self) -> bytes:
        return storage_index(self.key)

    @property
    def verify_cap(self) -> VerifyCap:
        return VerifyCap(self.storage_index, self.ueb_hash, self.k, self.n, self.size)


@dataclass(frozen=True, slots=True)
class LitCap:
    data: bytes

    def __str__(self) -> str:
        return f"URI:LIT:{b32encode(self.data)}"

    def __repr__(self) -> str:
        return f"LitCap(size={len(self.data)})"

    @property
    def size(self) -> int:
        return len(self.data)


Cap = ChkCap | VerifyCap | LitCap


def parse_cap(text: str) -> Cap:
    """Parse any immutable cap; raise CapError naming what was wrong."""
    text = text.strip()
    if m := _CHK.fullmatch(text):
        key = b32decode(m[1], 16)
        ueb_hash = b32decode(m[2], 32)
        k, n, size = _numbers(m)
        return ChkCap(key, ueb_hash, k, n, size)
    if m := _VERIFIER.fullmatch(text):
        si = b32decode(m[1], 16)
        ueb_hash = b32decode(m[2], 32)
        k, n, size = _numbers(m)
        return VerifyCap(si, ueb_hash, k, n, size)
    if m := _LIT.fullmatch(text):
        try:
            data = b32decode(m[1])
        except FormatError as exc:
            raise CapError(f"LIT cap has bad base32: {exc}") from None
        if len(data) > LIT_MAX_SIZE:
            raise CapError(f"LIT caps hold at most {LIT_MAX_SIZE} bytes, this one holds {len(data)}")
        return LitCap(data)
    raise CapError(
        f"not an immutable cap: expected URI:CHK:<key>:<hash>:<k>:<N>:<size>, URI:CHK-Verifier:… or "
        f"URI:LIT:…, got {_describe(text)}"
    )


def parse_read_cap(text: str) -> ChkCap | LitCap:
    """A cap that can decrypt: CHK read cap or LIT. A verify cap raises CapError."""
    cap = parse_cap(text)
    if isinstance(cap, VerifyCap):
        raise CapError("a verify cap can check shares but not read the file; expected a read cap (URI:CHK:…)")
    return cap


def _numbers(m: re.Match[str]) -> tuple[int, int, int]:
    # int() raises ValueError past 4300 digits; no real k, N or size needs more than 2**64's 20.
    if max(len(m[3]), len(m[4]), len(m[5])) > _MAX_DIGITS:
        raise CapError(f"cap numbers k, N and size have at most {_MAX_DIGITS} digits")
    k, n, size = int(m[3]), int(m[4]), int(m[5])
    if not 1 <= k <= n <= 256:
        raise CapError(f"cap has k={k}, N={n}; expected 1 <= k <= N <= 256")
    if size <= LIT_MAX_SIZE:
        raise CapError(f"CHK cap has size {size}; files of at most {LIT_MAX_SIZE} bytes use LIT caps")
    if size >= 2**64:  # a share records the file's size in 8 bytes
        raise CapError(f"CHK cap has size {size}; a file has fewer than 2**64 bytes")
    return k, n, size


def _describe(text: str) -> str:
    """Name the kind of text without echoing a possible secret in full."""
    prefix = ":".join(text.split(":")[:2])
    return f"text starting {prefix[:24]!r} ({len(text)} characters)"
