"""Peak memory of ``python -m uploader cap`` over a big file (issue 2's acceptance figure).

``python -m tools.rss_cap --size 1073741824 [--workers W]`` writes a file of that size in a
temporary directory, runs ``cap`` on it, and watches the whole process tree every 20 ms: peak
RSS of the network process and of any single worker (the kernel's high-water mark, ``VmHWM``: no
peak between two looks is missed), and the peak of the tree's summed PSS (proportional set size:
shared-memory slots counted once, not once per process; sampled, so a lower bound).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil


def _proc_kb(pid: int, name: str, field: str) -> int:
    """``field`` (a ``kB`` line) of ``/proc/PID/name``, in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def pss_of(pid: int) -> int:
    """The process's proportional set size now (shared pages split among their users), bytes."""
    return _proc_kb(pid, "smaps_rollup", "Pss:")


def _hwm(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``), bytes."""
    return _proc_kb(pid, "status", "VmHWM:")


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` and sample its process tree until it exits."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    peak_main = peak_child = peak_pss = 0
    while proc.poll() is None:
        try:
            children = root.children(recursive=True)
            peak_main = max(peak_main, _hwm(proc.pid))
            for child in children:
                peak_child = max(peak_child, _hwm(child.pid))
            peak_pss = max(peak_pss, pss_of(proc.pid) + sum(pss_of(c.pid) for c in children))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    out, err = proc.communicate()
    mib = 1024 * 1024
    return {
        "exit_code": proc.returncode,
        "stdout": out.decode().strip(),
        "stderr": err.decode().strip()[-2000:],
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_network_process_mib": round(peak_main / mib, 1),
        "peak_rss_one_worker_mib": round(peak_child / mib, 1),
        "peak_pss_tree_mib": round(peak_pss / mib, 1),
    }


def write_file(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for _ in range(size // len(chunk)):
            fh.write(chunk)
        fh.write(chunk[: size % len(chunk)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 30)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uploader-rss-") as tmp:
        path = Path(tmp) / "big"
        write_file(path, args.size)
        cmd = [sys.executable, "-m", "uploader", "cap", str(path)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        env = {**os.environ, "XDG_CONFIG_HOME": str(Path(tmp) / "config")}
        result = measure(cmd, env)
    result["file_bytes"] = args.size
    print(json.dumps(result, indent=2))
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
