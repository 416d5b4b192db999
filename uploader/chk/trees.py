"""From per-segment hashes to the file's trees, UEB, cap and each share's header and trailer.

Workers return, per segment, the ciphertext leaf hash and N block hashes (32 bytes each). This
collects them in flat byte arrays (32 × (N+1) bytes per segment, never the data), and at the end
builds the crypttext tree, the N block trees, the share tree and chains, and the UEB
(chk-format §8, §9). Every encoder path — the in-memory reference, ``cap``, the upload
pipeline — finishes through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from uploader.chk.caps import ChkCap
from uploader.chk.layout import ShareLayout
from uploader.chk.ueb import UEB, ueb_hash, ueb_length
from workers.geometry import Geometry
from workers.merkle import build_tree, chain_nodes

HASH = 32


class HashCollector:
    """Per-segment hashes of one file, in any arrival order; memory 32 × (N+1) bytes per segment."""

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry
        segs = geometry.num_segments
        self._crypttext = bytearray(HASH * segs)
        self._blocks = [bytearray(HASH * segs) for _ in range(geometry.n)]
        self._seen = bytearray(segs)

    def add(self, segnum: int, crypttext_hash: bytes, block_hashes: list[bytes]) -> None:
        if len(block_hashes) != self.geometry.n:
            raise ValueError(
                f"segment {segnum} has {len(block_hashes)} block hashes, expected {self.geometry.n}"
            )
        at = segnum * HASH
        self._crypttext[at : at + HASH] = crypttext_hash
        for share, h in zip(self._blocks, block_hashes, strict=True):
            share[at : at + HASH] = h
        self._seen[segnum] = 1

    @property
    def complete(self) -> bool:
        return all(self._seen)

    def finish(self, crypttext_hash: bytes, layout_version: int | None = None) -> FileTrailer:
        """Build every tree and the UEB; ``crypttext_hash`` is the flat hash of the whole ciphertext."""
        if not self.complete:
            missing = self._seen.index(0)
            raise ValueError(f"segment {missing} was never added")
        leaves = _split(self._crypttext)
        crypttext_tree = build_tree(leaves)
        block_trees = [build_tree(_split(b)) for b in self._blocks]
        share_tree = build_tree([t[0] for t in block_trees])
        ueb = UEB.build(self.geometry, crypttext_hash, crypttext_tree[0], share_tree[0])
        layout = ShareLayout.for_file(self.geometry, ueb_length(self.geometry), layout_version)
        return FileTrailer(self.geometry, layout, ueb, crypttext_tree, block_trees, share_tree)


def _split(buf: bytearray) -> list[bytes]:
    return [bytes(buf[i : i + HASH]) for i in range(0, len(buf), HASH)]


@dataclass(frozen=True)
class FileTrailer:
    geometry: Geometry
    layout: ShareLayout
    ueb: UEB
    crypttext_tree: list[bytes]
    block_trees: list[list[bytes]]
    share_tree: list[bytes]

    @cached_property
    def ueb_bytes(self) -> bytes:
        return self.ueb.serialize()

    @cached_property
    def ueb_hash(self) -> bytes:
        return ueb_hash(self.ueb_bytes)

    def cap(self, key: bytes) -> ChkCap:
        g = self.geometry
        return ChkCap(key, self.ueb_hash, g.k, g.n, g.size)

    def chain(self, shnum: int) -> list[tuple[int, bytes]]:
        return [(node, self.share_tree[node]) for node in chain_nodes(shnum, self.geometry.n)]

    def share_trailer(self, shnum: int) -> bytes:
        """Every byte of share ``shnum`` after its data area."""
        return self.layout.pack_trailer(
            self.crypttext_tree, self.block_trees[shnum], self.chain(shnum), self.ueb_bytes
        )


def expected_layout(geometry: Geometry, version: int | None = None) -> ShareLayout:
    """The layout (hence allocated size) of every share, known before encoding."""
    return ShareLayout.for_file(geometry, ueb_length(geometry), version)
