"""uploader.aio: the loop's exception handler quiets only uvloop's report of TLS bytes processed for
a connection we had already closed (a Ctrl-C while connecting); everything else is reported."""

from __future__ import annotations

import asyncio
from typing import Any

from uploader import aio


class _Loop:
    def __init__(self) -> None:
        self.reported: list[dict[str, Any]] = []

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.reported.append(context)


def _handle(context: dict[str, Any]) -> list[dict[str, Any]]:
    loop = _Loop()
    aio._exception_handler(loop, context)  # type: ignore[arg-type]
    return loop.reported


def test_tls_bytes_for_a_closed_connection_are_not_reported() -> None:
    closed = RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")
    assert _handle({"message": "Fatal error on SSL protocol", "exception": closed}) == []


def test_other_reports_reach_the_default_handler() -> None:
    for context in (
        {"message": "Fatal error on SSL protocol", "exception": RuntimeError("something else")},
        {"message": "Fatal error on SSL protocol", "exception": OSError("the handler is closed")},
        {"message": "Task exception was never retrieved", "exception": RuntimeError("the handler is closed")},
        {"message": "Unclosed client session"},
    ):
        assert _handle(context) == [context]


def test_run_installs_it() -> None:
    async def main() -> object:
        return asyncio.get_running_loop().get_exception_handler()

    assert aio.run(main()) is aio._exception_handler
