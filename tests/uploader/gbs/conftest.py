"""Real storage servers on 127.0.0.1 for the client tests: one stock Tahoe-LAFS 1.20.0 storage node
and one of ours, each started once per session and stopped with SIGTERM at the end."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.storage_driver import ServerProcess
from uploader.gbs import ServerUnreachable, StorageClient
from uploader.wire.nurl import spki_hash_of_pem_cert
from workers.base32 import b32decode

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunningServer:
    kind: str  # "tahoe" (stock 1.20.0) or "ours"
    nurl: str
    directory: Path
    lease_seed: bytes  # what the client must learn in the handshake


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cert_der(pem_path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return cert.public_bytes(Encoding.DER)


def stock_nurl(node_dir: Path, port: int) -> tuple[str, bytes]:
    """(NURL, tub id) of a stock node, rebuilt from its directory (gbs-http-protocol appendix A.5)."""
    furl = (node_dir / "private" / "storage.furl").read_text().strip()
    tub_id = b32decode(furl.removeprefix("pb://").split("@", 1)[0], 20)
    swissnum = furl.rsplit("/", 1)[1]
    spki = spki_hash_of_pem_cert((node_dir / "private" / "node.pem").read_bytes())
    return f"pb://{spki}@127.0.0.1:{port}/{swissnum}#v=1", tub_id


def wait_until_serving(nurl: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    async def poll() -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            client = StorageClient(nurl, connect_timeout_s=2, request_timeout_s=5)
            try:
                await client.connect()
                return
            except ServerUnreachable:
                if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                    raise
            finally:
                await client.close()
            await asyncio.sleep(0.2)

    uvloop.run(poll())


@pytest.fixture(scope="session")
def stock_server(tmp_path_factory: pytest.TempPathFactory, tahoe_bin: Path) -> Iterator[RunningServer]:
    node = tmp_path_factory.mktemp("stock") / "s1"
    port = _free_port()
    subprocess.run(
        [str(tahoe_bin), "create-node", "--nickname=s1", f"--port=tcp:{port}:interface=127.0.0.1",
         f"--location=tcp:127.0.0.1:{port}", "--webport=none", str(node)],
        check=True, capture_output=True,
    )  # fmt: skip
    log = (node.parent / "s1.log").open("ab")
    proc = subprocess.Popen(
        [str(tahoe_bin), "run", "--allow-stdin-close", str(node)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    try:
        furl = node / "private" / "storage.furl"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not furl.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stock Tahoe storage node did not start; see {log.name}")
            time.sleep(0.1)
        nurl, tub_id = stock_nurl(node, port)
        wait_until_serving(nurl, proc)
        yield RunningServer("tahoe", nurl, node, tub_id)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def our_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = ServerProcess(tmp_path_factory.mktemp("ours") / "server")
    try:
        wait_until_serving(str(server.nurl), server.proc)
        seed = hashlib.sha1(_cert_der(server.directory / "private" / "node.pem")).digest()
        yield RunningServer("ours", str(server.nurl), server.directory, seed)
    finally:
        assert server.stop() == 0


@pytest.fixture(params=["tahoe", "ours"])
def gbs_server(request: pytest.FixtureRequest) -> RunningServer:
    """Each test that takes this runs against the stock node and against ours."""
    server: RunningServer = request.getfixturevalue(
        f"{'stock' if request.param == 'tahoe' else 'our'}_server"
    )
    return server
