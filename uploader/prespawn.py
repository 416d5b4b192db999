"""Starting worker processes, early if need be.

A worker takes ~0.1 s to boot (a fresh interpreter, then the codecs) before it can say it is ready.
``prespawn`` starts them first thing in a command, before the command's own imports and connects,
so that they boot meanwhile on the other core; the pool (``WorkerPool(early=...)``) then adopts
them. This module imports nothing heavy, so that calling it early costs little.

| function | what it does |
|---|---|
| ``start_worker``  | one worker process (its own process group) and the network process's end of its socketpair |
| ``prespawn``      | ``count`` of them at once, for a pool to adopt |
| ``discard``       | kill the ones no pool adopted (the command failed before its pool started) |
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass


class WorkerProcess:
    """A started worker: the few calls of ``multiprocessing.Process`` that the pool uses, over
    ``subprocess.Popen`` (``exitcode`` is negative for a signal, as there)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)


@dataclass
class Spawned:
    process: WorkerProcess
    sock: socket.socket  # the network process's end of the socketpair


# The worker's command line: a fresh interpreter running workers.boot, which imports nothing of
# ``uploader``. -P: the current directory is not put on sys.path (a ./workers there must not win).
BOOT = "from workers.boot import main; main()"


def start_worker(backend: str, nice: int = 0) -> Spawned:
    """Start one worker; it boots, then waits for the arena hello on its socket.

    The worker runs in a process group of its own: a Ctrl-C at the terminal goes to the
    foreground group, i.e. to the network process alone, which handles it (and then stops its
    workers); a worker still importing its codecs never sees it. The network process's own
    signal handling is not touched while a worker starts, so no Ctrl-C of its own can be lost
    (ignoring SIGINT around the start, as this did before, dropped one now and then).
    """
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        popen = subprocess.Popen(
            [sys.executable, "-P", "-c", BOOT, str(child.fileno()), str(os.getpid()), backend],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    if nice:
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, popen.pid, niceness)
    return Spawned(WorkerProcess(popen), parent)


def prespawn(count: int, backend: str, nice: int = 0) -> list[Spawned]:
    """``count`` workers started now; hand the list to the pool, and ``discard`` it afterwards."""
    early: list[Spawned] = []
    try:
        for _ in range(count):
            early.append(start_worker(backend, nice))
    except BaseException:
        discard(early)
        raise
    return early


def discard(early: list[Spawned]) -> None:
    """Kill and reap the workers still in ``early`` (a pool removes those it adopts)."""
    while early:
        spawned = early.pop()
        spawned.sock.close()  # EOF: a booted worker exits on its own
        if spawned.process.is_alive():
            spawned.process.kill()
        spawned.process.join(1.0)
