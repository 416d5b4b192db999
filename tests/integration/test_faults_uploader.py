"""The uploader itself SIGKILLed (``python -m uploader put`` subprocess) at seeded points of an upload.

After each kill: no share on any server looks complete unless it is complete and correct (every
complete share file is byte-equal to the reference encoder's share of that number), and a later
``put`` of the same file gives the same cap, whose ``get`` is bit-exact. Each case proves where it
landed, read off the servers' disks at the moment of the kill:

- ``placed``: every server that was given a share holds its in-progress file, no block written;
- ``mid``: a watched in-progress share holds some but not all of its blocks;
- ``finishing``: a share holds all its blocks (or some shares are complete) and not every share is
  complete yet.

``FAULT_RUNS=N`` adds N random seeds (each picks one of the three points); ``FAULT_SEEDS`` replays.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.grid import share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.integration.test_upload_faults import blocks_written, incoming
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.trees import expected_layout
from uploader.encoding import encode_file_inline
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

MiB = 1 << 20
PARAMS = EncodingParams(3, 10, MiB)
POINTS = ("placed", "mid", "finishing")


def cases() -> list[tuple[str, int]]:
    fixed = [("placed", 11), ("mid", 12), ("finishing", 14)]
    seeds = [int(s) for s in os.environ.get("FAULT_SEEDS", "").split(",") if s.strip()]
    seeds += [random.SystemRandom().randrange(10**6) for _ in range(int(os.environ.get("FAULT_RUNS", "0")))]
    return fixed + [(POINTS[seed % 3], seed) for seed in seeds]


def cli(grid: LocalGrid, *args: str) -> list[str]:
    return [sys.executable, "-m", "uploader", *args, "--config", str(grid.dir / "uploader.toml")]


def run_until(proc: subprocess.Popen[bytes], landed: Callable[[], bool], timeout_s: float = 120) -> bool:
    """Poll ``landed`` until it holds (True) or the process exits first (False)."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if landed():
            return True
        time.sleep(0.001)
    return False


@pytest.mark.parametrize(("point", "seed"), cases())
def test_put_killed_leaves_nothing_half_complete_and_a_second_put_succeeds(
    tmp_path: Path, point: str, seed: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "source"
    data = rng.randbytes(rng.randint(6, 9) * MiB + rng.randint(1, MiB - 1))
    path.write_bytes(data)
    secret = rng.randbytes(32)
    secret_file = tmp_path / "convergence"
    secret_file.write_text(b32encode(secret) + "\n")
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    g = Geometry.from_params(PARAMS, len(data))
    layout = expected_layout(g)
    si = expected.storage_index
    grid = LocalGrid(tmp_path / "grid", 10).start()
    secret_flag = ["--convergence-secret-file", str(secret_file)]
    try:
        target = rng.randint(1, g.num_segments // 2)
        watched: list[Path] = []
        at_kill: list[int] = []  # blocks the watched share held (complete shares), polled up to the kill

        def landed() -> bool:
            held = incoming(grid, si)
            if point == "placed":
                return len(held) >= 7  # placement gave out at least `happy` servers' shares
            if point == "finishing":  # every block sent (a share holds them all), not every share done
                shares = sorted(grid.dir.glob(f"server-*/storage/shares/incoming/*/{b32encode(si)}/*"))
                full = any(blocks_written(p, layout, g.num_segments) == g.num_segments for p in shares[:3])
                at_kill.append(len(share_files(grid.dir, si)))
                return (full or at_kill[-1] > 0) and at_kill[-1] < PARAMS.n
            if not watched:
                found = sorted(grid.dir.glob(f"server-*/storage/shares/incoming/*/{b32encode(si)}/*"))
                watched.extend(found[:1])
            if not watched:
                return False
            at_kill.append(blocks_written(watched[0], layout, g.num_segments))
            return at_kill[-1] >= target

        proc = subprocess.Popen(cli(grid, "put", str(path), *secret_flag), cwd=REPO, stdout=subprocess.PIPE)
        try:
            hit = run_until(proc, landed)
            proc.kill()  # SIGKILL (a no-op if it already exited: then `hit` is False and the test fails)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
        held = incoming(grid, si)
        complete = share_files(grid.dir, si)
        assert hit, f"the kill point {point!r} was never reached (exit {proc.returncode}, stdout {out!r})"
        assert proc.returncode == -signal.SIGKILL and b"URI:" not in out  # killed before any cap
        # Where it landed, read off the disks right after the kill.
        if point == "placed":
            assert len(held) >= 7 and not complete
        elif point == "mid":  # (writes already in the servers' socket buffers may land after it)
            assert 0 < at_kill[-1] < g.num_segments, at_kill[-1]
        else:  # all blocks sent, but not every share complete, when the kill was made
            assert at_kill[-1] < PARAMS.n, at_kill[-1]
        # Whatever looks complete is complete and correct.
        _, ref_shares = reference.encode(data, PARAMS, secret)
        for shnum, raw in shares_on_disk(grid.dir, si).items():
            assert raw == ref_shares[shnum], f"share {shnum} looks complete but is not the right share"

        # A later put of the same file succeeds, with the same cap, and downloads bit-exact.
        again = subprocess.run(
            cli(grid, "put", str(path), *secret_flag), cwd=REPO, capture_output=True, timeout=180
        )
        assert again.returncode == 0, again.stderr.decode(errors="replace")
        assert again.stdout.decode().strip() == str(expected)
        got = tmp_path / "got"
        down = subprocess.run(
            cli(grid, "get", str(expected), "-o", str(got)), cwd=REPO, capture_output=True, timeout=180
        )
        assert down.returncode == 0, down.stderr.decode(errors="replace")
        assert got.read_bytes() == data
        shares = shares_on_disk(grid.dir, si)
        assert len(shares) == PARAMS.n
        assert all(raw == ref_shares[shnum] for shnum, raw in shares.items())
        print(
            f"{point}: killed with {len(held)} servers holding in-progress and {len(complete)} complete shares"
        )
    finally:
        grid.stop()
