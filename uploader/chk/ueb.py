"""The URI Extension Block (UEB) (chk-format §9).

Serialized as the 11 keys in ascending byte order, each as ``key ":" netstring(value)``, with no
separators; integers in decimal, hashes as 32 raw bytes. Its hash, ``TH("allmydata_uri_extension_v1",
bytes)``, is in the read cap. Readers (Tahoe's too) reject a UEB of 2000 bytes or more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.errors import FormatError
from workers.geometry import Geometry, ceil_div, roundup
from workers.hashes import TAG_UEB, tagged_hash

MAX_UEB_SIZE = 2000
_KEY = re.compile(rb"[a-zA-Z_\-]+")
_UINT = re.compile(rb"0|[1-9][0-9]*")
_HASH_FIELDS = ("crypttext_hash", "crypttext_root_hash", "share_root_hash")
_ALL_KEYS = frozenset(
    {
        "codec_name",
        "codec_params",
        "crypttext_hash",
        "crypttext_root_hash",
        "needed_shares",
        "num_segments",
        "segment_size",
        "share_root_hash",
        "size",
        "tail_codec_params",
        "total_shares",
    }
)


@dataclass(frozen=True, slots=True)
class UEB:
    segment_size: int
    k: int
    n: int
    size: int
    num_segments: int
    padded_tail_size: int
    crypttext_hash: bytes
    crypttext_root_hash: bytes
    share_root_hash: bytes

    @classmethod
    def build(
        cls, geometry: Geometry, crypttext_hash: bytes, crypttext_root_hash: bytes, share_root_hash: bytes
    ) -> UEB:
        g = geometry
        return cls(
            g.segment_size,
            g.k,
            g.n,
            g.size,
            g.num_segments,
            g.padded_tail_size,
            crypttext_hash,
            crypttext_root_hash,
            share_root_hash,
        )

    def fields(self) -> dict[str, bytes]:
        return {
            "codec_name": b"crs",
            "codec_params": b"%d-%d-%d" % (self.segment_size, self.k, self.n),
            "crypttext_hash": self.crypttext_hash,
            "crypttext_root_hash": self.crypttext_root_hash,
            "needed_shares": b"%d" % self.k,
            "num_segments": b"%d" % self.num_segments,
            "segment_size": b"%d" % self.segment_size,
            "share_root_hash": self.share_root_hash,
            "size": b"%d" % self.size,
            "tail_codec_params": b"%d-%d-%d" % (self.padded_tail_size, self.k, self.n),
            "total_shares": b"%d" % self.n,
        }

    def serialize(self) -> bytes:
        out = []
        for key, value in sorted(self.fields().items()):
            out.append(b"%s:%d:%s," % (key.encode("ascii"), len(value), value))
        return b"".join(out)

    def geometry(self) -> Geometry:
        tail = self.size - (self.num_segments - 1) * self.segment_size
        return Geometry(
            self.k, self.n, self.size, self.segment_size, self.num_segments, tail, self.padded_tail_size
        )


def ueb_hash(ueb_bytes: bytes) -> bytes:
    return tagged_hash(TAG_UEB, ueb_bytes)


def ueb_length(geometry: Geometry) -> int:
    """The UEB's serialized length, known before encoding (hashes are always 32 bytes)."""
    dummy = bytes(32)
    return len(UEB.build(geometry, dummy, dummy, dummy).serialize())


def parse_ueb(data: bytes) -> UEB:
    """Parse and check a serialized UEB; raise FormatError naming the first problem."""
    if len(data) >= MAX_UEB_SIZE:
        raise FormatError(f"UEB is {len(data)} bytes, expected fewer than {MAX_UEB_SIZE}")
    fields: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        colon = data.find(b":", pos)
        if colon < 0:
            raise FormatError(f"UEB entry at byte {pos} has no ':' after its key")
        key = data[pos:colon]
        if not _KEY.fullmatch(key):
            raise FormatError(f"UEB key at byte {pos} is not [a-zA-Z_-]+: {key[:40]!r}")
        length_end = data.find(b":", colon + 1)
        if length_end < 0 or not _UINT.fullmatch(data[colon + 1 : length_end]):
            raise FormatError(f"UEB value of {key.decode()} is not a netstring")
        length = int(data[colon + 1 : length_end])
        start = length_end + 1
        end = start + length
        if end >= len(data) or data[end : end + 1] != b",":
            raise FormatError(f"UEB value of {key.decode()} is not a netstring (bad length or no ',')")
        name = key.decode("ascii")
        if name in fields:
            raise FormatError(f"UEB repeats the key {name}")
        fields[name] = data[start:end]
        pos = end + 1
    # Keys beyond the 11 are ignored, as Tahoe does (the UEB hash in the cap covers them anyway).
    missing = _ALL_KEYS - fields.keys()
    if missing:
        raise FormatError(f"UEB lacks the keys {sorted(missing)}")
    ueb = UEB(
        segment_size=_uint(fields, "segment_size"),
        k=_uint(fields, "needed_shares"),
        n=_uint(fields, "total_shares"),
        size=_uint(fields, "size"),
        num_segments=_uint(fields, "num_segments"),
        padded_tail_size=_codec_params(fields, "tail_codec_params")[0],
        crypttext_hash=_hash(fields, "crypttext_hash"),
        crypttext_root_hash=_hash(fields, "crypttext_root_hash"),
        share_root_hash=_hash(fields, "share_root_hash"),
    )
    _check_consistent(ueb, fields)
    return ueb


def _uint(fields: dict[str, bytes], name: str) -> int:
    value = fields[name]
    if not _UINT.fullmatch(value):
        raise FormatError(f"UEB {name} must be a decimal integer, got {value[:40]!r}")
    return int(value)


def _hash(fields: dict[str, bytes], name: str) -> bytes:
    value = fields[name]
    if len(value) != 32:
        raise FormatError(f"UEB {name} must be 32 bytes, got {len(value)}")
    return value


def _codec_params(fields: dict[str, bytes], name: str) -> tuple[int, int, int]:
    parts = fields[name].split(b"-")
    if len(parts) != 3 or not all(_UINT.fullmatch(p) for p in parts):
        raise FormatError(f"UEB {name} must be SIZE-K-N, got {fields[name][:40]!r}")
    a, b, c = (int(p) for p in parts)
    return a, b, c


def _check_consistent(ueb: UEB, fields: dict[str, bytes]) -> None:
    if fields["codec_name"] != b"crs":
        raise FormatError(f"UEB codec_name must be 'crs', got {fields['codec_name'][:40]!r}")
    if not 1 <= ueb.k <= ueb.n <= 256:
        raise FormatError(f"UEB shares needed/total out of range: k={ueb.k}, N={ueb.n}")
    if ueb.segment_size < 1 or ueb.segment_size % ueb.k:
        raise FormatError(f"UEB segment_size {ueb.segment_size} is not a positive multiple of k={ueb.k}")
    if _codec_params(fields, "codec_params") != (ueb.segment_size, ueb.k, ueb.n):
        raise FormatError("UEB codec_params disagree with segment_size, needed_shares and total_shares")
    tail_params = _codec_params(fields, "tail_codec_params")
    if tail_params[1:] != (ueb.k, ueb.n):
        raise FormatError("UEB tail_codec_params disagree with needed_shares and total_shares")
    if ueb.size < 1 or ueb.num_segments != ceil_div(ueb.size, ueb.segment_size):
        raise FormatError(f"UEB num_segments {ueb.num_segments} does not fit size {ueb.size}")
    tail = ueb.size - (ueb.num_segments - 1) * ueb.segment_size
    if ueb.padded_tail_size != roundup(tail, ueb.k):
        raise FormatError(f"UEB tail size {ueb.padded_tail_size} does not fit size {ueb.size}")
