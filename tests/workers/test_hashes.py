"""Netstrings, SHA-256d and tagged hashes (chk-format §1, §1.2), with the §15 known answers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers import hashes
from workers.hashes import (
    TAG_BLOCK,
    TAG_CRYPTTEXT,
    TAG_CRYPTTEXT_SEGMENT,
    TAG_MERKLE_EMPTY_LEAF,
    Tag,
    TaggedHasher,
    block_hash,
    crypttext_segment_hash,
    netstring,
    sha256d,
    tagged_hash,
    tagged_pair_hash,
)

# §15: the ciphertext of 56 × "a" under the worked example's key.
EXAMPLE_CIPHERTEXT = bytes.fromhex(
    "561a358556560c7f9754bd0ff48e5a3f2baf1137c031e3aab298cf440117834a"
    "79566b6681c9451d431ab7dd87b7ad7e7f40fe16b7a42ae1"
)


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@pytest.mark.parametrize(
    ("value", "expected"), [(b"abc", b"3:abc,"), (b"", b"0:,"), (b"x" * 12, b"12:" + b"x" * 12 + b",")]
)
def test_netstring(value: bytes, expected: bytes) -> None:
    assert netstring(value) == expected


def test_tags_are_the_exact_bytes_of_the_spec() -> None:
    assert hashes.TAG_CONVERGENT_KEY == b"allmydata_immutable_content_to_key_with_added_secret_v1+"
    assert hashes.TAG_STORAGE_INDEX == b"allmydata_immutable_key_to_storage_index_v1"
    assert TAG_CRYPTTEXT_SEGMENT == b"allmydata_crypttext_segment_v1"
    assert TAG_CRYPTTEXT == b"allmydata_crypttext_v1"
    assert TAG_BLOCK == b"allmydata_encoded_subshare_v1"
    assert TAG_MERKLE_EMPTY_LEAF == b"Merkle tree empty leaf"
    assert hashes.TAG_MERKLE_INTERNAL == b"Merkle tree internal node"
    assert hashes.TAG_UEB == b"allmydata_uri_extension_v1"


def test_sha256d_known_answer() -> None:
    # SHA256(SHA256("")), a well-known constant.
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"


def test_merkle_padding_leaf_for_position_1() -> None:
    assert (
        tagged_hash(TAG_MERKLE_EMPTY_LEAF, b"1").hex()
        == "3dd1cc8445dd34f8b3049c51deab3d04c15b5fd2c9b84eddab345966bd8fdde4"
    )


def test_worked_example_ciphertext_hashes() -> None:
    # k = N = 1 and one segment, so the segment leaf is the crypttext root and the block is the ciphertext.
    assert crypttext_segment_hash(EXAMPLE_CIPHERTEXT).hex() == (
        "c547a245bcf4ecf6f0a0940fe2e32bf639fc38360e10d9eb72e176f70f4e13d3"
    )
    assert tagged_hash(TAG_CRYPTTEXT, EXAMPLE_CIPHERTEXT).hex() == (
        "971cd93acbf6d6cc600b83ed3df3ec9df5fa2d3290b83ce7c75f1a61ba5e5a1f"
    )
    assert (
        block_hash(EXAMPLE_CIPHERTEXT).hex()
        == "2bf8dfa93bc47a1821918101d6dc98e58d1d2efcd0581e64f1016fb4ca3935af"
    )


tags = st.sampled_from([TAG_BLOCK, TAG_CRYPTTEXT, TAG_MERKLE_EMPTY_LEAF]) | st.binary(max_size=80)


@given(tags, st.binary(max_size=2000))
def test_tagged_hash_is_sha256d_of_netstring_tag_then_raw_value(tag: bytes, value: bytes) -> None:
    expected = _sha256d(netstring(tag) + value)
    assert tagged_hash(tag, value) == expected
    assert tagged_hash(tag, memoryview(value)) == expected
    assert tagged_hash(tag, bytearray(value)) == expected
    assert Tag(tag)(value) == expected


@given(tags, st.lists(st.binary(max_size=300), max_size=8))
def test_streaming_hasher_equals_one_shot(tag: bytes, chunks: list[bytes]) -> None:
    hasher = TaggedHasher(tag)
    for chunk in chunks:
        hasher.update(chunk)
    assert hasher.digest() == tagged_hash(tag, b"".join(chunks))


@given(tags, st.binary(max_size=64), st.binary(max_size=64))
def test_tagged_pair_hash_wraps_both_values(tag: bytes, a: bytes, b: bytes) -> None:
    assert tagged_pair_hash(tag, a, b) == _sha256d(netstring(tag) + netstring(a) + netstring(b))


def test_pair_hash_is_not_ambiguous_where_concatenation_would_be() -> None:
    assert tagged_pair_hash(b"t", b"ab", b"c") != tagged_pair_hash(b"t", b"a", b"bc")


def test_prebuilt_tags_match_their_tag() -> None:
    assert block_hash.tag == TAG_BLOCK
    assert crypttext_segment_hash.tag == TAG_CRYPTTEXT_SEGMENT
    assert block_hash(b"x") == tagged_hash(TAG_BLOCK, b"x")
    assert block_hash(b"x") != crypttext_segment_hash(b"x")
