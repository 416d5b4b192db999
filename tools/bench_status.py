"""Status page under load: how fast the daemon answers ``/status`` while 20 uploads run through it.

``python -m tools.bench_status [--uploads 20] [--size BYTES] [--workers-nice N] [--quick]`` starts
a temporary embedded grid (10 storage servers) and a real ``serve`` daemon, then runs rounds side by
side: ``contended`` (the 10 servers and 20 clients — other machines in a deployment — share the 2
cores at the daemon's priority; its workers run ``WORKER_NICE`` nicer), with ``--workers-nice N``
the same with the workers reniced to N (0: as before), and ``servers_and_clients_niced`` (those
stand-ins at nice 19: the daemon's own share of the machine). Each round reports:

| key | meaning |
|---|---|
| ``idle_status_ms`` | ``GET /status`` latency (p50/p99/max, ms) with nothing running |
| ``busy_status_ms`` | the same while ``uploads`` PUTs run at once (the target: p99 under 50 ms), polled on a fixed 100 ms schedule and timed from each poll's due time (a stall counts for every poll it delays), only while transfers are active; ``n`` samples |
| ``busy_status_served_ms`` | the same answers timed from sending to the answer read (without the poller's own lateness, which on these 2 cores also waits for the CPU) |
| ``busy_status_build_ms`` | the daemon's own time to build those answers (``Server-Timing``); the rest is queueing |
| ``busy_static_file_ms`` | a 1 KB file served from memory, polled alongside: how long any answer waits |
| ``status_vs_static_file_p50`` | ``/status``'s median over that file's: what ``/status`` itself adds |
| ``loop_lag_ms`` | how late the daemon's own once-a-second tick ran (its event loop's queue), from its history |
| ``busy_history_ms`` | ``GET /status/history?since=…`` as the page polls it, while busy |
| ``busy_page_ms`` | ``GET /`` and its two files (the page load), while busy |
| ``polls`` / ``failed_polls`` | requests made while busy / those not answered 200 |
| ``uploads_mb_per_s`` | the uploads' aggregate plaintext MB/s (MB = 10^6 bytes) |
| ``load_avg`` | the machine's 1-minute load average before and after the round (others' jobs count) |
| ``page_in_chromium`` | the page open in headless Chromium meanwhile: its redraws, the longest gap between two |
| ``responsive`` | every poll answered 200, none took a second, and the open page never went 2.5 s without a redraw |

The uploads run in another process (a thread each), so the poller's timings are not slowed by
the uploading client's own work; each poller keeps its connection open, as a browser does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tools.daemon import running_daemon

REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.1  # /status every 100 ms: ten pages' worth of polling
TARGET_MS = 50.0


def _summary(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(ms),
        "p50": round(statistics.median(ordered), 2),
        "p99": round(p99, 2),
        "max": round(ordered[-1], 2),
    }


class Poller:
    """One keep-alive connection; times each GET."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.build_ms: list[float] = []  # the daemon's own time to build each /status (Server-Timing)

    def get(self, path: str) -> tuple[int, float, bytes]:
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            body = resp.read()
            status = resp.status
            timing = resp.getheader("Server-Timing") or ""
            if timing.startswith("build;dur="):
                self.build_ms.append(float(timing.split("=", 1)[1]))
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            status, body = 0, b""
        return status, (time.perf_counter() - t0) * 1e3, body

    def close(self) -> None:
        self.conn.close()


def _workers(pid: int) -> list[int]:
    """The daemon's worker processes: its children running ``workers.boot`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            for kid in (task / "children").read_text().split():
                if b"workers.boot" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    found.append(int(kid))
        except OSError:
            continue
    return found


def _history(port: int, since: int) -> dict[str, Any]:
    poller = Poller(port)
    try:
        data: dict[str, Any] = json.loads(poller.get(f"/status/history?since={since}")[2])
        return data
    finally:
        poller.close()


def _upload_all(port: int, files: list[str], results: Any, nice: int) -> None:
    """In a child process: PUT every file at once (one thread each); put (seconds, statuses)."""
    os.nice(nice)

    def put(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            with open(path, "rb") as fh:
                conn.request("PUT", "/uri", body=fh, headers={"Content-Length": str(os.path.getsize(path))})
                resp = conn.getresponse()
                resp.read()
                return resp.status
        finally:
            conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(files)) as pool:
        statuses = list(pool.map(put, files))
    results.put((time.perf_counter() - t0, statuses))


def _poll_while(port: int, running: threading.Event) -> dict[str, Any]:
    """Poll as the page does (plus more often): /status every POLL_S, history and the page each second."""
    status, history, page, trivial = Poller(port), Poller(port), Poller(port), Poller(port)
    out: dict[str, list[float]] = {"status": [], "served": [], "history": [], "page": [], "trivial": []}
    failed = 0
    last_seq = 0
    next_page = 0.0
    start, sent = time.monotonic(), 0
    try:
        while running.is_set():
            # Open loop: /status goes out on a fixed schedule, and its latency counts from when it
            # was due, so a slow answer also counts for the polls it held up (no coordinated
            # omission). Only answers given while uploads are active count: not the idle start-up.
            due = start + sent * POLL_S
            sent += 1
            time.sleep(max(0.0, due - time.monotonic()))
            code, served_ms, body = status.get("/status")
            late_ms = (time.monotonic() - due) * 1e3
            failed += code != 200
            if code != 200 or _uploads_active(body):
                out["status"].append(late_ms)
                out["served"].append(served_ms)  # request sent to answer read: no schedule delay
            code, ms, _ = trivial.get("/static/status.css")  # from memory: the loop's own delay
            out["trivial"].append(ms)
            failed += code != 200
            if time.monotonic() >= next_page:
                next_page = time.monotonic() + 1.0
                code, ms, body = history.get(f"/status/history?since={last_seq}")
                out["history"].append(ms)
                failed += code != 200
                if code == 200:
                    last_seq = json.loads(body)["last_seq"]
                total = 0.0
                for path in ("/", "/static/status.js", "/static/status.css"):
                    code, ms, _ = page.get(path)
                    total += ms
                    failed += code != 200
                out["page"].append(total)
    finally:
        for p in (status, history, page, trivial):
            p.close()
    return {**out, "build": status.build_ms, "failed": failed}


def _uploads_active(body: bytes) -> bool:
    try:
        return bool(json.loads(body)["transfers"]["active"])
    except (ValueError, KeyError, TypeError):
        return False


def _open_page(port: int) -> tuple[Any, str]:
    """Headless Chromium (Debian's, as the tests use) on the status page; (None, why) without it."""
    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_path.exists()):
        return None, "no /usr/bin/chromium or /usr/bin/chromedriver (make browser installs them)"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (the dev extra has it)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    driver.get(f"http://127.0.0.1:{port}/")
    deadline = time.monotonic() + 30
    while not driver.execute_script("return document.body.dataset.updates") and time.monotonic() < deadline:
        time.sleep(0.1)
    return driver, ""


def _page_meter(driver: Any, seconds: float) -> dict[str, Any]:
    """What the open page measured of itself since its meter was reset."""
    data = driver.execute_script("return {...document.body.dataset}")
    updates = int(data.get("updates", 0))
    return {
        "updates": updates,
        "updates_per_s": round(updates / seconds, 2),
        "max_gap_ms": int(data.get("maxGapMs", 0)),  # between two redraws; polls are 1 s apart
        "last_poll_ms": int(data.get("lastPollMs", 0)),
    }


def _phase(
    port: int, root: Path, label: str, uploads: int, size: int, nice: int, page: Any = None
) -> dict[str, Any]:
    """One round: ``uploads`` fresh files PUT at once (fresh: the same bytes again would find their
    shares in place) while polling; the uploading process at ``nice``."""
    files = []
    for i in range(uploads):
        path = root / f"{label}-{i}"
        path.write_bytes(os.urandom(size))
        files.append(str(path))
    load_before = os.getloadavg()[0]
    first_seq = _history(port, 10**12)["last_seq"]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    uploader = ctx.Process(target=_upload_all, args=(port, files, results, nice))
    running = threading.Event()
    running.set()
    polled: dict[str, Any] = {}
    poller = threading.Thread(target=lambda: polled.update(_poll_while(port, running)))
    if page is not None:
        page.execute_script("window.resetMeter()")
    poller.start()
    uploader.start()
    try:
        seconds, statuses = results.get(timeout=900)
        in_page = _page_meter(page, seconds) if page is not None else None
    finally:
        uploader.join()
        running.clear()
        poller.join()
        for f in files:
            os.unlink(f)
    lag = _history(port, first_seq)["loop_lag_ms"]
    busy = _summary(polled["status"])
    slowest = max([*polled["status"], *polled["history"], *polled["page"]], default=0.0)
    return {
        # the machine's 1-minute load average (2 cores here) before and after: other jobs show here
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "upload_statuses": sorted(set(statuses)),
        "uploads_mb_per_s": round(uploads * size / seconds / 1e6, 1),
        "busy_status_ms": busy,
        "busy_status_served_ms": _summary(polled["served"]),
        "busy_status_build_ms": _summary(polled["build"]),
        "busy_static_file_ms": _summary(polled["trivial"]),
        "status_vs_static_file_p50": round(
            statistics.median(polled["status"]) / max(statistics.median(polled["trivial"]), 1e-3), 2
        ),
        "loop_lag_ms": _summary(lag),
        "busy_history_ms": _summary(polled["history"]),
        "busy_page_ms": _summary(polled["page"]),
        "polls": 2 * len(polled["status"]) + len(polled["history"]) + 3 * len(polled["page"]),
        "failed_polls": polled["failed"],
        "status_p99_under_50ms": busy.get("p99", 1e9) < TARGET_MS,
        "page_in_chromium": in_page,
        "responsive": polled["failed"] == 0
        and slowest < 1000.0
        and (in_page is None or in_page["max_gap_ms"] < 2500),
    }


def run(
    uploads: int = 20, size: int = 32 * 2**20, quick: bool = False, workers_nice: int | None = None
) -> dict[str, Any]:
    """``workers_nice``: also a round with the daemon's workers reniced to this (0: the daemon's own
    priority, as before ``daemon.WORKER_NICE``; lowering a niceness needs root), right after the
    first, for a side-by-side comparison."""
    if quick:
        uploads, size = min(uploads, 4), 256 * 1024
    out: dict[str, Any] = {"uploads": uploads, "file_mb": round(size / 1e6, 2)}
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        root = Path(tmp)
        grid = root / "grid"
        subprocess.run(
            [sys.executable, "-m", "uploader", "grid", "start", "--dir", str(grid), "--servers", "10"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        page: Any = None
        try:
            with running_daemon(grid, root, {"workers": 2}) as (url, proc):
                port = int(url.rsplit(":", 1)[1])
                idle = Poller(port)
                out["idle_status_ms"] = _summary([idle.get("/status")[1] for _ in range(50)])
                idle.close()
                page, why = _open_page(port)
                if page is None:
                    out["page_in_chromium"] = why
                # The daemon shares 2 cores with its 10 storage servers and the 20 clients, at its own
                # priority (its workers nicer); in a deployment those are other machines.
                out["contended"] = _phase(port, root, "contended", uploads, size, 0, page)
                if workers_nice is not None:
                    workers = _workers(proc.pid)
                    default = [os.getpriority(os.PRIO_PROCESS, w) for w in workers]
                    for w in workers:
                        os.setpriority(os.PRIO_PROCESS, w, workers_nice)
                    label = f"contended_workers_at_nice_{workers_nice}"
                    out[label] = _phase(port, root, "renice", uploads, size, 0, page)
                    for w, n in zip(workers, default, strict=True):
                        os.setpriority(os.PRIO_PROCESS, w, n)
                # The stand-ins for other machines (servers, clients) at nice 19: the daemon's own share.
                for server in json.loads((grid / "grid.json").read_text())["servers"]:
                    os.setpriority(os.PRIO_PROCESS, server["pid"], 19)
                out["servers_and_clients_niced"] = _phase(port, root, "niced", uploads, size, 19, page)
        finally:
            if page is not None:
                page.quit()
            subprocess.run(
                [sys.executable, "-m", "uploader", "grid", "stop", "--dir", str(grid)],
                cwd=REPO,
                capture_output=True,
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20, help="uploads at once (default 20)")
    parser.add_argument("--size", type=int, default=32 * 2**20, help="bytes per file (default 32 MiB)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument(
        "--workers-nice",
        type=int,
        metavar="N",
        help="also a round with the daemon's workers at nice N (0: as before WORKER_NICE; root to lower)",
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args.uploads, args.size, args.quick, args.workers_nice), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
