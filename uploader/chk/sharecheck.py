"""Checking one share's metadata range by range, as a streaming reader fetches it (chk-format §8–§11).

A downloader never holds a whole share. It reads, and checks:

| read | bytes | checked against |
|---|---|---|
| header | ``[0, HEADER_READ)`` (either version fits) | the layout the UEB implies, byte for byte |
| UEB, once per file | ``ueb_span(header)``: length field + UEB | the cap's UEB hash, then the cap's k, N, size |
| trailer | ``[off_crypttext_hash_tree, end of share)`` | crypttext tree → UEB root; block tree → its root → share hash chain → UEB share root; the UEB copy |
| blocks | ``off_data + i * block_size`` | leaf i of the share's block tree (in a worker) |

The verifier also reads the unused plaintext hash tree area (it must be zero) and every block.
Every check raises IntegrityError naming the share and what did not match; nothing here does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from uploader.chk.caps import ChkCap, VerifyCap
from uploader.chk.layout import CHAIN_ENTRY_SIZE, HASH_SIZE, ShareLayout
from uploader.chk.ueb import MAX_UEB_SIZE, UEB, parse_ueb, ueb_hash
from workers.errors import FormatError, IntegrityError
from workers.geometry import Geometry
from workers.merkle import check_tree, leaf_node, path_siblings, verify_chain

HEADER_READ = 0x44  # bytes that hold a header of either version
_V1_UEB_OFFSET = struct.Struct(">L")  # at 0x20
_V2_UEB_OFFSET = struct.Struct(">Q")  # at 0x3c
_CHAIN_ENTRY = struct.Struct(">H32s")


class CapMismatch(IntegrityError):
    """The UEB the cap names disagrees with the cap itself: the cap is wrong, not the shares."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What the UEB the cap names says about every share of the file."""

    ueb: UEB
    ueb_bytes: bytes
    geometry: Geometry

    def layout(self, version: int) -> ShareLayout:
        return ShareLayout.for_file(self.geometry, len(self.ueb_bytes), version)


@dataclass(frozen=True, slots=True)
class ShareHashes:
    """One share's verified hashes: its block tree's leaves (32 bytes per segment, concatenated)."""

    shnum: int
    block_leaves: bytes

    def leaf(self, segnum: int) -> bytes:
        return self.block_leaves[segnum * HASH_SIZE : (segnum + 1) * HASH_SIZE]


def header_version(header: bytes) -> int:
    if len(header) < 4:
        raise IntegrityError(f"share is {len(header)} bytes long, too short for a header")
    version = int.from_bytes(header[:4], "big")
    if version not in (1, 2):
        raise IntegrityError(f"share has layout version {version}, expected 1 or 2")
    need = 0x24 if version == 1 else 0x44
    if len(header) < need:
        raise IntegrityError(f"share is {len(header)} bytes long, too short for a v{version} header")
    return version


def ueb_span(header: bytes) -> tuple[int, int]:
    """(offset, length) of the read that holds the UEB length field and a UEB of any allowed size.

    The offset comes from an unchecked header; the length is bounded, so a lying header costs
    at most one small read.
    """
    version = header_version(header)
    if version == 1:
        return _V1_UEB_OFFSET.unpack_from(header, 0x20)[0], 4 + MAX_UEB_SIZE - 1
    return _V2_UEB_OFFSET.unpack_from(header, 0x3C)[0], 8 + MAX_UEB_SIZE - 1


def check_ueb(region: bytes, version: int, cap: ChkCap | VerifyCap) -> FileInfo:
    """The UEB from the bytes at ``ueb_span``, checked against the cap (hash, then k, N, size)."""
    fieldsize = 4 if version == 1 else 8
    if len(region) < fieldsize:
        raise IntegrityError("share ends before its UEB length field")
    size = int.from_bytes(region[:fieldsize], "big")
    if size >= MAX_UEB_SIZE or len(region) < fieldsize + size:
        raise IntegrityError(f"share's UEB length field says {size} bytes, which it does not hold")
    blob = bytes(region[fieldsize : fieldsize + size])
    if ueb_hash(blob) != cap.ueb_hash:
        raise IntegrityError("share's UEB does not match the cap's UEB hash")
    try:
        ueb = parse_ueb(blob)
    except FormatError as exc:  # the cap names this very UEB: the file, not the share, is broken
        raise CapMismatch(f"the UEB the cap names does not parse: {exc}") from None
    if (ueb.k, ueb.n, ueb.size) != (cap.k, cap.n, cap.size):
        raise CapMismatch(
            f"the UEB the cap names says k={ueb.k}, N={ueb.n}, size={ueb.size}; "
            f"the cap says k={cap.k}, N={cap.n}, size={cap.size}"
        )
    return FileInfo(ueb, blob, ueb.geometry())


def check_header(header: bytes, info: FileInfo) -> ShareLayout:
    """The share's layout, when its header is exactly the one the UEB implies (Tahoe's)."""
    layout = info.layout(header_version(header))
    packed = layout.pack_header()
    if header[: len(packed)] != packed:
        raise IntegrityError("share header does not match the layout its UEB implies")
    return layout


def trailer_span(layout: ShareLayout) -> tuple[int, int]:
    """(offset, length) of the trailer read: crypttext tree through the end of the UEB."""
    return layout.crypttext_hash_tree, layout.share_size - layout.crypttext_hash_tree


def split_hashes(data: bytes | memoryview) -> list[bytes]:
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def check_crypttext_tree(tree: bytes, info: FileInfo) -> bytes:
    """The ciphertext tree's leaves (concatenated), when the stored tree hashes up to the UEB's root."""
    nseg = info.geometry.num_segments
    _check_tree("crypttext hash tree", split_hashes(tree), nseg, info.ueb.crypttext_root_hash)
    first = (len(tree) // HASH_SIZE + 1) // 2 - 1  # P - 1, the first leaf node
    return tree[first * HASH_SIZE : (first + nseg) * HASH_SIZE]


def _check_tree(name: str, flat: list[bytes], num_leaves: int, root: bytes | None) -> None:
    try:
        check_tree(flat, num_leaves, root)
    except IntegrityError as exc:
        raise IntegrityError(f"{name}: {exc}") from None


def check_trailer(
    data: bytes, layout: ShareLayout, info: FileInfo, shnum: int, crypttext_tree: bytes | None
) -> tuple[ShareHashes, bytes]:
    """(the share's hashes, its crypttext tree) from the trailer read (``trailer_span``).

    ``crypttext_tree`` is a tree already verified against the UEB (from another share): this
    share's copy must equal it; None checks this share's copy against the UEB itself.
    """
    g = info.geometry
    _, length = trailer_span(layout)
    if len(data) < length:
        raise IntegrityError(f"share is {length - len(data)} bytes shorter than its layout")
    ht = layout.block_hashes - layout.crypttext_hash_tree
    at = 0
    tree = bytes(data[at : at + ht])
    at += ht
    if crypttext_tree is None:
        check_crypttext_tree(tree, info)
    elif tree != crypttext_tree:
        raise IntegrityError("share's crypttext hash tree differs from the verified one")
    block_tree = split_hashes(data[at : at + ht])
    at += ht
    _check_tree("block hash tree", block_tree, g.num_segments, None)
    chain_len = layout.uri_extension - layout.share_hashes
    entries = [_CHAIN_ENTRY.unpack_from(data, at + off) for off in range(0, chain_len, CHAIN_ENTRY_SIZE)]
    at += chain_len
    known = dict(entries)
    wanted = {leaf_node(shnum, g.n), *path_siblings(shnum, g.n)}
    if len(known) != len(entries) or set(known) != wanted:
        raise IntegrityError("share hash chain does not hold exactly the nodes it should")
    if known[leaf_node(shnum, g.n)] != block_tree[0]:
        raise IntegrityError("share hash chain does not hold this share's block tree root")
    try:
        verify_chain(info.ueb.share_root_hash, shnum, g.n, block_tree[0], known)
    except IntegrityError as exc:
        raise IntegrityError(f"share hash chain: {exc}") from None
    fieldsize = layout.fieldsize
    if int.from_bytes(data[at : at + fieldsize], "big") != len(info.ueb_bytes):
        raise IntegrityError("share's UEB length field differs from the verified UEB's length")
    at += fieldsize
    if data[at : at + len(info.ueb_bytes)] != info.ueb_bytes:
        raise IntegrityError("share's copy of the UEB differs from the verified UEB")
    p = len(block_tree) // 2 + 1  # leaves are the last P nodes
    leaves = b"".join(block_tree[p - 1 : p - 1 + g.num_segments])
    return ShareHashes(shnum, leaves), tree


__all__ = [
    "HEADER_READ",
    "CapMismatch",
    "FileInfo",
    "ShareHashes",
    "check_crypttext_tree",
    "check_header",
    "check_trailer",
    "check_ueb",
    "header_version",
    "split_hashes",
    "trailer_span",
    "ueb_span",
]
