"""Tahoe's Merkle trees and share hash chains (chk-format §8.3, §8.6).

A tree over m leaves is padded to P = pow2(m) leaves with ``TH("Merkle tree empty leaf", dec(j))``
at positions j = m..P-1, built with ``TH2("Merkle tree internal node", left, right)``, and
flattened breadth first into ``T[0 .. 2P-2]``: root at 0, children of x at 2x+1 and 2x+2, leaves
at P-1 .. 2P-2. A one-leaf tree is just that leaf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from workers.errors import IntegrityError
from workers.geometry import pow2
from workers.hashes import TAG_MERKLE_EMPTY_LEAF, TAG_MERKLE_INTERNAL, tagged_hash, tagged_pair_hash

HASH_SIZE = 32


def empty_leaf(position: int) -> bytes:
    return tagged_hash(TAG_MERKLE_EMPTY_LEAF, b"%d" % position)


def internal_node(left: bytes, right: bytes) -> bytes:
    return tagged_pair_hash(TAG_MERKLE_INTERNAL, left, right)


def build_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The flattened tree ``T[0 .. 2P-2]`` over ``leaves`` (at least one)."""
    m = len(leaves)
    if m < 1:
        raise ValueError("a Merkle tree needs at least one leaf")
    p = pow2(m)
    row = list(leaves) + [empty_leaf(j) for j in range(m, p)]
    levels = [row]
    while len(row) > 1:
        row = [internal_node(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        levels.append(row)
    flat: list[bytes] = []
    for level in reversed(levels):
        flat.extend(level)
    return flat


def sibling(node: int) -> int:
    return node + 1 if node % 2 == 1 else node - 1


def parent(node: int) -> int:
    return (node - 1) // 2


def leaf_node(leafnum: int, num_leaves: int) -> int:
    """Node number of leaf ``leafnum`` in the flattened tree over ``num_leaves`` leaves."""
    return pow2(num_leaves) - 1 + leafnum


def path_siblings(leafnum: int, num_leaves: int) -> list[int]:
    """Siblings of every node on the path from the leaf up to (not including) the root."""
    node = leaf_node(leafnum, num_leaves)
    out = []
    while node != 0:
        out.append(sibling(node))
        node = parent(node)
    return out


def chain_nodes(leafnum: int, num_leaves: int) -> list[int]:
    """Node numbers of share ``leafnum``'s hash chain, in Tahoe's byte order.

    Tahoe collects the siblings on the path (leaf → root) and then the leaf in a CPython ``set``
    and writes them in that set's iteration order; we do the same, which is deterministic for
    small ints in CPython (chk-format §8.6).
    """
    nodes = set(path_siblings(leafnum, num_leaves))
    nodes.add(leaf_node(leafnum, num_leaves))
    return list(nodes)


def verify_chain(root: bytes, leafnum: int, num_leaves: int, leaf: bytes, known: Mapping[int, bytes]) -> None:
    """Check that ``leaf`` at ``leafnum`` hashes up to ``root`` using sibling hashes in ``known``.

    Raises IntegrityError if a needed sibling is missing or the computed root differs.
    """
    node = leaf_node(leafnum, num_leaves)
    value = leaf
    while node != 0:
        sib = sibling(node)
        other = known.get(sib)
        if other is None:
            raise IntegrityError(f"hash chain lacks node {sib} needed to check leaf {leafnum}")
        value = internal_node(value, other) if node % 2 == 1 else internal_node(other, value)
        node = parent(node)
    if value != root:
        raise IntegrityError(f"leaf {leafnum} does not hash up to the expected root")


def check_tree(flat: Sequence[bytes], num_leaves: int, root: bytes | None = None) -> None:
    """Check a whole stored flattened tree: its shape, padding leaves, internal nodes, and root.

    Raises IntegrityError on any mismatch.
    """
    p = pow2(num_leaves)
    if len(flat) != 2 * p - 1:
        raise IntegrityError(f"hash tree has {len(flat)} nodes, expected {2 * p - 1}")
    for j in range(num_leaves, p):
        if flat[p - 1 + j] != empty_leaf(j):
            raise IntegrityError(f"hash tree padding leaf {j} is wrong")
    for x in range(p - 2, -1, -1):
        if flat[x] != internal_node(flat[2 * x + 1], flat[2 * x + 2]):
            raise IntegrityError(f"hash tree node {x} does not match its children")
    if root is not None and flat[0] != root:
        raise IntegrityError("hash tree root does not match the expected root")


def leaves_of(flat: Sequence[bytes], num_leaves: int) -> list[bytes]:
    p = pow2(num_leaves)
    return list(flat[p - 1 : p - 1 + num_leaves])
