"""The URI Extension Block (chk-format §9), with the §15 worked example."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk.ueb import MAX_UEB_SIZE, UEB, parse_ueb, ueb_hash, ueb_length
from workers.base32 import b32encode
from workers.errors import FormatError, UploaderError
from workers.geometry import EncodingParams, Geometry

CRYPTTEXT_HASH = bytes.fromhex("971cd93acbf6d6cc600b83ed3df3ec9df5fa2d3290b83ce7c75f1a61ba5e5a1f")
CRYPTTEXT_ROOT = bytes.fromhex("c547a245bcf4ecf6f0a0940fe2e32bf639fc38360e10d9eb72e176f70f4e13d3")
SHARE_ROOT = bytes.fromhex("2bf8dfa93bc47a1821918101d6dc98e58d1d2efcd0581e64f1016fb4ca3935af")
EXAMPLE_UEB = (
    b"codec_name:3:crs,codec_params:6:56-1-1,crypttext_hash:32:" + CRYPTTEXT_HASH + b","
    b"crypttext_root_hash:32:" + CRYPTTEXT_ROOT + b",needed_shares:1:1,num_segments:1:1,"
    b"segment_size:2:56,share_root_hash:32:" + SHARE_ROOT + b",size:2:56,"
    b"tail_codec_params:6:56-1-1,total_shares:1:1,"
)


def example() -> UEB:
    g = Geometry.from_params(EncodingParams(1, 1, 131072), 56)
    return UEB.build(g, CRYPTTEXT_HASH, CRYPTTEXT_ROOT, SHARE_ROOT)


def test_worked_example_bytes_and_hash() -> None:
    ueb = example()
    assert len(EXAMPLE_UEB) == 305
    assert ueb.serialize() == EXAMPLE_UEB
    assert b32encode(ueb_hash(EXAMPLE_UEB)) == "6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a"
    assert parse_ueb(EXAMPLE_UEB) == ueb
    assert ueb_length(ueb.geometry()) == 305


def test_geometry_from_ueb() -> None:
    g = Geometry.from_params(EncodingParams(3, 10, 100), 250)
    ueb = UEB.build(g, bytes(32), bytes(32), bytes(32))
    assert ueb.geometry() == g


geometries = st.builds(
    lambda n, kfrac, mss, size: Geometry.from_params(EncodingParams(max(1, round(n * kfrac)), n, mss), size),
    st.integers(1, 256),
    st.floats(0, 1),
    st.integers(1, 1 << 22),
    st.integers(56, 1 << 45),
)
hashes = st.binary(min_size=32, max_size=32)


@given(geometries, hashes, hashes, hashes)
def test_round_trip(g: Geometry, a: bytes, b: bytes, c: bytes) -> None:
    ueb = UEB.build(g, a, b, c)
    blob = ueb.serialize()
    assert len(blob) == ueb_length(g) < MAX_UEB_SIZE
    assert parse_ueb(blob) == ueb
    assert ueb.geometry() == g
    keys = [entry.split(b":", 1)[0] for entry in _entries(blob)]
    assert keys == sorted(keys)
    assert len(keys) == 11


def _entries(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        colon = blob.index(b":", pos)
        second = blob.index(b":", colon + 1)
        end = second + 1 + int(blob[colon + 1 : second])
        out.append(blob[pos : end + 1])
        pos = end + 1
    return out


def _replace(blob: bytes, key: bytes, value: bytes) -> bytes:
    return b"".join(
        key + b":%d:%s," % (len(value), value) if e.split(b":", 1)[0] == key else e for e in _entries(blob)
    )


def _drop(blob: bytes, key: bytes) -> bytes:
    return b"".join(e for e in _entries(blob) if e.split(b":", 1)[0] != key)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (_drop(EXAMPLE_UEB, b"size"), "lacks the keys"),
        (EXAMPLE_UEB + b"size:2:56,", "repeats the key size"),
        (EXAMPLE_UEB + b"bogus", "no ':'"),
        (EXAMPLE_UEB + b"b0gus:1:x,", "not"),
        (EXAMPLE_UEB + b"extra:9:x,", "not a netstring"),
        (EXAMPLE_UEB + b"extra:01:x,", "not a netstring"),
        (EXAMPLE_UEB + b"extra:1:xy", "not a netstring"),
        (EXAMPLE_UEB[:-1], "not a netstring"),
        (_replace(EXAMPLE_UEB, b"crypttext_hash", bytes(31)), "32 bytes"),
        (_replace(EXAMPLE_UEB, b"share_root_hash", bytes(33)), "32 bytes"),
        (_replace(EXAMPLE_UEB, b"size", b"056"), "decimal"),
        (_replace(EXAMPLE_UEB, b"size", b"-56"), "decimal"),
        (_replace(EXAMPLE_UEB, b"size", b"57"), "size"),
        (_replace(EXAMPLE_UEB, b"codec_name", b"zfec"), "codec_name"),
        (_replace(EXAMPLE_UEB, b"needed_shares", b"2"), "k=2"),
        (_replace(EXAMPLE_UEB, b"needed_shares", b"0"), "out of range"),
        (_replace(_replace(EXAMPLE_UEB, b"total_shares", b"257"), b"needed_shares", b"2"), "out of range"),
        (_replace(EXAMPLE_UEB, b"codec_params", b"56-1-2"), "codec_params"),
        (_replace(EXAMPLE_UEB, b"codec_params", b"56-1"), "SIZE-K-N"),
        (_replace(EXAMPLE_UEB, b"tail_codec_params", b"56-1-2"), "tail_codec_params"),
        (_replace(EXAMPLE_UEB, b"tail_codec_params", b"55-1-1"), "tail size"),
        (_replace(EXAMPLE_UEB, b"num_segments", b"2"), "num_segments"),
        (_replace(EXAMPLE_UEB, b"segment_size", b"0"), "segment_size"),
        (EXAMPLE_UEB + b"pad:%d:%s," % (MAX_UEB_SIZE, bytes(MAX_UEB_SIZE)), "fewer than 2000"),
    ],
)
def test_malformed_uebs_are_refused(blob: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_ueb(blob)


def test_extra_keys_are_ignored() -> None:
    assert parse_ueb(EXAMPLE_UEB + b"plaintext_hash:32:" + bytes(32) + b",") == example()


def test_empty_ueb_is_refused() -> None:
    with pytest.raises(FormatError, match="lacks the keys"):
        parse_ueb(b"")


@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_a_ueb_or_format_error(blob: bytes) -> None:
    try:
        parse_ueb(blob)
    except UploaderError as exc:
        assert isinstance(exc, FormatError)


@given(st.data())
def test_mutated_uebs_are_a_ueb_or_format_error(data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from([EXAMPLE_UEB, example().serialize()])))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, len(blob)), label="position")
        op = data.draw(st.sampled_from(["set", "insert", "delete"]), label="op")
        byte = data.draw(st.sampled_from(b":,-0123456789az_\x00\xff"), label="byte")
        if op == "insert":
            blob[pos:pos] = bytes([byte])
        elif pos < len(blob):
            if op == "set":
                blob[pos] = byte
            else:
                del blob[pos]
    try:
        ueb = parse_ueb(bytes(blob))
    except UploaderError as exc:
        assert isinstance(exc, FormatError)
    else:
        assert 1 <= ueb.k <= ueb.n <= 256
        assert ueb.geometry().num_segments == ueb.num_segments
