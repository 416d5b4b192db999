"""Storage servers whose disk is full, or fills up mid-upload, against real server processes.

Each small disk is a tmpfs the test mounts (as root) over a grid server's ``storage`` directory
before the grid starts. Where mounting is impossible, the server is instead restarted on the same
port with ``--reserved-space`` set to the free space it had (so it offers nothing; the fill-mid-upload
case then restarts it that way mid-transfer: its in-progress shares are gone, like a disk that failed).

- full before the upload: the server offers no room, gets no share, and the upload places its share
  elsewhere (right cap, bit-exact shares);
- four of ten full: the CLI fails with exit 4 (happiness not met) and leaves nothing complete;
- fills mid-upload: another process fills the disk while the server holds a partly written share;
  its blocks were reserved at allocation, so the upload still completes with every share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.faults import download_matches
from tests.helpers.grid import servers_holding, share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.integration.test_upload_faults import blocks_written, incoming
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.trees import expected_layout
from uploader.encoding import encode_file_inline
from uploader.errors import NotEnoughServers
from uploader.gridclient import GridClient
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

MiB = 1 << 20
PARAMS = EncodingParams(3, 10, MiB)


def try_mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return out.returncode == 0


@contextlib.contextmanager
def small_disks(grid: LocalGrid, names: list[str], size: int) -> Iterator[bool]:
    """tmpfs of ``size`` bytes under each named server's storage (True), or nothing mounted (False)."""
    mounted = []
    try:
        for name in names:
            target = grid.dir / name / "storage"
            if not try_mount_tmpfs(target, size):
                break
            mounted.append(target)
        yield len(mounted) == len(names)
    finally:
        for target in mounted:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def restart_with_no_room(grid: LocalGrid, name: str) -> subprocess.Popen[bytes]:
    """The fallback: kill the grid's server and run it again (same port) reserving more than the free space."""
    grid.kill(name)
    directory = grid.dir / name
    while True:  # the dead server's lock goes with its process
        with contextlib.suppress(BlockingIOError, OSError):
            import fcntl

            fd = os.open(directory / "server.lock", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            finally:
                os.close(fd)
        time.sleep(0.01)
    reserve = shutil.disk_usage(directory).free + 2**40  # room never opens up, whatever else frees space
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uploader",
            "storage",
            "--dir",
            str(directory),
            "--reserved-space",
            str(reserve),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"pb://")  # listening again
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def make_file(tmp_path: Path, rng: random.Random) -> Path:
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(7, 9) * MiB + rng.randint(1, MiB - 1)))
    return path


def expected_cap(path: Path, secret: bytes) -> ChkCap:
    cap, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(cap, ChkCap)
    return cap


def test_a_full_server_gets_no_share_and_its_share_is_placed_elsewhere(tmp_path: Path) -> None:
    rng = random.Random(501)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    cap = expected_cap(path, secret)
    grid = LocalGrid(tmp_path / "grid", 10)
    extra: list[subprocess.Popen[bytes]] = []
    with small_disks(grid, ["server-04"], 1 * MiB) as mounted:  # far less than one share (~3 MiB)
        try:
            grid.start()
            if not mounted:
                extra.append(restart_with_no_room(grid, "server-04"))

            async def main() -> None:
                async with GridClient(grid.config()) as client:
                    result = await client.upload(path, params=PARAMS, happy=7, secret=secret)
                    assert str(result.cap) == str(cap)

            asyncio.run(main())
            assert download_matches(grid.config(), cap, path, tmp_path / "got")  # our get: bit-exact
            holding = servers_holding(grid.dir, cap.storage_index)
            assert "server-04" not in holding and len(holding) == 9
            shares = shares_on_disk(grid.dir, cap.storage_index)
            _, ref_shares = reference.encode(path.read_bytes(), PARAMS, secret)
            assert shares == dict(enumerate(ref_shares))  # all ten shares, on the nine others
        finally:
            for proc in extra:
                stop(proc)
            grid.stop()


def test_four_full_servers_of_ten_fail_the_put_with_exit_4(tmp_path: Path) -> None:
    rng = random.Random(502)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    secret_file = tmp_path / "convergence"
    secret_file.write_text(b32encode(secret) + "\n")
    cap = expected_cap(path, secret)
    full = ["server-02", "server-05", "server-07", "server-10"]
    grid = LocalGrid(tmp_path / "grid", 10)
    extra: list[subprocess.Popen[bytes]] = []
    with small_disks(grid, full, 1 * MiB) as mounted:
        try:
            grid.start()
            if not mounted:
                extra += [restart_with_no_room(grid, name) for name in full]
            argv = [sys.executable, "-m", "uploader", "put", str(path), "--json"]
            argv += [
                "--config",
                str(grid.dir / "uploader.toml"),
                "--convergence-secret-file",
                str(secret_file),
            ]
            out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180)
            assert out.returncode == 4, out
            report = json.loads(out.stdout.strip().splitlines()[-1])
            assert report["error_class"] == "NotEnoughServers" and report["exit_code"] == 4
            assert "6 servers would hold distinct shares, 7 needed" in report["error"]
            assert share_files(grid.dir, cap.storage_index) == {}  # nothing looks complete
            assert incoming(grid, cap.storage_index) == {}  # the six live ones were aborted
        finally:
            for proc in extra:
                stop(proc)
            grid.stop()


def test_a_disk_that_fills_mid_upload(tmp_path: Path) -> None:
    rng = random.Random(503)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    cap = expected_cap(path, secret)
    size = path.stat().st_size
    g = Geometry.from_params(PARAMS, size)
    layout = expected_layout(g)
    si = b32encode(cap.storage_index)
    victim = "server-06"
    grid = LocalGrid(tmp_path / "grid", 10)
    extra: list[subprocess.Popen[bytes]] = []
    seen: dict[str, int] = {}
    done = threading.Event()

    with small_disks(grid, [victim], 32 * MiB) as mounted:
        storage = grid.dir / victim / "storage"

        def fill() -> None:
            """Watch the victim's in-progress share (1 ms polls); once it holds some blocks, fill the disk."""
            incoming_dir = storage / "shares" / "incoming" / si[:2] / si
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not done.is_set():
                shares = list(incoming_dir.glob("*")) if incoming_dir.exists() else []
                written = blocks_written(shares[0], layout, g.num_segments) if shares else 0
                if written:
                    seen["written"] = written
                    break
                time.sleep(0.001)
            else:
                return
            if mounted:  # another process fills the disk to the last byte
                subprocess.run(["dd", "if=/dev/zero", f"of={storage / 'hog'}", "bs=1M"], capture_output=True)
                seen["free_after_fill"] = shutil.disk_usage(storage).free
            else:
                extra.append(restart_with_no_room(grid, victim))

        try:
            grid.start()

            async def main() -> str:
                # window 4: a write every 2 segments, so the victim's share of this 8-10-segment file
                # arrives in pieces and the fill lands mid-share (with the default 16, the first write
                # carries 8 segments and the share can be whole before the watcher sees it).
                async with GridClient(replace(grid.config(), window=4)) as client:
                    result = await client.upload(path, params=PARAMS, happy=7, secret=secret)
                    return str(result.cap)

            watcher = threading.Thread(target=fill)
            watcher.start()
            try:
                got = asyncio.run(main())
            except NotEnoughServers as exc:
                pytest.fail(f"one full disk of ten should not fail the upload: {exc}")
            finally:
                done.set()
                watcher.join()
            print(seen)
            assert 0 < seen["written"] < g.num_segments  # the fill landed mid-transfer of its share
            assert got == str(cap)
            assert download_matches(grid.config(), cap, path, tmp_path / "got")  # our get: bit-exact
            _, ref_shares = reference.encode(path.read_bytes(), PARAMS, secret)
            shares = shares_on_disk(grid.dir, cap.storage_index)
            assert all(raw == ref_shares[s] for s, raw in shares.items())
            assert reference.decode(cap, shares) == path.read_bytes()
            if mounted:
                assert seen["free_after_fill"] < MiB  # the disk really was full
                # the preallocated share completed on the full disk: all ten shares, one per server
                assert shares == dict(enumerate(ref_shares))
                assert victim in servers_holding(grid.dir, cap.storage_index)
            else:
                assert victim not in servers_holding(grid.dir, cap.storage_index)
        finally:
            for proc in extra:
                stop(proc)
            grid.stop()
