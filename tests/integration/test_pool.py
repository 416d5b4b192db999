"""The worker pool: byte-identical output through real spawned workers, and supervision under faults."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, VECTORS
from tests.helpers.pool import StartKiller, new_pool, pool_encode_shares
from tests.integration.test_tahoe_differential import (
    assert_same_as_tahoe,
    case_params,
    differential_cases,
    tahoe_differential_results,
)
from uploader.chk import reference
from uploader.prespawn import Spawned
from uploader.supervisor import EncodeResult, PoolError, WorkerPool
from workers import erasure, isal
from workers.erasure import ErasureBackendError
from workers.geometry import EncodingParams, Geometry
from workers.segment import encode_segment

pytestmark = pytest.mark.integration


def test_random_files_match_the_reference(tmp_path: Path) -> None:
    rng = random.Random(31337)
    cases = []
    for i in range(14):
        k = rng.randint(1, 12)
        n = rng.randint(k, min(k + 12, 40))
        size = rng.choice([rng.randint(0, 200), rng.randint(56, 70_000)])
        params = EncodingParams(k, n, rng.choice([57, 1000, 4096, 65536]))
        path = tmp_path / f"f{i}"
        path.write_bytes(rng.randbytes(size))
        secret = None if i % 5 == 4 else rng.randbytes(rng.choice([16, 32]))
        cases.append((path, params, secret))

    async def main() -> list[tuple[str, list[bytes], str, list[bytes]]]:
        async with new_pool(2, EncodingParams(1, 40, 65536)) as pool:
            out = []
            for path, params, secret in cases:
                cap, shares = await pool_encode_shares(pool, path, params, secret)
                if secret is None:  # random key: decode with the reference instead of comparing bytes
                    assert reference.decode(cap, dict(enumerate(shares))) == path.read_bytes()
                    continue
                ref_cap, ref_shares = reference.encode(path.read_bytes(), params, secret)
                out.append((str(cap), shares, str(ref_cap), ref_shares))
            return out

    for cap, shares, ref_cap, ref_shares in asyncio.run(main()):
        assert cap == ref_cap
        assert shares == ref_shares


def _vector_cases() -> list[dict[str, object]]:
    return list(yaml.safe_load((VECTORS / "chk-vectors.yaml").read_text())["vector"])


@pytest.mark.parametrize("backend", ["isal", "zfec"])
def test_all_120_vectors_through_the_pool(tmp_path: Path, backend: str) -> None:
    vectors = _vector_cases()
    assert len(vectors) == 120

    async def main() -> list[tuple[str, str]]:
        results = []
        async with new_pool(2, EncodingParams(1, 256, 131072), backend=backend) as pool:
            assert pool.erasure is not None and pool.erasure.name == backend
            for i, v in enumerate(vectors):
                seed = base64.b64decode(v["sample"]["seed"])  # type: ignore[index]
                length = v["sample"]["length"]  # type: ignore[index]
                path = tmp_path / f"v{i}"
                path.write_bytes((seed * (length // len(seed) + 1))[:length])
                z = v["zfec"]  # type: ignore[index]
                params = EncodingParams(z["required"], z["total"], z["segmentSize"])
                secret = base64.b64decode(v["convergence"])  # type: ignore[arg-type]
                from uploader.encoding import encode_file_pooled

                cap, _ = await encode_file_pooled(pool, path, params, secret, window=6)
                results.append((str(cap), str(v["expected"])))
                path.unlink()
        return results

    for ours, expected in asyncio.run(main()):
        assert ours == expected


@pytest.mark.parametrize("backend", ["isal", "zfec"])
def test_stock_tahoe_differential_through_the_pool(tmp_path: Path, tahoe_python: Path, backend: str) -> None:
    tahoe = tahoe_differential_results(tahoe_python)

    async def main() -> None:
        async with new_pool(2, EncodingParams(1, 50, 131072), backend=backend) as pool:
            assert pool.erasure is not None and pool.erasure.name == backend
            for case in differential_cases():
                path = tmp_path / "f"
                path.write_bytes(case.plaintext())
                cap, shares = await pool_encode_shares(pool, path, case_params(case), case.secret)
                assert_same_as_tahoe(case, str(cap), shares, tahoe[case.id])

    asyncio.run(main())


def test_forced_isal_that_cannot_load_fails_the_pool_and_auto_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "_isal", None)  # a fault: no ISA-L anywhere this process looks
    monkeypatch.setattr(isal, "candidate_libraries", lambda: ["/nonexistent/libisal.so.2"])
    path = tmp_path / "f"
    path.write_bytes(random.Random(3).randbytes(70_000))
    params = EncodingParams(3, 10, 16384)

    async def main() -> None:
        forced = new_pool(1, params, backend="isal")
        with pytest.raises(ErasureBackendError, match="ISA-L could not be loaded"):
            await forced.start()
        await forced.close()
        async with new_pool(1, params, backend="auto") as pool:
            assert pool.erasure is not None and pool.erasure.name == "zfec"
            assert "/nonexistent/libisal.so.2" in pool.erasure.note
            cap, shares = await pool_encode_shares(pool, path, params, b"s" * 16)
        assert (cap, shares) == reference.encode(path.read_bytes(), params, b"s" * 16)

    asyncio.run(main())


def test_a_worker_that_cannot_load_its_backend_fails_the_pool_start(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unloadable(erasure.ZfecBackend):
        name = "no-such-backend"  # a fault: the parent hands workers a backend they cannot select

    monkeypatch.setattr(
        erasure, "select", lambda requested: erasure.Selection(requested, Unloadable(), "", "")
    )

    async def main() -> None:
        pool = new_pool(1)
        pool.start_attempts = 2  # tried again, then given up: the same cause each time
        with pytest.raises(PoolError, match=r"exited with code 3 before it was ready; its stderr says why"):
            await pool.start()
        await pool.close()

    asyncio.run(main())


def test_a_worker_that_dies_before_its_hello_fails_the_pool_start_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    StartKiller(monkeypatch)

    async def main() -> None:
        pool = new_pool(1)
        pool.start_attempts = 2
        with pytest.raises(
            PoolError, match=r"worker \d+ was killed by SIGKILL (while starting|before it was ready)"
        ):
            await pool.start()
        await pool.close()

    asyncio.run(main())


def test_a_worker_that_dies_while_starting_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """At start and as a replacement: the pool retries and gets back to its size."""
    killer = StartKiller(monkeypatch, count=2)
    key = b"k" * 16

    async def main() -> tuple[bool, int]:
        async with new_pool(2) as pool:  # two of its first starts died: tried again
            assert pool.live_workers == 2
            killer.count = killer.killed + 2  # the next two replacements die as they start
            os.kill(pool.worker_pids()[0], signal.SIGKILL)
            with await pool.encode("c", 0, key, 0, 900, 3, 10, data=bytes(900)) as r:
                assert [bytes(b) for b in r.blocks] == [
                    bytes(b) for b in encode_segment(bytes(900), key, 0, 3, 10).blocks
                ]
            return await pool.wait_for_workers(timeout_s=20), pool.live_workers

    settled, live = asyncio.run(main())
    assert killer.killed == 4
    assert settled and live == 2


def test_when_no_worker_can_start_queued_jobs_fail_and_the_pool_recovers_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every replacement dies as it starts: the queued jobs fail with a reason instead of waiting
    for good; once workers can start again, the pool refills itself and runs jobs again."""
    key = b"k" * 16

    async def main() -> None:
        async with new_pool(2) as pool:
            pool.start_attempts, pool.start_backoff_s, pool.refill_pause_s = 2, 0.05, 0.3
            killer = StartKiller(monkeypatch)
            job = asyncio.ensure_future(pool.encode("c", 0, key, 0, 900, 3, 10, data=bytes(900)))
            for pid in pool.worker_pids():
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(
                PoolError, match="no worker process is running: workers keep dying as they start"
            ):
                await asyncio.wait_for(job, 30)
            with pytest.raises(PoolError, match="no worker process is running"):
                await pool.encode("c", 1, key, 0, 900, 3, 10, data=bytes(900))  # no wait either
            assert killer.killed >= 2
            killer.count = 0  # the cause went away
            assert await pool.wait_for_workers(timeout_s=20)
            with await pool.encode("c", 2, key, 0, 900, 3, 10, data=bytes(900)) as r:
                assert len(r.blocks) == 10

    asyncio.run(main())


def _big_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "big"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_worker_fault_mid_job_is_survived(tmp_path: Path, fault: str) -> None:
    """Kill (or freeze) a worker while a multi-segment encode runs: correct output, W workers again."""
    params = EncodingParams(3, 10, 65536)
    path, data = _big_file(tmp_path, 60 * 65536 + 17)
    secret = b"s" * 16
    expected_cap, expected_shares = reference.encode(data, params, secret)

    async def main() -> tuple[str, list[bytes], int, int, int]:
        pool = WorkerPool(2, slot_count=8, slot_size=200_000, job_timeout_s=1.5)
        await pool.start()
        victim = pool.worker_pids()[0]
        seen = 0
        shares: list[bytearray] = [bytearray() for _ in range(10)]

        async def on_segment(result: EncodeResult) -> None:
            nonlocal seen
            seen += 1
            with result:
                for j, b in enumerate(result.blocks):
                    shares[j] += b
            if seen == 5:
                os.kill(victim, getattr(signal, fault))

        from uploader.encoding import encode_file_pooled

        try:
            cap, trailer = await encode_file_pooled(
                pool, path, params, secret, window=8, on_segment=on_segment
            )
            assert trailer is not None
            out = [
                trailer.layout.pack_header() + bytes(shares[j]) + trailer.share_trailer(j) for j in range(10)
            ]
            assert await pool.wait_for_workers()
            return str(cap), out, pool.restarts, pool.live_workers, seen
        finally:
            alive = victim in pool.worker_pids()
            await pool.close()
            if fault == "SIGSTOP":
                with pytest.raises(ProcessLookupError):
                    os.kill(victim, signal.SIGCONT)  # the hung worker was killed, not resumed
            assert not alive

    cap, shares, restarts, live, seen = asyncio.run(main())
    assert seen == Geometry.from_params(params, len(data)).num_segments > 50  # the fault landed at segment 5
    assert restarts >= 1
    assert live == 2
    assert cap == str(expected_cap)
    assert shares == expected_shares


def test_workers_die_with_the_network_process(tmp_path: Path) -> None:
    """SIGKILL the network process mid-encode: its workers exit within seconds; /dev/shm is untouched."""
    path, _ = _big_file(tmp_path, 40 * 1024 * 1024)
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from uploader.encoding import encode_file_pooled
        from uploader.supervisor import WorkerPool
        from workers.geometry import EncodingParams

        async def main():
            pool = WorkerPool(2, slot_count=6, slot_size=4_000_000)
            await pool.start()
            print(*pool.worker_pids(), flush=True)
            async def busy(result):
                result.release()
                print("segment", result.segment, flush=True)
            while True:
                await encode_file_pooled(pool, Path({str(path)!r}), EncodingParams(3, 10, 1 << 20), b"s",
                                         window=6, on_segment=busy)

        if __name__ == "__main__":
            asyncio.run(main())
        """
    )
    shm_before = set(os.listdir("/dev/shm"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    for line in proc.stdout:
        if line.startswith("segment 3"):
            break  # encoding is under way
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "a worker outlived the network process"
    assert set(os.listdir("/dev/shm")) - shm_before == set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_backpressure_and_fairness() -> None:
    """Jobs of two clients interleave round robin; an inline fallback serves oversized segments."""

    async def main() -> list[str]:
        order: list[str] = []
        async with WorkerPool(1, slot_count=2, slot_size=50_000, per_worker=1) as pool:
            key = b"k" * 16

            async def job(client: str, i: int, size: int) -> None:
                data = bytes([i]) * size
                with await pool.encode(client, i, key, 0, size, 3, 10, data=data) as r:
                    ref = encode_segment(data, key, 0, 3, 10)
                    assert [bytes(b) for b in r.blocks] == [bytes(b) for b in ref.blocks]
                order.append(client)

            await asyncio.gather(
                *(job("a", i, 900) for i in range(6)), *(job("b", i, 100_000) for i in range(3))
            )
        return order

    order = asyncio.run(main())
    assert sorted(order) == ["a"] * 6 + ["b"] * 3
    # b's three jobs are not all served after a's six: round robin interleaves them
    assert order.index("b") < 4


def test_a_job_that_cannot_be_packed_fails_alone_and_the_pool_goes_on(tmp_path: Path) -> None:
    """A message msgpack refuses fails its own caller; the pool (and other jobs) carry on."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)

    async def main() -> tuple[BaseException | bytes, bytes]:
        async with WorkerPool(1, slot_count=2, slot_size=50_000) as pool:
            # U+D800 is a surrogate no file system name decodes to: os.fsencode refuses it
            bad = await asyncio.gather(
                pool.key_pass("a", "/x/\ud800", 10, b"s", 3, 10, 4096), return_exceptions=True
            )
            good = await pool.key_pass("a", str(path), 1000, b"s", 3, 10, 4096)
            return bad[0], good

    bad, good = asyncio.run(main())
    assert isinstance(bad, PoolError) and "cannot send KeyPass to a worker" in str(bad)
    assert len(good) == 16


def test_a_resize_during_a_replacement_converges_to_the_new_size() -> None:
    """Shrink while a killed worker's replacement is under way: the pool ends with the new size of
    live worker processes, not one more (the replacement used to be started regardless of size)."""

    async def main() -> tuple[bool, int, int]:
        async with new_pool(3) as pool:
            victim = pool.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            while victim in pool.worker_pids():  # the pool has seen it die: its replacement is due
                await asyncio.sleep(0.005)
            await pool.resize(2)
            settled = await pool.wait_for_workers(timeout_s=10)
            deadline = time.monotonic() + 10
            while sum(w.process.is_alive() for w in pool._workers) > 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # a surplus worker is retired: it exits once idle
            return settled, pool.live_workers, sum(w.process.is_alive() for w in pool._workers)

    settled, live, processes = asyncio.run(main())
    assert settled
    assert live == 2
    assert processes == 2


def test_a_resize_whose_workers_cannot_start_keeps_the_previous_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Growing fails part-way (the new workers die as they start): the pool raises and stays at
    its old size, so a reload that reports failure leaves /status as it was, and the same resize
    works once workers can start again."""

    async def main() -> None:
        async with new_pool(1) as pool:
            pool.start_attempts, pool.start_backoff_s = 2, 0.05
            killer = StartKiller(monkeypatch, count=3, spare=frozenset({1}))  # one new worker starts
            with pytest.raises(PoolError, match="workers keep dying as they start"):
                await pool.resize(3)
            assert pool.size == 1
            assert await pool.wait_for_workers(timeout_s=10)  # the one that did start retires
            assert pool.live_workers == 1
            assert killer.killed == 3
            await pool.resize(3)  # the same resize again, now that workers start
            assert (pool.size, pool.live_workers) == (3, 3)

    asyncio.run(main())


def test_a_resize_during_a_failing_refill_is_reported_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker is lost and its replacements die a moment after they start (the refill backs off),
    and a resize comes meanwhile: the resize must not count the workers the refill is still
    starting as its own and report a grow that never happened (it did, before fills took turns)."""
    import threading

    import uploader.supervisor as supervisor

    real = supervisor.start_worker

    def dies_soon(backend: str, nice: int = 0) -> Spawned:
        spawned = real(backend, nice)
        os.kill(spawned.process.pid, signal.SIGSTOP)  # never ready: "starting" for 0.3 s, then dead
        threading.Timer(0.3, spawned.process.kill).start()
        return spawned

    async def main() -> None:
        async with new_pool(2) as pool:
            pool.start_attempts, pool.start_backoff_s, pool.refill_pause_s = 3, 0.1, 60.0
            monkeypatch.setattr(supervisor, "start_worker", dies_soon)
            os.kill(pool.worker_pids()[0], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pool.live_workers != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.15)  # the refill is under way
            with pytest.raises(PoolError, match="workers keep dying as they start"):
                await pool.resize(4)
            assert pool.size == 2 and pool.live_workers == 1

    asyncio.run(main())


def test_a_lost_worker_leaves_the_busy_time_list() -> None:
    """busy_s (per worker in /status and /metrics) lists the live workers only: a crashed one's
    entry goes, as a retired one's does, so the list cannot grow with every crash."""
    key = b"k" * 16

    async def main() -> tuple[set[int], set[int]]:
        async with new_pool(2) as pool:
            for round_ in range(3):
                with await pool.encode("c", round_, key, 0, 900, 3, 10, data=bytes(900)) as r:
                    assert len(r.blocks) == 10
                os.kill(pool.worker_pids()[0], signal.SIGKILL)
                while pool.live_workers == 2:
                    await asyncio.sleep(0.005)
                assert await pool.wait_for_workers(timeout_s=20)
            return set(pool.busy_s), set(pool.worker_indexes)

    listed, live = asyncio.run(main())
    assert listed == live
    assert len(live) == 2
