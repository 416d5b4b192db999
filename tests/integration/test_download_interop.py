"""Downloads interoperate with stock Tahoe-LAFS 1.20.0 on our grid (a stock client node configured with
the ``servers.yaml`` that ``grid start`` writes; node management from ``tools.stock_tahoe``):

- our ``get`` (and ``verify``) read files that stock ``tahoe put`` stored;
- stock ``tahoe get`` reads files that our ``put`` stored.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.localgrid import LocalGrid
from tests.helpers.stock import StockClientNode, client_for_grid
from uploader.chk.caps import ChkCap, LitCap, parse_read_cap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with LocalGrid(tmp_path_factory.mktemp("interop-grid"), 10) as g:
        yield g


@pytest.fixture(scope="module")
def stock(
    grid: LocalGrid, tahoe_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StockClientNode]:
    node = client_for_grid(tahoe_bin, grid.dir, tmp_path_factory.mktemp("stock") / "client")
    try:
        yield node
    finally:
        node.stop()


def _uploader(grid: LocalGrid, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "uploader", *args, "--config", str(grid.dir / "uploader.toml")]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300)


def test_our_get_reads_what_stock_tahoe_put_stored(
    grid: LocalGrid, stock: StockClientNode, tmp_path: Path
) -> None:
    data = random.Random(21).randbytes(2_500_000)
    source = tmp_path / "stock-put.bin"
    source.write_bytes(data)
    cap = stock.put(source)
    assert isinstance(parse_read_cap(cap), ChkCap)
    out = tmp_path / "ours.bin"
    got = _uploader(grid, "get", cap, "-o", str(out), "--json")
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data
    assert json.loads(got.stdout)["whole_file_hash_checked"] is True
    part = _uploader(grid, "get", cap, "--offset", "1000000", "--length", "777777")
    assert part.returncode == 0 and part.stdout == data[1_000_000:1_777_777]
    verify = _uploader(grid, "verify", cap, "--json")
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["good_shares"] == list(range(10))

    small = tmp_path / "small.bin"
    small.write_bytes(b"stock tahoe keeps this in the cap")
    lit = stock.put(small)
    assert isinstance(parse_read_cap(lit), LitCap)
    assert _uploader(grid, "get", lit).stdout == b"stock tahoe keeps this in the cap"


def test_stock_tahoe_get_reads_what_our_put_stored(
    grid: LocalGrid, stock: StockClientNode, tmp_path: Path
) -> None:
    for size, params in [(3_000_001, []), (400_000, ["-k", "2", "-n", "7", "--happy", "5"])]:
        data = random.Random(size).randbytes(size)
        source = tmp_path / f"ours-{size}.bin"
        source.write_bytes(data)
        put = _uploader(grid, "put", str(source), *params)
        assert put.returncode == 0, put.stderr
        cap = put.stdout.decode().strip()
        out = tmp_path / f"stock-{size}.bin"
        stock.get(cap, out)
        assert out.read_bytes() == data
