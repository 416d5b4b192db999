"""Tahoe base32: RFC 4648 alphabet in lower case, ``=`` padding removed (chk-format §1.1).

Decoding is strict the way Tahoe's is: only ``[a-z2-7]``, a length that some byte count encodes
to, and zero bits in the unused low bits of the last character.
"""

from __future__ import annotations

import base64
import binascii

from workers.errors import FormatError

_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
# Valid encoded lengths mod 8 and the unused low bits of the last character for each.
_SPARE_BITS = {0: 0, 2: 2, 4: 4, 5: 1, 7: 3}


def b32encode(data: bytes) -> str:
    """Lower-case base32 without padding; 16 bytes → 26 characters, 32 → 52."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str, expected_len: int | None = None) -> bytes:
    """Decode Tahoe base32; raise FormatError naming the problem (and the expected length, if given)."""
    if not set(text) <= _ALPHABET:
        raise FormatError(f"base32 text may only contain a-z and 2-7, got {text[:60]!r}")
    spare = _SPARE_BITS.get(len(text) % 8)
    if spare is None:
        raise FormatError(f"{len(text)} base32 characters cannot encode a whole number of bytes")
    if spare and text and (_index(text[-1]) & ((1 << spare) - 1)):
        raise FormatError("base32 text has non-zero unused bits in its last character")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error as exc:  # pragma: no cover - the checks above make this unreachable
        raise FormatError(f"not valid base32: {exc}") from None
    if expected_len is not None and len(data) != expected_len:
        raise FormatError(f"expected base32 of {expected_len} bytes, got {len(data)} bytes")
    return data


def _index(ch: str) -> int:
    return "abcdefghijklmnopqrstuvwxyz234567".index(ch)
