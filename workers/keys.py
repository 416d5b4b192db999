"""Encryption key and storage index (chk-format §4, §5).

convergent key = first16(TH(conv_tag, plaintext)), where
conv_tag = "allmydata_immutable_content_to_key_with_added_secret_v1+" ‖ ns(secret) ‖ ns("k,N,segsize")
and segsize is the *adjusted* segment size. SI = first16(TH("..._key_to_storage_index_v1", key)).
"""

from __future__ import annotations

import os

from workers.geometry import Geometry
from workers.hashes import (
    TAG_CONVERGENT_KEY,
    TAG_STORAGE_INDEX,
    BytesLike,
    TaggedHasher,
    netstring,
    tagged_hash,
)

KEY_SIZE = 16


def convergence_tag(secret: bytes, k: int, n: int, segment_size: int) -> bytes:
    params = b"%d,%d,%d" % (k, n, segment_size)
    return TAG_CONVERGENT_KEY + netstring(secret) + netstring(params)


class ConvergentKeyHasher:
    """Streams the whole plaintext once and yields the 16-byte convergent key."""

    __slots__ = ("_hasher",)

    def __init__(self, secret: bytes, k: int, n: int, segment_size: int) -> None:
        self._hasher = TaggedHasher(convergence_tag(secret, k, n, segment_size))

    @classmethod
    def for_geometry(cls, secret: bytes, geometry: Geometry) -> ConvergentKeyHasher:
        return cls(secret, geometry.k, geometry.n, geometry.segment_size)

    def update(self, data: BytesLike) -> None:
        self._hasher.update(data)

    def key(self) -> bytes:
        return self._hasher.digest()[:KEY_SIZE]


def convergent_key(secret: bytes, geometry: Geometry, plaintext: BytesLike) -> bytes:
    hasher = ConvergentKeyHasher.for_geometry(secret, geometry)
    hasher.update(plaintext)
    return hasher.key()


def random_key() -> bytes:
    """16 bytes from the OS CSPRNG (convergence disabled)."""
    return os.urandom(KEY_SIZE)


def storage_index(key: bytes) -> bytes:
    return tagged_hash(TAG_STORAGE_INDEX, key)[:16]
