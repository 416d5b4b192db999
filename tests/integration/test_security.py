"""Security, against real processes: nobody without the swissnum is served, an impostor server never
sees the swissnum, the web API listens on loopback unless told otherwise, and no secret shows up in
DEBUG logs, error messages, /status or /metrics.

Secrets checked, in every encoding they might be printed in (raw repr, Tahoe base32, base64 with or
without padding, URL-safe base64, hex): the convergence secret, the lease secret, every secret the
client put in a request header (the upload secrets and the per-bucket lease renew/cancel secrets,
recorded by a spy on ``wire.build_secret_headers``), every server's swissnum, and the read cap (the
whole cap and its key part). The storage index may be logged: it is not a secret.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil
import pytest

from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.localgrid import LocalGrid
from tests.storage_driver import GbsClient, ServerProcess
from tests.uploader.gbs.fake_server import FakeServer, Request
from uploader import cli
from uploader.chk.caps import ChkCap, parse_read_cap
from uploader.wire import protocol as wire
from uploader.wire.nurl import parse_nurl
from uploader.wire.protocol import Secret
from workers.base32 import b32encode

pytestmark = pytest.mark.integration

UPLOAD = b"u" * 20
ALLOC = {Secret.LEASE_RENEW: b"r" * 32, Secret.LEASE_CANCEL: b"c" * 32, Secret.UPLOAD: UPLOAD}


# --- the swissnum, on every endpoint -------------------------------------------------------------


def test_every_endpoint_refuses_a_missing_or_wrong_swissnum_and_changes_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server")
    try:
        gbs = GbsClient(server.nurl)
        si = os.urandom(16)
        done = os.urandom(16)  # a complete share to read, renew and report
        gbs.allocate(done, [0], 8, UPLOAD)
        assert gbs.write(done, 0, UPLOAD, 0, b"12345678").status == 201
        pending = os.urandom(16)  # an in-progress share to write into and abort
        gbs.allocate(pending, [0], 8, UPLOAD)
        requests: list[tuple[str, str, bytes | None, Mapping[Secret, bytes], list[tuple[str, str]]]] = [
            ("GET", wire.version_path(), None, {}, []),
            ("POST", wire.allocate_path(si), wire.build_allocate_request([0, 1], 8), ALLOC, []),
            (
                "PATCH",
                wire.share_path(pending, 0),
                b"abcd",
                {Secret.UPLOAD: UPLOAD},
                [("Content-Range", "bytes 0-3/*")],
            ),
            ("PUT", wire.abort_path(pending, 0), None, {Secret.UPLOAD: UPLOAD}, []),
            ("GET", wire.share_path(done, 0), None, {}, [("Range", "bytes=0-7")]),
            ("GET", wire.list_shares_path(done), None, {}, []),
            (
                "PUT",
                wire.lease_path(done),
                None,
                {Secret.LEASE_RENEW: b"R" * 32, Secret.LEASE_CANCEL: b"C" * 32},
                [],
            ),
            ("POST", wire.corrupt_path(done, 0), wire.build_corruption_advisory("x"), {}, []),
        ]
        before = snapshot(server.directory)
        wrong = wire.build_authorization(b"not-the-swissnum")
        for auth in (None, wrong, "Tahoe-LAFS", wire.build_authorization(server.nurl.swissnum + "x")):
            for method, path, body, secrets, headers in requests:
                ctype = wire.CBOR_MIME_TYPE if method == "POST" else None
                resp = gbs.request(
                    method, path, body, secrets=secrets, headers=headers, auth=auth, content_type=ctype
                )
                assert resp.status == 401, (method, path, auth, resp.status)
                assert server.nurl.swissnum.encode() not in resp.body
        assert snapshot(server.directory) == before  # no bucket, write, abort, lease or advisory
        assert gbs.write(pending, 0, UPLOAD, 0, b"abcd").status == 200  # still open for its owner
    finally:
        assert server.stop() == 0


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in ("server.log", "server.lock")
    }


# --- an impostor never sees the swissnum ----------------------------------------------------------


def test_an_impostor_at_a_servers_address_never_sees_its_swissnum(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The configuration names server-01 by its NURL, but what answers at that address is another TLS
    server (another key). A real ``put`` refuses it after the handshake: the impostor records no
    byte of HTTP (so neither the swissnum nor any secret), and the upload goes to the other nine."""
    seen: list[Request] = []

    def handler(req: Request) -> bytes:
        seen.append(req)
        return b"HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n"

    impostor = FakeServer(handler, tmp_path).start()
    try:
        with LocalGrid(tmp_path / "grid", 10) as grid:
            real = parse_nurl(grid.config().servers[0].nurl)
            config = tmp_path / "client.toml"
            text = (grid.dir / "uploader.toml").read_text()
            text = text.replace(f"@{real.host}:{real.port}/", f"@127.0.0.1:{impostor.port}/")
            config.write_text(text)
            src = tmp_path / "file"
            src.write_bytes(random.Random(5).randbytes(3_000_000))
            code, out, err = run_cli(["put", str(src), "--config", str(config)])
            assert code == 0, err
            assert out.strip().startswith("URI:CHK:")
            assert impostor.handshakes >= 1  # it was contacted ...
            assert bytes(impostor.received) == b"" and seen == []  # ... and sent nothing at all
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert any(f"127.0.0.1:{impostor.port}" in w and "pins" in w for w in warnings), warnings
            assert real.swissnum not in caplog.text + out + err
    finally:
        impostor.stop()


# --- the web API binds to loopback by default -----------------------------------------------------


def test_the_web_api_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    with LocalGrid(tmp_path / "grid", 1) as grid:
        config = write_config(
            grid.dir / "uploader.toml", tmp_path / "daemon.toml", workers=1, data_dir=tmp_path / "data"
        )
        lines = config.read_text().splitlines(keepends=True)
        config.write_text("".join(line for line in lines if not line.startswith("api_listen")))
        assert not any(line.startswith("api_listen") for line in config.read_text().splitlines())
        with DaemonProcess(config, tmp_path) as d:
            assert d.url == "http://127.0.0.1:3456"
            proc = psutil.Process(d.pid)
            connections = (
                getattr(proc, "net_connections", None) or proc.connections
            )  # psutil < 6: connections
            listening = [c.laddr for c in connections("inet") if c.status == psutil.CONN_LISTEN]
            assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
            assert d.status() is not None


# --- no secret in logs, errors, /status or /metrics -----------------------------------------------


def encodings(secret: bytes) -> set[str]:
    b64 = base64.b64encode(secret).decode()
    url = base64.urlsafe_b64encode(secret).decode()
    forms = {b32encode(secret), b64, b64.rstrip("="), url, url.rstrip("="), secret.hex(), repr(secret)[2:-1]}
    return {f for f in forms if len(f) >= 8}


def leaks(haystack: str, secrets: Mapping[str, Iterable[str]]) -> list[str]:
    return [f"{name} ({form[:6]}…)" for name, forms in secrets.items() for form in forms if form in haystack]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``python -m uploader ARGV`` in this process (so its DEBUG logs are captured), with its output."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_no_secret_in_debug_logs_errors_status_or_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []
    original = wire.build_secret_headers

    def spy(secrets: Mapping[Secret, bytes]) -> list[tuple[str, str]]:
        sent.extend(secrets.values())
        return original(secrets)

    monkeypatch.setattr(wire, "build_secret_headers", spy)
    caplog.set_level(logging.DEBUG)
    rng = random.Random(77)
    convergence = rng.randbytes(32)
    secret_file = tmp_path / "convergence"
    secret_file.write_text(b32encode(convergence) + "\n")
    src = tmp_path / "file"
    src.write_bytes(rng.randbytes(2_500_000))
    with LocalGrid(tmp_path / "grid", 10) as grid:
        toml = str(grid.dir / "uploader.toml")
        common = ["--config", toml, "--convergence-secret-file", str(secret_file)]
        swissnums = [parse_nurl(s.nurl).swissnum for s in grid.config().servers]
        texts: list[
            str
        ] = []  # everything a user or a log reader sees, apart from the caps printed on purpose

        code, out, err = run_cli(["put", str(src), *common])
        assert code == 0, err
        cap = parse_read_cap(out.strip())
        assert isinstance(cap, ChkCap)
        texts.append(err)
        got = tmp_path / "got"
        code, out, err = run_cli(["get", str(cap), "-o", str(got), "--config", toml])
        assert code == 0 and got.read_bytes() == src.read_bytes(), err
        texts += [out, err]
        code, out, err = run_cli(["verify", str(cap), "--config", toml, "--json"])
        assert code == 0, err
        texts += [out, err]
        # Failures: an unknown file, a malformed secret file, then four servers gone.
        unknown = ChkCap(rng.randbytes(16), rng.randbytes(32), 3, 10, 1_000_000)
        code, out, err = run_cli(["get", str(unknown), "-o", str(tmp_path / "x"), "--config", toml, "--json"])
        assert code == 6, (out, err)
        texts += [out, err]
        bad_secret = tmp_path / "bad-convergence"
        bad_secret.write_text(b32encode(convergence) + "!\n")
        code, out, err = run_cli(
            ["put", str(src), "--config", toml, "--convergence-secret-file", str(bad_secret)]
        )
        assert code == 3, err
        texts += [out, err]
        for name in ["server-02", "server-05", "server-07", "server-09"]:
            os.kill(grid.pids()[name], signal.SIGKILL)
        code, out, err = run_cli(["verify", str(cap), "--config", toml, "--json"])
        assert code == 5, (out, err)
        texts += [out, err]
        other = tmp_path / "other"
        other.write_bytes(rng.randbytes(1_000_000))
        code, out, err = run_cli(["put", str(other), *common, "--json"])
        assert code == 4, (out, err)
        texts += [out, err]
        server_logs = [p.read_text(errors="replace") for p in grid.dir.glob("server-*/server.log")]
    lease = (grid.config().data_dir / "lease_secret").read_text().strip()
    secrets: dict[str, set[str]] = {
        "convergence secret": encodings(convergence),
        "lease secret": encodings(lease.encode()) | {lease},
        "read cap": {str(cap), b32encode(cap.key), str(unknown), b32encode(unknown.key)},
        **{f"request secret {i}": encodings(s) for i, s in enumerate(set(sent))},
        **{f"swissnum {i}": {s} for i, s in enumerate(swissnums)},
    }
    assert len(sent) > 20  # upload and lease secrets were really sent (and so are checked)
    records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG  # every level was captured
    assert any("placed" in r.getMessage() for r in caplog.records)  # the upload's own lines among them
    assert leaks(records, secrets) == []
    assert leaks("\n".join(texts), secrets) == []
    assert leaks("\n".join(server_logs), secrets) == []


def test_no_secret_in_the_daemons_debug_log_status_or_metrics(tmp_path: Path) -> None:
    rng = random.Random(78)
    convergence = rng.randbytes(32)
    secret_file = tmp_path / "convergence"
    secret_file.write_text(b32encode(convergence) + "\n")
    with LocalGrid(tmp_path / "grid", 10) as grid:
        config = write_config(
            grid.dir / "uploader.toml",
            tmp_path / "daemon.toml",
            api_listen="127.0.0.1:0",
            workers=1,
            data_dir=tmp_path / "data",
            convergence_secret_file=secret_file,
            log_level="debug",
        )
        blob = rng.randbytes(2_000_000)
        with DaemonProcess(config, tmp_path) as d:
            code, _, body = d.request("PUT", "/uri", body=blob)
            assert code == 200, body
            cap = body.decode().strip()
            assert d.request("GET", f"/uri/{cap}")[2] == blob
            assert d.request("GET", f"/uri/{cap}?t=json")[0] == 200
            unknown = str(ChkCap(rng.randbytes(16), rng.randbytes(32), 3, 10, 1_000_000))
            assert d.request("GET", f"/uri/{unknown}")[0] in (404, 410)
            assert d.request("GET", "/uri/URI:CHK:garbage")[0] == 400
            status = json.dumps(d.status())
            metrics = d.request("GET", "/metrics")[2].decode()
            os.kill(grid.pids()["server-03"], signal.SIGKILL)  # a failure mid-life, logged
            code, _, body = d.request("PUT", "/uri", body=rng.randbytes(1_500_000))
            assert code == 200, body
            status += json.dumps(d.status())
        log = d.log()
        swissnums = [parse_nurl(s.nurl).swissnum for s in grid.config().servers]
    lease = (tmp_path / "data" / "lease_secret").read_text().strip()
    parsed = parse_read_cap(cap)
    assert isinstance(parsed, ChkCap)
    secrets = {
        "convergence secret": encodings(convergence),
        "lease secret": encodings(lease.encode()) | {lease},
        "read cap": {cap, b32encode(parsed.key), unknown},
        **{f"swissnum {i}": {s} for i, s in enumerate(swissnums)},
    }
    assert "placed 10 shares" in log and "unavailable for placement" in log  # its lines, a failure too
    assert leaks(log, secrets) == []
    assert leaks(status, secrets) == []
    assert leaks(metrics, secrets) == []
