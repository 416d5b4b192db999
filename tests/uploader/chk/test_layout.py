"""Share layout v1/v2 (chk-format §10), the §15 header and the §16 derived-geometry table."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk import reference
from uploader.chk.layout import (
    CHAIN_ENTRY_SIZE,
    ShareLayout,
    chain_size,
    pack_chain,
    parse_share,
    tree_size,
    unpack_header,
)
from uploader.chk.trees import expected_layout
from uploader.chk.ueb import ueb_length
from workers.errors import FormatError, UploaderError
from workers.geometry import EncodingParams, Geometry, pow2
from workers.merkle import chain_nodes

# §16, max_segment_size = 131072. Columns: size, k, N, segment_size, num_segments, tail, padded tail,
# block_size, tail block, data_size, P, share hashes, UEB len, share len.
TABLE = [
    (56, 1, 1, 56, 1, 56, 56, 56, 56, 56, 1, 1, 305, 531),
    (56, 1, 3, 56, 1, 56, 56, 56, 56, 56, 1, 3, 305, 599),
    (56, 2, 3, 56, 1, 56, 56, 28, 28, 28, 1, 3, 305, 571),
    (56, 3, 10, 57, 1, 56, 57, 19, 19, 19, 1, 5, 308, 633),
    (56, 71, 255, 71, 1, 56, 71, 1, 1, 1, 1, 9, 314, 757),
    (56, 101, 256, 101, 1, 56, 101, 1, 1, 1, 1, 9, 322, 765),
    (1024, 3, 10, 1026, 1, 1024, 1026, 342, 342, 342, 1, 5, 316, 964),
    (4096, 3, 10, 4098, 1, 4096, 4098, 1366, 1366, 1366, 1, 5, 316, 1988),
    (131071, 3, 10, 131073, 1, 131071, 131073, 43691, 43691, 43691, 1, 5, 326, 44323),
    (131073, 1, 1, 131072, 2, 1, 1, 131072, 1, 131073, 2, 1, 317, 131752),
    (131073, 2, 3, 131072, 2, 1, 2, 65536, 1, 65537, 2, 3, 317, 66284),
    (131073, 3, 10, 131073, 1, 131073, 131073, 43691, 43691, 43691, 1, 5, 326, 44323),
    (131073, 71, 255, 131137, 1, 131073, 131137, 1847, 1847, 1847, 1, 9, 332, 2621),
    (2097151, 3, 10, 131073, 16, 131056, 131058, 43691, 43686, 699051, 16, 5, 328, 702565),
    (2097153, 1, 1, 131072, 17, 1, 1, 131072, 1, 2097153, 32, 1, 319, 2103594),
    (2097153, 3, 10, 131073, 16, 131058, 131058, 43691, 43686, 699051, 16, 5, 328, 702565),
    (2097153, 71, 255, 131137, 16, 130098, 130143, 1847, 1833, 29538, 16, 9, 334, 33194),
    (2097153, 101, 256, 131098, 16, 130683, 130694, 1298, 1294, 20764, 16, 9, 337, 24423),
    (4194304, 3, 10, 131073, 32, 131041, 131043, 43691, 43681, 1398102, 32, 5, 328, 1404688),
    (8388609, 1, 1, 131072, 65, 1, 1, 131072, 1, 8388609, 128, 1, 319, 8413482),
    (8388609, 3, 10, 131073, 64, 131010, 131010, 43691, 43670, 2796203, 64, 5, 328, 2808933),
]


@pytest.mark.parametrize("row", TABLE, ids=[f"{r[0]}-{r[1]}of{r[2]}" for r in TABLE])
def test_spec_geometry_table(row: tuple[int, ...]) -> None:
    size, k, n, seg, nseg, tail, ptail, bsize, tblock, dsize, p, nhashes, uebl, sharel = row
    g = Geometry.from_params(EncodingParams(k, n, 131072), size)
    assert (g.segment_size, g.num_segments, g.tail_size, g.padded_tail_size) == (seg, nseg, tail, ptail)
    assert (g.block_size, g.tail_block_size, g.share_data_size) == (bsize, tblock, dsize)
    assert pow2(g.num_segments) == p
    assert chain_size(n) == nhashes * CHAIN_ENTRY_SIZE
    assert len(chain_nodes(0, n)) == nhashes
    assert ueb_length(g) == uebl
    layout = ShareLayout.for_file(g, uebl)
    assert layout.version == 1
    assert layout.share_size == sharel
    assert expected_layout(g).share_size == sharel
    assert layout.data_size == dsize
    assert layout.block_size == bsize


def example_layout() -> ShareLayout:
    return ShareLayout.for_file(Geometry.from_params(EncodingParams(1, 1, 131072), 56), 305)


def test_worked_example_header() -> None:
    layout = example_layout()
    header = layout.pack_header()
    assert len(header) == 0x24 == layout.header_size
    assert struct.unpack(">9L", header) == (1, 56, 56, 36, 92, 124, 156, 188, 222)
    assert layout.share_size == 531
    assert layout.fieldsize == 4


def test_v2_header() -> None:
    layout = ShareLayout.for_file(Geometry.from_params(EncodingParams(1, 1, 131072), 56), 305, version=2)
    header = layout.pack_header()
    assert len(header) == 0x44 == layout.data
    assert struct.unpack(">L8Q", header) == (2, 56, 56, 68, 124, 156, 188, 220, 254)
    assert layout.fieldsize == 8
    assert layout.share_size == 254 + 8 + 305


def test_invalid_version_is_refused() -> None:
    with pytest.raises(ValueError):
        ShareLayout.for_file(Geometry.from_params(EncodingParams(), 100), 300, version=3)


def test_v2_is_chosen_only_when_a_v1_field_overflows() -> None:
    def layout(size: int, k: int = 1, mss: int = 1 << 20) -> ShareLayout:
        g = Geometry.from_params(EncodingParams(k, k, mss), size)
        return ShareLayout.for_file(g, ueb_length(g))

    assert layout(2**31).version == 1
    below = layout(2**32 - 1000)
    assert below.data_size < 2**32 <= below.data + below.data_size + 3 * tree_size(4096)
    assert below.version == 2  # data and block size fit, but off_uri_extension does not
    assert layout(2**33, k=2).version == 2  # share data size 2^32
    assert layout(2**32 + 1, mss=2**32 + 1).block_size == 2**32 + 1
    assert layout(2**32 + 1, mss=2**32 + 1).version == 2
    # v2 offsets follow the 68-byte header.
    assert layout(2**33, k=2).data == 0x44


def test_tree_and_chain_sizes() -> None:
    assert [tree_size(m) for m in (1, 2, 3, 4, 5, 17)] == [32 * x for x in (1, 3, 7, 7, 15, 63)]
    for n in range(1, 257):
        assert chain_size(n) == 34 * (pow2(n).bit_length())
    assert chain_size(1) == 34
    assert chain_size(7) == 34 * 4
    assert chain_size(256) == 34 * 9


def test_pack_trailer_refuses_wrong_lengths() -> None:
    layout = example_layout()
    good = ([bytes(32)], [bytes(32)], [(0, bytes(32))], bytes(305))
    assert len(layout.pack_trailer(*good)) == 531 - 92
    with pytest.raises(ValueError):
        layout.pack_trailer([bytes(32)] * 2, [bytes(32)], [(0, bytes(32))], bytes(305))
    with pytest.raises(ValueError):
        layout.pack_trailer([bytes(32)], [bytes(32)], [(0, bytes(32)), (1, bytes(32))], bytes(305))
    with pytest.raises(ValueError):
        layout.pack_trailer([bytes(32)], [bytes(32)], [(0, bytes(32))], bytes(304))


def test_pack_chain() -> None:
    assert (
        pack_chain([(8, b"\x01" * 32), (2, b"\x02" * 32)])
        == b"\x00\x08" + b"\x01" * 32 + b"\x00\x02" + b"\x02" * 32
    )


def _share(version: int | None = 1) -> tuple[bytes, ShareLayout]:
    data = random.Random(1).randbytes(1000)
    _, shares = reference.encode(data, EncodingParams(3, 7, 100), b"s", layout_version=version)
    return shares[2], unpack_header(shares[2])


@pytest.mark.parametrize("version", [1, 2])
def test_parse_a_real_share(version: int) -> None:
    raw, layout = _share(version)
    g = Geometry.from_params(EncodingParams(3, 7, 100), 1000)
    assert layout == expected_layout(g, version)
    assert len(raw) == layout.share_size
    parsed = parse_share(raw)
    assert parsed.layout == layout
    assert len(parsed.ueb()) == ueb_length(g)
    assert len(parsed.crypttext_tree()) == len(parsed.block_tree()) == 2 * pow2(g.num_segments) - 1
    assert [node for node, _ in parsed.chain()] == chain_nodes(2, 7)
    assert parsed.plaintext_tree_area() == bytes(tree_size(g.num_segments))
    assert len(parsed.block(g.num_segments - 1, g.tail_block_size)) == g.tail_block_size
    assert parsed.block(1, g.block_size) == raw[layout.data + g.block_size : layout.data + 2 * g.block_size]


def _with_word(raw: bytes, index: int, value: int) -> bytes:
    return raw[: 4 * index] + struct.pack(">L", value) + raw[4 * index + 4 :]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda raw: raw[:3], "too short for a header"),
        (lambda raw: raw[:30], "header needs 36 bytes"),
        (lambda raw: _with_word(raw, 0, 3), "unsupported share version 3"),
        (lambda raw: _with_word(raw, 0, 0), "unsupported share version 0"),
        (lambda raw: _with_word(raw, 3, 40), "data offset"),
        (lambda raw: _with_word(raw, 5, 10), "ascending"),
        (lambda raw: _with_word(raw, 7, struct.unpack_from(">L", raw, 28)[0] + 1), "whole numbers"),
        (lambda raw: raw[:-1], "layout says"),
        (lambda raw: raw + b"\x00", "layout says"),
        (
            lambda raw: _with_word(raw, 8, struct.unpack_from(">L", raw, 32)[0] + 34 * 40),
            "too short for its UEB length",
        ),
    ],
)
def test_malformed_headers_are_refused(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    raw, _ = _share()
    with pytest.raises(FormatError, match=match):
        unpack_header(mutate(raw))


@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_a_share_or_format_error(raw: bytes) -> None:
    for parser in (unpack_header, parse_share):
        try:
            parser(raw)
        except UploaderError as exc:
            assert isinstance(exc, FormatError)


@given(st.binary(min_size=36, max_size=36), st.binary(max_size=200))
def test_arbitrary_v1_headers_are_a_layout_or_format_error(header: bytes, rest: bytes) -> None:
    raw = struct.pack(">L", 1) + header[4:] + rest
    try:
        layout = unpack_header(raw)
    except UploaderError as exc:
        assert isinstance(exc, FormatError)
    else:
        assert layout.share_size == len(raw)


@given(st.sampled_from([1, 2]), st.data())
def test_mutated_shares_are_a_share_or_format_error(version: int, data: st.DataObject) -> None:
    raw = bytearray(_share(version)[0])
    header = 36 if version == 1 else 68
    pos = data.draw(st.integers(0, header + 8) | st.integers(0, len(raw) - 1), label="position")
    raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        parsed = parse_share(bytes(raw))
    except UploaderError as exc:
        assert isinstance(exc, FormatError)
    else:
        parsed.chain()
        parsed.ueb()
        parsed.crypttext_tree()
