"""The in-memory reference encoder/decoder: §15 share bytes, round trips, and corruption handling."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk import reference
from uploader.chk.caps import ChkCap, LitCap, parse_read_cap
from uploader.chk.layout import unpack_header
from uploader.chk.trees import expected_layout
from workers.errors import FormatError, IntegrityError, UploaderError
from workers.geometry import LIT_MAX_SIZE, EncodingParams, Geometry

CIPHERTEXT = bytes.fromhex(
    "561a358556560c7f9754bd0ff48e5a3f2baf1137c031e3aab298cf440117834a"
    "79566b6681c9451d431ab7dd87b7ad7e7f40fe16b7a42ae1"
)
CRYPTTEXT_HASH = bytes.fromhex("971cd93acbf6d6cc600b83ed3df3ec9df5fa2d3290b83ce7c75f1a61ba5e5a1f")
CRYPTTEXT_ROOT = bytes.fromhex("c547a245bcf4ecf6f0a0940fe2e32bf639fc38360e10d9eb72e176f70f4e13d3")
SHARE_ROOT = bytes.fromhex("2bf8dfa93bc47a1821918101d6dc98e58d1d2efcd0581e64f1016fb4ca3935af")
EXAMPLE_UEB = (
    b"codec_name:3:crs,codec_params:6:56-1-1,crypttext_hash:32:" + CRYPTTEXT_HASH + b","
    b"crypttext_root_hash:32:" + CRYPTTEXT_ROOT + b",needed_shares:1:1,num_segments:1:1,"
    b"segment_size:2:56,share_root_hash:32:" + SHARE_ROOT + b",size:2:56,"
    b"tail_codec_params:6:56-1-1,total_shares:1:1,"
)
EXAMPLE_CAP = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56"


def test_worked_example_share_bytes() -> None:
    cap, shares = reference.encode(b"a" * 56, EncodingParams(1, 1, 131072), b"aaaaaaaaaaaaaaaa")
    assert str(cap) == EXAMPLE_CAP
    expected = (
        struct.pack(">9L", 1, 56, 56, 36, 92, 124, 156, 188, 222)
        + CIPHERTEXT  # 36..91
        + bytes(32)  # 92..123: the unused plaintext hash tree
        + CRYPTTEXT_ROOT  # 124..155: the one-leaf crypttext tree
        + SHARE_ROOT  # 156..187: the one-leaf block tree (k = N = 1: the block is the ciphertext)
        + b"\x00\x00"
        + SHARE_ROOT  # 188..221: the chain, node 0 only
        + struct.pack(">L", 305)  # 222
        + EXAMPLE_UEB  # 226..530
    )
    assert len(expected) == 531
    assert shares == [expected]
    assert reference.decode(cap, {0: expected}) == b"a" * 56


# ---------------------------------------------------------------------------------------------------
# Strategies: sizes up to 64 KiB, small segment sizes (so many segments), k/N mostly small, N up to 30.


@dataclass(frozen=True)
class Case:
    data: bytes
    params: EncodingParams
    secret: bytes | None

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Case(size={len(self.data)}, k={p.k}, n={p.n}, mss={p.max_segment_size}, secret={self.secret!r})"
        )


def _bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@st.composite
def cases(draw: st.DrawFn, min_size: int = 0, min_n: int = 1, spare_share: bool = False) -> Case:
    size = draw(
        st.one_of(st.integers(min_size, 200), st.integers(200, 3000), st.integers(3000, 65536)), label="size"
    )
    data = _bytes(size, draw(st.integers(0, 2**32), label="seed"))
    n = draw(st.one_of(st.integers(max(min_n, 1), 10), st.integers(11, 30)), label="n")
    k = draw(st.integers(1, n - 1 if spare_share else n), label="k")
    # Segment maximums spread over 1..4096 on a log scale, so many files have dozens of segments;
    # the floor of size/256 caps a file at ~256 segments, which keeps each example fast.
    scale = draw(st.integers(0, 12), label="log2 max_segment_size")
    mss = max(size // 256, draw(st.integers(1, 2**scale), label="max_segment_size"), 1)
    secret = draw(st.none() | st.binary(max_size=32), label="secret")
    return Case(data, EncodingParams(k, n, mss), secret)


@given(cases(), st.sampled_from([None, 1, 2]))
def test_round_trip(case: Case, layout_version: int | None) -> None:
    cap, shares = reference.encode(case.data, case.params, case.secret, layout_version=layout_version)
    if len(case.data) <= LIT_MAX_SIZE:
        assert cap == LitCap(case.data)
        assert shares == []
    else:
        assert isinstance(cap, ChkCap)
        assert (cap.k, cap.n, cap.size) == (case.params.k, case.params.n, len(case.data))
        g = Geometry.from_params(case.params, len(case.data))
        layout = expected_layout(g, layout_version)
        assert len(shares) == case.params.n
        assert all(unpack_header(s) == layout for s in shares)
        assert layout.version == (layout_version or 1)
        assert {struct.unpack_from(">L", s)[0] for s in shares} == {layout.version}
    assert parse_read_cap(str(cap)) == cap
    assert reference.decode(cap, dict(enumerate(shares))) == case.data


@given(cases(min_size=LIT_MAX_SIZE + 1), st.data())
def test_decode_from_any_k_shares(case: Case, data: st.DataObject) -> None:
    cap, shares = reference.encode(case.data, case.params, case.secret)
    k, n = case.params.k, case.params.n
    chosen = data.draw(st.permutations(range(n)), label="shares")
    assert reference.decode(cap, {j: shares[j] for j in chosen[:k]}) == case.data
    if k > 1:
        with pytest.raises(IntegrityError, match="good shares"):
            reference.decode(cap, {j: shares[j] for j in chosen[: k - 1]})


@given(cases(min_size=LIT_MAX_SIZE + 1, min_n=2, spare_share=True), st.data())
def test_a_flipped_byte_is_caught(case: Case, data: st.DataObject) -> None:
    cap, shares = reference.encode(case.data, case.params, case.secret)
    assert isinstance(cap, ChkCap)
    k, n = case.params.k, case.params.n
    j = data.draw(st.integers(0, n - 1), label="share")
    length = len(shares[j])
    layout = unpack_header(shares[j])
    # Half the time aim at the small structured parts (header, trees, chain, UEB) rather than the data.
    pos = data.draw(
        st.integers(0, length - 1)
        | st.integers(0, layout.data - 1)
        | st.integers(layout.plaintext_hash_tree, length - 1),
        label="position",
    )
    bad = bytearray(shares[j])
    bad[pos] ^= data.draw(st.integers(1, 255), label="xor")
    corrupt = dict(enumerate(shares))
    corrupt[j] = bytes(bad)

    # All shares: the right plaintext, and the flipped share is rejected somewhere.
    assert reference.decode(cap, corrupt) == case.data
    ueb, good, rejected = reference.check_shares(cap, corrupt)
    assert set(good) | set(rejected) == set(range(n))
    assert set(rejected) <= {j}
    if j not in rejected:
        g = ueb.geometry()
        failures = 0
        for seg in range(g.num_segments):
            try:
                good[j].block(seg, g.block_length(seg))
            except IntegrityError:
                failures += 1
        assert failures == 1

    # Exactly k shares including the flipped one: an error, never wrong plaintext.
    others = [x for x in data.draw(st.permutations(range(n)), label="others") if x != j][: k - 1]
    with pytest.raises(UploaderError):
        reference.decode(cap, {x: corrupt[x] for x in [j, *others]})


def test_decode_with_a_verify_cap_is_refused() -> None:
    cap, shares = reference.encode(bytes(100), EncodingParams(2, 3, 50), b"s")
    assert isinstance(cap, ChkCap)
    with pytest.raises(FormatError, match="verify cap"):
        reference.decode(cap.verify_cap, dict(enumerate(shares)))


def test_check_shares_works_with_a_verify_cap() -> None:
    cap, shares = reference.encode(bytes(100), EncodingParams(2, 3, 50), b"s")
    assert isinstance(cap, ChkCap)
    _, good, bad = reference.check_shares(cap.verify_cap, dict(enumerate(shares)))
    assert (set(good), bad) == ({0, 1, 2}, {})


def test_lit_decodes_without_shares() -> None:
    assert reference.decode(LitCap(b"hi"), {}) == b"hi"


def _encoded(seed: int = 0) -> tuple[ChkCap, list[bytes]]:
    cap, shares = reference.encode(_bytes(5000, seed), EncodingParams(3, 7, 512), b"secret")
    assert isinstance(cap, ChkCap)
    return cap, shares


def test_a_cap_for_other_data_matches_no_share() -> None:
    _, shares = _encoded(0)
    other, _ = _encoded(1)
    with pytest.raises(IntegrityError, match="no share holds a UEB"):
        reference.decode(other, dict(enumerate(shares)))


def test_a_cap_that_disagrees_with_its_ueb_is_refused() -> None:
    cap, shares = _encoded()
    lying = ChkCap(cap.key, cap.ueb_hash, cap.k, cap.n, cap.size + 1)
    with pytest.raises(IntegrityError, match="disagrees"):
        reference.decode(lying, dict(enumerate(shares)))


def test_a_wrong_key_decrypts_to_other_bytes() -> None:
    # The key is not covered by any hash (a holder of the verify cap can check shares without it),
    # so a cap with a different key decrypts to different bytes; this pins that behaviour.
    cap, shares = _encoded()
    other = ChkCap(bytes(16), cap.ueb_hash, cap.k, cap.n, cap.size)
    assert reference.decode(other, dict(enumerate(shares))) != _bytes(5000, 0)


def test_shares_under_the_wrong_number_are_rejected() -> None:
    cap, shares = _encoded()
    swapped = {0: shares[1], 1: shares[0], 2: shares[2], 3: shares[3]}
    _, good, bad = reference.check_shares(cap, swapped)
    assert set(bad) == {0, 1}
    assert set(good) == {2, 3}
    assert reference.decode(cap, {**swapped, 4: shares[4]}) == _bytes(5000, 0)
    with pytest.raises(IntegrityError):
        reference.decode(cap, {0: shares[1], 1: shares[0], 2: shares[2]})


def test_share_numbers_outside_the_range_are_rejected() -> None:
    cap, shares = _encoded()
    _, good, bad = reference.check_shares(cap, {7: shares[0], -1: shares[1], 2: shares[2]})
    assert set(bad) == {7, -1}
    assert set(good) == {2}


def test_truncated_and_empty_shares_are_rejected() -> None:
    cap, shares = _encoded()
    given_shares = {0: b"", 1: shares[1][:-1], 2: shares[2], 3: shares[3], 4: shares[4]}
    assert reference.decode(cap, given_shares) == _bytes(5000, 0)
    _, _, bad = reference.check_shares(cap, given_shares)
    assert set(bad) == {0, 1}


def test_convergent_encoding_is_deterministic_and_random_keys_are_not() -> None:
    data, params = _bytes(3000, 5), EncodingParams(3, 10, 1000)
    assert reference.encode(data, params, b"s") == reference.encode(data, params, b"s")
    assert reference.encode(data, params, b"s")[0] != reference.encode(data, params, b"t")[0]
    (cap1, shares1), (cap2, shares2) = (
        reference.encode(data, params, None),
        reference.encode(data, params, None),
    )
    assert isinstance(cap1, ChkCap) and isinstance(cap2, ChkCap)
    assert cap1.key != cap2.key
    assert shares1 != shares2
    assert reference.decode(cap1, dict(enumerate(shares1))) == data


def test_v1_and_v2_carry_the_same_hashes() -> None:
    data, params = _bytes(3000, 6), EncodingParams(3, 5, 700)
    cap1, shares1 = reference.encode(data, params, b"s", layout_version=1)
    cap2, shares2 = reference.encode(data, params, b"s", layout_version=2)
    assert cap1 == cap2  # the layout is not part of the cap
    for s1, s2 in zip(shares1, shares2, strict=True):
        l1, l2 = unpack_header(s1), unpack_header(s2)
        assert (l1.version, l1.data, l2.version, l2.data) == (1, 0x24, 2, 0x44)
        assert len(s2) == len(s1) + (0x44 - 0x24) + (8 - 4)
        assert s1[l1.data : l1.uri_extension] == s2[l2.data : l2.uri_extension]  # data, trees, chain
        assert s1[l1.uri_extension + 4 :] == s2[l2.uri_extension + 8 :]  # the UEB
    assert reference.decode(cap2, dict(enumerate(shares2))) == data
    mixed = {0: shares1[0], 1: shares2[1], 2: shares1[2]}
    assert reference.decode(cap1, mixed) == data
