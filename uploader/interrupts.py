"""Ctrl-C while a command starts up: held, then raised where the command can stop cleanly.

A KeyboardInterrupt raised at an arbitrary moment of start-up lands inside the import machinery,
which does not survive it: a class being created turns it into a RuntimeError, a weakref callback
swallows it (the command then runs on as if never interrupted), and one raised inside code that
``dataclasses`` builds with ``exec`` leaves CPython's "unhandled KeyboardInterrupt" flag set, so the
process dies by SIGINT even after ``main`` handled it. ``python -m uploader`` therefore holds SIGINT
from its first line: a Ctrl-C that arrives while a module is being imported is noted, one that
arrives anywhere else (reading a configuration from a FIFO, say) is raised at once, as usual. And
``release`` (once the command's imports are done: just before its event loop starts, or before a
command that has none runs) puts the default handler back and raises a noted Ctrl-C there.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_held = False
_pending = False


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside the import machinery (a module's code, a class it creates, a
    callback of importlib's): importlib's own frames are below it on the stack."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _note(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _importing(frame):
        _pending = True
        return
    raise KeyboardInterrupt  # not inside an import: where it lands can handle it (a blocked read, say)


def hold() -> None:
    """Hold SIGINT from now until ``release`` (not where it is ignored: a shell's background job)."""
    global _held
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _note)
        _held = True


def release() -> None:
    """End the hold (a no-op where nothing is held); a Ctrl-C that came during it is raised here."""
    global _held, _pending
    if not _held or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _held = False
    if _pending:
        _pending = False
        raise KeyboardInterrupt
