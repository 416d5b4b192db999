"""``make demo``: the main job on the embedded local grid, end to end.

Starts a 10-server local grid (under ``.cache/demo-grid``), uploads a generated 256 MiB file with
``python -m uploader put``, checks it by decoding the shares found on the servers' disks with the
reference decoder (every hash verified) and comparing with the original, prints the cap and MB/s,
and stops the grid.
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

from uploader.chk import reference
from uploader.chk.caps import ChkCap, parse_cap
from uploader.storage.container import share_length, unpack_header
from workers.base32 import b32encode

REPO = Path(__file__).resolve().parent.parent


def _uploader(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uploader", *args], cwd=REPO, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def read_disk_shares(grid: Path, cap: ChkCap, want: int) -> dict[int, bytes]:
    si = b32encode(cap.storage_index)
    out: dict[int, bytes] = {}
    for path in sorted(grid.glob(f"server-*/storage/shares/{si[:2]}/{si}/*")):
        if len(out) == want:
            break
        raw = path.read_bytes()
        header = unpack_header(raw[:12])
        out.setdefault(int(path.name), raw[12 : 12 + share_length(len(raw), header)])
    return out


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
            print("checking: decoding the servers' share files with the reference decoder …", flush=True)
            shares = read_disk_shares(args.dir, cap, cap.k)
            ok = reference.decode(cap, shares) == path.read_bytes()
            print(f"cap:      {cap}")
            print(
                f"upload:   {result['mb_per_s']:.1f} MB/s ({size / 1e6:.1f} MB in {result['seconds']:.2f} s; {wall:.2f} s with start-up)"
            )
            print(
                f"check:    {'OK — the shares decode to the original bytes' if ok else 'FAILED — shares do not decode to the original'}"
            )
            return 0 if ok else 5
    finally:
        _uploader("grid", "stop", "--dir", str(args.dir), capture_output=True)
        print("grid stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
