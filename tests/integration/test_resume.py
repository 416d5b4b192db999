"""Resuming interrupted uploads, and sources that change under an upload — with real processes.

The grid: four storage server processes (``python -m uploader storage``) that hold every response
``RTT_MS`` (their hidden ``--emulate-rtt-ms``), so a 4 MiB upload with a small pipeline takes a
couple of seconds and a kill can land mid-transfer. Each kill is proved to be mid-transfer: the
uploader is SIGKILLed only once the servers' in-progress share files of this storage index hold
between KILL_AT and all of their bytes (read off the disk: preallocated bytes not yet written
read as zeros), and after the kill no share of it is complete. The resumed upload must give the
cap a clean upload gives (computed in-process), download bit-exact with our ``get``, and send far
fewer share bytes than a whole upload (its ``--json`` ``share_bytes_sent``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.helpers.daemon import DaemonProcess
from tests.helpers.grid import read_share
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.chk.trees import expected_layout
from uploader.config import load_config
from uploader.encoding import encode_file_inline
from uploader.errors import SourceChanged
from uploader.gridclient import GridClient
from uploader.journal import JournalDir, JournalRecord, SourceIdentity
from uploader.secrets import read_secret_file
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry

pytestmark = pytest.mark.integration

K, N, HAPPY = 2, 4, 3
SEGMENT = 64 * 1024
PARAMS = EncodingParams(K, N, SEGMENT)
SIZE = 2 * 1024 * 1024 + 12345
RTT_MS = 50
KILL_AT = 0.7  # kill once this fraction of the placed shares' bytes is on the servers
CONTAINER_HEADER = 12  # the storage container's header before the share bytes
SECRET = "a" * 52  # a convergence secret in Tahoe base32 (32 bytes)


class SlowGrid:
    """Storage server processes with an emulated round trip, restartable on the same port."""

    def __init__(self, directory: Path, count: int) -> None:
        self.dir = directory
        self.count = count
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.nurls: dict[int, str] = {}

    def server_dir(self, i: int) -> Path:
        return self.dir / f"server-{i}"

    def start_one(self, i: int) -> None:
        out = self.dir / f"server-{i}.out"
        with out.open("wb") as stdout, (self.dir / f"server-{i}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uploader", "storage", "--dir", str(self.server_dir(i)),
                 "--emulate-rtt-ms", str(RTT_MS)],
                cwd=REPO, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.procs[i] = proc
        deadline = time.monotonic() + 60
        while not out.read_text().endswith("\n"):
            assert proc.poll() is None and time.monotonic() < deadline, f"server {i} did not start"
            time.sleep(0.05)
        line = out.read_text().strip()
        assert line.startswith("pb://"), f"server {i} printed {line!r}"
        self.nurls[i] = line

    def start(self) -> SlowGrid:
        for i in range(self.count):
            self.start_one(i)
        (self.dir / "convergence").write_text(SECRET + "\n")
        return self

    def stop_one(self, i: int, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(i)
        proc.send_signal(sig)
        proc.wait(30)

    def stop(self) -> None:
        for i in list(self.procs):
            self.stop_one(i)

    def config(self, data_dir: Path, **extra: Any) -> Path:
        table: dict[str, Any] = {
            "shares_needed": K,
            "shares_total": N,
            "shares_happy": HAPPY,
            "max_segment_size": SEGMENT,
            "workers": 1,
            "window": 2,
            "pipeline_depth": 64 * 1024,
            "convergence_secret_file": str(self.dir / "convergence"),
            "data_dir": str(data_dir),
            **extra,
        }
        lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        for i in sorted(self.nurls):
            lines += ["", "[[servers]]", f"nurl = {json.dumps(self.nurls[i])}"]
        path = data_dir.parent / (data_dir.name + ".toml")
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def incoming(self, storage_index: bytes) -> list[Path]:
        si = b32encode(storage_index)
        return sorted(self.dir.glob(f"server-*/storage/shares/incoming/{si[:2]}/{si}/*"))

    def complete(self, storage_index: bytes) -> list[Path]:
        si = b32encode(storage_index)
        return sorted(self.dir.glob(f"server-*/storage/shares/{si[:2]}/{si}/*"))

    def assert_shares_exact(self, source: Path, cap: ChkCap) -> None:
        """Every share on the servers is byte-identical to the reference encoder's: no mixed data."""
        ref_cap, ref_shares = reference.encode(
            source.read_bytes(), PARAMS, read_secret_file(self.dir / "convergence")
        )
        assert ref_cap == cap
        found = {int(p.name): read_share(p) for p in self.complete(cap.storage_index)}
        assert sorted(found) == list(range(N)) and found == dict(enumerate(ref_shares))


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowGrid]:
    g = SlowGrid(tmp_path_factory.mktemp("slowgrid"), N)
    try:
        yield g.start()
    finally:
        g.stop()


def make_file(path: Path, seed: int, size: int = SIZE) -> Path:
    block = seed.to_bytes(4, "big") * 4096
    data = bytearray(os.urandom(size))  # random: every block of every share has nonzero bytes
    data[: len(block)] = block
    path.write_bytes(bytes(data))
    return path


def expected_cap(path: Path, grid: SlowGrid) -> ChkCap:
    cap, _ = encode_file_inline(path, PARAMS, read_secret_file(grid.dir / "convergence"))
    assert isinstance(cap, ChkCap)
    return cap


def share_size(size: int = SIZE) -> int:
    return expected_layout(Geometry.from_params(PARAMS, size)).share_size


def written_fraction(paths: list[Path], size: int) -> float:
    """How much of these in-progress shares is written: 4 KiB pages that are not all zero."""
    total = written = 0
    page = 4096
    for path in paths:
        try:
            raw = path.read_bytes()[CONTAINER_HEADER : CONTAINER_HEADER + size]
        except FileNotFoundError:
            continue
        for off in range(0, len(raw), page):
            total += 1
            written += any(raw[off : off + page])
    return written / max(total, 1)


def put(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", "put", "--config", str(config), "--json", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def get(config: Path, cap: str, out: Path) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "uploader", "get", "--config", str(config), cap, "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def kill_mid_transfer(
    proc: subprocess.Popen[Any],
    grid: SlowGrid,
    storage_index: bytes,
    sig: int = signal.SIGKILL,
    at: float = KILL_AT,
) -> float:
    """Signal ``proc`` (SIGKILL) once the in-progress shares are between KILL_AT and 100% written,
    and wait for it to exit; the fraction seen just before the signal."""
    size = share_size()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the upload ended before it could be killed: {proc.communicate()}"
        paths = grid.incoming(storage_index)
        if len(paths) >= HAPPY:
            fraction = written_fraction(paths, size)
            if at <= fraction < 1.0:
                proc.send_signal(sig)
                proc.communicate(timeout=60)  # reaps it and closes its pipes
                return fraction
        time.sleep(0.01)
    raise AssertionError("the upload never got mid-transfer")


def start_put(config: Path, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uploader", "put", "--config", str(config), "--json", str(path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def journals(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "journal").glob("*.journal"))


def interrupted_put(grid: SlowGrid, tmp_path: Path, seed: int) -> tuple[Path, Path, ChkCap, float]:
    """A `put` subprocess SIGKILLed mid-transfer: (config, source, expected cap, fraction written)."""
    data_dir = tmp_path / "client"
    config = grid.config(data_dir)
    source = make_file(tmp_path / "source.bin", seed)
    cap = expected_cap(source, grid)
    fraction = kill_mid_transfer(start_put(config, source), grid, cap.storage_index)
    assert grid.complete(cap.storage_index) == [], "a share completed before the kill"
    assert len(grid.incoming(cap.storage_index)) >= HAPPY
    [journal] = journals(data_dir)
    assert os.stat(journal).st_mode & 0o777 == 0o600
    assert SECRET not in journal.read_text() and cap.key.hex() in journal.read_text()
    return config, source, cap, fraction


def test_put_resume_after_sigkill_sends_only_what_is_missing(grid: SlowGrid, tmp_path: Path) -> None:
    config, source, cap, fraction = interrupted_put(grid, tmp_path, 1)
    # The resume runs with k, N and happiness left to their defaults (3, 10, 7): it keeps the
    # journal's (2, 4, 3) — with happiness 7 > N = 4 it used to fail and drop the journal.
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if not line.startswith("shares_")) + "\n")
    done = put(config, "--resume", str(source))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["cap"] == str(cap)
    assert result["resumed"] is True
    full = N * share_size()
    # Only what was missing went again: at most the unwritten part (and the probes' headers).
    assert result["share_bytes_sent"] < (1 - fraction + 0.1) * full
    assert result["share_bytes_sent"] + result["share_bytes_skipped"] >= full * 0.95
    assert get(config, str(cap), tmp_path / "out.bin") == source.read_bytes()
    assert journals(tmp_path / "client") == []
    assert grid.incoming(cap.storage_index) == []
    grid.assert_shares_exact(source, cap)
    print(f"resume: {fraction:.0%} written at the kill; sent {result['share_bytes_sent']} of {full} share bytes, "
          f"{result['share_bytes_skipped']} not resent")  # fmt: skip


def test_resume_after_a_server_restart_and_a_server_loss(grid: SlowGrid, tmp_path: Path) -> None:
    """One server restarted (it dropped its in-progress share: allocated again, sent in full), one
    gone for the resume (its share placed on another server, sent in full); the rest continued."""
    config, source, cap, fraction = interrupted_put(grid, tmp_path, 2)
    holders = [i for i in range(N) if list(grid.server_dir(i).glob("storage/shares/incoming/*/*/*"))]
    restarted, lost = holders[0], holders[1]
    grid.stop_one(restarted, signal.SIGKILL)
    grid.start_one(restarted)  # same directory and port: the in-progress share is gone
    assert not list(grid.server_dir(restarted).glob("storage/shares/incoming/*/*/*"))
    grid.stop_one(lost, signal.SIGKILL)
    try:
        done = put(config, "--resume", str(source))
    finally:
        grid.start_one(lost)  # it drops its in-progress share: the grid is whole again
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["cap"] == str(cap)
    full = N * share_size()
    assert 2 * share_size() <= result["share_bytes_sent"] < (1 - fraction + 0.1) * full + 2 * share_size()
    grid.assert_shares_exact(source, cap)
    assert not [p for p in grid.complete(cap.storage_index) if grid.server_dir(lost) in p.parents]


def test_source_modified_between_kill_and_resume_is_abandoned(grid: SlowGrid, tmp_path: Path) -> None:
    config, source, cap, _ = interrupted_put(grid, tmp_path, 3)
    with source.open("r+b") as fh:  # same size, one byte different, mtime put back
        st = os.fstat(fh.fileno())
        fh.seek(1000)
        fh.write(b"\x00")
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    done = put(config, "--resume", str(source))
    assert done.returncode == 7, done
    result = json.loads(done.stdout)
    assert "cap" not in result and result["error_class"] == "SourceChanged"
    assert "changed since its upload was interrupted" in result["error"] and "ctime_ns" in result["error"]
    assert journals(tmp_path / "client") == []
    assert grid.incoming(cap.storage_index) == [] and grid.complete(cap.storage_index) == []


def test_a_plain_put_drops_the_journal_it_did_not_resume(grid: SlowGrid, tmp_path: Path) -> None:
    """The file got its cap by a plain `put`: the interrupted upload's journal and buckets go."""
    config, source, cap, _ = interrupted_put(grid, tmp_path, 6)
    done = put(config, str(source))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cap"] == str(cap)
    assert "dropping an interrupted upload" in done.stderr and "--resume would continue it" in done.stderr
    assert journals(tmp_path / "client") == [] and grid.incoming(cap.storage_index) == []
    again = put(config, str(source))
    assert again.returncode == 0 and "--resume" not in again.stderr


def test_resume_of_a_moved_source_drops_its_journal(grid: SlowGrid, tmp_path: Path) -> None:
    config, source, cap, _ = interrupted_put(grid, tmp_path, 7)
    source.rename(source.with_name("moved.bin"))
    done = put(config, "--resume", str(source))
    assert done.returncode == 7, done
    assert json.loads(done.stdout)["error_class"] == "SourceChanged"
    assert journals(tmp_path / "client") == [] and grid.incoming(cap.storage_index) == []


def test_source_changed_during_the_encode_pass_gets_no_cap(grid: SlowGrid, tmp_path: Path) -> None:
    """Changed after the key pass (same size, mtime set back: only ctime shows it), and changed
    midway through pass 2: both are caught before any share completes; no journal stays."""
    data_dir = tmp_path / "client"
    config = load_config(grid.config(data_dir), {"HOME": str(tmp_path)}, {})

    def changer(source: Path, at: int, done: list[bool]) -> Callable[[int], None]:
        seen = 0

        def progress(nbytes: int) -> None:
            nonlocal seen
            seen += nbytes
            if seen >= at and not done:
                done.append(True)
                time.sleep(0.02)  # past the timestamp granularity of the first write
                st = os.stat(source)
                with source.open("r+b") as fh:
                    fh.seek(SIZE // 2)
                    fh.write(b"changed!")
                os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))

        return progress

    async def both() -> None:
        async with GridClient(config) as client:
            for seed, at in ((4, SIZE), (5, SIZE + SIZE // 3)):  # after the key pass; a third into pass 2
                source = make_file(tmp_path / f"source-{seed}.bin", seed)
                cap = expected_cap(source, grid)
                done: list[bool] = []
                with pytest.raises(SourceChanged, match="ctime_ns"):
                    await client.upload(source, changer(source, at, done))
                assert done
                assert grid.complete(cap.storage_index) == [] and grid.incoming(cap.storage_index) == []
                assert journals(data_dir) == []

    asyncio.run(both())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
def test_daemon_resumes_its_uploads_at_start(grid: SlowGrid, tmp_path: Path, sig: int) -> None:
    """Killed (a crash), or stopped with an upload still running past the drain timeout (a
    reboot): the next start resumes the upload, sending only what the servers lack."""
    data_dir = tmp_path / "daemon-data"
    config = grid.config(data_dir, api_listen="127.0.0.1:0", log_level="info", shutdown_timeout_s=0.2)
    source = make_file(tmp_path / "body.bin", 6)
    cap = expected_cap(source, grid)
    first = DaemonProcess(config, tmp_path).start()
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(first.request("PUT", "/uri", source.read_bytes()))
        except OSError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    assert first.proc is not None
    # A stop lets the upload run on for the drain timeout and more: signal it earlier.
    fraction = kill_mid_transfer(
        first.proc, grid, cap.storage_index, sig, KILL_AT if sig == signal.SIGKILL else 0.3
    )
    sender.join(30)
    assert first.stop() == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert outcome, "the client got nothing back"
    if sig == signal.SIGKILL:
        assert isinstance(outcome[0], OSError)  # the client never got a cap
    else:  # a stop tells the client the upload is suspended (and gives no cap)
        assert not isinstance(outcome[0], OSError) and outcome[0][0] == 503, outcome
        assert b"is suspended" in outcome[0][2] and b"URI:" not in outcome[0][2], outcome
    assert len(journals(data_dir)) == 1 and len(list((data_dir / "spool").glob("upload-*.part"))) == 1
    assert len(grid.incoming(cap.storage_index)) >= HAPPY  # suspended, not aborted
    if sig == signal.SIGTERM:
        assert "suspended after" in first.log()

    (tmp_path / "again").mkdir()
    second = DaemonProcess(config, tmp_path / "again").start()
    try:
        deadline = time.monotonic() + 90
        entry: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = second.status()
            seen = [
                u
                for u in status["transfers"]["recent"]
                if u["kind"] == "upload" and u["storage_index"] == b32encode(cap.storage_index)
            ]
            if seen:
                entry = seen[0]
                break
            time.sleep(0.1)
        assert entry.get("stage") == "done" and entry.get("resumed") is True, entry
        code, _, body = second.request("GET", f"/uri/{cap}")
        assert code == 200 and body == source.read_bytes()
        assert journals(data_dir) == [] and list((data_dir / "spool").glob("upload-*.part")) == []
        m = re.search(r"resumed and done: (\d+) share bytes sent, (\d+) already on the servers", second.log())
        assert m, second.log()
        sent, skipped = int(m[1]), int(m[2])
        assert sent < (1 - fraction + 0.1) * N * share_size() and sent + skipped >= 0.95 * N * share_size()
        print(f"daemon resume: {fraction:.0%} written at the kill; sent {sent}, {skipped} not resent")
    finally:
        second.stop()


CRASH_AFTER_ALLOCATE = """
import os, sys
from pathlib import Path
from uploader import upload
from uploader.cli import main

real_save = upload.Upload._journal_save

async def save_then_die(self, placed=True):
    if placed:  # allocation is over, its placement not journaled yet: die as a SIGKILL would
        os._exit(9)
    await real_save(self, placed)

upload.Upload._journal_save = save_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_resume_of_a_crash_during_allocation_finds_its_buckets(grid: SlowGrid, tmp_path: Path) -> None:
    """The journal is written before any allocate (upload secrets first); a crash before the
    placement is journaled leaves buckets the journal does not name. Resume finds them by asking
    each journaled server about every share with its secret, and finishes them: no server is left
    with a stray in-progress bucket that would block those share numbers for 30 minutes."""
    data_dir = tmp_path / "client"
    config = grid.config(data_dir)
    source = make_file(tmp_path / "source.bin", 7, size=256 * 1024)
    cap = expected_cap(source, grid)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_ALLOCATE, "put", "--config", str(config), str(source)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == 9, crashed.stderr
    assert len(grid.incoming(cap.storage_index)) == N  # every server holds one of our empty buckets
    [journal] = journals(data_dir)
    assert b'"placed":false' in journal.read_bytes()
    done = put(config, "--resume", str(source))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cap"] == str(cap)
    assert grid.incoming(cap.storage_index) == []
    grid.assert_shares_exact(source, cap)


def test_resume_of_a_vanished_source_is_abandoned(grid: SlowGrid, tmp_path: Path) -> None:
    """The daemon's spool file (or put's source) is gone: the journal is dropped, not retried forever."""
    data_dir = tmp_path / "client"
    config = load_config(grid.config(data_dir), {"HOME": str(tmp_path)}, {})
    source = make_file(tmp_path / "gone.bin", 8, size=100_000)
    cap = expected_cap(source, grid)
    jd = JournalDir(data_dir / "journal")
    handle = jd.create()
    handle.save(
        JournalRecord(
            owner="daemon",
            source=SourceIdentity.of(source.resolve()),
            k=K,
            n=N,
            segment_size=SEGMENT,
            key=cap.key,
            storage_index=cap.storage_index,
            share_size=share_size(100_000),
            placed=True,
        )
    )
    source.unlink()
    handle.release()  # as a killed daemon's lock would be
    [(claimed, record)] = list(jd.unfinished("daemon"))
    assert isinstance(record, JournalRecord)

    async def resume() -> None:
        async with GridClient(config, journal_owner="daemon") as client:
            with pytest.raises(SourceChanged, match="changed since its upload was interrupted"):
                await client.upload(source, resume=(claimed, record))

    asyncio.run(resume())
    assert journals(data_dir) == [] and list(jd.directory.iterdir()) == []
