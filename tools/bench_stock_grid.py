"""``put`` against stock Tahoe-LAFS 1.20's ``tahoe put`` on a grid of 10 STOCK Tahoe storage nodes.

``python -m tools.bench_stock_grid [--size BYTES]``: the setting of the upload issue's baseline
("10 local servers", stock Tahoe everywhere). Starts 10 stock storage nodes on 127.0.0.1 and a
stock client node using them (static servers.yaml), then uploads files of the same size —
different contents each, so none deduplicates against another — with ``tahoe put`` (start to
exit: the CLI's ~0.8 s start-up included), with ``PUT /uri`` to the running stock node (its
upload alone), and with our ``put`` (in-process GridClient, pool and connections already up, the
default configuration: k=3, N=10, happy=7, 1 MiB segments). ``put_vs_stock_node`` sets the two
uploads without start-up side by side; the page cache is written back before each.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench_upload import _write_file
from tools.stock_tahoe import StockClientNode, StockStorageNode, servers_yaml_for, start_all, stop_all
from uploader import aio
from uploader.config import load_config
from uploader.gridclient import GridClient

REPO = Path(__file__).resolve().parent.parent


async def _ours(config_path: Path, path: Path) -> float:
    config = load_config(config_path, {**os.environ, "HOME": str(config_path.parent)}, {})
    async with GridClient(config) as client:
        t0 = time.perf_counter()
        await client.upload(path)
        return time.perf_counter() - t0


def run(size: int = 256 * 2**20, quick: bool = False) -> dict[str, Any]:
    if quick:
        size = min(size, 8 * 2**20)
    tahoe = REPO / ".cache" / "tahoe-venv" / "bin" / "tahoe"
    with tempfile.TemporaryDirectory(prefix="bench-stock-grid-") as tmp:
        base = Path(tmp)
        nodes = [StockStorageNode(base / f"s{i:02d}", tahoe) for i in range(1, 11)]
        client: StockClientNode | None = None
        try:
            start_all(nodes)
            client = StockClientNode(base / "client", tahoe, servers_yaml_for(n.announcement for n in nodes))
            start_all([client])
            config = base / "uploader.toml"
            config.write_text(
                f'data_dir = "{base / "ours"}"\n'
                + "".join(f'\n[[servers]]\nnurl = "{n.nurl}"\n' for n in nodes)
            )
            os.environ.setdefault("XDG_CONFIG_HOME", str(base / "xdg"))
            files = [base / f"{name}.bin" for name in ("theirs-cli", "theirs-node", "ours")]
            for f in files:
                _write_file(f, size)
                with f.open("r+b") as fh:  # different bytes: no dedup between the uploads
                    fh.write(os.urandom(4096))
            os.sync()
            t0 = time.perf_counter()
            client.put(files[0])
            stock_s = time.perf_counter() - t0
            os.sync()
            t0 = time.perf_counter()
            client.put_http(files[1])
            node_s = time.perf_counter() - t0
            os.sync()
            ours_s = aio.run(_ours(config, files[2]))
        finally:
            stop_all([*nodes, *([client] if client else [])])
    return {
        "file_mb": round(size / 1e6, 1),
        "servers": "10 stock Tahoe-LAFS 1.20.0 storage nodes",
        "stock_tahoe_put_mb_per_s": round(size / stock_s / 1e6, 1),
        "stock_node_put_mb_per_s": round(size / node_s / 1e6, 1),
        "put_mb_per_s": round(size / ours_s / 1e6, 1),
        "put_vs_stock_node": round(node_s / ours_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 * 2**20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.size, args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
