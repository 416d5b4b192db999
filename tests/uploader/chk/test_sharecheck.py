"""Share metadata checked range by range, as the downloader reads it: every byte it reads counts."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.layout import ShareLayout, parse_share
from uploader.chk.sharecheck import (
    HEADER_READ,
    FileInfo,
    check_header,
    check_trailer,
    check_ueb,
    header_version,
    trailer_span,
    ueb_span,
)
from workers.errors import IntegrityError
from workers.geometry import EncodingParams
from workers.hashes import block_hash

SECRET = b"s" * 16


def _encode(size: int, k: int, n: int, seg: int, fill: int = 7) -> tuple[ChkCap, list[bytes]]:
    data = bytes((i * fill + i // 251) % 256 for i in range(size))
    cap, shares = reference.encode(data, EncodingParams(k, n, seg), SECRET)
    assert isinstance(cap, ChkCap)
    return cap, shares


def _read(share: bytes, offset: int, length: int) -> bytes:
    return share[offset : offset + length]  # a server cuts a range short at the end of the share


def _open(
    cap: ChkCap, shnum: int, share: bytes, crypttext_tree: bytes | None = None
) -> tuple[FileInfo, bytes]:
    header = _read(share, 0, HEADER_READ)
    info = check_ueb(_read(share, *ueb_span(header)), header_version(header), cap)
    layout = check_header(header, info)
    hashes, _tree = check_trailer(_read(share, *trailer_span(layout)), layout, info, shnum, crypttext_tree)
    return info, hashes.block_leaves


@pytest.mark.parametrize(
    ("size", "k", "n", "seg"), [(56, 1, 1, 131072), (5000, 3, 10, 1024), (70_001, 7, 12, 4096)]
)
def test_every_share_opens_and_its_leaves_are_its_block_hashes(size: int, k: int, n: int, seg: int) -> None:
    cap, shares = _encode(size, k, n, seg)
    for shnum, share in enumerate(shares):
        info, leaves = _open(cap, shnum, share)
        g = info.geometry
        parsed = parse_share(share)
        for segnum in range(g.num_segments):
            block = parsed.block(segnum, g.block_length(segnum))
            assert leaves[32 * segnum : 32 * segnum + 32] == block_hash(block)


@given(st.data())
def test_any_flipped_metadata_byte_is_caught(data: st.DataObject) -> None:
    """Every byte of the header and the trailer (crypttext tree to UEB) is checked."""
    cap, shares = _encode(20_000, 3, 7, 2048)
    shnum = data.draw(st.integers(0, 6))
    share = bytearray(shares[shnum])
    layout = parse_share(bytes(share)).layout
    meta = list(range(layout.data)) + list(range(layout.crypttext_hash_tree, layout.share_size))
    pos = data.draw(st.sampled_from(meta))
    share[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(IntegrityError):
        _open(cap, shnum, bytes(share))


def test_a_share_under_another_number_is_caught() -> None:
    cap, shares = _encode(9000, 2, 5, 1024)
    with pytest.raises(IntegrityError, match="chain"):
        _open(cap, 1, shares[0])


def test_truncated_share_wrong_cap_and_a_tree_that_differs_from_the_verified_one() -> None:
    cap, shares = _encode(9000, 2, 5, 1024)
    with pytest.raises(IntegrityError, match="does not hold"):
        _open(cap, 0, shares[0][:-1])
    info, _ = _open(cap, 1, shares[1])
    layout = check_header(shares[0][:HEADER_READ], info)
    with pytest.raises(IntegrityError, match="shorter than its layout"):
        check_trailer(_read(shares[0], *trailer_span(layout))[:-1], layout, info, 0, None)
    other, _ = _encode(9000, 2, 5, 1024, fill=3)
    with pytest.raises(IntegrityError, match="UEB hash"):
        _open(other, 0, shares[0])
    liar = ChkCap(cap.key, cap.ueb_hash, cap.k, cap.n, cap.size + 1)
    with pytest.raises(IntegrityError, match="the cap says"):
        _open(liar, 0, shares[0])
    with pytest.raises(IntegrityError, match="differs from the verified"):
        _open(cap, 0, shares[0], crypttext_tree=bytes(32))
    with pytest.raises(IntegrityError, match="too short"):
        header_version(b"\x00\x00\x00\x01" + bytes(10))
    with pytest.raises(IntegrityError, match="version 3"):
        header_version(struct.pack(">L", 3) + bytes(64))


def test_a_v2_share_of_a_small_file_is_accepted() -> None:
    data = bytes(range(256)) * 40
    cap, shares = reference.encode(data, EncodingParams(3, 5, 4096), SECRET, layout_version=2)
    assert isinstance(cap, ChkCap)
    info, _ = _open(cap, 4, shares[4])
    assert check_header(shares[4][:HEADER_READ], info) == ShareLayout.for_file(
        info.geometry, len(info.ueb_bytes), 2
    )
