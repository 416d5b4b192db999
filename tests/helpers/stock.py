"""Stock Tahoe-LAFS 1.20 nodes for tests (plain classes and functions, no fixtures).

The node management lives in ``tools/stock_tahoe.py`` (one copy, shared with the benchmark); this
module re-exports it and adds what only tests need: a grid of stock storage nodes, and the share
files on their disks.
"""

from __future__ import annotations

from pathlib import Path

from tools.stock_tahoe import (
    StockClientNode,
    StockStorageNode,
    StockTahoeError,
    StorageAnnouncement,
    client_for_grid,
    free_port,
    servers_yaml_for,
    start_all,
    stock_env,
    stop_all,
)
from workers.base32 import b32encode


def start_stock_grid(base: Path, tahoe_bin: Path, count: int = 10) -> list[StockStorageNode]:
    """``count`` stock storage nodes ``base/s01``… on 127.0.0.1, started in parallel and serving."""
    nodes = [StockStorageNode(base / f"s{i:02d}", tahoe_bin) for i in range(1, count + 1)]
    start_all(nodes)
    return nodes


def stock_share_files(nodes: list[StockStorageNode], storage_index: bytes) -> dict[Path, int]:
    """Every share file of ``storage_index`` on the nodes' disks: {path: size in bytes}."""
    si = b32encode(storage_index)
    return {
        path: path.stat().st_size
        for node in nodes
        for path in sorted((node.storage_dir / "shares" / si[:2] / si).glob("*"))
    }


def stored_bytes(nodes: list[StockStorageNode]) -> int:
    """Bytes in every file under the nodes' ``storage/`` directories (shares, incoming, leases)."""
    return sum(p.stat().st_size for node in nodes for p in node.storage_dir.rglob("*") if p.is_file())


__all__ = [
    "StockClientNode",
    "StockStorageNode",
    "StockTahoeError",
    "StorageAnnouncement",
    "client_for_grid",
    "free_port",
    "servers_yaml_for",
    "start_all",
    "start_stock_grid",
    "stock_env",
    "stock_share_files",
    "stop_all",
    "stored_bytes",
]
