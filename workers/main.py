"""The worker process: a short blocking loop around ``workers.jobs.run_job``.

Started by the supervisor with the ``spawn`` context and handed one end of a socketpair. The first
thing on the socket is the shared-memory arena's fd (SCM_RIGHTS) with its geometry; then frames in,
frames out, one job at a time. The worker exits on Shutdown, on EOF (the network process is gone),
and — through PR_SET_PDEATHSIG — the moment its parent dies, even mid-job.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import struct
import sys

from workers import erasure
from workers.jobs import run_job
from workers.malloc import tune_malloc
from workers.messages import FRAME_HEADER, MAX_FRAME, Shutdown, WorkerReady, frame, read_frame_length, unpack
from workers.slots import Arena

_ARENA_HELLO = struct.Struct(">QQ")  # slot count, slot size
_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int) -> None:
    """Ask the kernel to SIGKILL us when the parent exits; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: EOF on the socket still ends us
        pass
    if os.getppid() != expected_parent:
        os._exit(0)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        r = sock.recv_into(view[got:])
        if r == 0:
            return None
        got += r
    return bytes(buf)


def receive_arena(sock: socket.socket) -> Arena | None:
    msg, fds, _flags, _addr = socket.recv_fds(sock, _ARENA_HELLO.size, 1)
    if len(msg) != _ARENA_HELLO.size:
        return None
    count, size = _ARENA_HELLO.unpack(msg)
    if not fds:
        return None
    return Arena(fds[0], count, size)


def send_arena(sock: socket.socket, arena: Arena) -> None:
    socket.send_fds(sock, [_ARENA_HELLO.pack(arena.count, arena.slot_size)], [arena.fd])


def serve(sock: socket.socket, arena: Arena | None, backend: str) -> None:
    sock.sendall(frame(WorkerReady(os.getpid(), backend)))
    while True:
        header = _recv_exact(sock, FRAME_HEADER.size)
        if header is None:
            return
        body = _recv_exact(sock, read_frame_length(header, MAX_FRAME))
        if body is None:
            return
        msg = unpack(body)
        if isinstance(msg, Shutdown):
            return
        sock.sendall(frame(run_job(msg, arena)))


def worker_main(sock: socket.socket, parent_pid: int, backend: str = "zfec") -> None:
    """Entry point in the spawned process.

    ``backend`` is the erasure backend the pool chose (``isal`` or ``zfec``); the worker loads it and
    proves it byte-identical to zfec before its first job. If it cannot, the worker exits with the
    reason on stderr, before WorkerReady, and the pool's start fails (never a silent fallback).
    """
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the network process's to handle
    tune_malloc()
    arena = receive_arena(sock)
    try:
        chosen = erasure.configure(backend)
        # Everything imported so far lives as long as the process: move it out of the collector's
        # reach, so that the collections the jobs' allocations trigger scan only the jobs' objects
        # (before this, ~9% of a downloading worker's samples were the collector walking modules).
        gc.freeze()
        serve(sock, arena, chosen.name)
    except erasure.ErasureBackendError as exc:
        print(f"uploader worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
