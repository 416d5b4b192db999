"""Workers started before their pool: adopted by it, or killed when no pool comes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.helpers.pool import pool_encode_shares
from uploader.chk import reference
from uploader.encoding import slot_size_for
from uploader.prespawn import discard, prespawn
from uploader.supervisor import WorkerPool
from workers.geometry import EncodingParams

pytestmark = pytest.mark.integration

PARAMS = EncodingParams(3, 10, 65536)


def test_the_pool_adopts_prespawned_workers_and_they_encode(tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(os.urandom(300_000))
    secret = b"s" * 32
    early = prespawn(2, "auto")
    pids = sorted(s.process.pid for s in early)

    async def main() -> tuple[list[int], str, list[bytes]]:
        async with WorkerPool(2, slot_count=8, slot_size=slot_size_for(PARAMS), early=early) as pool:
            assert early == []  # both adopted: none started anew
            cap, shares = await pool_encode_shares(pool, source, PARAMS, secret)
            return sorted(pool.worker_pids()), str(cap), shares

    try:
        worker_pids, cap, shares = asyncio.run(main())
    finally:
        discard(early)
    assert worker_pids == pids
    ref_cap, ref_shares = reference.encode(source.read_bytes(), PARAMS, secret)
    assert (cap, shares) == (str(ref_cap), ref_shares)


def test_a_pool_with_fewer_prespawned_workers_starts_the_rest() -> None:
    early = prespawn(1, "zfec")
    first = early[0].process.pid

    async def main() -> list[int]:
        async with WorkerPool(3, backend="zfec", early=early) as pool:
            return pool.worker_pids()

    try:
        pids = asyncio.run(main())
    finally:
        discard(early)
    assert len(pids) == 3 and first in pids


def test_discard_kills_workers_no_pool_adopted() -> None:
    early = prespawn(2, "auto")
    procs = [s.process for s in early]
    time.sleep(0.2)  # let them boot and wait for a hello that never comes
    discard(early)
    assert early == [] and all(not p.is_alive() for p in procs)
    assert all(p.exitcode is not None for p in procs)  # reaped


def test_workers_run_in_a_process_group_of_their_own() -> None:
    """A terminal's Ctrl-C (SIGINT to the foreground group) reaches the network process, not them."""
    early = prespawn(1, "auto")
    try:
        pid = early[0].process.pid
        assert os.getpgid(pid) == pid != os.getpgid(0)
    finally:
        discard(early)
