"""A request body made of several buffers, sent without joining them (the PATCH of share data).

The network process's TLS sending is the bottleneck of an upload (ARCHITECTURE.md "Performance
budget"), so a write hands each buffer straight to the transport, where TLS encrypts it: no
``b"".join``, no slicing copies (memoryviews), and the headers go out on their own so aiohttp does
not glue the first buffer onto them (it joins with ``b"".join`` on Python < 3.12.9).

Buffers larger than ``piece_size`` are sent in pieces, each awaited with ``stall_timeout_s``: a
server that stops reading is noticed even while the request is still being sent (aiohttp's read
timeout starts only once the body is out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

PIECE_SIZE = 1024 * 1024  # bytes handed to the transport per awaited write


class BuffersPayload(Payload):
    """Consecutive buffers sent as one body of ``size`` bytes. The buffers must not change until
    the request is done (they are not copied)."""

    def __init__(
        self, buffers: Sequence[memoryview], size: int, *, stall_timeout_s: float | None, **kwargs: Any
    ) -> None:
        super().__init__(buffers, content_type=None, **kwargs)
        self._buffers = buffers
        self._size = size
        self._total = size
        self._stall_timeout_s = stall_timeout_s

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("share data is binary; it has no text form")

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"".join(self._buffers)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        left = self._total if content_length is None else min(content_length, self._total)
        writer.send_headers()
        for buf in self._buffers:
            if left <= 0:
                break
            if buf.nbytes > left:
                buf = buf[:left]
            left -= buf.nbytes
            for start in range(0, buf.nbytes, PIECE_SIZE):
                piece = buf[start : start + PIECE_SIZE] if buf.nbytes > PIECE_SIZE else buf
                async with asyncio.timeout(self._stall_timeout_s):
                    await writer.write(piece)
