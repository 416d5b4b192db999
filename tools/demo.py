"""``make demo``: the main job on the embedded local grid, end to end.

Starts a 10-server local grid (under ``.cache/demo-grid``), uploads a generated 256 MiB file with
``python -m uploader put``, downloads it again with ``python -m uploader get`` (every hash verified)
and compares the download with the original, prints the cap and both MB/s, and stops the grid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.measure import same_bytes
from uploader.chk.caps import ChkCap, parse_cap

REPO = Path(__file__).resolve().parent.parent


def _uploader(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], cwd=REPO, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 * 2**20, help="bytes to upload (default 256 MiB)")
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=REPO / ".cache" / "demo-grid")
    args = parser.parse_args(argv)
    if args.dir.exists():
        _uploader("grid", "stop", "--dir", str(args.dir), capture_output=True)
        shutil.rmtree(args.dir)
    print(f"starting a {args.servers}-server local grid in {args.dir} …", flush=True)
    started = _uploader("grid", "start", "--dir", str(args.dir), "--servers", str(args.servers))
    if started.returncode:
        return started.returncode
    try:
        with tempfile.TemporaryDirectory(prefix="uploader-demo-") as tmp:
            path = Path(tmp) / "demo.bin"
            chunk = os.urandom(1 << 20)
            with path.open("wb") as fh:
                for _ in range(args.size // len(chunk)):
                    fh.write(chunk + os.urandom(16))
            size = path.stat().st_size
            print(f"uploading {size / 1e6:.1f} MB …", flush=True)
            t0 = time.monotonic()
            put = _uploader(
                "put",
                str(path),
                "--json",
                "--config",
                str(args.dir / "uploader.toml"),
                stdout=subprocess.PIPE,
            )
            wall = time.monotonic() - t0
            if put.returncode:
                print("upload failed", file=sys.stderr)
                return put.returncode
            result = json.loads(put.stdout.splitlines()[-1])
            cap = parse_cap(result["cap"])
            assert isinstance(cap, ChkCap)
            print("downloading it again with `get` …", flush=True)
            back = Path(tmp) / "download.bin"
            get = _uploader(
                "get",
                str(cap),
                "-o",
                str(back),
                "--json",
                "--config",
                str(args.dir / "uploader.toml"),
                stdout=subprocess.PIPE,
            )
            if get.returncode:
                print("download failed", file=sys.stderr)
                return get.returncode
            fetched = json.loads(get.stdout.splitlines()[-1])
            ok = same_bytes(path, back)
            print(f"cap:      {cap}")
            print(
                f"upload:   {result['mb_per_s']:.1f} MB/s ({size / 1e6:.1f} MB in {result['seconds']:.2f} s; {wall:.2f} s with start-up)"
            )
            print(
                f"download: {fetched['mb_per_s']:.1f} MB/s ({size / 1e6:.1f} MB in {fetched['seconds']:.2f} s)"
            )
            print(
                f"check:    {'OK — the download is byte for byte the original' if ok else 'FAILED — the download differs from the original'}"
            )
            return 0 if ok else 5
    finally:
        _uploader("grid", "stop", "--dir", str(args.dir), capture_output=True)
        print("grid stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
