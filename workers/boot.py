"""The worker process's entry point, importable without the codecs.

The network process starts each worker with ``main`` (uploader/prespawn.py). It imports nothing
heavy itself, so a command can start its workers before its own slow imports (aiohttp, the GBS
client) and let them boot meanwhile; the worker imports the codecs here, in its own process.
"""

from __future__ import annotations

import socket


def boot(sock: socket.socket, parent_pid: int, backend: str) -> None:
    from workers.main import worker_main

    worker_main(sock, parent_pid, backend)


def main() -> None:
    """``python -P -c "from workers.boot import main; main()" FD PARENT_PID BACKEND`` (uploader/prespawn.py)."""
    import sys

    fd, parent_pid, backend = sys.argv[1:4]
    boot(socket.socket(fileno=int(fd)), int(parent_pid), backend)
