from __future__ import annotations

import contextlib
import os

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.errors import MessageError
from workers.messages import (
    KINDS,
    PROTOCOL_VERSION,
    DecodeSegment,
    EncodeSegment,
    JobFailed,
    KeyPass,
    KeyReady,
    SegmentDecoded,
    SegmentEncoded,
    Shutdown,
    WorkerReady,
    frame,
    pack,
    read_frame_length,
    unpack,
)

u32 = st.integers(0, 2**32 - 1)
u63 = st.integers(0, 2**63 - 1)
key = st.binary(min_size=16, max_size=16)
h32 = st.binary(min_size=32, max_size=32)
kn = st.integers(1, 256)
blobs = st.lists(st.binary(max_size=64), max_size=6)
# Local file names are bytes (any but NUL), not necessarily UTF-8: Python holds the others as
# surrogate-escaped str, which msgpack cannot encode as str.
paths = st.binary(max_size=40).filter(lambda b: b"\0" not in b).map(os.fsdecode)

messages = st.one_of(
    st.builds(
        EncodeSegment,
        job=u32,
        segment=u32,
        key=key,
        offset=u63,
        length=u32,
        source=paths,
        data=st.none() | st.binary(max_size=256),
        k=kn,
        n=kn,
        slot=st.integers(-1, 1000),
    ),
    st.builds(
        SegmentEncoded,
        job=u32,
        segment=u32,
        crypttext_hash=h32,
        block_hashes=st.lists(h32, max_size=5),
        block_size=u32,
        slot=st.integers(-1, 1000),
        blocks=st.none() | blobs,
    ),
    st.builds(
        JobFailed,
        job=u32,
        segment=st.integers(-1, 2**32),
        error_class=st.text(max_size=20),
        message=st.text(max_size=80),
    ),
    st.builds(
        KeyPass,
        job=u32,
        source=paths,
        size=u63,
        secret=st.binary(max_size=64),
        k=kn,
        n=kn,
        segment_size=u32,
    ),
    st.builds(KeyReady, job=u32, key=key),
    st.builds(
        DecodeSegment,
        job=u32,
        segment=u32,
        key=key,
        offset=u63,
        length=u32,
        k=kn,
        n=kn,
        block_nums=st.lists(st.integers(0, 255), max_size=5),
        blocks=blobs,
        block_hashes=st.lists(h32, max_size=5),
        crypttext_hash=h32,
        slot=st.integers(-1, 1000),
        block_size=u32,
        out_start=u63,
        out_end=u63,
        dest=paths,
        dest_base=u63,
    ),
    st.builds(
        SegmentDecoded,
        job=u32,
        segment=u32,
        bad_blocks=st.lists(st.integers(-1, 255), max_size=4),
        plaintext=st.none() | st.binary(max_size=128),
        ciphertext=st.none() | st.binary(max_size=128),
    ),
    st.builds(Shutdown, reason=st.text(max_size=30)),
    st.builds(WorkerReady, pid=u32, backend=st.sampled_from(["zfec", "isal"])),
)


@given(messages)
def test_round_trip(msg: object) -> None:
    assert unpack(pack(msg)) == msg  # type: ignore[arg-type]


@given(messages)
def test_frame_carries_its_length(msg: object) -> None:
    framed = frame(msg)  # type: ignore[arg-type]
    assert read_frame_length(framed[:4]) == len(framed) - 4
    assert unpack(framed[4:]) == msg


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_message_or_message_error(data: bytes) -> None:
    with contextlib.suppress(MessageError):
        unpack(data)


@given(
    st.lists(
        st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=8) | st.text(max_size=8) | st.none(),
        max_size=12,
    )
)
def test_wrong_shapes_are_rejected(body: list[object]) -> None:
    for kind in KINDS.values():
        with contextlib.suppress(MessageError):
            unpack(msgpack.packb([PROTOCOL_VERSION, kind, body], use_bin_type=True))


def test_kinds_are_stable_and_unique() -> None:
    assert KINDS[EncodeSegment] == 1 and KINDS[SegmentEncoded] == 2 and KINDS[JobFailed] == 3
    assert len(set(KINDS.values())) == len(KINDS)


@pytest.mark.parametrize(
    "blob, why",
    [
        (msgpack.packb([PROTOCOL_VERSION + 1, 1, []]), "version"),
        (msgpack.packb([PROTOCOL_VERSION, 99, []]), "kind"),
        (msgpack.packb([PROTOCOL_VERSION, 8, ["a", "b"]]), "fields"),
        (msgpack.packb([PROTOCOL_VERSION, 9, ["x", "zfec"]]), "wrong type"),
        (msgpack.packb({"a": 1}), "version, kind"),
    ],
)
def test_specific_rejections(blob: bytes, why: str) -> None:
    with pytest.raises(MessageError, match=why):
        unpack(blob)


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(MessageError, match="exceeds"):
        read_frame_length((2**31).to_bytes(4, "big"), 1 << 20)
    with pytest.raises(MessageError, match="exceeds"):
        unpack(b"\x00" * 100, max_size=10)


def test_a_path_that_is_not_utf8_travels_as_its_bytes() -> None:
    name = os.fsdecode(b"/data/bad\xffname")  # what argv gives for that file name
    msg = KeyPass(1, name, 10, b"s", 3, 10, 65536)
    body = msgpack.unpackb(pack(msg), raw=False)
    assert body[2][1] == b"/data/bad\xffname"  # bin on the wire, the exact bytes
    assert unpack(pack(msg)) == msg
    with pytest.raises(MessageError, match=r"KeyPass\.source has the wrong type"):
        unpack(msgpack.packb([PROTOCOL_VERSION, KINDS[KeyPass], [1, "/a", 10, b"s", 3, 10, 65536]]))
