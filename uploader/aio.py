"""Running the network process's event loop: uvloop, and malloc tuned for large buffers."""

from __future__ import annotations

import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from uploader import interrupts
from workers.malloc import tune_malloc

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        tune_malloc()
        gc.freeze()  # modules and start-up state live as long as the process: keep them out of collections
        interrupts.release()  # imports done: a Ctrl-C now cancels the main task (asyncio.Runner's handler)
        return uvloop.run(coro)
    finally:
        coro.close()  # a Ctrl-C before the loop started it: no "coroutine was never awaited" warning
