"""Interop with stock Tahoe-LAFS 1.20.0 (its own venv, in subprocesses):

(a) Tahoe's HTTP storage client (``allmydata.storage.http_client``) allocates, writes, lists, reads,
    renews, aborts and reports corruption on our server;
(b) a stock Tahoe client node configured with ``servers.yaml`` from ``grid start`` (no introducer)
    runs ``tahoe put`` and ``tahoe get`` bit-exact through ten of our servers, and the leases it
    leaves are the ones our lease-seed convention predicts;
(c) storage directories are interchangeable: Tahoe's storage-server code reads shares our server
    wrote, and our server serves shares Tahoe's code wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.stock import StockClientNode, client_for_grid
from tests.storage_driver import REPO, ServerProcess
from tools.stock_tahoe import stock_get_rate, stock_put_rate
from uploader.chk.caps import ChkCap, parse_read_cap
from uploader.chk.lease import bucket_renewal_secret
from uploader.storage.identity import read_identity
from uploader.wire import protocol as wire
from uploader.wire.nurl import lease_seed_of_cert, parse_nurl
from workers.base32 import b32decode

pytestmark = pytest.mark.integration

DRIVERS = REPO / "tests" / "tahoe_gbs"


def _isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADER_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        PYTHONPATH=str(REPO),
    )
    return env


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ten of our servers, started with ``grid start`` (session-like: shared by this module)."""
    base = tmp_path_factory.mktemp("interop")
    directory, env = base / "grid", _isolated_env(base / "home")
    cmd = [sys.executable, "-m", "uploader", "grid"]
    started = subprocess.run(
        [*cmd, "start", "--dir", str(directory)], env=env, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    try:
        yield directory
    finally:
        subprocess.run([*cmd, "stop", "--dir", str(directory)], env=env, capture_output=True, check=True)


@pytest.fixture(scope="module")
def stock_client(
    grid: Path, tahoe_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StockClientNode]:
    """A stock Tahoe client node whose only servers are ours (private/servers.yaml, no introducer)."""
    base = tmp_path_factory.mktemp("stock-client")
    node = client_for_grid(tahoe_bin, grid, base / "node", env=_isolated_env(base / "home"))
    assert node.expect_connected == 10
    try:
        yield node
    finally:
        node.stop()


def _tahoe_read_storage_dir(
    tahoe_python: Path, storage: Path, si: bytes, renews: list[bytes], tmp: Path
) -> dict:
    copy = tmp / f"copy-{os.urandom(4).hex()}"
    shutil.copytree(storage, copy)
    args = [str(tahoe_python), str(DRIVERS / "storage_dir_driver.py"), "read", str(copy), _b64(si)]
    out = subprocess.run([*args, *map(_b64, renews)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result: dict = json.loads(out.stdout)
    return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- (a) ----------------------------------------------------------------------------------------


def test_stock_http_storage_client(grid: Path, tahoe_python: Path, tmp_path: Path) -> None:
    server_dir = grid / "server-01"
    nurl = (server_dir / "nurl").read_text().strip()
    si, renew, cancel = os.urandom(16), os.urandom(32), os.urandom(32)
    size, seed = 100_000, os.urandom(13)
    request = {
        "storage_index_b64": _b64(si),
        "share_size": size,
        "seed_b64": _b64(seed),
        "renew_b64": _b64(renew),
        "cancel_b64": _b64(cancel),
        "upload_b64": _b64(os.urandom(20)),
    }
    run = subprocess.run(
        [str(tahoe_python), str(DRIVERS / "http_client_driver.py"), nurl],
        input=json.dumps(request), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["version"]["maximum-immutable-share-size"] > size
    assert out["version"]["application-version"].startswith("uploader/")
    assert out["create"] == {"already_have": [], "allocated": [0, 1, 2, 3]}
    for w in out["writes"]:
        assert w["second_finished"] is False and w["second_required"] == [[0, size // 2]]
        assert w["first_finished"] is True
    assert out["list"] == [0, 1, 2]
    assert out["reads_match"] == {"0": True, "1": True, "2": True}
    assert out["part_match"] and out["tail_match"] and out["tail_len"] == 5 and out["beyond"] == ""
    assert out["create_again"] == {"already_have": [0, 1, 2], "allocated": [3, 4]}
    advisories = list((server_dir / "storage" / "corruption-advisories").iterdir())
    assert any("stock client says: bad block" in p.read_text() for p in advisories)

    # What Tahoe's own server code sees in our directory: the same bytes, and both leases.
    seen = _tahoe_read_storage_dir(tahoe_python, server_dir / "storage", si, [renew, b"R" * 32], tmp_path)
    assert sorted(seen) == ["0", "1", "2"]
    unit = seed + bytes([1])
    assert base64.b64decode(seen["1"]["data_b64"]) == (unit * (size // len(unit) + 1))[:size]
    assert [lease["matches"] for lease in seen["1"]["leases"]] == [[True, False], [False, True]]


# --- (b) ----------------------------------------------------------------------------------------


def test_stock_tahoe_put_and_get_through_our_grid(
    grid: Path, stock_client: StockClientNode, tahoe_python: Path, tmp_path: Path
) -> None:
    node = stock_client.dir
    data = os.urandom(1_500_000)  # 2 segments (stock 1.20 segments are 1 MiB)
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(data)
    cap = parse_read_cap(stock_client.put(source))
    assert isinstance(cap, ChkCap)
    stock_client.get(str(cap), target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()

    # The ten shares are on our servers' disks, complete, in Tahoe's layout.
    si = cap.storage_index
    si_text = wire.storage_index_text(si)
    holders = [
        d
        for d in sorted(grid.glob("server-*"))
        if (d / "storage" / "shares" / si_text[:2] / si_text).is_dir()
    ]
    shares = sum(len(list((d / "storage" / "shares" / si_text[:2] / si_text).iterdir())) for d in holders)
    assert shares == 10 and len(holders) >= 7

    # The stock client's lease secret, our SI, and the lease seed SHA-1(cert DER) (CONVENTIONS.md)
    # give exactly the renew secret the stock client sent: both sides agree on leases.
    lease_secret = b32decode((node / "private" / "secret").read_text().strip())
    server = holders[0]
    seed = lease_seed_of_cert(read_identity(server).cert_der)
    expected = bucket_renewal_secret(lease_secret, si, seed)
    seen = _tahoe_read_storage_dir(tahoe_python, server / "storage", si, [expected], tmp_path)
    assert seen and all(share["leases"][0]["matches"] == [True] for share in seen.values())


def test_benchmark_stock_rates_smoke(
    grid: Path, stock_client: StockClientNode, tahoe_bin: Path, tmp_path: Path
) -> None:
    """tools.stock_tahoe's timed `tahoe put`/`tahoe get` (the benchmark's yardstick), tiny, so it cannot rot."""
    data = os.urandom(200_000)
    (tmp_path / "in.bin").write_bytes(data)
    put = stock_put_rate(tahoe_bin, grid, tmp_path / "in.bin", client=stock_client)
    assert put["size"] == len(data) and put["seconds"] > 0 and put["mb_per_s"] > 0
    assert isinstance(parse_read_cap(put["cap"]), ChkCap)
    got = stock_get_rate(tahoe_bin, grid, put["cap"], out=tmp_path / "out.bin", client=stock_client)
    assert got["size"] == len(data) and got["cap"] == put["cap"] and got["mb_per_s"] > 0
    assert (tmp_path / "out.bin").read_bytes() == data


# --- (c) ----------------------------------------------------------------------------------------


def test_our_server_serves_a_storage_directory_written_by_tahoe(tahoe_python: Path, tmp_path: Path) -> None:
    server_dir = tmp_path / "from-tahoe"
    storage = server_dir / "storage"
    si, data = os.urandom(16), os.urandom(70_000)
    (tmp_path / "share.bin").write_bytes(data)
    write = subprocess.run(
        [str(tahoe_python), str(DRIVERS / "storage_dir_driver.py"), "write", str(storage), _b64(si), "5",
         str(tmp_path / "share.bin"), _b64(b"r" * 32), _b64(b"c" * 32)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert write.returncode == 0, write.stderr
    server = ServerProcess(server_dir)
    try:
        gbs = server.client
        assert gbs.list_shares(si) == {5}
        assert gbs.read(si, 5, 0, len(data) + 10).body == data
        lease = gbs.request(
            "PUT",
            wire.lease_path(si),
            secrets={wire.Secret.LEASE_RENEW: b"r" * 32, wire.Secret.LEASE_CANCEL: b"c" * 32},
        )
        assert lease.status == 204
        assert gbs.allocate(si, [5, 6], len(data), b"u" * 20) == wire.AllocateResponse(
            frozenset({5}), frozenset({6})
        )
        assert parse_nurl((server_dir / "nurl").read_text()) == server.nurl
    finally:
        assert server.stop() == 0
