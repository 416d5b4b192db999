"""Running the network process's event loop: uvloop, and malloc tuned for large buffers."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from workers.malloc import tune_malloc

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    tune_malloc()
    return uvloop.run(coro)
