"""``get`` and ``verify`` against real storage servers on 127.0.0.1: round trips, ranges, LIT, bad caps,
flipped bytes on disk, missing shares, a server that stops answering, servers killed (before and
during a download), and memory that does not grow with the file."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.grid import read_share, servers_holding, share_files
from tests.helpers.localgrid import LocalGrid
from tools.rss_cap import measure
from uploader.chk.caps import ChkCap, LitCap
from uploader.chk.layout import unpack_header
from uploader.config import Config
from uploader.download import BufferSink, DownloadResult, DownloadSettings, FileSink
from uploader.gridclient import GridClient
from workers.base32 import b32encode
from workers.geometry import EncodingParams

pytestmark = pytest.mark.integration

MiB = 1 << 20


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with LocalGrid(tmp_path_factory.mktemp("grid"), 10) as g:
        yield g


def _cli(grid: LocalGrid, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "uploader", *args, "--config", str(grid.dir / "uploader.toml")]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=timeout)


def _get_command(cap: str, out: Path, config: Path, *flags: str) -> list[str]:
    """`get CAP -o OUT` with ``config``, as a user runs it."""
    return [sys.executable, "-m", "uploader", "get", cap, "-o", str(out), *flags, "--config", str(config)]


def _write(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


async def _put(
    client: GridClient, path: Path, k: int = 3, n: int = 10, seg: int = 65536, happy: int = 7
) -> ChkCap:
    result = await client.upload(path, params=EncodingParams(k, n, seg), happy=happy)
    assert isinstance(result.cap, ChkCap)
    return result.cap


def _put_sync(config: Config, path: Path, **kw: int) -> ChkCap:
    async def main() -> ChkCap:
        async with GridClient(config) as client:
            return await _put(client, path, **kw)

    return asyncio.run(main())


async def _get_file(client: GridClient, cap: ChkCap, out: Path, **kw: object) -> DownloadResult:
    offset = int(kw.get("offset", 0))  # type: ignore[call-overload]
    sink = FileSink(out, offset)
    try:
        result = await client.download(cap, sink, **kw)  # type: ignore[arg-type]
    except BaseException:
        sink.discard()
        raise
    sink.commit()
    return result


def _flip_share_byte(path: Path, pos: int) -> None:
    """Flip one bit of byte ``pos`` of the share inside a container file (share bytes start at 12)."""
    with path.open("r+b") as fh:
        fh.seek(12 + pos)
        byte = fh.read(1)
        fh.seek(12 + pos)
        fh.write(bytes([byte[0] ^ 0x10]))


def _advisories(grid_dir: Path, si: bytes) -> dict[str, set[int]]:
    """{server dir name: share numbers reported corrupt} from the servers' corruption-advisory files."""
    text = b32encode(si)
    out: dict[str, set[int]] = {}
    for path in grid_dir.glob(f"server-*/storage/corruption-advisories/*--{text}-*"):
        out.setdefault(path.parts[len(grid_dir.parts)], set()).add(int(path.name.rsplit("-", 1)[1]))
    return out


# --- round trips ------------------------------------------------------------------------------------


def test_round_trips_random_files_and_parameters(grid: LocalGrid, tmp_path: Path) -> None:
    rng = random.Random(6)

    async def main() -> None:
        async with GridClient(grid.config()) as client:
            for k, n, happy in [(3, 10, 7), (1, 1, 1), (2, 5, 4), (7, 12, 8), (5, 30, 10)]:
                seg = rng.choice([4096, 65536])
                for size in [56, rng.randint(57, 5000), seg * 3, rng.randint(seg * 2, 300_000)]:
                    path = tmp_path / f"in-{k}-{n}-{size}"
                    data = _write(path, size, rng.randrange(2**32))
                    cap = await _put(client, path, k, n, seg, happy)
                    out = tmp_path / "out"
                    result = await _get_file(client, cap, out)
                    assert out.read_bytes() == data, (k, n, size)
                    assert result.flat_hash_checked and not result.corrupt
                    used = sorted(s for nums in result.shares_used.values() for s in nums)
                    assert used == list(range(k)), "primary shares: nothing to erasure-decode"
                    for _ in range(2):
                        offset = rng.randrange(size)
                        length = rng.randrange(size - offset + 1)
                        sink = BufferSink(offset)
                        part = await client.download(cap, sink, offset=offset, length=length)
                        assert bytes(sink.data) == data[offset : offset + length]
                        assert part.length == length and not part.flat_hash_checked
            # A segment too big for the pool's shared-memory slots: its blocks travel inline.
            big = tmp_path / "big-segments"
            data = _write(big, 9 * MiB + 5, 99)
            cap = await _put(client, big, 3, 5, 8 * MiB, 4)
            assert 3 * (8 * MiB // 3) > client.pool.slot_size
            await _get_file(client, cap, tmp_path / "big-out")
            assert (tmp_path / "big-out").read_bytes() == data

    asyncio.run(main())


def test_get_command_stdout_file_range_and_json(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    data = _write(path, 3 * MiB + 333, 1)
    cap = str(_put_sync(grid.config(), path, seg=MiB))
    whole = _cli(grid, "get", cap)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == data
    assert cap.encode() not in whole.stderr
    part = _cli(grid, "get", cap, "--offset", str(MiB - 7), "--length", str(MiB + 20))
    assert part.returncode == 0 and part.stdout == data[MiB - 7 : 2 * MiB + 13]
    out = tmp_path / "out.bin"
    got = _cli(grid, "get", cap, "-o", str(out), "--json")
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data and oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    summary = json.loads(got.stdout)
    assert summary["size"] == len(data) and summary["whole_file_hash_checked"] is True
    assert summary["corrupt_shares"] == [] and cap not in got.stdout.decode()
    tail = _cli(grid, "get", cap, "--offset", str(len(data) - 5), "-o", str(out), "--json")
    assert tail.returncode == 0 and out.read_bytes() == data[-5:]
    assert json.loads(tail.stdout)["whole_file_hash_checked"] is False
    at_end = _cli(grid, "get", cap, "--offset", str(len(data)))
    assert at_end.returncode == 0 and at_end.stdout == b""
    past = _cli(grid, "get", cap, "--offset", str(len(data) + 1), "-o", str(out), "--json")
    assert past.returncode == 2 and out.read_bytes() == data[-5:]  # refused, the file left as it was
    assert (
        json.loads(past.stdout)["error"]
        == f"--offset {len(data) + 1} is past the end of the file ({len(data)} bytes)"
    )
    for bad in ("١٠", "1_0", " +5"):  # int() takes each as a number the user did not write
        odd = _cli(grid, "get", cap, f"--offset={bad}")
        assert odd.returncode == 2 and "in the digits 0-9" in odd.stderr.decode(), odd.stderr
        odd = _cli(grid, "get", cap, f"--length={bad}")
        assert odd.returncode == 2 and odd.stdout == b"", odd.stderr
    mixed = _cli(grid, "get", cap, "--json")
    assert mixed.returncode == 2 and b"-o FILE" in mixed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin", "out.bin"]  # no temp files left


def test_put_and_get_files_whose_names_are_not_utf8(grid: LocalGrid, tmp_path: Path) -> None:
    bad = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"in\xffname"))  # as argv hands it over
    data = _write(Path(bad), 300_000, 7)
    good = tmp_path / "good.bin"
    good.write_bytes(b"other" * 10_000)
    put = _cli(grid, "put", "--json", bad, str(good))
    assert put.returncode == 0, put.stderr
    rows = {r["file"]: r for r in map(json.loads, put.stdout.decode().splitlines())}  # UTF-8 JSON
    shown = str(tmp_path / "in") + "\\xffname"
    assert set(rows) == {shown, str(good)}  # both files got their caps
    human = _cli(grid, "put", bad, str(good))
    assert human.returncode == 0 and f"{shown}: {rows[shown]['cap']}".encode() in human.stdout
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out\xfe"))
    got = _cli(grid, "get", rows[shown]["cap"], "-o", out, "--json")
    assert got.returncode == 0, got.stderr
    assert Path(out).read_bytes() == data
    assert json.loads(got.stdout)["file"] == str(tmp_path / "out") + "\\xfe"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_lit_caps(grid: LocalGrid, tmp_path: Path) -> None:
    cap = str(LitCap(b"hello, small world"))
    got = _cli(grid, "get", cap)
    assert got.returncode == 0 and got.stdout == b"hello, small world"
    ranged = _cli(grid, "get", cap, "--offset", "7", "--length", "5", "-o", str(tmp_path / "lit"))
    assert ranged.returncode == 0 and (tmp_path / "lit").read_bytes() == b"small"
    assert _cli(grid, "get", cap, "--offset", "19").returncode == 2  # 18 bytes
    assert _cli(grid, "get", "URI:LIT:").stdout == b""
    verify = _cli(grid, "verify", cap, "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["healthy"] is True


def test_bad_caps_and_destinations_give_their_exit_codes(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    _write(path, 200_000, 2)
    cap = _put_sync(grid.config(), path)
    for text in ["not a cap", "URI:CHK:abc", str(cap)[:-3] + "0x1"]:
        bad = _cli(grid, "get", text)
        assert bad.returncode == 2, (text, bad.stderr)
    assert _cli(grid, "get", str(cap.verify_cap)).returncode == 2  # cannot decrypt
    unknown = ChkCap(os.urandom(16), cap.ueb_hash, 3, 10, 200_000)
    missing = _cli(grid, "get", str(unknown), "-o", str(tmp_path / "x"), "--json")
    assert missing.returncode == 6
    assert json.loads(missing.stdout)["error_class"] == "NotFound"
    assert json.loads(missing.stdout)["file"] == str(tmp_path / "x")  # CONVENTIONS: failed objects name it
    assert _cli(grid, "verify", str(unknown)).returncode == 6
    wrong_hash = ChkCap(cap.key, os.urandom(32), 3, 10, 200_000)
    assert _cli(grid, "get", str(wrong_hash), "-o", str(tmp_path / "x")).returncode == 5
    wrong_size = ChkCap(cap.key, cap.ueb_hash, 3, 10, 200_001)
    for _ in range(3):  # several opens fail at once; none of their errors is left unretrieved
        liar = _cli(grid, "get", str(wrong_size), "-o", str(tmp_path / "x"))
        assert liar.returncode == 5 and b"the cap says" in liar.stderr
        assert b"never retrieved" not in liar.stderr and b"Traceback" not in liar.stderr, liar.stderr
    assert not (tmp_path / "x").exists()
    assert _cli(grid, "get", str(cap), "-o", str(tmp_path)).returncode == 7  # a directory
    assert _cli(grid, "get", str(cap), "-o", str(tmp_path / "no" / "such" / "dir")).returncode == 7
    assert not _advisories(grid.dir, cap.storage_index), "wrong caps must not accuse good shares"


def test_outputs_that_are_not_plain_new_files(grid: LocalGrid, tmp_path: Path) -> None:
    """-o to a device or FIFO writes in place (as `tahoe get` and a shell redirection do), through a
    symlink writes its target, over a file keeps its mode; through the daemon client the same."""
    path = tmp_path / "in.bin"
    data = _write(path, 700_000, 9)
    cap = str(_put_sync(grid.config(), path))
    lit = str(LitCap(b"tiny"))
    for c, want in ((cap, data), (lit, b"tiny")):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda f=fifo, g=got: g.append(f.read_bytes()))
        reader.start()
        res = _cli(grid, "get", c, "-o", str(fifo))
        reader.join(60)
        assert res.returncode == 0, res.stderr
        assert got == [want] and stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO, not a file
        fifo.unlink()
        zero = tmp_path / "null"  # a character device of our own: /dev/null's numbers
        os.mknod(zero, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        assert _cli(grid, "get", c, "-o", str(zero)).returncode == 0
        assert stat.S_ISCHR(zero.lstat().st_mode)
        zero.unlink()
        target, link = tmp_path / "target.bin", tmp_path / "link"
        link.symlink_to(target.name)
        assert _cli(grid, "get", c, "-o", str(link)).returncode == 0
        assert link.is_symlink() and target.read_bytes() == want
        link.unlink()
        target.write_bytes(b"old")
        target.chmod(0o600)
        assert _cli(grid, "get", c, "-o", str(target)).returncode == 0
        assert target.read_bytes() == want and target.stat().st_mode & 0o777 == 0o600
        target.unlink()
    huge = str(ChkCap(os.urandom(16), os.urandom(32), 3, 10, 2**64))  # no file is that large
    refused = _cli(grid, "get", huge, "-o", str(tmp_path / "x"))
    assert refused.returncode == 2 and b"2**64" in refused.stderr and b"Traceback" not in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin"]  # no temp files left


def test_sigterm_and_sighup_leave_the_old_file_and_no_temp_file(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    _write(path, 96 * MiB, 10)
    cap = str(_put_sync(grid.config(), path, seg=MiB))
    out = tmp_path / "out.bin"
    for signum in (signal.SIGTERM, signal.SIGHUP):
        out.write_bytes(b"old")
        proc = subprocess.Popen(
            _get_command(cap, out, grid.dir / "uploader.toml"), cwd=REPO, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".part") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # into the download
        proc.send_signal(signum)
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode == 128 + signum, err  # would be 0 had the download already ended
        assert b"terminated by SIG" in err and b"Traceback" not in err, err
        assert out.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin", "out.bin"]


def test_json_names_servers_that_could_not_be_reached(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    data = _write(path, 300_000, 12)
    cap = str(_put_sync(grid.config(), path))
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = dead.getsockname()[1]
        config = tmp_path / "plus-one.toml"
        config.write_text(
            (grid.dir / "uploader.toml").read_text()
            + f'\n[[servers]]\nnurl = "pb://{"A" * 43}@127.0.0.1:{port}/{"b" * 32}#v=1"\n'
        )
        out = tmp_path / "out.bin"
        got = subprocess.run(
            _get_command(cap, out, config, "--json"), cwd=REPO, capture_output=True, timeout=120
        )
        # no share on the servers that are up, one server down: both commands say 4 (it may be there)
        unknown = str(ChkCap(os.urandom(16), os.urandom(32), 3, 10, 300_000))
        for command in ("get", "verify"):
            absent = subprocess.run([sys.executable, "-m", "uploader", command, unknown, "--config", str(config)],
                                    cwd=REPO, capture_output=True, timeout=120)  # fmt: skip
            assert absent.returncode == 4 and f"127.0.0.1:{port}".encode() in absent.stderr, (command, absent)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data
    assert [name for name in json.loads(got.stdout)["failed_servers"]] == [f"127.0.0.1:{port}"]


def test_a_stdout_that_cannot_be_written_is_exit_7(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    _write(path, 200_000, 11)
    cap = str(_put_sync(grid.config(), path))
    cmd = [sys.executable, "-m", "uploader", "get", cap, "--config", str(grid.dir / "uploader.toml")]
    closed = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                            preexec_fn=lambda: os.close(1))  # fmt: skip
    assert closed.returncode == 7 and b"stdout is closed" in closed.stderr, closed.stderr
    with open("/dev/full", "wb") as full:
        json_to_full = subprocess.run([*cmd, "--json", "-o", str(tmp_path / "o.bin")], cwd=REPO, stdout=full,
                                      stderr=subprocess.PIPE, timeout=120)  # fmt: skip
    assert json_to_full.returncode == 7, json_to_full.stderr
    assert b"cannot write to stdout" in json_to_full.stderr and b"Traceback" not in json_to_full.stderr


# --- corruption, missing shares, slow servers ------------------------------------------------------


def test_flipped_bytes_are_detected_reported_and_replaced(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    data = _write(path, 700_000, 3)
    cap = _put_sync(grid.config(), path, seg=32768, happy=10)
    files = share_files(grid.dir, cap.storage_index)
    by_shnum = {shnum: p for p, shnum in files.items()}
    assert sorted(by_shnum) == list(range(10))
    rng = random.Random(4)
    flipped = [0, 1, 2, *rng.sample(range(3, 10), 4)]  # N - k = 7 share files, the primaries among them
    positions = {}
    for shnum in flipped:
        share = read_share(by_shnum[shnum])
        layout = unpack_header(share)
        if shnum < 3:  # in a block: the download must notice
            pos = rng.randrange(layout.data, layout.plaintext_hash_tree)
        else:  # anywhere at all: verify must notice
            pos = rng.randrange(len(share))
        _flip_share_byte(by_shnum[shnum], pos)
        positions[shnum] = pos

    async def main() -> tuple[DownloadResult, object]:
        async with GridClient(grid.config()) as client:
            result = await _get_file(client, cap, tmp_path / "out")
            report = await client.verify(cap)
        return result, report

    result, report = asyncio.run(main())
    assert (tmp_path / "out").read_bytes() == data
    reported = {c.shnum for c in result.corrupt}
    assert {0, 1, 2} <= reported <= set(flipped)
    holders = servers_holding(grid.dir, cap.storage_index)
    advised = _advisories(grid.dir, cap.storage_index)
    for shnum in reported:
        server = next(name for name, shares in holders.items() if shnum in shares)
        assert shnum in advised.get(server, set()), f"share {shnum} was not reported to {server}"
    assert {s.shnum for s in report.corrupt} == set(flipped)  # type: ignore[attr-defined]
    assert report.good == set(range(10)) - set(flipped)  # type: ignore[attr-defined]
    assert not report.healthy and report.recoverable  # type: ignore[attr-defined]

    text = _cli(grid, "verify", str(cap))
    assert text.returncode == 5 and b"unhealthy (recoverable)" in text.stdout

    # N - k + 1 shares with a bad block for segment 0: it cannot be decoded. (A share with a bad block
    # elsewhere, or a flip in bytes a download never reads, may still serve other segments.)
    for shnum in [*flipped, next(s for s in range(10) if s not in flipped)]:
        layout = unpack_header(read_share(by_shnum[shnum]))
        pos = layout.data + rng.randrange(layout.block_size)
        if pos != positions.get(shnum):
            _flip_share_byte(by_shnum[shnum], pos)
    out = tmp_path / "never"
    failed = _cli(grid, "get", str(cap), "-o", str(out))
    assert failed.returncode == 5, failed.stderr
    assert b"only 2 good shares" in failed.stderr
    assert not out.exists() and not list(tmp_path.glob(".never.*"))
    assert _cli(grid, "verify", str(cap)).returncode == 5


def test_verify_healthy_then_missing_shares(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    data = _write(path, 1_000_000, 5)
    cap = _put_sync(grid.config(), path, happy=10)
    healthy = _cli(grid, "verify", str(cap), "--json")
    assert healthy.returncode == 0, healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["healthy"] and report["good_shares"] == list(range(10)) and report["missing_shares"] == []
    assert all(s["status"] == "good" for s in report["shares"]) and len(report["shares"]) == 10
    as_text = _cli(grid, "verify", str(cap.verify_cap))  # a verify cap is enough
    assert as_text.returncode == 0 and as_text.stdout.decode().rstrip().endswith("healthy")

    files = sorted(share_files(grid.dir, cap.storage_index).items(), key=lambda item: item[1])
    for p, _ in files[:4]:
        p.unlink()
    missing = _cli(grid, "verify", str(cap), "--json")
    assert missing.returncode == 5
    report = json.loads(missing.stdout)
    assert report["missing_shares"] == [0, 1, 2, 3] and report["recoverable"] and not report["healthy"]
    got = _cli(grid, "get", str(cap))
    assert got.returncode == 0 and got.stdout == data  # decoded from shares 4, 5, 6
    for p, _ in files[4:9]:
        p.unlink()
    gone = _cli(grid, "get", str(cap), "-o", str(tmp_path / "x"))
    assert gone.returncode == 4 and b"only 1 good share " in gone.stderr
    assert json.loads(_cli(grid, "verify", str(cap), "--json").stdout)["recoverable"] is False


def test_a_server_that_stops_answering_mid_download_is_worked_around(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    data = _write(path, 6 * MiB, 7)
    cap = _put_sync(grid.config(), path, seg=65536, happy=10)
    holder = next(
        name for name, shares in servers_holding(grid.dir, cap.storage_index).items() if 0 in shares
    )
    pid = grid.pids()[holder]
    stopped_at: list[int] = []

    def progress(done: int) -> Callable[[int], None]:
        total = [0]

        def step(n: int) -> None:
            total[0] += n
            if not stopped_at and total[0] >= done:
                os.kill(pid, signal.SIGSTOP)
                stopped_at.append(total[0])

        return step

    async def main() -> DownloadResult:
        async with GridClient(grid.config()) as client:
            settings = DownloadSettings(window=16, read_size=256 * 1024, hedge_min_s=0.5)
            return await _get_file(client, cap, tmp_path / "out", progress=progress(MiB), settings=settings)

    try:
        result = asyncio.run(main())
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (tmp_path / "out").read_bytes() == data
    assert stopped_at and stopped_at[0] < len(data), "the server stopped mid-download"
    used = {s for nums in result.shares_used.values() for s in nums}
    assert used - {0, 1, 2}, "another share took over from the stopped server's"


def test_memory_does_not_grow_with_file_size(grid: LocalGrid, tmp_path: Path) -> None:
    peaks = {}
    for size in (16 * MiB, 128 * MiB):
        path = tmp_path / "in.bin"
        with path.open("wb") as fh:
            for i in range(size // MiB):
                fh.write(random.Random(i).randbytes(MiB))
        cap = _put_sync(grid.config(), path, seg=MiB)
        path.unlink()
        cmd = [sys.executable, "-m", "uploader", "get", str(cap), "-o", str(tmp_path / "out")]
        result = measure([*cmd, "--config", str(grid.dir / "uploader.toml")], dict(os.environ))
        assert result["exit_code"] == 0, result["stderr"]
        assert (tmp_path / "out").stat().st_size == size
        peaks[size] = (result["peak_rss_network_process_mib"], result["peak_pss_tree_mib"])
    print(json.dumps(peaks))
    (rss_small, pss_small), (rss_big, pss_big) = peaks[16 * MiB], peaks[128 * MiB]
    assert rss_big <= rss_small + 24 and pss_big <= pss_small + 40, peaks


# --- servers killed ----------------------------------------------------------------------------------


@pytest.fixture
def doomed_grid(tmp_path: Path) -> Iterator[LocalGrid]:
    """A grid of its own: these tests kill its servers."""
    with LocalGrid(tmp_path / "doomed", 10) as g:
        yield g


def test_servers_killed_mid_download_and_n_minus_k_stopped(doomed_grid: LocalGrid, tmp_path: Path) -> None:
    grid = doomed_grid
    lone_path = tmp_path / "lone.bin"
    _write(lone_path, 1000, 9)
    lone = _put_sync(grid.config(), lone_path, k=1, n=1, happy=1)  # its one share on one server
    (lone_holder,) = servers_holding(grid.dir, lone.storage_index)
    path = tmp_path / "in.bin"
    data = _write(path, 5 * MiB, 8)
    cap = _put_sync(grid.config(), path, seg=65536, happy=10)
    holders = {
        shnum: name
        for name, shares in servers_holding(grid.dir, cap.storage_index).items()
        for shnum in shares
    }
    assert len(set(holders.values())) == 10, "one share per server"
    killed_at: list[int] = []

    def progress(n: int) -> None:
        if not killed_at:
            grid.kill(holders[1])
            killed_at.append(n)

    async def main() -> DownloadResult:
        async with GridClient(grid.config()) as client:
            return await _get_file(client, cap, tmp_path / "out", progress=progress)

    result = asyncio.run(main())
    assert (tmp_path / "out").read_bytes() == data
    assert killed_at and killed_at[0] < len(data), "the server died mid-download"
    assert {s for nums in result.shares_used.values() for s in nums} - {0, 1, 2}, "another share took over"

    for shnum in (0, 2, 3, 4, 5, 6):  # with share 1's: N - k = 7 servers down
        grid.kill(holders[shnum])
    got = _cli(grid, "get", str(cap), "-o", str(tmp_path / "decoded"), "--json")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "decoded").read_bytes() == data
    assert sorted(s for nums in json.loads(got.stdout)["shares_used"].values() for s in nums) == [7, 8, 9]
    report = _cli(grid, "verify", str(cap), "--json")
    assert report.returncode == 5
    parsed = json.loads(report.stdout)
    assert parsed["good_shares"] == [7, 8, 9] and parsed["recoverable"]
    assert sum(1 for why in parsed["servers"].values() if why) == 7

    grid.kill(holders[7])
    failed = _cli(grid, "get", str(cap), "-o", str(tmp_path / "never"))
    assert failed.returncode == 4, failed.stderr
    assert not (tmp_path / "never").exists()

    # A file whose only share is on a server that is down is not "absent" (6): too few servers (4).
    if lone_holder in {holders[8], holders[9]}:  # else it is down already
        grid.kill(lone_holder)
    unreachable = _cli(grid, "get", str(lone), "-o", str(tmp_path / "lone"))
    assert unreachable.returncode == 4, unreachable.stderr
    assert b"only 0 good shares" in unreachable.stderr and b"127.0.0.1:" in unreachable.stderr
    assert _cli(grid, "verify", str(lone)).returncode == 4  # as get: it may be fine, servers are down
