"""Storage servers SIGKILLed mid-upload (issue 5's fault acceptance), against real server processes.

Every kill lands mid-transfer, and each test proves it. In-process uploads are killed from the
upload's progress callback once pass 2 has acknowledged a seeded fraction of the file (so placement
is over); the bytes acknowledged at that moment are recorded and checked to be > 0 and < the file
size, and the victim is checked to hold an in-progress share of this storage index right then. The
``put`` subprocess is killed into once a victim's in-progress share file holds some but not all of
its blocks (read off the disk: preallocated bytes not yet written read as zeros). Seeds are fixed
(``random.Random(seed)`` picks the file, the kill points and the victims), so CI is deterministic;
the run-to-run variation is only where the servers land in the permuted order. ``FAULT_RUNS=N``
adds N random seeds to the 1–3-kill test for a longer run (see ``kill_cases``).

Progress (``GridClient.upload``'s callback) counts the key pass (the file's size, once) and then
each segment once every write that carries its blocks has finished.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.grid import servers_holding, share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from uploader import upload as upload_module
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.layout import ShareLayout
from uploader.chk.trees import expected_layout
from uploader.encoding import encode_file_inline
from uploader.errors import NotEnoughServers
from uploader.gridclient import GridClient
from uploader.upload import UploadResult
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

MiB = 1 << 20
K, N, HAPPY = 3, 10, 7
PARAMS = EncodingParams(K, N, MiB)
CONTAINER_HEADER = 12  # the storage container's header before the share bytes (storage.container)


@dataclass
class Kill:
    victim: str
    fraction: float  # planned point, as a fraction of pass-2 bytes
    acknowledged: int = -1  # pass-2 bytes acknowledged when the kill was made
    in_progress_shares: list[int] = field(default_factory=list)  # the victim's incoming shares of this SI


class Killer:
    """A progress callback that SIGKILLs servers once pass 2 has acknowledged the planned bytes.

    ``victims`` names them in advance; with ``None``, each is chosen (seeded) at kill time among
    the servers placement gave a share to (``placed``, read off the disks when pass 2 first reports).
    """

    def __init__(
        self,
        grid: LocalGrid,
        size: int,
        storage_index: bytes,
        fractions: list[float],
        victims: list[str] | None,
        rng: random.Random,
    ) -> None:
        self.grid = grid
        self.size = size
        self.storage_index = storage_index
        self.pending = sorted(fractions)
        self.victims = list(victims) if victims is not None else None
        self.rng = rng
        self.progress = 0
        self.placed: dict[str, list[int]] = {}
        self.kills: list[Kill] = []

    def __call__(self, nbytes: int) -> None:
        self.progress += nbytes
        acknowledged = self.progress - self.size  # the first report is the key pass: the whole file
        if acknowledged > 0 and not self.placed:
            self.placed = incoming(self.grid, self.storage_index)
        while self.pending and acknowledged >= self.pending[0] * self.size:
            fraction = self.pending.pop(0)
            if self.victims is not None:
                victim = self.victims[len(self.kills)]
            else:
                dead = {k.victim for k in self.kills}
                victim = self.rng.choice([name for name in sorted(self.placed) if name not in dead])
            self.grid.kill(victim)
            shares = incoming(self.grid, self.storage_index).get(victim, [])
            self.kills.append(Kill(victim, fraction, acknowledged, shares))

    def assert_mid_transfer(self, expected: int) -> None:
        print(self.report())  # shown when a test fails: where the kills landed
        assert len(self.kills) == expected, f"only {len(self.kills)} of {expected} kills were made"
        for kill in self.kills:
            assert 0 < kill.acknowledged < self.size, kill  # after some of pass 2, before its end
            assert kill.in_progress_shares, f"{kill.victim} held no share of this upload when killed"

    def report(self) -> str:
        return ", ".join(
            f"{k.victim} (shares {k.in_progress_shares}) at {k.acknowledged / self.size:.3f} "
            f"(planned {k.fraction:.3f})"
            for k in self.kills
        )

    @property
    def lost(self) -> set[int]:
        return {shnum for kill in self.kills for shnum in kill.in_progress_shares}


def incoming(grid: LocalGrid, storage_index: bytes) -> dict[str, list[int]]:
    """In-progress shares of ``storage_index`` on each server: {name: [shnum]} (non-empty only)."""
    si = b32encode(storage_index)
    out: dict[str, list[int]] = {}
    for path in sorted(grid.dir.glob(f"server-*/storage/shares/incoming/{si[:2]}/{si}/*")):
        out.setdefault(path.parts[len(grid.dir.parts)], []).append(int(path.name))
    return out


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process uploads retry a dead server for 0.35 s, not 3.7 s, before counting it lost (the
    same code path, shorter sleeps), so the suite stays short; the CLI test keeps the real delays."""
    monkeypatch.setattr(upload_module, "RETRY_DELAYS_S", (0.05, 0.1, 0.2))


def make_file(tmp_path: Path, rng: random.Random) -> Path:
    """24–48 MiB plus a ragged tail (1 MiB segments: the upload lasts long enough to kill into)."""
    path = tmp_path / "source"
    path.write_bytes(rng.randbytes(rng.randint(24, 47) * MiB + rng.randint(1, MiB - 1)))
    return path


def port_names(grid: LocalGrid) -> dict[str, str]:
    """``host:port`` (UploadResult.servers' keys) -> server name."""
    return {f"127.0.0.1:{s['port']}": s["name"] for s in grid.record()["servers"]}


async def upload(grid: LocalGrid, path: Path, secret: bytes, killer: Killer) -> UploadResult:
    async with GridClient(grid.config()) as client:
        return await client.upload(path, killer, params=PARAMS, happy=HAPPY, secret=secret)


def check_shares(
    grid: LocalGrid, cap: ChkCap, path: Path, secret: bytes, killed: set[str]
) -> dict[int, bytes]:
    """The complete shares on the disks: none on a killed server, each byte-equal to the reference
    encoder's share of that number, and together they decode (every hash checked) to the file."""
    holding = servers_holding(grid.dir, cap.storage_index)
    assert not killed & set(holding), f"a killed server holds a complete share: {holding}"
    shares = shares_on_disk(grid.dir, cap.storage_index)
    data = path.read_bytes()
    ref_cap, ref_shares = reference.encode(data, PARAMS, secret)
    assert str(ref_cap) == str(cap)
    for shnum, raw in shares.items():
        assert raw == ref_shares[shnum], f"share {shnum} differs from the reference encoder's"
    assert reference.decode(cap, shares) == data
    return shares


def kill_cases() -> list[tuple[int, int]]:
    """CI's fixed (kills, seed) pairs; ``FAULT_RUNS=N`` adds N random seeds (a longer run: the seed
    is in the test id, and ``FAULT_SEEDS=s1,s2`` replays given seeds), kills = 1 + seed % 3."""
    fixed = [(1, 101), (1, 102), (2, 201), (2, 202), (3, 301), (3, 302)]
    seeds = [int(s) for s in os.environ.get("FAULT_SEEDS", "").split(",") if s.strip()]
    seeds += [random.SystemRandom().randrange(10**6) for _ in range(int(os.environ.get("FAULT_RUNS", "0")))]
    return fixed + [(1 + seed % 3, seed) for seed in seeds]


@pytest.mark.parametrize(("kills", "seed"), kill_cases())
def test_up_to_three_of_ten_killed_mid_upload(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    grid = LocalGrid(tmp_path / "grid", 10).start()
    try:
        victims = rng.sample(sorted(grid.pids()), kills)
        fractions = [rng.uniform(0.1, 0.9) for _ in range(kills)]
        killer = Killer(grid, path.stat().st_size, expected.storage_index, fractions, victims, rng)
        result = asyncio.run(upload(grid, path, secret, killer))
        killer.assert_mid_transfer(kills)
        assert str(result.cap) == str(expected)
        assert killer.progress == 2 * result.size  # the key pass, then every segment once
        names = port_names(grid)
        assert not set(victims) & {names[s] for s in result.servers}
        shares = check_shares(grid, expected, path, secret, set(victims))
        assert set(shares) == set(range(N)) - killer.lost  # no spares: the victims' shares are dropped
        assert {names[s]: set(v) for s, v in result.servers.items()} == servers_holding(
            grid.dir, expected.storage_index
        )
    finally:
        grid.stop()


def test_four_of_ten_killed_fails_and_leaves_nothing_complete(tmp_path: Path) -> None:
    rng = random.Random(401)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    grid = LocalGrid(tmp_path / "grid", 10).start()
    try:
        victims = rng.sample(sorted(grid.pids()), 4)
        fractions = [rng.uniform(0.1, 0.9) for _ in range(4)]
        killer = Killer(grid, path.stat().st_size, expected.storage_index, fractions, victims, rng)
        with pytest.raises(NotEnoughServers) as failure:
            asyncio.run(upload(grid, path, secret, killer))
        killer.assert_mid_transfer(4)
        message = str(failure.value)
        assert "6 servers would hold distinct shares, 7 needed" in message
        addresses = {name: address for address, name in port_names(grid).items()}
        for victim in victims:
            assert addresses[victim] in message  # the error names the lost servers
        assert share_files(grid.dir, expected.storage_index) == {}  # nothing complete anywhere
        assert set(incoming(grid, expected.storage_index)) <= set(victims)  # live ones were aborted
        grid.start()  # restarts the killed servers, which clean their incoming areas
        assert set(grid.pids()) == {f"server-{i:02d}" for i in range(1, 11)}
        assert incoming(grid, expected.storage_index) == {}
        assert share_files(grid.dir, expected.storage_index) == {}
    finally:
        grid.stop()


def blocks_written(share: Path, layout: ShareLayout, segments: int) -> int:
    """How many segments' blocks an in-progress share file holds (unwritten preallocated bytes read
    as zeros; a written block's first 64 bytes are ciphertext-derived, never all zero)."""
    try:
        fd = os.open(share, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        return sum(
            os.pread(fd, 64, CONTAINER_HEADER + layout.block_offset(seg)).strip(b"\0") != b""
            for seg in range(segments)
        )
    finally:
        os.close(fd)


def test_four_of_ten_killed_through_the_cli_exits_4(tmp_path: Path) -> None:
    """``put --json`` with the real retry delays: exit code 4 and the JSON error object."""
    rng = random.Random(402)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    secret_file = tmp_path / "convergence"
    secret_file.write_text(b32encode(secret) + "\n")
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    g = Geometry.from_params(PARAMS, path.stat().st_size)
    layout = expected_layout(g)
    si = b32encode(expected.storage_index)
    grid = LocalGrid(tmp_path / "grid", 10).start()
    try:
        victims = rng.sample(sorted(grid.pids()), 4)
        target = rng.randint(g.num_segments // 5, g.num_segments // 2)
        watched = grid.dir / victims[0] / "storage" / "shares" / "incoming" / si[:2] / si
        argv = [sys.executable, "-m", "uploader", "put", str(path), "--json"]
        argv += ["--config", str(grid.dir / "uploader.toml"), "--convergence-secret-file", str(secret_file)]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        written = 0
        try:
            # Past placement once the victim holds an in-progress share; kill once it holds `target` blocks.
            while proc.poll() is None and written < target:
                shares = list(watched.glob("*"))
                written = blocks_written(shares[0], layout, g.num_segments) if shares else 0
                time.sleep(0.002)
            held = incoming(grid, expected.storage_index)
            for victim in victims:
                grid.kill(victim)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        print(f"killed {victims} when {victims[0]} held {written} of {g.num_segments} blocks")
        assert 0 < written < g.num_segments, f"kill not mid-transfer: {written} of {g.num_segments} blocks"
        assert all(held.get(victim) for victim in victims)  # each was in the upload, placed
        assert proc.returncode == 4, (out, err)
        report = json.loads(out.strip().splitlines()[-1])
        assert report["file"] == str(path)
        assert report["error_class"] == "NotEnoughServers"
        assert report["exit_code"] == 4
        assert "servers of happiness not met" in report["error"] and "7 needed" in report["error"]
        assert share_files(grid.dir, expected.storage_index) == {}
        assert set(incoming(grid, expected.storage_index)) <= set(victims)
        grid.start()
        assert incoming(grid, expected.storage_index) == {}
        assert share_files(grid.dir, expected.storage_index) == {}
    finally:
        grid.stop()


def test_thirteen_servers_three_killed_all_shares_replaced_on_spares(tmp_path: Path) -> None:
    rng = random.Random(1303)
    path = make_file(tmp_path, rng)
    secret = rng.randbytes(32)
    expected, _ = encode_file_inline(path, PARAMS, secret)
    assert isinstance(expected, ChkCap)
    grid = LocalGrid(tmp_path / "grid", 13).start()
    try:
        fractions = [rng.uniform(0.1, 0.9) for _ in range(3)]
        killer = Killer(grid, path.stat().st_size, expected.storage_index, fractions, None, rng)
        result = asyncio.run(upload(grid, path, secret, killer))
        killer.assert_mid_transfer(3)
        placed = killer.placed
        assert len(placed) == N and sorted(s for v in placed.values() for s in v) == list(range(N))
        victims = {k.victim for k in killer.kills}
        assert str(result.cap) == str(expected)
        assert killer.progress == 2 * result.size
        shares = check_shares(grid, expected, path, secret, victims)
        assert set(shares) == set(range(N))  # every share number, the lost ones on spares
        holding = servers_holding(grid.dir, expected.storage_index)
        assert sum(len(v) for v in holding.values()) == N  # each share once, one per server
        spares = sorted(set(grid.pids()) - set(placed))
        lost = sorted(killer.lost)
        assert len(lost) == 3
        replaced = {shnum: name for name, held in holding.items() for shnum in held if name in spares}
        assert sorted(replaced) == lost
        # The re-placed shares alone (k of them) decode: their backfilled blocks are all correct.
        assert reference.decode(expected, {s: shares[s] for s in lost}) == path.read_bytes()
        names = port_names(grid)
        assert {names[s]: set(v) for s, v in result.servers.items()} == holding
    finally:
        grid.stop()
