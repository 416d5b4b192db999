"""The daemon end to end: real `serve` processes on 127.0.0.1 port 0, a real local grid, stock Tahoe's CLI.

Checks: Tahoe's web API (stock `tahoe put -u` / `tahoe get -u`, bit-exact), the notify protocol on a
datagram socket bound here, SIGHUP resizing the pool under load, SIGTERM draining an upload, 20
concurrent PUTs read back, bounded memory, bad requests' statuses with nothing left behind, `put`/`get`
through the daemon, and no read cap in the log or /status.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.localgrid import LocalGrid
from tools.daemon import spawn_serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with LocalGrid(tmp_path_factory.mktemp("grid"), servers=10) as g:
        yield g


def _config(grid: LocalGrid, directory: Path, **overrides: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "api_listen": "127.0.0.1:0",
        "workers": 2,
        "window": 4,
        "data_dir": directory / "data",
        "shutdown_timeout_s": 60.0,
    }
    values.update(overrides)
    return write_config(grid.dir / "uploader.toml", directory / "uploader.toml", **values)


@pytest.fixture(scope="module")
def daemon(grid: LocalGrid, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    work = tmp_path_factory.mktemp("daemon")
    d = DaemonProcess(_config(grid, work), work)
    d.start()
    yield d
    assert d.stop() == 0
    assert "URI:CHK:" not in d.log() and "URI:LIT:" not in d.log()  # read caps are secrets


def _put(d: DaemonProcess, data: bytes) -> str:
    code, _, body = d.request("PUT", "/uri", body=data)
    assert code == 200, body
    return body.decode().strip()


def _get(d: DaemonProcess, cap: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    code, _, body = d.request("GET", "/uri/" + cap.replace(":", "%3A"), headers=headers)
    return code, body


def _spool(d: DaemonProcess) -> list[str]:
    return sorted(os.listdir(d.workdir / "data" / "spool"))


# ---- Tahoe compatibility -------------------------------------------------------------------------
def test_stock_tahoe_cli_put_and_get(daemon: DaemonProcess, tahoe_bin: Path, tmp_path: Path) -> None:
    home = tmp_path / "tahoe-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    src = tmp_path / "src.bin"
    src.write_bytes(random.Random(7).randbytes(3 * 1024 * 1024 + 17))
    put = subprocess.run(
        [str(tahoe_bin), "put", "-u", daemon.url, str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert put.returncode == 0, put.stderr
    cap = put.stdout.strip()
    assert cap.startswith("URI:CHK:") and cap.endswith(f":{src.stat().st_size}")
    out = tmp_path / "out.bin"
    get = subprocess.run(
        [str(tahoe_bin), "get", "-u", daemon.url, cap, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()
    # the same file through POST /uri?t=upload gets the same (convergent) cap
    boundary = "xyzzy"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="t"\r\n\r\nupload\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="src.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + src.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    code, _, body = daemon.request(
        "POST",
        "/uri?t=upload",
        body=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (code, body.decode().strip()) == (200, cap)
    code, headers, body = daemon.request("GET", f"/uri/{cap}?t=json")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    kind, info = json.loads(body)
    assert kind == "filenode" and info["ro_uri"] == cap and info["size"] == src.stat().st_size
    assert (
        info["mutable"] is False
        and info["format"] == "CHK"
        and info["verify_uri"].startswith("URI:CHK-Verifier:")
    )
    code, headers, body = daemon.request("GET", f"/uri/{cap}", headers={"Range": "bytes=1048570-2097160"})
    assert code == 206 and body == src.read_bytes()[1048570:2097161]
    assert headers["Content-Range"] == f"bytes 1048570-2097160/{src.stat().st_size}"


# ---- many uploads at once, memory ------------------------------------------------------------------
def test_twenty_concurrent_puts_read_back_and_memory_bounded(daemon: DaemonProcess) -> None:
    rng = random.Random(20)
    sizes = [0, 1, 55, 56, 4096, 100_000, 1024 * 1024 - 1, 1024 * 1024 + 1]
    sizes += [rng.randrange(1, 6 * 1024 * 1024) for _ in range(10)]
    blobs = [rng.randbytes(n) for n in sizes]
    blobs += [blobs[-1], blobs[-2]]  # the same file twice at once: same cap
    proc = psutil.Process(daemon.pid)
    peak = proc.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(20) as pool:
            caps = list(pool.map(lambda b: _put(daemon, b), blobs))
    finally:
        done.set()
        sampler.join()
    for blob, cap in zip(blobs, caps, strict=True):
        assert cap.startswith("URI:LIT:" if len(blob) <= 55 else "URI:CHK:")
        assert cap.endswith(f":{len(blob)}") or cap.startswith("URI:LIT:")
        assert _get(daemon, cap) == (200, blob)
    assert caps[-2] == caps[-3] and caps[-1] == caps[-4]
    total = sum(sizes)
    # The network process holds a few chunks per request plus the shared-memory slots it touches
    # (8 uploads x window 4); never the bodies: ~60 MB went through it.
    print(f"daemon peak RSS {peak / 2**20:.0f} MiB for {total / 2**20:.0f} MiB in 20 concurrent PUTs")
    assert peak < 400 * 2**20
    assert _spool(daemon) == []
    status = daemon.status()
    assert "URI:" not in json.dumps(status)
    assert status["transfers"]["active"] == []
    assert any(
        t["kind"] == "upload" and t["stage"] == "done" and t["storage_index"]
        for t in status["transfers"]["recent"]
    )
    code, headers, metrics = daemon.request("GET", "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'uploader_transfers_total{kind="upload",result="ok"}' in metrics
    assert b"uploader_network_process_utilisation" in metrics and b"uploader_workers 2.0" in metrics


# ---- bad requests ------------------------------------------------------------------------------
def _raw(d: DaemonProcess, data: bytes, *, shut: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", d.port), timeout=30) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_bad_requests_get_the_right_4xx_and_leave_nothing(daemon: DaemonProcess) -> None:
    good = _put(daemon, random.Random(3).randbytes(200_000))
    cases = [
        ("GET", "/uri/URI:CHK:nonsense", {}, b"", 400, "bad cap"),
        ("GET", "/uri/" + good.replace(":3:10:", ":11:10:"), {}, b"", 400, "bad cap"),
        ("DELETE", "/uri", {}, b"", 405, "accepts PUT, POST"),
        ("PUT", f"/uri/{good}", {}, b"x", 405, "accepts GET"),
        ("GET", "/nowhere", {}, b"", 404, "no such resource"),
        ("PUT", "/uri?mutable=true", {}, b"x", 400, "immutable"),
        ("POST", "/uri?t=upload", {"Content-Type": "text/plain"}, b"x", 415, "multipart/form-data"),
        (
            "POST",
            "/uri?t=upload",
            {"Content-Type": "multipart/form-data; boundary=b"},
            b'--b\r\nContent-Disposition: form-data; name="t"\r\n\r\nupload\r\n--b--\r\n',
            400,
            "no 'file' field",
        ),
        ("GET", f"/uri/{good}", {"Range": "bytes=999999-"}, b"", 416, "range starts"),
    ]
    for method, path, headers, body, status, words in cases:
        code, got_headers, text = daemon.request(method, path, body=body, headers=headers)
        assert code == status, (method, path, text)
        assert got_headers["Content-Type"].startswith("text/plain") and words in text.decode(), text
        assert good not in text.decode()
    assert daemon.request("DELETE", "/uri")[1]["Allow"] == "PUT, POST"
    unsatisfiable = daemon.request("GET", f"/uri/{good}", headers={"Range": "bytes=999999-"})[1]
    assert unsatisfiable["Content-Range"] == "bytes */200000"  # RFC 9110 §15.5.17
    # a cap of the right form that no server holds
    missing = "URI:CHK:" + "a" * 26 + ":" + "a" * 52 + ":3:10:100000"
    code, headers, text = daemon.request("GET", "/uri/" + missing)
    assert code == 404 and headers["X-Uploader-Exit-Code"] == "6", text
    # oversized header
    reply = _raw(daemon, b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]
    # broken chunked framing
    reply = _raw(daemon, b"PUT /uri HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
    assert b" 400 " in reply.split(b"\r\n")[0]
    # bodies that end early: the client goes away mid-body
    for head in (
        b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n",
        b"POST /uri?t=upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b'Content-Length: 3000000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n',
    ):
        _raw(daemon, head + b"a" * 500_000, shut=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = daemon.status()
        truncated = status["transfers"]["recent"][:2]
        if not status["transfers"]["active"] and all("ended early" in t.get("error", "") for t in truncated):
            break
        time.sleep(0.05)
    assert all(t["stage"] == "failed" and "ended early" in t["error"] for t in truncated), truncated
    assert _spool(daemon) == []  # nothing half-done: no spool file, no upload started
    assert _get(daemon, good)[0] == 200  # still serving


def _downloads(d: DaemonProcess, result: str) -> float:
    """uploader_transfers_total of downloads with ``result``, from /metrics (0 when absent)."""
    key = f'uploader_transfers_total{{kind="download",result="{result}"}} '
    for line in d.request("GET", "/metrics")[2].decode().splitlines():
        if line.startswith(key):
            return float(line.split()[-1])
    return 0.0


def test_a_download_whose_client_leaves_is_cancelled_not_failed(daemon: DaemonProcess) -> None:
    cap = _put(daemon, random.Random(14).randbytes(12 * 1024 * 1024))
    failed, cancelled = _downloads(daemon, "failed"), _downloads(daemon, "cancelled")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", daemon.port))
        s.sendall(f"GET /uri/{cap} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")  # the download is under way
    deadline = time.monotonic() + 30
    while True:
        recent = [t for t in daemon.status()["transfers"]["recent"] if t["kind"] == "download"]
        if recent and recent[0]["size"] == 12 * 1024 * 1024:
            break
        assert time.monotonic() < deadline, "the download never ended"
        time.sleep(0.05)
    assert recent[0]["stage"] == "cancelled" and "client went away" in recent[0]["error"], recent[0]
    assert (_downloads(daemon, "failed"), _downloads(daemon, "cancelled")) == (failed, cancelled + 1)


def _answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One answer off ``sock``: its status line and headers, and its body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields.get(b"Content-Length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head, body


def test_expect_100_continue_is_answered_after_the_checks(daemon: DaemonProcess) -> None:
    body = random.Random(5).randbytes(300_000)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
        s.sendall(b"PUT /uri HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 300000\r\n\r\n")
        assert _answer(s)[0] == b"HTTP/1.1 100 Continue"
        s.sendall(body)
        head, cap = _answer(s)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert _get(daemon, cap.decode().strip()) == (200, body)
    # refused before the body is sent: the final answer comes instead of 100 Continue, and the
    # connection is not kept (its unsent body would be read as the next request)
    for head, status, words in (
        (b"PUT /uri?mutable=true HTTP/1.1\r\nContent-Length: 300000\r\n", 400, b"immutable"),
        (b"PUT /uri HTTP/1.1\r\nContent-Length: %d\r\n" % (2**50 + 1), 413, b"at most"),
        (
            b"POST /uri?t=upload HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n",
            415,
            b"multipart",
        ),
        (b"PUT /uri/URI:CHK:x HTTP/1.1\r\nContent-Length: 5\r\n", 405, b"accepts GET"),
        (b"PUT /uri HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 5\r\n", 417, b"100-continue"),
    ):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
            expect = b"" if b"Expect" in head else b"Expect: 100-continue\r\n"
            s.sendall(head + b"Host: x\r\n" + expect + b"\r\n")
            answer, text = _answer(s)
        assert answer.startswith(b"HTTP/1.1 %d " % status), (head, answer)
        assert b"Connection: close" in answer and words in text, (answer, text)
    assert _spool(daemon) == []


def test_bodies_are_stored_as_sent_and_a_stalled_body_is_408(grid: LocalGrid, tmp_path: Path) -> None:
    import gzip

    with DaemonProcess(_config(grid, tmp_path, request_timeout_s=3.0), tmp_path) as d:
        # Content-Encoding is not undone (as in Tahoe): the cap is that of the bytes sent
        packed = gzip.compress(b"hello " * 1000)
        code, _, body = d.request("PUT", "/uri", body=packed, headers={"Content-Encoding": "gzip"})
        assert code == 200, body
        assert _get(d, body.decode().strip()) == (200, packed)
        # a body that goes silent: 408 once request_timeout_s passes, and nothing left behind
        reply = _raw(d, b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 1000)
        assert b" 408 " in reply.split(b"\r\n")[0] and b"stalled" in reply, reply[:300]
        assert _spool(d) == []
        assert d.status()["transfers"]["recent"][0]["stage"] == "failed"


def test_a_second_daemon_on_the_same_data_dir_touches_nothing(
    daemon: DaemonProcess, grid: LocalGrid, tmp_path: Path
) -> None:
    """A second `serve` with a running daemon's data_dir exits 3 naming it, and the first one's
    in-flight body (a spool file no journal claims yet) survives and is uploaded."""
    body = random.Random(8).randbytes(300_000)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=60) as s:
        s.sendall(b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" + body[:1000])
        deadline = time.monotonic() + 30
        while not _spool(daemon):
            assert time.monotonic() < deadline, "the body never reached the spool"
            time.sleep(0.02)
        spooled = _spool(daemon)
        # the same data_dir, and the same port (as a unit started twice would have)
        config = _config(
            grid, tmp_path, data_dir=daemon.workdir / "data", api_listen=f"127.0.0.1:{daemon.port}"
        )
        env = {**os.environ, "HOME": str(tmp_path)}
        env.pop("NOTIFY_SOCKET", None)
        second = subprocess.run(
            [sys.executable, "-m", "uploader", "serve", "--config", str(config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3, second.stderr
        assert _spool(daemon) == spooled  # the first daemon's body is still there
        assert f"data_dir {daemon.workdir / 'data'} is in use" in second.stderr, second.stderr
        assert f"pid {daemon.pid}" in second.stderr, second.stderr
        s.sendall(body[1000:])
        head, cap = _answer(s)
    assert head.startswith(b"HTTP/1.1 200 "), (head, cap)
    assert _get(daemon, cap.decode().strip()) == (200, body)


# ---- put/get through the daemon ------------------------------------------------------------------
def test_one_ctrl_c_stops_a_put_waiting_on_a_daemon_that_does_not_answer(
    grid: LocalGrid, tmp_path: Path
) -> None:
    """A "daemon" that takes the request and never answers: the first Ctrl-C ends put (130); its
    transfer thread, blocked in recv, must not hold the process."""
    src = tmp_path / "a.bin"
    src.write_bytes(random.Random(14).randbytes(100_000))
    deaf = socket.socket()
    deaf.bind(("127.0.0.1", 0))
    deaf.listen(8)
    env = {**os.environ, "UPLOADER_DAEMON": f"http://127.0.0.1:{deaf.getsockname()[1]}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uploader", "put", str(src), "--config", str(grid.dir / "uploader.toml")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deaf.settimeout(60)
    conn, _ = deaf.accept()
    try:
        conn.settimeout(60)
        received = b""
        while len(received) < 100_000:  # the whole request arrived: put now waits for the answer
            more = conn.recv(1 << 16)
            assert more, received[:200]
            received += more
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("one Ctrl-C did not stop put while the daemon kept it waiting")
        assert proc.returncode == 130, err
        assert out == b"" and err.decode().strip() == "uploader: interrupted"
    finally:
        conn.close()
        deaf.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_flags_the_daemon_cannot_honour_are_refused_and_no_daemon_works_alone(
    daemon: DaemonProcess, grid: LocalGrid, tmp_path: Path
) -> None:
    """Through the daemon, put's encoding and pool flags would be dropped (other caps than asked
    for, exit 0): they are refused, naming them, before the daemon is asked. --no-daemon runs the
    command in this process with them."""
    src = tmp_path / "a.bin"
    src.write_bytes(random.Random(13).randbytes(400_000))
    secret = tmp_path / "secret"
    secret.write_text("a" * 52 + "\n")
    env = {**os.environ, "UPLOADER_DAEMON": daemon.url}
    run = [sys.executable, "-m", "uploader"]
    config = ["--config", str(grid.dir / "uploader.toml")]
    uploads = daemon.log().count("received")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run, *args, *config], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    for flags, named in (
        (["-k", "2"], "--shares-needed"),
        (["--happy", "5", "--window", "4"], "--happy, --window"),
        (["--convergence-secret-file", str(secret)], "--convergence-secret-file"),
    ):
        refused = cli("put", *flags, str(src))
        assert refused.returncode == 2, refused.stderr
        assert f"{named} " in refused.stderr and "--no-daemon" in refused.stderr, refused.stderr
        assert refused.stdout == ""
    by_env = subprocess.run(
        [*run, "put", str(src), *config],
        cwd=REPO,
        env={**env, "UPLOADER_SHARES_NEEDED": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_env.returncode == 2 and "UPLOADER_SHARES_NEEDED does not apply" in by_env.stderr, by_env.stderr
    assert daemon.log().count("received") == uploads  # none reached the daemon
    alone = cli("put", "--no-daemon", "--json", "-k", "2", "--convergence-secret-file", str(secret), str(src))
    assert alone.returncode == 0, alone.stderr
    cap = json.loads(alone.stdout)["cap"]
    assert cap.endswith(":2:10:400000")
    assert daemon.log().count("received") == uploads  # uploaded in this process
    refused = cli("get", "--workers", "2", cap)
    assert refused.returncode == 2 and "--workers " in refused.stderr, refused.stderr
    out = tmp_path / "out.bin"
    got = cli("get", "--no-daemon", "--workers", "2", cap, "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == src.read_bytes()


def test_put_and_get_commands_use_the_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(random.Random(11).randbytes(1_500_000))
    env = {**os.environ, "UPLOADER_DAEMON": daemon.url}
    run = [sys.executable, "-m", "uploader"]
    uploads = daemon.log().count("received")
    put = subprocess.run(
        [*run, "put", "--json", str(src)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert put.returncode == 0, put.stderr
    line = json.loads(put.stdout)
    cap = line["cap"]
    assert line["size"] == 1_500_000 and line["share_bytes_sent"] > 1_500_000 * 10 // 3  # as without a daemon
    assert daemon.log().count("received") == uploads + 1  # the daemon did the upload
    out = tmp_path / "out.bin"
    get = subprocess.run(
        [*run, "get", cap, "-o", str(out)], cwd=REPO, env=env, capture_output=True, timeout=120
    )
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()
    mask = os.umask(0)
    os.umask(mask)
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~mask)  # as one-shot `get` makes it
    # Handing the work to the daemon must stay cheap: no HTTP client stack, no network stack, no pool.
    lean = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from uploader.cli import main; code = main(sys.argv[1:]); "
            "heavy = sorted(m for m in ('aiohttp', 'uploader.gbs', 'uploader.supervisor') if m in sys.modules); "
            "print(heavy, file=sys.stderr); sys.exit(code or bool(heavy))",
            "get",
            cap,
            "-o",
            str(tmp_path / "lean.bin"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lean.returncode == 0, lean.stderr
    assert (tmp_path / "lean.bin").read_bytes() == src.read_bytes()
    part = subprocess.run(
        [*run, "get", cap, "--offset", "1000", "--length", "5000"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert part.returncode == 0 and part.stdout == src.read_bytes()[1000:6000]
    missing = "URI:CHK:" + "a" * 26 + ":" + "a" * 52 + ":3:10:100000"
    gone = subprocess.run(
        [*run, "get", missing, "-o", str(tmp_path / "x")], cwd=REPO, env=env, capture_output=True
    )
    assert gone.returncode == 6 and not (tmp_path / "x").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []


# ---- systemd notify, signals -------------------------------------------------------------------
def test_notify_ready_watchdog_and_sigterm_drain(grid: LocalGrid, tmp_path: Path) -> None:
    d = DaemonProcess(_config(grid, tmp_path), tmp_path, abstract=True, watchdog_usec=200_000)
    try:
        d.start()
        # READY came only once the API accepts connections: a connection right now must succeed
        socket.create_connection(("127.0.0.1", d.port), timeout=5).close()
        ready = next(i for i, m in enumerate(d.messages) if "READY" in m)
        assert any("STATUS" in m and "starting" in m["STATUS"] for m in d.messages[:ready])
        assert d.messages[ready]["READY"] == "1" and d.messages[ready]["MAINPID"] == str(d.pid)
        deadline = time.monotonic() + 30
        while sum("WATCHDOG" in m for m in d.messages) < 3 and time.monotonic() < deadline:
            d.poll_messages()
        assert sum(m.get("WATCHDOG") == "1" for m in d.messages) >= 3
        # SIGTERM while an upload runs: it finishes (drained), then the daemon exits 0
        blob = random.Random(5).randbytes(24 * 1024 * 1024)
        result: dict[str, str] = {}
        uploader = threading.Thread(target=lambda: result.setdefault("cap", _put(d, blob)))
        uploader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            active = d.status()["transfers"]["active"]
            if active and active[0]["stage"] in ("hashing", "uploading"):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the upload never became active")
        mark = len(d.messages)
        d.signal(signal.SIGTERM)
        stopping = d.wait_for("STOPPING", 10, after=mark)
        assert stopping["STOPPING"] == "1"
        uploader.join(120)
        assert d.proc is not None and d.proc.wait(120) == 0
        assert "cap" in result and result["cap"].endswith(f":{len(blob)}")
        assert "cancelled" not in d.log()
    finally:
        d.stop()
    # read it back through a fresh daemon
    with DaemonProcess(_config(grid, tmp_path / "again"), tmp_path / "again") as d2:
        assert _get(d2, result["cap"]) == (200, blob)


def test_sigterm_refuses_arriving_bodies_at_once_and_keeps_one_deadline(
    grid: LocalGrid, tmp_path: Path
) -> None:
    """SIGTERM with shutdown_timeout_s = 4: an upload whose body is still arriving gets a 503
    sentence at once (its spool file removed), no new connection is accepted, and a download that
    cannot finish (its client reads nothing) is cut at the one deadline. No durations are asserted:
    "at once" is the answer arriving while the daemon still drains."""
    timeout_s = 4.0
    d = DaemonProcess(_config(grid, tmp_path, shutdown_timeout_s=timeout_s), tmp_path)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # set before connecting: no autotuning
    arriving = socket.socket()
    try:
        d.start()
        cap = _put(d, random.Random(12).randbytes(12 * 1024 * 1024))
        stuck.connect(("127.0.0.1", d.port))
        stuck.sendall(f"GET /uri/{cap} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        arriving.connect(("127.0.0.1", d.port))
        arriving.sendall(b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" + b"a" * 1000)
        deadline = time.monotonic() + 30
        while True:
            active = {t["kind"]: t for t in d.status()["transfers"]["active"]}
            if active.get("upload", {}).get("bytes_done") == 1000 and "download" in active:
                break
            assert time.monotonic() < deadline, active
            time.sleep(0.05)
        time.sleep(0.5)  # the download fills the socket buffers and waits for its client
        mark = len(d.messages)
        d.signal(signal.SIGTERM)
        stopping = d.wait_for("STOPPING", 10, after=mark)
        arriving.settimeout(3)
        head, text = _answer(arriving)
        # at once, not at the deadline: the stuck download keeps the daemon draining until then
        assert d.proc is not None and d.proc.poll() is None
        arriving.close()
        assert b" 503 " in head.split(b"\r\n")[0], (head, text)
        assert b"daemon is stopping" in text and b"nothing was uploaded" in text, text
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", d.port), timeout=5).close()
        assert d.proc.wait(30) == 0
        assert d.log().count("the deadline passed") == 1  # the stuck download was cut at it
        assert _spool(d) == []
        d.poll_messages()
        # from STOPPING on: ticks sent before the SIGTERM may still have been queued at `mark`
        since = next(i for i in range(mark, len(d.messages)) if d.messages[i] is stopping)
        statuses = [m["STATUS"] for m in d.messages[since:] if "STATUS" in m]
        assert len(statuses) >= 2 and all(line.startswith("stopping: waiting for") for line in statuses), (
            statuses
        )
        assert "0 uploads and 1 downloads" in statuses[-1], statuses
    finally:
        stuck.close()
        arriving.close()
        d.stop()


def test_sigterm_keeps_queued_uploads_for_the_next_start(grid: LocalGrid, tmp_path: Path) -> None:
    """Uploads received whole but still waiting for an upload slot at SIGTERM are answered 503 at
    once, their bodies kept; the next start (same data_dir) uploads them, so sending one again then
    finds its shares already on the servers."""
    config = _config(grid, tmp_path, max_uploads=1, shutdown_timeout_s=3.0)
    rng = random.Random(13)
    big, small = rng.randbytes(64 * 1024 * 1024), [rng.randbytes(1024 * 1024 + i) for i in range(2)]
    d = DaemonProcess(config, tmp_path)
    pids = list(grid.pids().values())
    with ThreadPoolExecutor(3) as pool:
        try:
            d.start()
            pool.submit(d.request, "PUT", "/uri", big)  # holds the one slot (finished or suspended)
            deadline = time.monotonic() + 30
            while not any(
                t["stage"] in ("hashing", "encoding", "uploading") for t in d.status()["transfers"]["active"]
            ):
                assert time.monotonic() < deadline, "the first upload never started"
                time.sleep(0.02)
            queued = [pool.submit(d.request, "PUT", "/uri", b) for b in small]
            while sum(t["stage"] == "queued" for t in d.status()["transfers"]["active"]) < 2:
                assert time.monotonic() < deadline, d.status()["transfers"]["active"]
                time.sleep(0.02)
            for pid in pids:  # the first upload cannot finish: the drain lasts to its deadline
                os.kill(pid, signal.SIGSTOP)
            d.signal(signal.SIGTERM)
            for future in queued:
                code, _, text = future.result(timeout=30)
                assert code == 503 and b"is kept" in text and b"starts again" in text, (code, text)
            assert d.proc is not None and d.proc.poll() is None  # at once, not at the deadline
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            assert d.proc.wait(30) == 0
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            d.stop()
    assert len([n for n in _spool(d) if n.startswith("pending-")]) == 2
    again = tmp_path / "again"
    again.mkdir()
    with DaemonProcess(config, again) as d2:
        deadline = time.monotonic() + 60
        while d2.status()["transfers"]["active"]:
            assert time.monotonic() < deadline, d2.status()["transfers"]["active"]
            time.sleep(0.1)
        recent = d2.status()["transfers"]["recent"]
        assert [t["stage"] for t in recent if t.get("resumed")] == ["done"] * len(recent), recent
        assert sorted(t["size"] for t in recent)[:2] == [len(b) for b in small], recent
        for blob in small:
            code, headers, cap = d2.request("PUT", "/uri", body=blob)
            assert code == 200
            assert int(headers["X-Uploader-Share-Bytes-Sent"]) < len(blob), headers  # its shares were there
            assert _get(d2, cap.decode().strip()) == (200, blob)
        assert (
            os.listdir(tmp_path / "data" / "spool") == []
            and list((tmp_path / "data" / "journal").glob("*.journal")) == []
        )


def test_an_upload_suspended_at_the_deadline_is_answered_503(grid: LocalGrid, tmp_path: Path) -> None:
    """An upload still running at the stop's deadline is suspended (resumed at the next start), and
    its client is told so (it got no answer at all: the connection just closed)."""
    config = _config(grid, tmp_path, shutdown_timeout_s=1.0)
    blob = random.Random(17).randbytes(16 * 1024 * 1024)
    d = DaemonProcess(config, tmp_path)
    pids = list(grid.pids().values())
    with ThreadPoolExecutor(1) as pool:
        try:
            d.start()
            answer = pool.submit(d.request, "PUT", "/uri", blob)
            deadline = time.monotonic() + 30
            while not any(t["stage"] == "uploading" for t in d.status()["transfers"]["active"]):
                assert time.monotonic() < deadline, "the upload never started sending"
                time.sleep(0.01)
            for pid in pids:  # the servers stop answering: the upload cannot finish before the deadline
                os.kill(pid, signal.SIGSTOP)
            d.signal(signal.SIGTERM)
            code, _, text = answer.result(timeout=30)
            assert code == 503 and b"is suspended" in text and b"starts again" in text, (code, text)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            d.stop()
    assert list((tmp_path / "data" / "journal").glob("*.journal"))  # kept for the next start


def test_sighup_resizes_the_pool_under_load(grid: LocalGrid, tmp_path: Path) -> None:
    config = _config(grid, tmp_path, workers=2)
    d = DaemonProcess(config, tmp_path)
    try:
        d.start()
        rng = random.Random(9)
        blobs = [rng.randbytes(rng.randrange(2, 8) * 1024 * 1024) for _ in range(6)]
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(_put, d, b) for b in blobs]
            deadline = time.monotonic() + 60
            while not any(t["stage"] in ("hashing", "uploading") for t in d.status()["transfers"]["active"]):
                assert time.monotonic() < deadline, "no upload became active"
                time.sleep(0.02)
            assert d.status()["transfers"]["active"]  # the reloads land while uploads run
            for workers, window in ((1, 2), (3, 4)):
                _config(
                    grid,
                    tmp_path,
                    workers=workers,
                    window=window,
                    log_level="debug",
                    api_listen="127.0.0.1:1",
                )
                mark = len(d.messages)
                d.signal(signal.SIGHUP)
                reloading = d.wait_for("RELOADING", 30, after=mark)
                assert int(reloading["MONOTONIC_USEC"]) > 0
                d.wait_for("READY", 30, after=mark)
            caps = [f.result(timeout=180) for f in futures]
        status = d.status()
        assert status["workers"]["live"] == 3
        assert status["settings"]["window"] == 4
        assert len(status["workers"]["busy_s"]) == 3  # the live ones: retired workers leave the list
        for blob, cap in zip(blobs, caps, strict=True):
            assert _get(d, cap) == (200, blob)
        log = d.log()
        assert "applied workers, window, log_level" in log and "needs a restart to change api_listen" in log
        assert "failed" not in log
        assert " lost" not in log and " retired" in log  # a worker shrunk away is not a lost one
    finally:
        assert d.stop() == 0


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` installed (SigCgt in /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        caught = next(int(line.split()[1], 16) for line in fh if line.startswith("SigCgt:"))
    return bool(caught >> (sig - 1) & 1)


def test_a_sighup_during_start_up_is_applied_once_ready(grid: LocalGrid, tmp_path: Path) -> None:
    """SIGHUP after its handler is set but before READY: no traceback, and the reload happens once
    the daemon is ready (it used to fail on the missing API state and was dropped)."""
    config = _config(grid, tmp_path, window=4)
    d = DaemonProcess(config, tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": d.notify_name, "HOME": str(tmp_path)}
    env.pop("XDG_CONFIG_HOME", None)
    d.proc = spawn_serve(config, env, d.log_path)
    try:
        deadline = time.monotonic() + 60
        while not _catches(d.pid, signal.SIGHUP):
            assert time.monotonic() < deadline and d.proc.poll() is None, d.log()
            time.sleep(0.002)
        _config(grid, tmp_path, window=3)
        d.signal(signal.SIGHUP)
        ready = d.wait_for("READY", 60)
        d.url = re.search(r"listening on (http://\S+?);", ready["STATUS"])[1]  # type: ignore[index]
        deadline = time.monotonic() + 30
        while "reloaded" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.02)
        assert d.status()["settings"]["window"] == 3
        log = d.log()
        assert "SIGHUP while starting" in log
        assert "Traceback" not in log and "never retrieved" not in log
    finally:
        assert d.stop() == 0


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed to lint the unit file"
    unit = REPO / "contrib" / "systemd" / "uploader.service"
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "Unknown key" not in text and "Unknown section" not in text and "Failed to parse" not in text, text
    body = unit.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=", "ProtectSystem=strict"):
        assert line in body
    assert "python3 -m uploader serve --config /etc/uploader/uploader.toml" in body
