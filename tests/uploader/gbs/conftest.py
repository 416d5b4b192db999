"""Real storage servers on 127.0.0.1 for the client tests: one stock Tahoe-LAFS 1.20.0 storage node
and one of ours, each started once per session and stopped with SIGTERM at the end."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers.stock import StockStorageNode, start_all
from tests.storage_driver import ServerProcess
from uploader.gbs import ServerUnreachable, StorageClient

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunningServer:
    kind: str  # "tahoe" (stock 1.20.0) or "ours"
    nurl: str
    directory: Path
    lease_seed: bytes  # what the client must learn in the handshake


def _cert_der(pem_path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return cert.public_bytes(Encoding.DER)


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
    node = StockStorageNode(tmp_path_factory.mktemp("stock") / "s1", tahoe_bin)
    start_all([node])  # create-node on 127.0.0.1, tahoe run, wait for a GBS version answer
    try:
        yield RunningServer("tahoe", node.nurl, node.dir, node.tub_id)
    finally:
        node.stop()


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
