from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

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
)
from workers.segment import encode_segment
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


def test_key_pass_job_is_the_convergent_key(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "src"
    path.write_bytes(data)
    g = Geometry.from_params(EncodingParams(3, 10, 65536), len(data))
    reply = run_job(KeyPass(7, str(path), len(data), b"secret", 3, 10, g.segment_size), None)
    assert reply == KeyReady(7, convergent_key(b"secret", g, data))


def test_decode_job_verifies_decodes_and_writes(tmp_path: Path) -> None:
    data = os.urandom(1000)
    enc = encode_segment(data, KEY, 5000, 3, 7)
    nums = [6, 2, 4]
    blocks = [bytes(enc.blocks[i]) for i in nums]
    hashes = [enc.block_hashes[i] for i in nums]
    msg = DecodeSegment(1, 0, KEY, 5000, 1000, 3, 7, nums, blocks, hashes, enc.crypttext_hash, "", 0)
    assert run_job(msg, None) == SegmentDecoded(1, 0, [], data)
    dest = tmp_path / "out"
    dest.write_bytes(bytes(6000))
    written = DecodeSegment(
        1, 0, KEY, 5000, 1000, 3, 7, nums, blocks, hashes, enc.crypttext_hash, str(dest), 0
    )
    assert run_job(written, None) == SegmentDecoded(1, 0, [], None)
    assert dest.read_bytes()[5000:] == data
    corrupt = [blocks[0], b"X" + blocks[1][1:], blocks[2]]
    bad = DecodeSegment(1, 0, KEY, 5000, 1000, 3, 7, nums, corrupt, hashes, enc.crypttext_hash, "", 0)
    assert run_job(bad, None) == SegmentDecoded(1, 0, [2], None)
    assert block_hash(corrupt[1]) != hashes[1]
