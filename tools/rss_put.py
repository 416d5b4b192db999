"""Peak memory of ``python -m uploader put`` on a local grid (issue 5's acceptance figure).

``python -m tools.rss_put --size 4294967296 [--size …] [--servers 10] [--workers W]`` starts a
temporary grid of local storage servers, writes a file of each size, uploads it with ``put``
while ``tools.rss_cap.measure`` samples the put's process tree every 20 ms, prints one JSON object
per size (peak RSS of the network process and of one worker, peak summed PSS of the tree, whose
shared-memory slots count once), and stops the grid. The servers are not measured: they are
separate processes, not part of ``put``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.rss_cap import measure, write_file
from uploader.grid import CLIENT_CONFIG, start_grid, stop_grid


def run(
    directory: Path, sizes: list[int], servers: int = 10, workers: int | None = None
) -> list[dict[str, Any]]:
    """Start a grid under ``directory``, ``put`` a file of each size in turn, stop the grid."""
    env = {
        **os.environ,
        "HOME": str(directory),
        "XDG_CONFIG_HOME": str(directory / "config"),  # a fresh convergence secret
        "XDG_DATA_HOME": str(directory / "data"),  # keeps the user's current-grid record untouched
    }
    env = {k: v for k, v in env.items() if not k.startswith("UPLOADER_")}
    grid = directory / "grid"
    start_grid(grid, servers, env=env)
    results = []
    try:
        for size in sizes:
            path = directory / f"file-{size}"
            write_file(path, size)
            cmd = [
                sys.executable,
                "-m",
                "uploader",
                "put",
                str(path),
                "--json",
                "--config",
                str(grid / CLIENT_CONFIG),
            ]
            if workers:
                cmd += ["--workers", str(workers)]
            try:
                result = measure(cmd, env)
            finally:
                path.unlink()
            result["file_bytes"] = size
            result["servers"] = servers
            results.append(result)
            if result["exit_code"] != 0:
                break
    finally:
        stop_grid(grid)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, action="append", help="bytes to upload (repeatable; default 1 GiB)"
    )
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the grid and files go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uploader-rss-put-", dir=args.dir) as tmp:
        results = run(Path(tmp), args.size or [1 << 30], args.servers, args.workers)
    for result in results:
        print(json.dumps(result, indent=2))
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
