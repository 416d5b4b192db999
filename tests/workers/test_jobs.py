from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from workers.aes import aes_ctr
from workers.geometry import EncodingParams, Geometry
from workers.hashes import block_hash
from workers.jobs import run_job
from workers.keys import convergent_key
from workers.messages import (
    DecodeSegment,
    EncodeSegment,
    JobFailed,
    KeyPass,
    KeyReady,
    SegmentDecoded,
    SegmentEncoded,
    pack,
    unpack,
)
from workers.segment import EncodedSegment, encode_segment
from workers.slots import Arena

KEY = bytes(range(16))


@given(st.binary(min_size=1, max_size=5000), st.integers(0, 10**9), st.integers(1, 12), st.integers(0, 12))
def test_encode_job_inline_and_in_a_slot_match_encode_segment(
    data: bytes, offset: int, k: int, extra: int
) -> None:
    n = k + extra
    ref = encode_segment(data, KEY, offset, k, n)
    inline = run_job(EncodeSegment(1, 0, KEY, offset, len(data), "", data, k, n, -1), None)
    assert isinstance(inline, SegmentEncoded)
    assert inline.blocks == [bytes(b) for b in ref.blocks]
    assert (inline.block_hashes, inline.crypttext_hash) == (ref.block_hashes, ref.crypttext_hash)
    arena = Arena.create(2, 80_000)
    try:
        slotted = run_job(EncodeSegment(2, 0, KEY, offset, len(data), "", data, k, n, 1), arena)
        assert isinstance(slotted, SegmentEncoded) and slotted.blocks is None
        bs = slotted.block_size
        slot = arena.slot(1)
        assert [bytes(slot[j * bs : (j + 1) * bs]) for j in range(n)] == [bytes(b) for b in ref.blocks]
        slot.release()
    finally:
        arena.close()


def test_encode_job_reads_its_segment_from_the_file(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "src"
    path.write_bytes(data)
    reply = run_job(EncodeSegment(1, 2, KEY, 4000, 3000, str(path), None, 3, 5, -1), None)
    assert isinstance(reply, SegmentEncoded)
    assert reply.blocks == [bytes(b) for b in encode_segment(data[4000:7000], KEY, 4000, 3, 5).blocks]


def test_a_missing_or_short_source_is_a_job_failure(tmp_path: Path) -> None:
    missing = run_job(EncodeSegment(1, 0, KEY, 0, 10, str(tmp_path / "nope"), None, 1, 1, -1), None)
    assert isinstance(missing, JobFailed) and "cannot open" in missing.message
    (tmp_path / "short").write_bytes(b"abc")
    short = run_job(EncodeSegment(1, 0, KEY, 0, 10, str(tmp_path / "short"), None, 1, 1, -1), None)
    assert isinstance(short, JobFailed) and "ended at 3 bytes" in short.message


def test_a_file_name_that_is_not_utf8_is_read_and_its_failures_still_pack(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = os.path.join(os.fsencode(tmp_path), b"bad\xffname")
    with open(path, "wb") as f:
        f.write(data)
    name = os.fsdecode(path)  # as argv hands it over
    reply = run_job(EncodeSegment(1, 2, KEY, 4000, 3000, name, None, 3, 5, -1), None)
    assert isinstance(reply, SegmentEncoded)
    assert reply.blocks == [bytes(b) for b in encode_segment(data[4000:7000], KEY, 4000, 3, 5).blocks]
    os.unlink(path)
    gone = run_job(KeyPass(7, name, len(data), b"secret", 3, 10, 4096), None)
    assert isinstance(gone, JobFailed) and "bad\\xffname" in gone.message
    assert unpack(pack(gone)) == gone  # the worker can send it back (it crashed packing it)


def test_key_pass_job_is_the_convergent_key(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "src"
    path.write_bytes(data)
    g = Geometry.from_params(EncodingParams(3, 10, 65536), len(data))
    reply = run_job(KeyPass(7, str(path), len(data), b"secret", 3, 10, g.segment_size), None)
    assert reply == KeyReady(7, convergent_key(b"secret", g, data))


def _decode_msg(
    enc: EncodedSegment, nums: list[int], *, offset: int, length: int, k: int, n: int, **kw: object
) -> DecodeSegment:
    bs = len(enc.blocks[0])
    fields: dict[str, object] = {
        "job": 1, "segment": 0, "key": KEY, "offset": offset, "length": length, "k": k, "n": n,
        "block_nums": nums, "blocks": [bytes(enc.blocks[i]) for i in nums],
        "block_hashes": [enc.block_hashes[i] for i in nums], "crypttext_hash": enc.crypttext_hash,
        "slot": -1, "block_size": bs, "out_start": 0, "out_end": 2**62, "dest": "", "dest_base": 0,
    }  # fmt: skip
    fields.update(kw)
    return DecodeSegment(**fields)  # type: ignore[arg-type]


def test_decode_job_verifies_decodes_and_writes(tmp_path: Path) -> None:
    data = os.urandom(1000)
    enc = encode_segment(data, KEY, 5000, 3, 7)
    ciphertext = aes_ctr(KEY, 5000, data)
    msg = _decode_msg(enc, [2, 4, 6], offset=5000, length=1000, k=3, n=7)
    assert run_job(msg, None) == SegmentDecoded(1, 0, [], data, ciphertext)
    dest = tmp_path / "out"
    dest.write_bytes(bytes(6000))
    written = _decode_msg(enc, [2, 4, 6], offset=5000, length=1000, k=3, n=7, dest=str(dest))
    assert run_job(written, None) == SegmentDecoded(1, 0, [], None, ciphertext)
    assert dest.read_bytes()[5000:] == data
    blocks = [bytes(enc.blocks[i]) for i in (2, 4, 6)]
    corrupt = [blocks[0], bytes([blocks[1][0] ^ 1]) + blocks[1][1:], blocks[2]]
    bad = _decode_msg(enc, [2, 4, 6], offset=5000, length=1000, k=3, n=7, blocks=corrupt)
    assert run_job(bad, None) == SegmentDecoded(1, 0, [4], None, None)
    assert block_hash(corrupt[1]) != enc.block_hashes[4]


def test_decode_job_output_window_and_dest_base(tmp_path: Path) -> None:
    data = os.urandom(999)
    enc = encode_segment(data, KEY, 4096, 2, 4)
    part = _decode_msg(enc, [0, 1], offset=4096, length=999, k=2, n=4, out_start=4100, out_end=4200)
    reply = run_job(part, None)
    assert isinstance(reply, SegmentDecoded) and reply.plaintext == data[4:104]
    dest = tmp_path / "range"
    dest.write_bytes(b"")
    ranged = _decode_msg(
        enc, [1, 3], offset=4096, length=999, k=2, n=4, out_start=4000, out_end=4200,
        dest=str(dest), dest_base=4000,
    )  # fmt: skip
    assert isinstance(run_job(ranged, None), SegmentDecoded)
    assert dest.read_bytes() == bytes(96) + data[:104]  # bytes 4000..4095 belong to another segment
    outside = _decode_msg(enc, [0, 1], offset=4096, length=999, k=2, n=4, out_start=0, out_end=10)
    assert run_job(outside, None) == SegmentDecoded(1, 0, [], b"", aes_ctr(KEY, 4096, data))


@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(1, 6),
    st.integers(0, 5),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_decode_job_in_a_slot(data: bytes, k: int, extra: int, rnd: random.Random, to_file: bool) -> None:
    """Any k blocks in a slot: the ciphertext is left at the slot's start, the plaintext after the blocks."""
    n = k + extra
    offset = rnd.randrange(0, 10**6)
    enc = encode_segment(data, KEY, offset, k, n)
    nums = sorted(rnd.sample(range(n), k))
    bs = len(enc.blocks[0])
    arena = Arena.create(2, 2 * k * bs + 16)
    try:
        view = arena.slot(1)
        for i, num in enumerate(nums):
            view[i * bs : (i + 1) * bs] = enc.blocks[num]
        lo = rnd.randrange(0, len(data))
        hi = rnd.randrange(lo, len(data) + 1)
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "out"
            dest.write_bytes(b"")
            msg = _decode_msg(
                enc, nums, offset=offset, length=len(data), k=k, n=n, blocks=[], slot=1,
                out_start=offset + lo, out_end=offset + hi, dest=str(dest) if to_file else "",
                dest_base=offset + lo,
            )  # fmt: skip
            assert run_job(msg, arena) == SegmentDecoded(1, 0, [], None, None)
            assert bytes(view[: len(data)]) == aes_ctr(KEY, offset, data)
            got = dest.read_bytes() if to_file else bytes(view[k * bs : k * bs + hi - lo])
            assert got == data[lo:hi]
        view.release()
    finally:
        arena.close()


def test_decode_job_refuses_a_slot_too_small_and_reports_mismatched_decodes() -> None:
    data = os.urandom(300)
    enc = encode_segment(data, KEY, 0, 3, 5)
    arena = Arena.create(1, 250)
    try:
        small = _decode_msg(enc, [0, 1, 2], offset=0, length=300, k=3, n=5, blocks=[], slot=0)
        reply = run_job(small, arena)
        assert isinstance(reply, JobFailed) and "slot" in reply.message
    finally:
        arena.close()
    other = encode_segment(os.urandom(300), KEY, 0, 3, 5)
    lying = _decode_msg(enc, [0, 1, 2], offset=0, length=300, k=3, n=5, crypttext_hash=other.crypttext_hash)
    assert run_job(lying, None) == SegmentDecoded(1, 0, [-1], None, None)
    unsorted = _decode_msg(enc, [2, 0, 1], offset=0, length=300, k=3, n=5)
    assert isinstance(run_job(unsorted, None), JobFailed)
