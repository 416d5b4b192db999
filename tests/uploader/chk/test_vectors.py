"""The 120 Tahoe-LAFS CHK vectors (tests/vectors/chk-vectors.yaml) through the in-memory reference.

Each case must encode to exactly the cap Tahoe produced, and decode back from k of its shares
(the last k, so the erasure decoder has to rebuild from check blocks whenever k < N), with each
erasure backend.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from uploader.chk import reference
from uploader.chk.caps import ChkCap, parse_read_cap
from uploader.chk.trees import expected_layout
from workers import erasure
from workers.geometry import EncodingParams, Geometry

VECTORS_FILE = Path(__file__).resolve().parents[2] / "vectors" / "chk-vectors.yaml"


def _load() -> list[dict[str, Any]]:
    doc = yaml.safe_load(VECTORS_FILE.read_text())
    cases: list[dict[str, Any]] = doc["vector"]
    assert doc["count"] == len(cases) == 120
    return cases


CASES = _load()


@cache
def _plaintext(seed_b64: str, length: int) -> bytes:
    seed = base64.b64decode(seed_b64)
    return (seed * (length // len(seed) + 1))[:length]


def _id(i: int, case: dict[str, Any]) -> str:
    z = case["zfec"]
    secret = "a" if case["convergence"].startswith("YWFh") else "h"
    return f"{i:03d}-{secret}-{z['required']}of{z['total']}-{case['sample']['length']}"


def test_vector_file_covers_the_documented_matrix() -> None:
    combos = {(c["zfec"]["required"], c["zfec"]["total"]) for c in CASES}
    assert combos == {(1, 1), (1, 3), (2, 3), (3, 10), (71, 255), (101, 256)}
    sizes = {c["sample"]["length"] for c in CASES}
    assert sizes == {56, 1024, 4096, 131071, 131073, 2097151, 2097153, 4194304, 8388607, 8388609}
    assert {c["zfec"]["segmentSize"] for c in CASES} == {131072}
    assert len({c["convergence"] for c in CASES}) == 2


@pytest.fixture(params=["zfec", "isal"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each vector through each erasure backend (``isal`` forced: fails if ISA-L does not load)."""
    with erasure.using(erasure.select(request.param).backend):
        yield request.param


@pytest.mark.parametrize("case", CASES, ids=[_id(i, c) for i, c in enumerate(CASES)])
def test_vector(case: dict[str, Any], backend: str) -> None:
    assert erasure.active().name == backend
    z = case["zfec"]
    k, n = z["required"], z["total"]
    params = EncodingParams(k, n, z["segmentSize"])
    data = _plaintext(case["sample"]["seed"], case["sample"]["length"])
    secret = base64.b64decode(case["convergence"])

    cap, shares = reference.encode(data, params, secret)

    assert str(cap) == case["expected"]
    assert isinstance(cap, ChkCap)
    assert len(shares) == n
    share_size = expected_layout(Geometry.from_params(params, len(data))).share_size
    assert {len(s) for s in shares} == {share_size}
    parsed = parse_read_cap(case["expected"])
    assert parsed == cap
    assert reference.decode(parsed, {j: shares[j] for j in range(n - k, n)}) == data
