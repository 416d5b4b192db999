"""Netstrings and Tahoe's tagged SHA-256d hashes (chk-format §1, §1.2).

| name | construction |
|---|---|
| ``netstring(x)`` | ``dec(len(x)) ":" x ","`` |
| ``sha256d(x)`` | ``SHA256(SHA256(x))`` |
| ``tagged_hash(tag, x)`` | ``sha256d(netstring(tag) x)`` |
| ``tagged_pair_hash(tag, a, b)`` | ``sha256d(netstring(tag) netstring(a) netstring(b))`` |

The prefix ``netstring(tag)`` is hashed once per tag and copied, so hashing a block costs one
SHA-256 pass over the block plus one over 32 bytes.
"""

from __future__ import annotations

import hashlib

# Every tag the immutable format uses (chk-format §1.2).
# Anything the buffer protocol hands to hashlib, zfec and pycryptodome without a copy.
BytesLike = bytes | bytearray | memoryview

TAG_CONVERGENT_KEY = b"allmydata_immutable_content_to_key_with_added_secret_v1+"
TAG_STORAGE_INDEX = b"allmydata_immutable_key_to_storage_index_v1"
TAG_CRYPTTEXT_SEGMENT = b"allmydata_crypttext_segment_v1"
TAG_CRYPTTEXT = b"allmydata_crypttext_v1"
TAG_BLOCK = b"allmydata_encoded_subshare_v1"
TAG_MERKLE_EMPTY_LEAF = b"Merkle tree empty leaf"
TAG_MERKLE_INTERNAL = b"Merkle tree internal node"
TAG_UEB = b"allmydata_uri_extension_v1"


def netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def sha256d(data: BytesLike) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class TaggedHasher:
    """Streaming ``tagged_hash``: ``update()`` any number of times, then ``digest()`` once."""

    __slots__ = ("_inner",)

    def __init__(self, tag: bytes) -> None:
        self._inner = hashlib.sha256(netstring(tag))

    def update(self, data: BytesLike) -> None:
        self._inner.update(data)

    def digest(self) -> bytes:
        return hashlib.sha256(self._inner.digest()).digest()


class Tag:
    """A tag with its netstring prefix already hashed; call it like ``tagged_hash``."""

    __slots__ = ("_prefix", "tag")

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self._prefix = hashlib.sha256(netstring(tag))

    def __call__(self, data: BytesLike) -> bytes:
        h = self._prefix.copy()
        h.update(data)
        return hashlib.sha256(h.digest()).digest()


_TAGS: dict[bytes, Tag] = {}


def tagged_hash(tag: bytes, data: BytesLike) -> bytes:
    """``sha256d(netstring(tag) ‖ data)``: 32 bytes."""
    fn = _TAGS.get(tag)
    if fn is None:
        fn = _TAGS.setdefault(tag, Tag(tag))
    return fn(data)


def tagged_pair_hash(tag: bytes, a: bytes, b: bytes) -> bytes:
    """``sha256d(netstring(tag) ‖ netstring(a) ‖ netstring(b))``: 32 bytes."""
    return sha256d(netstring(tag) + netstring(a) + netstring(b))


block_hash = Tag(TAG_BLOCK)
crypttext_segment_hash = Tag(TAG_CRYPTTEXT_SEGMENT)
