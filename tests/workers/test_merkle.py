"""Merkle trees and share hash chains (chk-format §8.3, §8.6)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.errors import IntegrityError
from workers.merkle import (
    build_tree,
    chain_nodes,
    check_tree,
    empty_leaf,
    internal_node,
    leaf_node,
    leaves_of,
    parent,
    path_siblings,
    sibling,
    verify_chain,
)

PAD1 = "3dd1cc8445dd34f8b3049c51deab3d04c15b5fd2c9b84eddab345966bd8fdde4"


def _th(tag: bytes, value: bytes) -> bytes:
    """The spec's TH(), written out with hashlib so the tree oracle shares no code with workers."""
    inner = hashlib.sha256(b"%d:%s,%s" % (len(tag), tag, value)).digest()
    return hashlib.sha256(inner).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return _th(b"Merkle tree internal node", b"%d:%s,%d:%s," % (len(a), a, len(b), b))


def _root(row: list[bytes]) -> bytes:
    if len(row) == 1:
        return row[0]
    half = len(row) // 2
    return _node(_root(row[:half]), _root(row[half:]))


def _padded(leaves: list[bytes]) -> list[bytes]:
    p = 1
    while p < len(leaves):
        p *= 2
    return leaves + [_th(b"Merkle tree empty leaf", str(j).encode()) for j in range(len(leaves), p)]


leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


def test_padding_leaf_for_position_1() -> None:
    assert empty_leaf(1).hex() == PAD1


def test_single_leaf_tree_is_the_leaf() -> None:
    leaf = bytes(range(32))
    assert build_tree([leaf]) == [leaf]


def test_two_and_three_leaf_trees() -> None:
    a, b, c = (bytes([i]) * 32 for i in range(3))
    assert build_tree([a, b]) == [internal_node(a, b), a, b]
    three = build_tree([a, b, c])
    # One padding leaf, at leaf-row position 3 (not node number 6).
    assert three[3:] == [a, b, c, empty_leaf(3)]
    assert three[1] == internal_node(a, b)
    assert three[2] == internal_node(c, empty_leaf(3))
    assert three[0] == internal_node(three[1], three[2])


def test_five_leaf_tree_pads_positions_5_to_7() -> None:
    leaves = [bytes([i]) * 32 for i in range(5)]
    tree = build_tree(leaves)
    assert len(tree) == 15
    assert tree[7:] == [*leaves, empty_leaf(5), empty_leaf(6), empty_leaf(7)]


def test_empty_tree_is_refused() -> None:
    with pytest.raises(ValueError):
        build_tree([])


@given(leaf_lists)
def test_tree_matches_independent_recursive_oracle(leaves: list[bytes]) -> None:
    tree = build_tree(leaves)
    padded = _padded(leaves)
    p = len(padded)
    assert len(tree) == 2 * p - 1
    assert tree[p - 1 :] == padded
    assert tree[0] == _root(padded)
    for x in range(p - 1):
        assert tree[x] == _node(tree[2 * x + 1], tree[2 * x + 2])
    assert leaves_of(tree, len(leaves)) == leaves
    check_tree(tree, len(leaves), tree[0])


@given(leaf_lists, st.data())
def test_check_tree_detects_any_changed_node(leaves: list[bytes], data: st.DataObject) -> None:
    tree = build_tree(leaves)
    if len(tree) == 1:
        with pytest.raises(IntegrityError):
            check_tree([bytes(32)], 1, tree[0] if tree[0] != bytes(32) else b"\x01" * 32)
        return
    x = data.draw(st.integers(0, len(tree) - 1), label="node")
    bit = data.draw(st.integers(0, 255), label="bit")
    bad = list(tree)
    flipped = bytearray(bad[x])
    flipped[bit // 8] ^= 1 << (bit % 8)
    bad[x] = bytes(flipped)
    with pytest.raises(IntegrityError):
        check_tree(bad, len(leaves), tree[0])


def test_check_tree_rejects_wrong_shape_and_root() -> None:
    tree = build_tree([bytes([i]) * 32 for i in range(3)])
    with pytest.raises(IntegrityError, match="nodes"):
        check_tree(tree[:-1], 3)
    with pytest.raises(IntegrityError, match="root"):
        check_tree(tree, 3, bytes(32))
    with pytest.raises(IntegrityError, match="padding"):
        check_tree(build_tree([bytes([i]) * 32 for i in range(4)]), 3)


def test_node_arithmetic() -> None:
    assert [sibling(x) for x in range(1, 7)] == [2, 1, 4, 3, 6, 5]
    assert [parent(x) for x in range(1, 7)] == [0, 0, 1, 1, 2, 2]
    assert leaf_node(0, 1) == 0
    assert leaf_node(3, 7) == 10
    assert path_siblings(0, 7) == [8, 4, 2]
    assert path_siblings(0, 1) == []


def test_chain_order_for_seven_shares_share_0() -> None:
    # §8.6: Tahoe writes the chain in CPython set order; not ascending.
    assert chain_nodes(0, 7) == [8, 2, 4, 7]


def test_chain_for_one_share_is_the_root() -> None:
    assert chain_nodes(0, 1) == [0]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 30, 255, 256])
def test_chain_holds_the_leaf_and_path_siblings(n: int) -> None:
    q = 1
    while q < n:
        q *= 2
    for j in range(n):
        nodes = chain_nodes(j, n)
        assert len(nodes) == q.bit_length() == len(set(nodes))
        assert set(nodes) == {q - 1 + j, *path_siblings(j, n)}


@given(leaf_lists, st.data())
def test_verify_chain_accepts_every_leaf_and_rejects_tampering(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    tree = build_tree(leaves)
    j = data.draw(st.integers(0, n - 1), label="leaf")
    known = {x: tree[x] for x in chain_nodes(j, n)}
    verify_chain(tree[0], j, n, leaves[j], known)
    with pytest.raises(IntegrityError):
        verify_chain(tree[0], j, n, bytes(32) if leaves[j] != bytes(32) else b"\x01" * 32, known)
    siblings = path_siblings(j, n)
    if siblings:
        x = data.draw(st.sampled_from(siblings), label="sibling")
        with pytest.raises(IntegrityError, match="lacks node"):
            verify_chain(tree[0], j, n, leaves[j], {y: h for y, h in known.items() if y != x})
        with pytest.raises(IntegrityError, match="root"):
            verify_chain(tree[0], j, n, leaves[j], {**known, x: _node(known[x], known[x])})
