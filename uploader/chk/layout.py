"""Share layout v1 and v2: header, offsets and trailing sections (chk-format §10).

| # | section | size |
|---|---|---|
| 0 | header | 0x24 (v1: nine u32be) / 0x44 (v2: u32be version + eight u64be) |
| 1 | data: the share's blocks, segment 0 first | share_data_size |
| 2 | plaintext hash tree (unused, zeros) | HT = 32 * (2 * pow2(num_segments) - 1) |
| 3 | crypttext hash tree | HT |
| 4 | block hash tree | HT |
| 5 | share hash chain: u16be node ‖ 32-byte hash per entry | 34 * (log2(pow2(N)) + 1) |
| 6 | UEB length | u32be (v1) / u64be (v2) |
| 7 | UEB | its length |

v2 is used only when a v1 field would overflow 32 bits (shares of ~4 GiB).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from workers.errors import FormatError
from workers.geometry import Geometry, pow2

_V1 = struct.Struct(">9L")
_V2 = struct.Struct(">L8Q")
_VERSION = struct.Struct(">L")
_CHAIN_ENTRY = struct.Struct(">H32s")
HASH_SIZE = 32
CHAIN_ENTRY_SIZE = _CHAIN_ENTRY.size  # 34


def tree_size(num_segments: int) -> int:
    """Bytes of one flattened tree over ``num_segments`` leaves."""
    return HASH_SIZE * (2 * pow2(num_segments) - 1)


def chain_size(n: int) -> int:
    return CHAIN_ENTRY_SIZE * (pow2(n).bit_length())


@dataclass(frozen=True, slots=True)
class ShareLayout:
    """Where every section of a share starts; all shares of a file have the same layout."""

    version: int
    block_size: int
    data_size: int
    data: int
    plaintext_hash_tree: int
    crypttext_hash_tree: int
    block_hashes: int
    share_hashes: int
    uri_extension: int
    ueb_size: int

    @classmethod
    def for_file(cls, geometry: Geometry, ueb_size: int, version: int | None = None) -> ShareLayout:
        """Tahoe's layout: v1 unless a field overflows 32 bits (or ``version`` forces one)."""
        if version is None:
            v1 = cls.for_file(geometry, ueb_size, 1)
            fits = max(v1.block_size, v1.data_size, v1.uri_extension) < 2**32
            return v1 if fits else cls.for_file(geometry, ueb_size, 2)
        if version not in (1, 2):
            raise ValueError(f"share layout version must be 1 or 2, got {version}")
        header = _V1.size if version == 1 else _V2.size
        ht = tree_size(geometry.num_segments)
        data = header
        pt = data + geometry.share_data_size
        ct = pt + ht
        bh = ct + ht
        sh = bh + ht
        ue = sh + chain_size(geometry.n)
        return cls(version, geometry.block_size, geometry.share_data_size, data, pt, ct, bh, sh, ue, ueb_size)

    @property
    def fieldsize(self) -> int:
        return 4 if self.version == 1 else 8

    @property
    def share_size(self) -> int:
        """Total share length = the allocated size asked of a server."""
        return self.uri_extension + self.fieldsize + self.ueb_size

    @property
    def header_size(self) -> int:
        return self.data

    def block_offset(self, segnum: int) -> int:
        return self.data + segnum * self.block_size

    def pack_header(self) -> bytes:
        fields = (
            self.block_size,
            self.data_size,
            self.data,
            self.plaintext_hash_tree,
            self.crypttext_hash_tree,
            self.block_hashes,
            self.share_hashes,
            self.uri_extension,
        )
        if self.version == 1:
            return _V1.pack(1, *fields)
        return _V2.pack(2, *fields)

    def pack_trailer(
        self,
        crypttext_tree: Sequence[bytes],
        block_tree: Sequence[bytes],
        chain: Sequence[tuple[int, bytes]],
        ueb: bytes,
    ) -> bytes:
        """Sections 2-7: everything after the data area, for one share."""
        ht = self.crypttext_hash_tree - self.plaintext_hash_tree
        parts = [
            bytes(ht),
            b"".join(crypttext_tree),
            b"".join(block_tree),
            pack_chain(chain),
            struct.pack(">L" if self.version == 1 else ">Q", len(ueb)),
            ueb,
        ]
        out = b"".join(parts)
        if len(out) != self.share_size - self.plaintext_hash_tree:
            raise ValueError("trailer sections do not fit the layout (wrong tree or chain length)")
        return out


def unpack_header(data: bytes) -> ShareLayout:
    """Read the header and UEB length of a share; check the offsets are in order and well formed.

    ``data`` must hold the whole share (the UEB length field sits near the end). Raises FormatError.
    """
    if len(data) < _VERSION.size:
        raise FormatError(f"share is {len(data)} bytes, too short for a header")
    (version,) = _VERSION.unpack_from(data)
    if version == 1:
        st, fieldfmt = _V1, ">L"
    elif version == 2:
        st, fieldfmt = _V2, ">Q"
    else:
        raise FormatError(f"unsupported share version {version}, expected 1 or 2")
    if len(data) < st.size:
        raise FormatError(f"share header needs {st.size} bytes, got {len(data)}")
    _, block_size, data_size, off_data, pt, ct, bh, sh, ue = st.unpack_from(data)
    if off_data != st.size:
        raise FormatError(f"share data offset is {off_data}, expected {st.size} for version {version}")
    if not off_data <= pt <= ct <= bh <= sh <= ue:
        raise FormatError("share section offsets are not in ascending order")
    if (sh - bh) % HASH_SIZE or (ue - sh) % CHAIN_ENTRY_SIZE:
        raise FormatError("share hash sections are not whole numbers of entries")
    fieldsize = struct.calcsize(fieldfmt)
    if ue + fieldsize > len(data):
        raise FormatError(f"share is {len(data)} bytes, too short for its UEB length field at {ue}")
    (ueb_size,) = struct.unpack_from(fieldfmt, data, ue)
    if ue + fieldsize + ueb_size != len(data):
        raise FormatError(f"share is {len(data)} bytes, but its layout says {ue + fieldsize + ueb_size}")
    return ShareLayout(version, block_size, data_size, off_data, pt, ct, bh, sh, ue, ueb_size)


@dataclass(frozen=True, slots=True)
class ParsedShare:
    layout: ShareLayout
    raw: bytes

    def ueb(self) -> bytes:
        start = self.layout.uri_extension + self.layout.fieldsize
        return self.raw[start : start + self.layout.ueb_size]

    def hashes(self, start: int, end: int) -> list[bytes]:
        return [self.raw[i : i + HASH_SIZE] for i in range(start, end, HASH_SIZE)]

    def plaintext_tree_area(self) -> bytes:
        return self.raw[self.layout.plaintext_hash_tree : self.layout.crypttext_hash_tree]

    def crypttext_tree(self) -> list[bytes]:
        return self.hashes(self.layout.crypttext_hash_tree, self.layout.block_hashes)

    def block_tree(self) -> list[bytes]:
        return self.hashes(self.layout.block_hashes, self.layout.share_hashes)

    def chain(self) -> list[tuple[int, bytes]]:
        lay = self.layout
        return [
            _CHAIN_ENTRY.unpack_from(self.raw, off)
            for off in range(lay.share_hashes, lay.uri_extension, CHAIN_ENTRY_SIZE)
        ]

    def block(self, segnum: int, length: int) -> bytes:
        start = self.layout.block_offset(segnum)
        return self.raw[start : start + length]


def parse_share(data: bytes) -> ParsedShare:
    """A share's sections, located by its own header; raise FormatError if they do not fit."""
    return ParsedShare(unpack_header(data), data)


def pack_chain(chain: Sequence[tuple[int, bytes]]) -> bytes:
    return b"".join(_CHAIN_ENTRY.pack(node, h) for node, h in chain)
