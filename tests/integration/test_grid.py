"""``grid start/stop/status``: real server processes, the files the grid writes, ports kept across
restarts, and ``stop`` ending exactly the recorded processes."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.storage_driver import REPO, GbsClient, ServerProcess
from uploader.config import find_config_file, load_config
from uploader.grid import GridError, GridRecord, is_running, probe_server, start_grid, stop_grid
from uploader.storage.identity import read_identity
from uploader.wire.nurl import lease_seed_of_cert, parse_nurl
from workers.base32 import b32decode, b32encode

pytestmark = pytest.mark.integration


def uploader(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=120,
    )


def test_grid_lifecycle(tmp_path: Path, isolated_home: Path) -> None:
    grid = tmp_path / "grid"
    started = uploader("grid", "start", "--dir", str(grid), "--servers", "3")
    assert started.returncode == 0, started.stderr
    assert "3 servers up" in started.stdout

    # uploader.toml is a complete client configuration, found through the current-grid record.
    env = dict(os.environ)
    record = Path(env["XDG_DATA_HOME"]) / "uploader" / "current-grid"
    assert record.read_text().strip() == str(grid / "uploader.toml")
    assert find_config_file(None, env) == grid / "uploader.toml"
    config = load_config(None, env, {})
    assert len(config.servers) == 3 and config.shares_happy == 3 and config.shares_total == 10
    assert config.data_dir == grid / "client"
    nurls = [parse_nurl(s.nurl) for s in config.servers]
    assert [n.host for n in nurls] == ["127.0.0.1"] * 3 and len({n.port for n in nurls}) == 3
    for n in nurls:
        assert probe_server(n).available_space > 0
    assert "swissnum" not in started.stdout and all(n.swissnum not in started.stdout for n in nurls)
    for i, n in enumerate(nurls, start=1):  # swissnums stay out of logs; files holding them are 0600
        assert n.swissnum not in (grid / f"server-{i:02d}" / "server.log").read_text()
    for name in ("uploader.toml", "servers.yaml", "server-01/nurl"):
        assert (grid / name).stat().st_mode & 0o777 == 0o600

    # servers.yaml: the stock client's form (GBS spec appendix A).
    stock = yaml.safe_load((grid / "servers.yaml").read_text())
    assert list(stock) == ["storage"] and len(stock["storage"]) == 3
    for (server_id, entry), n, i in zip(stock["storage"].items(), nurls, range(1, 4), strict=True):
        ann = entry["ann"]
        assert ann["anonymous-storage-NURLs"] == [str(n)]
        cert_der = read_identity(grid / f"server-{i:02d}").cert_der
        tub_id = ann["anonymous-storage-FURL"].removeprefix("pb://").removesuffix("@")
        assert len(tub_id) == 32 and b32decode(tub_id, 20) == lease_seed_of_cert(cert_der)
        assert b32decode(ann["permutation-seed-base32"]) == n.spki_digest
        assert server_id == "gbs-" + b32encode(n.spki_digest)

    status = uploader("grid", "status", "--dir", str(grid), "--json")
    assert status.returncode == 0
    lines = [json.loads(line) for line in status.stdout.splitlines()]
    assert [(x["server"], x["up"]) for x in lines] == [(f"server-0{i}", True) for i in (1, 2, 3)]

    # A share on server-01 survives stop/start; the NURLs (ports) stay the same.
    gbs = GbsClient(nurls[0])
    si = os.urandom(16)
    gbs.allocate(si, [0], 10, b"u" * 20)
    assert gbs.write(si, 0, b"u" * 20, 0, b"0123456789").status == 201
    pids = [s.pid for s in GridRecord.load(grid).servers]  # type: ignore[union-attr]
    # grid commands read no client configuration: a broken one does not stop them
    broken = {"UPLOADER_CONFIG": str(tmp_path / "missing.toml"), "UPLOADER_WORKERS": "abc"}
    assert uploader("grid", "status", "--dir", str(grid), env=broken).returncode == 0
    stopped = uploader("grid", "stop", "--dir", str(grid), env=broken)
    assert stopped.returncode == 0, stopped.stderr
    assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in pids if pid)
    down = uploader("grid", "status", "--dir", str(grid))
    assert down.returncode == 1 and down.stdout.count("down") == 3
    assert uploader("grid", "start", "--dir", str(grid)).returncode == 0
    again = load_config(None, env, {})
    assert [s.nurl for s in again.servers] == [s.nurl for s in config.servers]
    assert gbs.read(si, 0, 0, 9).body == b"0123456789"
    # Starting a running grid again changes nothing.
    before = [(s.pid, s.started) for s in GridRecord.load(grid).servers]  # type: ignore[union-attr]
    assert uploader("grid", "start", "--dir", str(grid)).returncode == 0
    assert [(s.pid, s.started) for s in GridRecord.load(grid).servers] == before  # type: ignore[union-attr]
    wrong = uploader("grid", "start", "--dir", str(grid), "--servers", "4")
    assert wrong.returncode == 1 and "has 3 servers" in wrong.stderr
    assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_ends_only_recorded_processes(tmp_path: Path) -> None:
    grid = tmp_path / "grid"
    assert uploader("grid", "start", "--dir", str(grid), "--servers", "1").returncode == 0
    decoy = ServerProcess(tmp_path / "decoy")
    try:
        record = GridRecord.load(grid)
        assert record is not None
        real = record.servers[0]
        # A record whose PID now belongs to someone else (different start time) is not signalled.
        record.servers.append(type(real)("server-99", None, decoy.pid, 1))
        record.save(grid)
        assert not is_running(record.servers[1])
        stopped = uploader("grid", "stop", "--dir", str(grid))
        assert stopped.returncode == 0 and "server-01" in stopped.stdout and "server-99" not in stopped.stdout
        assert decoy.proc.poll() is None
        assert decoy.client.version().available_space > 0
    finally:
        assert decoy.stop() == 0


def test_start_failure_names_the_server_and_leaves_nothing_running(tmp_path: Path) -> None:
    grid = tmp_path / "grid"
    assert uploader("grid", "start", "--dir", str(grid), "--servers", "2").returncode == 0
    assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0
    record = GridRecord.load(grid)
    assert record is not None and record.servers[1].port is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", record.servers[1].port))
        squatter.listen()
        failed = uploader("grid", "start", "--dir", str(grid), "--timeout", "60")
    assert failed.returncode == 1
    assert "server-02" in failed.stderr and "server.log" in failed.stderr
    after = GridRecord.load(grid)
    assert after is not None and not any(is_running(s) for s in after.servers)


def test_status_of_a_missing_grid_fails(tmp_path: Path) -> None:
    result = uploader("grid", "status", "--dir", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no grid" in result.stderr


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def test_a_dir_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a grid")
    assert str(plain) in _one_line_error(uploader("grid", "start", "--dir", str(plain)))
    below = _one_line_error(uploader("grid", "start", "--dir", str(plain / "grid")))
    assert str(plain / "grid") in below and "Not a directory" in below
    assert plain.read_text() == "not a grid"


def test_a_data_dir_that_cannot_take_the_current_grid_record_warns_and_the_grid_starts(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "afile"
    plain.write_text("not a directory")
    busy = tmp_path / "data"
    (busy / "current-grid").mkdir(parents=True)  # the record's name is taken by a directory
    for data_dir, named in (
        (plain, f"{plain}: File exists"),
        (busy, f"{busy / 'current-grid'}: Is a directory"),
    ):
        grid = tmp_path / f"grid-{data_dir.name}"
        started = uploader(
            "grid", "start", "--dir", str(grid), "--servers", "1", env={"UPLOADER_DATA_DIR": str(data_dir)}
        )
        try:
            assert started.returncode == 0, started.stderr
            assert "warning" in started.stderr and "UPLOADER_DATA_DIR" in started.stderr
            assert named in started.stderr and "current-grid.tmp" not in started.stderr
            assert f"--config {grid / 'uploader.toml'}" in started.stderr
            assert uploader("grid", "status", "--dir", str(grid)).returncode == 0  # running, as its files say
            assert len(load_config(grid / "uploader.toml", {}, {}).servers) == 1
        finally:
            assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0
    assert plain.read_text() == "not a directory" and sorted(p.name for p in busy.iterdir()) == [
        "current-grid"
    ]


def test_a_full_disk_is_a_one_line_error_and_leaves_nothing_running(tmp_path: Path) -> None:
    """A real ENOSPC: the grid's temporary files point at /dev/full, whose writes always fail so."""
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "uploader.toml.tmp").symlink_to("/dev/full")
    try:
        failed = _one_line_error(uploader("grid", "start", "--dir", str(grid), "--servers", "1"))
        assert "No space left on device" in failed and str(grid / "uploader.toml") in failed
        record = GridRecord.load(grid)
        assert record is not None and not any(is_running(s) for s in record.servers)
        assert not (grid / "uploader.toml.tmp").is_symlink()  # the failed write's leftover is removed

        assert uploader("grid", "start", "--dir", str(grid)).returncode == 0
        (grid / "grid.json.tmp").symlink_to("/dev/full")
        stopped = _one_line_error(uploader("grid", "stop", "--dir", str(grid)))
        assert "No space left on device" in stopped and "stopped the grid's servers" in stopped
        record = GridRecord.load(grid)
        assert record is not None and not any(is_running(s) for s in record.servers)
    finally:
        for leftover in ("uploader.toml.tmp", "grid.json.tmp"):
            (grid / leftover).unlink(missing_ok=True)
        uploader("grid", "stop", "--dir", str(grid))


def test_a_grid_in_a_non_bmp_or_undecodable_path(tmp_path: Path, isolated_home: Path) -> None:
    """An emoji in the path (json.dumps wrote it as surrogate escapes TOML rejects, so every later
    command failed with exit 3) gives a configuration later commands read; bytes that are not
    UTF-8 cannot go in uploader.toml, so start refuses before starting any server."""
    grid = tmp_path / "grid \U0001f600"
    assert uploader("grid", "start", "--dir", str(grid), "--servers", "1").returncode == 0
    try:
        source = tmp_path / "file"
        source.write_bytes(b"x" * 100)
        cap = uploader("cap", str(source))  # reads the grid's configuration through current-grid
        assert cap.returncode == 0, cap.stderr
        assert load_config(None, dict(os.environ), {}).data_dir == grid / "client"
    finally:
        assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0

    odd = tmp_path / os.fsdecode(b"grid-\xff")
    failed = _one_line_error(uploader("grid", "start", "--dir", str(odd), "--servers", "1"))
    assert "not UTF-8" in failed
    assert GridRecord.load(odd) is None and not (odd / "server-01").exists()


def _lock_holder(server_dir: Path) -> int | None:
    """The PID in server.lock when a server holds it, else None (the test's own view)."""
    fd = os.open(server_dir / "server.lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return int(os.pread(fd, 32, 0))
    finally:
        os.close(fd)
    return None


def test_start_adopts_a_running_server_missing_from_the_record(tmp_path: Path) -> None:
    """A record that lost a running server's PID (two starts raced, or one was interrupted): start
    records the running server instead of deleting its NURL and starting a second copy that exits
    on the server lock; stop then ends it."""
    grid = tmp_path / "grid"
    assert uploader("grid", "start", "--dir", str(grid), "--servers", "1").returncode == 0
    sdir = grid / "server-01"
    running = _lock_holder(sdir)
    try:
        nurl = (sdir / "nurl").read_text()
        record = GridRecord.load(grid)
        assert record is not None and record.servers[0].pid == running
        record.servers[0].pid = record.servers[0].started = None
        record.save(grid)
        again = uploader("grid", "start", "--dir", str(grid))
        assert again.returncode == 0, again.stderr
        adopted = GridRecord.load(grid)
        assert adopted is not None and adopted.servers[0].pid == running and is_running(adopted.servers[0])
        assert (sdir / "nurl").read_text() == nurl
        assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0
        assert _lock_holder(sdir) is None and not _alive(running or 0)
    finally:
        if running is not None and _alive(running):
            os.kill(running, 15)


def test_two_starts_at_once_record_exactly_the_running_servers(tmp_path: Path) -> None:
    grid = tmp_path / "grid"
    argv = [sys.executable, "-m", "uploader", "grid", "start", "--dir", str(grid), "--servers", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in "ab"
    ]
    results = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], results
        record = GridRecord.load(grid)
        assert record is not None
        assert [s.pid for s in record.servers] == [_lock_holder(grid / s.name) for s in record.servers]
    finally:
        assert uploader("grid", "stop", "--dir", str(grid)).returncode == 0
    assert all(_lock_holder(grid / f"server-0{i}") is None for i in (1, 2))


def test_start_and_stop_wait_for_the_grid_lock_then_refuse(tmp_path: Path) -> None:
    grid = tmp_path / "grid"
    grid.mkdir()
    fd = os.open(grid / "grid.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another start or stop is running
        with pytest.raises(GridError, match="another `grid start` or `grid stop` is running"):
            start_grid(grid, 1, lock_wait_s=0.2)
        assert not (grid / "server-01").exists() and GridRecord.load(grid) is None
        with pytest.raises(GridError, match="another `grid start` or `grid stop` is running"):
            stop_grid(grid, lock_wait_s=0.2)
    finally:
        os.close(fd)
