"""Starting worker processes, early if need be.

A worker takes ~0.1 s to boot (a fresh interpreter, then the codecs) before it can say it is ready.
``prespawn`` starts them first thing in a command, before the command's own imports and connects,
so that they boot meanwhile on the other core; the pool (``WorkerPool(early=...)``) then adopts
them. This module imports nothing heavy, so that calling it early costs little.

| function | what it does |
|---|---|
| ``start_worker``  | one spawned worker process and the network process's end of its socketpair |
| ``prespawn``      | ``count`` of them at once, for a pool to adopt |
| ``discard``       | kill the ones no pool adopted (the command failed before its pool started) |
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from workers.boot import boot


@dataclass
class Spawned:
    process: multiprocessing.process.BaseProcess
    sock: socket.socket  # the network process's end of the socketpair


def start_worker(backend: str, nice: int = 0) -> Spawned:
    """Spawn one worker; it boots, then waits for the arena hello on its socket."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = multiprocessing.get_context("spawn").Process(
        target=boot, args=(child, os.getpid(), backend), daemon=True, name="uploader-worker"
    )
    # The worker starts with SIGINT ignored (an ignored signal stays ignored across exec): a Ctrl-C
    # to the terminal's process group is the network process's to handle, and must not print a
    # KeyboardInterrupt traceback from a worker still importing its codecs. Here it is blocked
    # meanwhile, so one that comes during the start is delivered after it, not lost.
    with _sigint_held():
        try:
            proc.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
    if nice and proc.pid is not None:
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
        os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
    return Spawned(proc, parent)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT ignored for processes started meanwhile, blocked (kept pending) for this one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        # None: the handler was not set from Python (an embedding host's); the default is closest
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


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
