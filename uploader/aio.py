"""Running the network process's event loop: uvloop, and malloc tuned for large buffers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from uploader import interrupts
from workers.malloc import tune_malloc

T = TypeVar("T")
log = logging.getLogger(__name__)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        tune_malloc()
        gc.freeze()  # modules and start-up state live as long as the process: keep them out of collections
        interrupts.release()  # imports done: a Ctrl-C now cancels the main task (asyncio.Runner's handler)
        return uvloop.run(_quiet_closed_tls(coro))
    finally:
        coro.close()  # a Ctrl-C before the loop started it: no "coroutine was never awaited" warning


async def _quiet_closed_tls(coro: Coroutine[Any, Any, T]) -> T:
    asyncio.get_running_loop().set_exception_handler(_exception_handler)
    return await coro


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's default handler, except for one report: uvloop's TLS protocol processing bytes
    that arrived for a connection already closed — ours, closed while its handshake ran (a Ctrl-C
    while connecting cancels the connects and closes them). Harmless, and a screenful of tracebacks
    after "interrupted"; kept at debug level."""
    exc = context.get("exception")
    if (
        context.get("message") == "Fatal error on SSL protocol"
        and isinstance(exc, RuntimeError)
        and "the handler is closed" in str(exc)
    ):
        log.debug("TLS data for a connection already closed: %s", exc)
        return
    loop.default_exception_handler(context)
