"""Per-segment encode and decode (chk-format §6-§8): the unit of work a worker does.

encode: plaintext segment at file offset → AES-CTR → ciphertext leaf hash → zero-pad to a
multiple of k → k pieces → zfec → N blocks → N block hashes.
decode: any k blocks → zfec → padded ciphertext → trim → AES-CTR → plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workers import erasure
from workers.aes import aes_ctr
from workers.errors import IntegrityError
from workers.geometry import roundup
from workers.hashes import BytesLike, block_hash, crypttext_segment_hash


@dataclass(frozen=True, slots=True)
class EncodedSegment:
    """The N blocks of one segment and the hashes the network process needs for the trees.

    ``blocks[j]`` belongs to share j. Blocks 0..k-1 are the padded ciphertext itself
    (zfec is systematic), which is how the network process gets the ciphertext for the flat hash.
    """

    blocks: list[BytesLike]
    block_hashes: list[bytes]
    crypttext_hash: bytes  # TH("allmydata_crypttext_segment_v1", unpadded ciphertext)


def split_pieces(padded: BytesLike, k: int) -> list[memoryview]:
    view = memoryview(padded)
    size = len(view) // k
    return [view[i * size : (i + 1) * size] for i in range(k)]


def encode_ciphertext(ciphertext: BytesLike, k: int, n: int) -> EncodedSegment:
    """Encode one already-encrypted segment (unpadded; the tail may be short)."""
    leaf = crypttext_segment_hash(ciphertext)
    padded_len = roundup(len(ciphertext), k)
    if padded_len != len(ciphertext):
        ciphertext = bytes(ciphertext) + bytes(padded_len - len(ciphertext))
    blocks = erasure.encode(split_pieces(ciphertext, k), k, n)
    return EncodedSegment(blocks, [block_hash(b) for b in blocks], leaf)


def encode_segment(plaintext: BytesLike, key: bytes, offset: int, k: int, n: int) -> EncodedSegment:
    """Encrypt the plaintext segment found at byte ``offset`` of the file and encode it."""
    return encode_ciphertext(aes_ctr(key, offset, plaintext), k, n)


def decode_ciphertext(blocks: Mapping[int, BytesLike], k: int, n: int, length: int) -> bytes:
    """The unpadded ciphertext segment (``length`` bytes) from any k of its blocks {number: block}."""
    if len(blocks) < k:
        raise IntegrityError(f"segment needs {k} blocks to decode, only {len(blocks)} are available")
    nums = sorted(blocks)[:k]
    sizes = {len(blocks[i]) for i in nums}
    if len(sizes) != 1:
        raise IntegrityError(f"blocks of one segment differ in length: {sorted(sizes)}")
    pieces = erasure.decode([blocks[i] for i in nums], nums, k, n)
    data = b"".join(pieces)
    if len(data) < length:
        raise IntegrityError(f"decoded segment has {len(data)} bytes, expected at least {length}")
    return data[:length]


def decode_segment(
    blocks: Mapping[int, BytesLike], key: bytes, offset: int, k: int, n: int, length: int
) -> bytes:
    """The plaintext segment at ``offset`` from any k blocks; the caller has verified the blocks."""
    return aes_ctr(key, offset, decode_ciphertext(blocks, k, n, length))


__all__ = [
    "EncodedSegment",
    "decode_ciphertext",
    "decode_segment",
    "encode_ciphertext",
    "encode_segment",
    "split_pieces",
]
