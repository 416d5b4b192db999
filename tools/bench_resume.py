"""What a resume costs and saves: `put` SIGKILLed mid-transfer, then `put --resume`, side by side with
a clean `put` of a same-sized file and a `cap` (the encode alone), on one embedded local grid.

    python -m tools.bench_resume --size-mb 256 --kill-at 0.5 0.9 --out resume.json

For each kill point: the fraction of the placed shares' bytes the servers held when the uploader
was killed (read off their in-progress share files), the share bytes the resume sent and did not
resend, and its wall time against the clean upload's. A resume re-encodes every segment (the
hash trees and the flat ciphertext hash need all of them) but sends only what the servers lack,
so its floor is the encode pass: `cap` minus its key pass (a resume has the key).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from uploader.chk.caps import ChkCap, parse_cap
from workers.base32 import b32encode

REPO = Path(__file__).resolve().parent.parent


def _uploader(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _timed(*args: str) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    done = _uploader(*args)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"`uploader {' '.join(args)}` failed: {done.stderr}")
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1]) if done.stdout.strip() else {}
    return seconds, out


def _written(paths: list[Path], probe: float) -> bool:
    """Whether each in-progress share has its page at ``probe`` of its length written (not zeros)."""
    for path in paths:
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(int(size * probe) & ~4095)
                if not any(fh.read(4096)):
                    return False
        except FileNotFoundError:
            return False
    return bool(paths)


def _fraction(paths: list[Path]) -> float:
    total = written = 0
    for path in paths:
        with path.open("rb") as fh:
            while page := fh.read(1 << 16):
                total += 1
                written += any(page)
    return written / max(total, 1)


def run(size_mb: int, kill_at: list[float], directory: Path) -> dict[str, Any]:
    grid = directory / "grid"
    config = grid / "uploader.toml"
    if _uploader("grid", "start", "--dir", str(grid), "--servers", "10").returncode != 0:
        raise SystemExit("grid start failed")
    try:
        results: dict[str, Any] = {"size_mb": size_mb, "kills": []}
        files = []
        for i in range(len(kill_at) + 2):
            path = directory / f"file-{i}.bin"
            with path.open("wb") as fh:
                for _ in range(size_mb):
                    fh.write(os.urandom(1 << 20))
            files.append(path)
        seconds, clean = _timed("put", "--config", str(config), "--json", str(files[0]))
        results["clean_put"] = {"seconds": round(seconds, 2), "share_bytes_sent": clean["share_bytes_sent"]}
        seconds, _ = _timed("cap", "--config", str(config), "--json", str(files[1]))
        results["cap_seconds"] = round(seconds, 2)
        for point, path in zip(kill_at, files[2:], strict=True):
            _, capped = _timed("cap", "--config", str(config), "--json", str(path))
            cap = parse_cap(capped["cap"])
            assert isinstance(cap, ChkCap)
            sid = b32encode(cap.storage_index)
            proc = subprocess.Popen(
                [sys.executable, "-m", "uploader", "put", "--config", str(config), "--json", str(path)],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            pattern = f"server-*/storage/shares/incoming/{sid[:2]}/{sid}/*"
            while proc.poll() is None:
                paths = sorted(grid.glob(pattern))
                if len(paths) >= 7 and _written(paths, point):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    break
                time.sleep(0.005)
            else:
                raise SystemExit(f"the put finished before it reached {point:.0%}; use a bigger --size-mb")
            fraction = _fraction(sorted(grid.glob(pattern)))
            seconds, resumed = _timed("put", "--config", str(config), "--json", "--resume", str(path))
            assert resumed["cap"] == capped["cap"], "the resume gave another cap"
            results["kills"].append(
                {
                    "kill_at": point,
                    "written_at_kill": round(fraction, 3),
                    "resume_seconds": round(seconds, 2),
                    "share_bytes_sent": resumed["share_bytes_sent"],
                    "share_bytes_skipped": resumed["share_bytes_skipped"],
                }
            )
        return results
    finally:
        _uploader("grid", "stop", "--dir", str(grid))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=256)
    p.add_argument("--kill-at", type=float, nargs="+", default=[0.5, 0.9])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        results = run(args.size_mb, args.kill_at, Path(tmp))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
