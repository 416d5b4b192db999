"""Worker processes SIGKILLed mid-upload, against a real grid: the upload still gives the right cap.

The kills are made from the upload's progress callback once pass 2 has acknowledged a seeded
fraction of the file, and only on a worker that holds jobs in flight right then (the test records
how many); the pool requeues those jobs on a fresh worker. Every complete share on the disks is
then byte-equal to the reference encoder's, and they decode to the file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.faults import download_matches
from tests.helpers.grid import shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.helpers.pool import StartKiller
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.encoding import encode_file_inline
from uploader.gridclient import GridClient
from uploader.supervisor import PoolError, WorkerPool
from workers.geometry import EncodingParams

pytestmark = pytest.mark.integration

MiB = 1 << 20
PARAMS = EncodingParams(3, 10, 256 * 1024)  # many segments: encoding lasts through pass 2


@dataclass
class WorkerKill:
    pid: int
    acknowledged: int  # pass-2 bytes acknowledged at the kill
    jobs_in_flight: int  # on the killed worker at the kill


class WorkerKiller:
    """Progress callback and poller: at each planned fraction, SIGKILL ``per_kill`` workers with jobs."""

    def __init__(self, size: int, fractions: list[float], per_kill: int) -> None:
        self.size = size
        self.pending = sorted(fractions)
        self.per_kill = per_kill
        self.progress = 0
        self.kills: list[WorkerKill] = []

    def __call__(self, nbytes: int) -> None:
        self.progress += nbytes

    async def run(self, pool: WorkerPool) -> None:
        """Poll (1 ms) for the planned point, then for workers holding jobs, and kill them."""
        this_round = 0
        while self.pending:
            acknowledged = self.progress - self.size  # the key pass reports the whole file first
            killed = {k.pid for k in self.kills}
            # Workers with jobs, none of them requeued from an earlier victim (a job that ends
            # three workers is given up as poison, by design; that is not what this test is about).
            busy = [
                w
                for w in pool._workers
                if w.inflight
                and not w.dead
                and w.process.pid not in killed
                and all(job.attempts == 0 for job in w.inflight)
            ]
            if acknowledged >= self.pending[0] * self.size:
                for w in busy[: self.per_kill - this_round]:
                    self.kills.append(WorkerKill(w.process.pid, acknowledged, len(w.inflight)))
                    os.kill(w.process.pid, signal.SIGKILL)
                    this_round += 1
                if this_round == self.per_kill:
                    self.pending.pop(0)
                    this_round = 0
            await asyncio.sleep(0.001)


def cases() -> list[tuple[int, int, int]]:
    """CI: two rounds of killing both workers; ``FAULT_RUNS=N`` adds N random seeds (1–2 rounds of
    1–2 workers), ``FAULT_SEEDS`` replays given ones."""
    seeds = [int(s) for s in os.environ.get("FAULT_SEEDS", "").split(",") if s.strip()]
    seeds += [random.SystemRandom().randrange(10**6) for _ in range(int(os.environ.get("FAULT_RUNS", "0")))]
    return [(22, 2, 2)] + [(seed, 1 + seed % 2, 1 + seed // 2 % 2) for seed in seeds]


@pytest.mark.parametrize(("seed", "kills", "per_kill"), cases())
def test_workers_killed_mid_upload_the_cap_is_right(
    tmp_path: Path, seed: int, kills: int, per_kill: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(8, 12) * MiB + rng.randint(1, MiB - 1)))
    secret = rng.randbytes(32)
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    size = path.stat().st_size
    killer = WorkerKiller(size, [rng.uniform(0.1, 0.6) for _ in range(kills)], per_kill)

    async def main() -> tuple[str, int, int, list[int]]:
        async with GridClient(grid.config(workers=2, window=4)) as client:
            poller = asyncio.create_task(killer.run(client.pool))
            try:
                result = await client.upload(path, killer, params=PARAMS, happy=7, secret=secret)
            finally:
                poller.cancel()
            assert await client.pool.wait_for_workers(timeout_s=60)  # every worker replaced
            return str(result.cap), client.pool.restarts, client.pool.live_workers, client.pool.worker_pids()

    grid = LocalGrid(tmp_path / "grid", 10).start()
    try:
        cap, restarts, live, pids = asyncio.run(main())
        print([(k.pid, k.acknowledged / size, k.jobs_in_flight) for k in killer.kills])
        assert len(killer.kills) == kills * per_kill
        for kill in killer.kills:
            assert 0 < kill.acknowledged < size  # mid pass 2
            assert kill.jobs_in_flight > 0  # the worker had jobs when it died
            assert kill.pid not in pids
        assert restarts >= len(killer.kills)
        assert live == 2
        assert cap == str(expected)
        assert download_matches(grid.config(), expected, path, tmp_path / "got")  # our get: bit-exact
        assert killer.progress == 2 * size  # the key pass, then every segment once
        data = path.read_bytes()
        _, ref_shares = reference.encode(data, PARAMS, secret)
        shares = shares_on_disk(grid.dir, expected.storage_index)
        assert shares == dict(enumerate(ref_shares))  # every share, each the reference encoder's
        assert reference.decode(expected, shares) == data
    finally:
        grid.stop()


def test_workers_that_cannot_start_fail_the_client_with_one_reason_and_no_open_connections(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Every worker is SIGKILLed as it starts, after the servers have connected: the start fails
    with a sentence that names the signal, and every connection is closed (no unclosed-session noise)."""
    killer = StartKiller(monkeypatch)
    grid = LocalGrid(tmp_path / "grid", 2).start()
    try:

        async def main() -> GridClient:
            client = GridClient(grid.config(workers=2))
            client.pool.start_attempts, client.pool.start_backoff_s = 2, 0.05
            with pytest.raises(PoolError) as failed:
                await client.start()
            message = str(failed.value)
            assert "workers keep dying as they start (2 tries in a row)" in message
            assert "was killed by SIGKILL" in message and "stderr" not in message
            return client

        with caplog.at_level(logging.WARNING):
            client = asyncio.run(main())
            del client
            gc.collect()
    finally:
        grid.stop()
    assert killer.killed >= 4  # both workers, twice
    noise = [r.getMessage() for r in caplog.records if "Unclosed" in r.getMessage()]
    assert noise == []
    assert "Unclosed" not in capfd.readouterr().err
