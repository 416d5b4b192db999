"""Differential test: our CHK caps and share bytes against stock Tahoe-LAFS 1.20.0's own uploader.

Tahoe's results come from ONE run of ``tests/tahoe_oracle/driver.py`` in the stock Tahoe venv for the
whole case list (see ``tahoe_differential_results``). Other encoder paths (the worker pool, the upload
pipeline, each erasure backend) must be checked against the same oracle: import
``differential_cases``, ``tahoe_differential_results`` / the ``tahoe_results`` fixture and
``assert_same_as_tahoe`` from this module.

The Tahoe venv is built by ``make tahoe`` (or by the ``tahoe_venv`` fixture); if it cannot be built,
these tests fail, never skip.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest

from tests.tahoe_oracle import Case, TahoeResult, tahoe_encode
from uploader.chk import reference
from uploader.chk.layout import CHAIN_ENTRY_SIZE, HASH_SIZE, parse_share
from workers import erasure
from workers.errors import FormatError
from workers.geometry import EncodingParams, roundup

pytestmark = pytest.mark.integration

SEED = 0x7A40E  # fixed: CI must see the same files every run
SECRET_16 = b"differential-16b"  # a 16-byte convergence secret, like the vectors'
SECRET_32 = random.Random(SEED ^ 0x32).randbytes(32)  # Tahoe's own secrets are 32 random bytes
PAIRS = [(1, 1), (2, 3), (3, 10), (7, 10), (25, 50)]


def _sizes(k: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """(label, file size, max_segment_size) around the boundaries that matter for this k."""
    seg4 = roundup(4096, k)  # the segment size Tahoe derives from a 4 KiB maximum
    seg1 = roundup(1000, k)  # ... and from 1000 bytes (not a multiple of 3, 7 or 25)
    return [
        ("min-chk", 56, 131072),  # the smallest CHK file: one segment of roundup(56, k)
        ("min-chk+1", 57, 4096),
        ("seg-1", seg4 - 1, 4096),  # one segment, a padded tail when k does not divide it
        ("seg", seg4, 4096),  # exactly one full segment
        ("seg+1", seg4 + 1, 4096),  # two segments, 1-byte tail (padded up to k)
        ("k*seg-1", k * seg4 - 1, 4096),
        ("k*seg+1", k * seg4 + 1, 4096),
        ("3seg-exact", 3 * seg4, 4096),  # exact multiple: the tail is a full segment
        ("64seg-pow2", 64 * seg1, 1000),  # a power-of-two segment count: full Merkle trees
        ("65seg", 64 * seg1 + rng.randrange(1, seg1), 1000),  # one more: tree sizes double
        ("multi", rng.randrange(200_000, 320_000), rng.choice([1000, 4096])),  # a few hundred segments
    ]


@functools.cache
def differential_cases() -> tuple[Case, ...]:
    """The fixed, deterministic case list (~55 files) every encoder path is checked against."""
    rng = random.Random(SEED)
    cases: list[Case] = []
    seen: set[tuple[int, int, int, int]] = set()
    for pair_index, (k, n) in enumerate(PAIRS):
        for i, (label, size, max_seg) in enumerate(_sizes(k, rng)):
            key = (k, n, size, max_seg)
            if key in seen:  # k = 1 makes some boundaries coincide
                continue
            seen.add(key)
            # alternate the two secrets; pairs start on different ones, so each boundary sees both
            secret = SECRET_16 if (i + pair_index) % 2 == 0 else SECRET_32
            tag = "s16" if secret is SECRET_16 else "s32"
            cases.append(
                Case(f"{k}of{n}-{label}-{size}-m{max_seg}-{tag}", k, n, max_seg, secret, rng.randbytes(size))
            )
    # both secrets on one identical file and geometry, and the LIT cut-off (nothing uploaded)
    same = rng.randbytes(5000)
    cases.append(Case("3of10-same-5000-m1000-s16", 3, 10, 1000, SECRET_16, same))
    cases.append(Case("3of10-same-5000-m1000-s32", 3, 10, 1000, SECRET_32, same))
    cases.append(Case("3of10-lit-55", 3, 10, 4096, SECRET_16, rng.randbytes(55)))
    # a repeated-seed file (the driver expands it): many segments of low-entropy plaintext
    cases.append(
        Case("7of10-seeded-100003-m4096-s32", 7, 10, 4096, SECRET_32, seed=b"tahoe!" * 7, length=100_003)
    )
    # a share over 1,000,000 bytes: Tahoe's WriteBucketProxy flushes it in more than one write
    cases.append(
        Case(
            "1of1-seeded-1100007-m131072-s16",
            1,
            1,
            131072,
            SECRET_16,
            seed=rng.randbytes(997),
            length=1_100_007,
        )
    )
    return tuple(cases)


@functools.cache
def tahoe_differential_results(tahoe_python: Path) -> dict[str, TahoeResult]:
    """Tahoe's (cap, shares) for every differential case: one driver run per test session."""
    return tahoe_encode(tahoe_python, list(differential_cases()))


@pytest.fixture(scope="session")
def tahoe_results(tahoe_python: Path) -> dict[str, TahoeResult]:
    return tahoe_differential_results(tahoe_python)


def case_params(case: Case) -> EncodingParams:
    return EncodingParams(case.k, case.n, case.max_segment_size)


def describe_share_difference(ours: bytes, theirs: bytes) -> str:
    """Which section of a share first differs (located with Tahoe's share's own header)."""
    if ours == theirs:
        return "identical"
    first = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
    )
    where = f"lengths ours={len(ours)} tahoe={len(theirs)}, first differing byte at offset {first}"
    try:
        lay = parse_share(theirs).layout
    except FormatError as exc:
        return f"{where}; Tahoe's share does not parse ({exc})"
    try:
        our_lay = parse_share(ours).layout
    except FormatError as exc:
        return f"{where}; our share does not parse ({exc})"
    if our_lay != lay:
        return f"{where}; header/layout differs: ours={our_lay} tahoe={lay}"
    sections = [
        ("header", 0, lay.data),
        ("data (blocks)", lay.data, lay.plaintext_hash_tree),
        ("plaintext hash tree (zero area)", lay.plaintext_hash_tree, lay.crypttext_hash_tree),
        ("crypttext hash tree", lay.crypttext_hash_tree, lay.block_hashes),
        ("block hash tree", lay.block_hashes, lay.share_hashes),
        ("share hash chain", lay.share_hashes, lay.uri_extension),
        ("UEB length", lay.uri_extension, lay.uri_extension + lay.fieldsize),
        ("UEB", lay.uri_extension + lay.fieldsize, lay.share_size),
    ]
    diffs = []
    for name, start, end in sections:
        if ours[start:end] == theirs[start:end]:
            continue
        off = next(i for i in range(start, end) if i >= len(ours) or ours[i] != theirs[i])
        rel = off - start
        detail = f"{name} [{start}, {end}) first differs at +{rel}"
        if name == "data (blocks)":
            detail += f" (segment {rel // lay.block_size}, byte {rel % lay.block_size} of its block)"
        elif "tree" in name:
            detail += f" (node {rel // HASH_SIZE})"
        elif name == "share hash chain":
            i = rel // CHAIN_ENTRY_SIZE
            detail += f" (entry {i}: ours={ours[start:end][i * 34 : i * 34 + 2].hex()}…"
            detail += f" tahoe={theirs[start:end][i * 34 : i * 34 + 2].hex()}…)"
        elif name == "UEB":
            detail += f"\n  ours : {ours[start:end]!r}\n  tahoe: {theirs[start:end]!r}"
        diffs.append(detail)
    return where + "; sections differing: " + ("; ".join(diffs) or "none (trailing bytes only)")


def assert_same_as_tahoe(case: Case, cap: str, shares: list[bytes], tahoe: TahoeResult) -> None:
    """Our cap and every share's bytes must equal Tahoe's; a mismatch names the differing section."""
    assert cap == tahoe.cap, f"{case.id}: cap differs\n  ours : {cap}\n  tahoe: {tahoe.cap}"
    assert len(shares) == len(tahoe.shares), (
        f"{case.id}: {len(shares)} shares, Tahoe wrote {len(tahoe.shares)}"
    )
    bad = [
        f"share {j}: {describe_share_difference(ours, theirs)}"
        for j, (ours, theirs) in enumerate(zip(shares, tahoe.shares, strict=True))
        if ours != theirs
    ]
    assert not bad, f"{case.id}: {len(bad)} of {len(shares)} shares differ from Tahoe's:\n" + "\n".join(bad)


def test_case_list_covers_the_matrix() -> None:
    cases = differential_cases()
    assert 40 <= len(cases) <= 65
    assert len({c.id for c in cases}) == len(cases)
    assert {(c.k, c.n) for c in cases} == set(PAIRS)
    for pair in PAIRS:
        assert {len(c.secret) for c in cases if (c.k, c.n) == pair} == {16, 32}
    assert sum(c.size for c in cases) < 5_000_000  # keeps the Tahoe run and the test fast


def test_tahoe_ran_every_case(tahoe_results: dict[str, TahoeResult]) -> None:
    for case in differential_cases():
        res = tahoe_results[case.id]
        if case.size <= 55:
            assert res.cap.startswith("URI:LIT:") and res.shares == []
        else:
            assert res.cap.startswith("URI:CHK:") and res.cap.endswith(f":{case.k}:{case.n}:{case.size}")
            assert len(res.shares) == case.n
            assert len({len(s) for s in res.shares}) == 1


@pytest.mark.parametrize("backend", ["zfec", "isal"])
@pytest.mark.parametrize("case", differential_cases(), ids=lambda c: c.id)
def test_reference_encoder_matches_tahoe(
    case: Case, backend: str, tahoe_results: dict[str, TahoeResult]
) -> None:
    """Each erasure backend in-process (``isal`` forced: fails if ISA-L does not load); the pool's
    workers run both backends against the same oracle in test_pool.py."""
    with erasure.using(erasure.select(backend).backend):
        cap, shares = reference.encode(case.plaintext(), case_params(case), case.secret)
    assert_same_as_tahoe(case, str(cap), shares, tahoe_results[case.id])
