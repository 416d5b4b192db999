"""``put`` against a grid of ten STOCK Tahoe-LAFS 1.20.0 storage nodes on 127.0.0.1 (issue 5's
"real grid" acceptance point), read back by a stock Tahoe client.

* our ``put`` uploads to the stock servers (their NURLs rebuilt from their node directories, GBS
  spec A.5); each cap equals ``cap``'s, and a stock client node configured with the same ten servers
  (``servers.yaml``, A.1–A.4: real tub ids, announced permutation seeds) reads every file back
  bit-exact with ``tahoe get``;
* deduplication against Tahoe's own uploads, both ways: a file stock ``tahoe put`` uploaded, put again
  by ours with the stock client's convergence secret, gets the same cap and moves no share data; and
  a file ours uploaded first, put by stock Tahoe, likewise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import REPO
from tests.helpers.stock import (
    StockClientNode,
    StockStorageNode,
    servers_yaml_for,
    start_all,
    start_stock_grid,
    stock_share_files,
    stop_all,
    stored_bytes,
)
from uploader.chk.caps import ChkCap, parse_read_cap
from uploader.wire.nurl import lease_seed_of_cert, parse_nurl

pytestmark = pytest.mark.integration

K, HAPPY, N = 3, 7, 10
LEASE_RECORD = 72  # bytes one lease adds to an immutable share file


@pytest.fixture(scope="module")
def stock_grid(tmp_path_factory: pytest.TempPathFactory, tahoe_bin: Path) -> Iterator[list[StockStorageNode]]:
    nodes = start_stock_grid(tmp_path_factory.mktemp("stock-grid"), tahoe_bin, N)
    try:
        yield nodes
    finally:
        stop_all(nodes)


@pytest.fixture(scope="module")
def stock_client(
    stock_grid: list[StockStorageNode], tahoe_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StockClientNode]:
    """A stock client node whose servers are the ten stock nodes, as an introducer would describe them."""
    yaml_text = servers_yaml_for(node.announcement for node in stock_grid)
    node = StockClientNode(
        tmp_path_factory.mktemp("stock-client") / "client", tahoe_bin, yaml_text, K, HAPPY, N
    )
    start_all([node])
    try:
        yield node
    finally:
        node.stop()


def _write_config(path: Path, servers: list[StockStorageNode], secret: Path) -> Path:
    lines = [
        f"shares_needed = {K}",
        f"shares_happy = {HAPPY}",
        f"shares_total = {N}",
        "workers = 2",
        f"convergence_secret_file = {json.dumps(str(secret))}",
        f"data_dir = {json.dumps(str(path.parent / (path.stem + '-data')))}",
    ]
    for node in servers:
        lines += [
            "",
            "[[servers]]",
            f"nurl = {json.dumps(node.nurl)}",
            f"nickname = {json.dumps(node.nickname)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def config(
    stock_client: StockClientNode,
    stock_grid: list[StockStorageNode],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Our configuration for the stock grid, with the stock client's convergence secret. Our default
    segment size (1 MiB) is stock 1.20's too, so both derive the same convergent keys and caps."""
    secret = stock_client.convergence_secret_file
    assert secret.exists()
    return _write_config(tmp_path_factory.mktemp("config") / "uploader.toml", stock_grid, secret)


def _uploader(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "uploader", *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _caps(*args: str) -> dict[str, str]:
    return {str(r["file"]): str(r["cap"]) for r in _uploader(*args)}


def _incoming(nodes: list[StockStorageNode]) -> list[Path]:
    return [p for node in nodes for p in (node.storage_dir / "shares" / "incoming").rglob("*") if p.is_file()]


def test_stock_nodes_identity_and_addresses(
    stock_grid: list[StockStorageNode], stock_client: StockClientNode
) -> None:
    """The announcements we rebuilt are the real ones, and every node listens on 127.0.0.1 only,
    apart from the log tub's port (0.0.0.0, not configurable in Tahoe 1.20)."""
    connected = {
        s["nodeid"] for s in stock_client.servers() if str(s["connection_status"]).startswith("connected")
    }
    assert connected == {node.server_id for node in stock_grid}
    for node in stock_grid:
        der = x509.load_pem_x509_certificate((node.dir / "private" / "node.pem").read_bytes()).public_bytes(
            Encoding.DER
        )
        assert node.tub_id == lease_seed_of_cert(der)  # the lease seed our client learns in the handshake
        nurl = parse_nurl(node.nurl)
        assert (nurl.host, nurl.port) == ("127.0.0.1", node.port) and node.permutation_seed
    for each in [*stock_grid, stock_client]:
        assert each.pid is not None
        proc = psutil.Process(each.pid)
        conns = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6: connections
        listening = [c.laddr for c in conns("inet") if c.status == "LISTEN"]
        elsewhere = [a for a in listening if a.ip != "127.0.0.1"]
        assert len(elsewhere) <= 1 and all(a.ip == "0.0.0.0" for a in elsewhere), listening
        assert len(listening) - len(elsewhere) == 1, listening  # the storage port, or the client's web API


def test_put_onto_stock_grid_and_tahoe_get_reads_it_back(
    stock_grid: list[StockStorageNode],
    stock_client: StockClientNode,
    config: Path,
    tmp_path: Path,
) -> None:
    files = {}
    for name, size in (("tiny.bin", 56), ("mid.bin", 300 * 1024 + 7), ("big.bin", 5 * 2**20 + 3)):
        files[name] = tmp_path / name
        files[name].write_bytes(os.urandom(size))
    paths = [str(p) for p in files.values()]
    put = _uploader("put", *paths, "--config", str(config))
    assert sorted(str(r["file"]) for r in put) == sorted(paths)
    assert all(r["size"] == os.path.getsize(str(r["file"])) for r in put)
    caps = {str(r["file"]): str(r["cap"]) for r in put}
    assert caps == _caps("cap", *paths, "--config", str(config))

    assert _incoming(stock_grid) == []  # every bucket was closed
    for path, cap_text in caps.items():
        cap = parse_read_cap(cap_text)
        assert isinstance(cap, ChkCap) and (cap.k, cap.n) == (K, N)
        shares = stock_share_files(stock_grid, cap.storage_index)
        assert sorted({int(p.name) for p in shares}) == list(range(N))
        assert sum(any(p.is_relative_to(node.dir) for p in shares) for node in stock_grid) >= HAPPY
        out = tmp_path / (Path(path).name + ".out")
        stock_client.get(cap_text, out)
        assert out.read_bytes() == Path(path).read_bytes(), f"stock `tahoe get` of {path} differs"


def test_dedup_against_stock_tahoe_uploads(
    stock_grid: list[StockStorageNode],
    stock_client: StockClientNode,
    config: Path,
    tmp_path: Path,
) -> None:
    # (1) stock `tahoe put` first, then ours: the same cap, no share data moved.
    first = tmp_path / "stock-first.bin"
    first.write_bytes(os.urandom(2_500_000))  # 3 segments of 1 MiB
    stock_cap = stock_client.put(first)
    cap = parse_read_cap(stock_cap)
    assert isinstance(cap, ChkCap)
    before, stored = stock_share_files(stock_grid, cap.storage_index), stored_bytes(stock_grid)
    assert len(before) == N
    [ours] = _uploader("put", str(first), "--config", str(config))
    assert ours["cap"] == stock_cap
    after = stock_share_files(stock_grid, cap.storage_index)
    assert sorted(after) == sorted(before)  # no share file added anywhere
    growth = stored_bytes(stock_grid) - stored
    assert 0 <= growth <= LEASE_RECORD * N, f"our re-upload of a stock upload grew the grid by {growth} bytes"
    assert all(after[p] - before[p] in (0, LEASE_RECORD) for p in before)

    # (2) ours first, then stock `tahoe put`: the same cap, and stock Tahoe finds our shares.
    second = tmp_path / "ours-first.bin"
    second.write_bytes(os.urandom(700_000))
    [ours] = _uploader("put", str(second), "--config", str(config))
    cap = parse_read_cap(str(ours["cap"]))
    assert isinstance(cap, ChkCap)
    before, stored = stock_share_files(stock_grid, cap.storage_index), stored_bytes(stock_grid)
    assert stock_client.put(second) == ours["cap"]
    assert sorted(stock_share_files(stock_grid, cap.storage_index)) == sorted(before)
    growth = stored_bytes(stock_grid) - stored
    assert 0 <= growth <= LEASE_RECORD * N, (
        f"stock Tahoe's re-upload of our upload grew the grid by {growth} bytes"
    )
