"""The in-memory reference CHK encoder and decoder: the oracle the fast pipeline is checked against.

``encode(data, params, secret)`` returns the cap and all N shares' bytes; ``decode(cap, shares)``
returns the plaintext, verifying every hash on the way: UEB hash (cap), share hash chain (UEB),
block hash trees (chain), every block (its tree), the crypttext tree (UEB), every ciphertext
segment (that tree) and the flat ciphertext hash (UEB). Shares that fail any check are dropped;
fewer than k good shares raise IntegrityError.
"""

from __future__ import annotations

from collections.abc import Mapping

from uploader.chk.caps import Cap, ChkCap, LitCap, VerifyCap
from uploader.chk.layout import ShareLayout, parse_share
from uploader.chk.trees import HashCollector
from uploader.chk.ueb import UEB, parse_ueb, ueb_hash
from workers.aes import aes_ctr
from workers.errors import FormatError, IntegrityError, UploaderError
from workers.geometry import LIT_MAX_SIZE, EncodingParams, Geometry
from workers.hashes import TAG_CRYPTTEXT, BytesLike, block_hash, crypttext_segment_hash, tagged_hash
from workers.keys import convergent_key, random_key
from workers.merkle import check_tree, leaf_node, leaves_of, path_siblings, verify_chain
from workers.segment import decode_ciphertext, encode_segment


def encode(
    data: bytes, params: EncodingParams, secret: bytes | None, *, layout_version: int | None = None
) -> tuple[Cap, list[bytes]]:
    """(cap, shares). ``secret=None`` means a random key. Files of <= 55 bytes give a LIT cap, no shares."""
    if len(data) <= LIT_MAX_SIZE:
        return LitCap(data), []
    g = Geometry.from_params(params, len(data))
    key = random_key() if secret is None else convergent_key(secret, g, data)
    hashes = HashCollector(g)
    share_data: list[list[BytesLike]] = [[] for _ in range(g.n)]
    for seg in range(g.num_segments):
        off = g.segment_offset(seg)
        enc = encode_segment(memoryview(data)[off : off + g.segment_length(seg)], key, off, g.k, g.n)
        hashes.add(seg, enc.crypttext_hash, enc.block_hashes)
        for j, block in enumerate(enc.blocks):
            share_data[j].append(bytes(block))
    trailer = hashes.finish(tagged_hash(TAG_CRYPTTEXT, aes_ctr(key, 0, data)), layout_version)
    header = trailer.layout.pack_header()
    shares = [header + b"".join(share_data[j]) + trailer.share_trailer(j) for j in range(g.n)]
    return trailer.cap(key), shares


class CheckedShare:
    """One share whose structure and hash trees are consistent with the UEB the cap names."""

    def __init__(self, shnum: int, raw: bytes, ueb: UEB, expected_ueb_hash: bytes) -> None:
        parsed = parse_share(raw)
        if ueb_hash(parsed.ueb()) != expected_ueb_hash:
            raise IntegrityError(f"share {shnum}: its UEB does not match the cap's UEB hash")
        g = ueb.geometry()
        expected = ShareLayout.for_file(g, len(parsed.ueb()), parsed.layout.version)
        if parsed.layout != expected:
            raise IntegrityError(f"share {shnum}: header does not match the layout the UEB implies")
        if any(parsed.plaintext_tree_area()):
            raise IntegrityError(f"share {shnum}: the unused plaintext hash tree area is not zero")
        check_tree(parsed.crypttext_tree(), g.num_segments, ueb.crypttext_root_hash)
        block_tree = parsed.block_tree()
        check_tree(block_tree, g.num_segments)
        chain = parsed.chain()
        known = dict(chain)
        if len(known) != len(chain) or known.get(leaf_node(shnum, g.n)) != block_tree[0]:
            raise IntegrityError(f"share {shnum}: hash chain does not hold this share's block tree root")
        verify_chain(ueb.share_root_hash, shnum, g.n, block_tree[0], known)
        if set(known) != {leaf_node(shnum, g.n), *path_siblings(shnum, g.n)}:
            raise IntegrityError(f"share {shnum}: hash chain holds unexpected nodes")
        self.shnum = shnum
        self.parsed = parsed
        self.block_leaves = leaves_of(block_tree, g.num_segments)
        self.crypttext_leaves = leaves_of(parsed.crypttext_tree(), g.num_segments)

    def block(self, segnum: int, length: int) -> bytes:
        block = self.parsed.block(segnum, length)
        if len(block) != length or block_hash(block) != self.block_leaves[segnum]:
            raise IntegrityError(f"share {self.shnum}: block {segnum} does not match its hash")
        return block


def find_ueb(cap: ChkCap | VerifyCap, shares: Mapping[int, bytes]) -> UEB:
    """The UEB from the first share whose UEB hashes to the cap's; raise IntegrityError if none does."""
    for raw in shares.values():
        try:
            blob = parse_share(raw).ueb()
        except FormatError:
            continue
        if ueb_hash(blob) == cap.ueb_hash:
            ueb = parse_ueb(blob)
            if (ueb.k, ueb.n, ueb.size) != (cap.k, cap.n, cap.size):
                raise IntegrityError("the UEB matching the cap's hash disagrees with the cap's k, N or size")
            return ueb
    raise IntegrityError("no share holds a UEB matching the cap's UEB hash")


def check_shares(
    cap: ChkCap | VerifyCap, shares: Mapping[int, bytes]
) -> tuple[UEB, dict[int, CheckedShare], dict[int, str]]:
    """(UEB, good shares, {shnum: why rejected}) — structure and trees only, not the blocks."""
    ueb = find_ueb(cap, shares)
    good: dict[int, CheckedShare] = {}
    bad: dict[int, str] = {}
    for shnum, raw in sorted(shares.items()):
        if not 0 <= shnum < cap.n:
            bad[shnum] = f"share number {shnum} is outside 0..{cap.n - 1}"
            continue
        try:
            good[shnum] = CheckedShare(shnum, raw, ueb, cap.ueb_hash)
        except UploaderError as exc:
            bad[shnum] = str(exc)
    return ueb, good, bad


def decode(cap: Cap, shares: Mapping[int, bytes]) -> bytes:
    """The plaintext, with every hash verified; raise IntegrityError if fewer than k good shares."""
    if isinstance(cap, LitCap):
        return cap.data
    if isinstance(cap, VerifyCap):
        raise FormatError("a verify cap cannot decrypt; decode needs a read cap")
    ueb, good, bad = check_shares(cap, shares)
    g = ueb.geometry()
    crypttext_leaves = next(iter(good.values())).crypttext_leaves if good else []
    out = bytearray()
    ciphertext = bytearray()  # the flat hash covers the whole ciphertext
    for seg in range(g.num_segments):
        blocks: dict[int, bytes] = {}
        for shnum, share in list(good.items()):
            if len(blocks) == g.k:
                break
            try:
                blocks[shnum] = share.block(seg, g.block_length(seg))
            except IntegrityError as exc:
                bad[shnum] = str(exc)
                del good[shnum]
        if len(blocks) < g.k:
            raise IntegrityError(
                f"segment {seg}: only {len(blocks)} good shares, {g.k} needed; rejected: {_summary(bad)}"
            )
        ct = decode_ciphertext(blocks, g.k, g.n, g.segment_length(seg))
        if crypttext_segment_hash(ct) != crypttext_leaves[seg]:
            raise IntegrityError(f"segment {seg}: decoded ciphertext does not match the crypttext hash tree")
        ciphertext += ct
        out += aes_ctr(cap.key, g.segment_offset(seg), ct)
    if tagged_hash(TAG_CRYPTTEXT, ciphertext) != ueb.crypttext_hash:
        raise IntegrityError("the whole ciphertext does not match the UEB's crypttext hash")
    return bytes(out)


def _summary(bad: Mapping[int, str]) -> str:
    return "; ".join(f"share {k}: {v}" for k, v in sorted(bad.items())) or "none"
