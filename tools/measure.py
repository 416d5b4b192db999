"""For the benchmarks: CPU seconds (user + system) of processes, and a storage server process to measure."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """Another live process's CPU seconds so far (from /proc/PID/stat: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a live process and all its live descendants, with their reaped children's."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / _TICKS
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited meanwhile
    return total


def self_cpu_s() -> float:
    """This process's CPU seconds, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have exited and been reaped (e.g. workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def storage_server(
    directory: Path, args: Sequence[str] = (), prefix: Sequence[str] = (), host: str = "127.0.0.1"
) -> Iterator[tuple[int, str]]:
    """One ``python -m uploader storage`` process on ``host`` (port 0), with extra ``args``, its
    command after ``prefix`` (e.g. ``ip netns exec NS``): yields (pid, NURL), then stops it."""
    proc = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "uploader",
            "storage",
            "--dir",
            str(directory),
            "--listen",
            f"{host}:0",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        nurl = proc.stdout.readline().strip()
        if not nurl:
            raise RuntimeError("the storage server exited before printing its NURL")
        yield proc.pid, nurl
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (read in 8 MiB pieces: memory does not grow with size)."""
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(8 << 20), fb.read(8 << 20)
            if x != y:
                return False
            if not x:
                return True
