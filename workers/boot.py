"""The worker process's entry point, importable without the codecs.

The network process names this function as the target of each spawned worker. It imports nothing
heavy itself, so a command can start its workers before its own slow imports (aiohttp, the GBS
client) and let them boot meanwhile; the worker imports the codecs here, in its own process.
"""

from __future__ import annotations

import socket


def boot(sock: socket.socket, parent_pid: int, backend: str) -> None:
    from workers.main import worker_main

    worker_main(sock, parent_pid, backend)
