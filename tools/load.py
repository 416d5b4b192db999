"""Load: many concurrent uploads of mixed sizes through the daemon to a local grid, every cap checked.

``python -m tools.load`` starts a local grid (``--servers``, default 10) and a daemon (``serve``) on
it, generates ``--uploads`` files of mixed sizes (LIT-sized, small, around a segment, large) adding up
to about ``--total-mb`` MB, PUTs them all at once (``--concurrency``) through the daemon's web API
(``uploader.daemonclient``), and checks every cap against the one ``cap`` computes for the same file
and secret (the convergent cap is a function of the bytes, so a wrong share-set gives a wrong cap); a
sample of ``--read-back`` files is downloaded through the daemon and compared byte for byte. Peak RSS
of the daemon and of the daemon plus its worker processes is sampled every 50 ms.

``--duration S`` repeats rounds (new files each round) until S seconds have passed — the soak
(``make soak``, see tools/soak.py); per-round peaks show whether memory grows. ``--out DIR`` writes
the raw log (one line per upload) and the result (JSON) there. Exit status 0 only when every upload
gave the right cap and every read-back matched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psutil

from tools.daemon import running_daemon
from tools.measure import same_bytes
from tools.rss_cap import pss_of
from uploader import daemonclient
from uploader.daemon import MAX_UPLOADS
from uploader.encoding import encode_file_inline, slot_size_for
from workers.base32 import b32encode
from workers.geometry import EncodingParams

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Round:
    index: int
    uploads: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "file: error class: message"
    wrong_caps: int = 0
    read_back: int = 0
    read_back_mismatches: int = 0
    peak_daemon_rss: int = 0
    peak_total_rss: int = 0
    peak_total_pss: int = 0


def mixed_sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """``count`` sizes adding up to about ``total``: a tenth LIT-sized, a fifth small (KB), a fifth
    around one 1 MiB segment, the rest sharing what is left (large)."""
    kinds = ["lit"] * (count // 10) + ["small"] * (count // 5) + ["segment"] * (count // 5)
    kinds += ["large"] * (count - len(kinds))
    rng.shuffle(kinds)
    sizes = []
    for kind in kinds:
        if kind == "lit":
            sizes.append(rng.randint(0, 55))
        elif kind == "small":
            sizes.append(rng.randint(56, 256 * 1024))
        elif kind == "segment":
            sizes.append((1 << 20) + rng.randint(-4096, 4096))
        else:
            sizes.append(0)
    large = [i for i, k in enumerate(kinds) if k == "large"]
    left = max(0, total - sum(sizes))
    weights = [rng.uniform(0.2, 1.8) for _ in large]
    for i, w in zip(large, weights, strict=True):
        sizes[i] = max(56, int(left * w / sum(weights)))
    return sizes


def write_files(directory: Path, sizes: list[int], rng: random.Random) -> list[Path]:
    paths = []
    for i, size in enumerate(sizes):
        path = directory / f"f{i:04d}.bin"
        with path.open("wb") as fh:
            left = size
            while left:
                n = min(left, 4 << 20)
                fh.write(rng.randbytes(n))
                left -= n
        paths.append(path)
    return paths


class RssSampler:
    """Peak RSS of a process and of it plus its children, and their summed PSS, every ``period_s``
    (sampled: peaks shorter than a period can be missed, so these are lower bounds)."""

    def __init__(self, pid: int, period_s: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.period_s = period_s
        self.peak_own = 0
        self.peak_total = 0  # RSS summed: the shared-memory slots count once per process touching them
        self.peak_pss = 0  # proportional set size summed: shared pages counted once in all
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                own = self.proc.memory_info().rss
                total = own
                children = self.proc.children(recursive=True)
                for child in children:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += child.memory_info().rss
                # PSS from smaps_rollup (the kernel's sums: cheap enough for every sample)
                pss = pss_of(self.proc.pid) + sum(pss_of(child.pid) for child in children)
                self.peak_pss = max(self.peak_pss, pss)
            except psutil.NoSuchProcess:
                return
            self.peak_own = max(self.peak_own, own)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.period_s)

    def reset(self) -> None:
        self.peak_own = self.peak_total = self.peak_pss = 0

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_bound(window: int, workers: int) -> int:
    """What configuration allows daemon + workers together (PSS): the shared-memory slots the
    daemon's pool has (``window`` per encoding upload, MAX_UPLOADS at once, 2 per worker), plus a
    fixed 250 MiB allowance per process (interpreter, libraries, request buffers) — not the files."""
    slots = window * MAX_UPLOADS + 2 * workers
    return slots * slot_size_for(EncodingParams(3, 10, 1 << 20)) + (1 + workers) * 250 * 2**20


async def put_all(url: str, paths: list[Path], concurrency: int) -> list[tuple[str | None, str, float]]:
    """(cap or None, error text, seconds) per file, all at once (at most ``concurrency`` in flight).

    Each upload is a blocking client call on a thread of its own pool of ``concurrency`` threads
    (asyncio's default executor has only cpu + 4, which capped the load at 6 here)."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="load-put") as pool:

        async def one(path: Path) -> tuple[str | None, str, float]:
            start = time.monotonic()
            try:
                cap, _, seconds, _ = await loop.run_in_executor(pool, daemonclient.put, url, path)
                return cap, "", seconds
            except Exception as exc:  # recorded, and the run fails
                return None, f"{type(exc).__name__}: {exc}", time.monotonic() - start

        return list(await asyncio.gather(*(one(p) for p in paths)))


def drop_complete_shares(grid_dir: Path) -> int:
    """Delete the complete shares every server of ``grid_dir`` holds (never ``incoming``); return bytes freed.

    A round leaves ~3.3× its bytes in shares; a 30-minute soak keeps only the current round's, so
    it needs disk for one round, not for all of them (it filled a 45 GB disk otherwise). Called
    between rounds, when no upload is in progress; the servers read shares from disk on demand."""
    freed = 0
    for prefix in grid_dir.glob("server-*/storage/shares/*"):
        if prefix.name == "incoming" or not prefix.is_dir():
            continue
        freed += sum(f.stat().st_size for f in prefix.rglob("*") if f.is_file())
        shutil.rmtree(prefix, ignore_errors=True)
    return freed


def run_round(
    index: int,
    url: str,
    work: Path,
    rng: random.Random,
    args: argparse.Namespace,
    secret: bytes,
    sampler: RssSampler,
    log: TextIO,
) -> Round:
    rnd = Round(index)
    files = work / f"round-{index}"
    files.mkdir()
    try:
        sizes = mixed_sizes(rng, args.uploads, int(args.total_mb * 1e6))
        paths = write_files(files, sizes, rng)
        sampler.reset()
        start = time.monotonic()
        results = asyncio.run(put_all(url, paths, args.concurrency))
        rnd.seconds = time.monotonic() - start
        rnd.peak_daemon_rss, rnd.peak_total_rss = sampler.peak_own, sampler.peak_total
        rnd.peak_total_pss = sampler.peak_pss
        params = EncodingParams(3, 10, 1 << 20)
        for path, (cap, error, seconds) in zip(paths, results, strict=True):
            size = path.stat().st_size
            rnd.uploads += 1
            rnd.bytes += size
            if cap is None:
                rnd.failures.append(f"{path.name}: {error}")
                ok = "FAILED " + error
            else:
                expected, _ = encode_file_inline(path, params, secret)
                ok = "ok" if str(expected) == cap else "WRONG CAP"
                rnd.wrong_caps += ok != "ok"
            # no caps in the log: they are read capabilities (secrets); the file and the verdict
            log.write(f"round={index} file={path.name} size={size} seconds={seconds:.3f} result={ok}\n")
        for i in rng.sample(range(len(paths)), min(args.read_back, len(paths))):
            cap = results[i][0]
            if cap is None:
                continue
            out = files / f"back-{i}"
            daemonclient.get(url, cap, out)
            rnd.read_back += 1
            if not same_bytes(paths[i], out):
                rnd.read_back_mismatches += 1
            out.unlink()
        log.write(
            f"round={index} uploads={rnd.uploads} bytes={rnd.bytes} seconds={rnd.seconds:.2f} "
            f"failures={len(rnd.failures)} wrong_caps={rnd.wrong_caps} read_back={rnd.read_back} "
            f"mismatches={rnd.read_back_mismatches} peak_daemon_rss={rnd.peak_daemon_rss} "
            f"peak_total_rss={rnd.peak_total_rss} peak_total_pss={rnd.peak_total_pss}\n"
        )
        log.flush()
        return rnd
    finally:
        shutil.rmtree(files, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=100, help="uploads per round (default 100)")
    parser.add_argument("--total-mb", type=float, default=300.0, help="MB per round, about (default 300)")
    parser.add_argument("--concurrency", type=int, default=100, help="PUTs in flight at once (default 100)")
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--window", type=int, default=16, help="the daemon's window (segments per upload)")
    parser.add_argument("--read-back", type=int, default=10, help="files per round downloaded and compared")
    parser.add_argument("--duration", type=float, default=0.0, help="repeat rounds for this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write load-<stamp>.log and .json here")
    parser.add_argument("--label", default="load", help="file name prefix under --out")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument(
        "--keep-shares",
        action="store_true",
        help="keep every round's shares on the servers (default: delete them after each round's checks)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="uploader-load-") as tmp:
        work = Path(tmp)
        grid_dir = work / "grid"
        started = subprocess.run(
            [
                sys.executable,
                "-m",
                "uploader",
                "grid",
                "start",
                "--dir",
                str(grid_dir),
                "--servers",
                str(args.servers),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if started.returncode:
            print(started.stdout, started.stderr, file=sys.stderr)
            return started.returncode
        log_path = work / "load.log"
        try:
            secret = os.urandom(32)
            secret_file = work / "convergence"
            secret_file.write_text(b32encode(secret) + "\n")
            secret_file.chmod(0o600)
            settings = {
                "workers": args.workers,
                "convergence_secret_file": secret_file,
                "window": args.window,
            }
            with running_daemon(grid_dir, work, settings) as (url, daemon):
                rounds: list[Round] = []
                start = time.monotonic()
                with RssSampler(daemon.pid) as sampler, log_path.open("w") as log:
                    log.write(f"# tools.load {' '.join(argv if argv is not None else sys.argv[1:])}\n")
                    while True:
                        rounds.append(run_round(len(rounds), url, work, rng, args, secret, sampler, log))
                        if not args.keep_shares:
                            drop_complete_shares(grid_dir)
                        if time.monotonic() - start >= args.duration:
                            break
                elapsed = time.monotonic() - start
        finally:
            subprocess.run(
                [sys.executable, "-m", "uploader", "grid", "stop", "--dir", str(grid_dir)],
                cwd=REPO,
                capture_output=True,
            )
        uploaded = sum(r.bytes for r in rounds)
        upload_s = sum(r.seconds for r in rounds)
        result = {
            "rounds": len(rounds),
            "uploads": sum(r.uploads for r in rounds),
            "bytes": uploaded,
            "elapsed_s": round(elapsed, 1),
            "upload_mb_per_s": round(uploaded / max(upload_s, 1e-9) / 1e6, 2),
            "failures": [f for r in rounds for f in r.failures],
            "wrong_caps": sum(r.wrong_caps for r in rounds),
            "read_back": sum(r.read_back for r in rounds),
            "read_back_mismatches": sum(r.read_back_mismatches for r in rounds),
            "peak_daemon_rss": max(r.peak_daemon_rss for r in rounds),
            "peak_total_rss": max(r.peak_total_rss for r in rounds),
            "peak_total_pss": max(r.peak_total_pss for r in rounds),
            "peak_total_pss_by_round": [r.peak_total_pss for r in rounds],
            "window": args.window,
            "memory_bound": memory_bound(args.window, args.workers),
            "servers": args.servers,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "daemon_exit": daemon.returncode if daemon is not None else None,
        }
        ok = (
            not result["failures"]
            and result["wrong_caps"] == 0
            and result["read_back_mismatches"] == 0
            and result["daemon_exit"] == 0
            and result["peak_total_pss"] <= result["memory_bound"]
        )
        result["ok"] = ok
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            shutil.copy(log_path, args.out / f"{args.label}-{stamp}.log")
            (args.out / f"{args.label}-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            mb = 2**20
            print(
                f"{result['uploads']} uploads, {uploaded / 1e6:.0f} MB in {result['rounds']} round(s), "
                f"{result['upload_mb_per_s']} MB/s; failures {len(result['failures'])}, wrong caps "
                f"{result['wrong_caps']}, read back {result['read_back']} ({result['read_back_mismatches']} "
                f"mismatched); peak RSS daemon {result['peak_daemon_rss'] / mb:.0f} MiB, daemon+workers "
                f"{result['peak_total_rss'] / mb:.0f} MiB (PSS {result['peak_total_pss'] / mb:.0f} MiB; "
                f"configured bound {result['memory_bound'] / mb:.0f} MiB)"
            )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
