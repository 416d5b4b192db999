"""The daemon's body spooling (``uploader.api.app._spool``) against a real full device and a real
silent reader: a full spool disk is a 507 sentence, a stalled body a 408, a body still arriving when
the daemon stops a 503 at once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from uploader.api import request as rq
from uploader.api.activity import Transfer
from uploader.api.app import ApiState, _spool, _Stalled, _Stopping


def _state(spool: Path, timeout_s: float = 5.0) -> SimpleNamespace:
    # only what _spool reads of the daemon's state
    return SimpleNamespace(
        spool=spool,
        grid=SimpleNamespace(config=SimpleNamespace(request_timeout_s=timeout_s)),
        draining=False,
        receiving={},
        stopping=asyncio.Event(),
    )


def test_a_full_spool_disk_is_507_with_a_sentence(tmp_path: Path) -> None:
    chunks = [b"x" * 65536, b""]

    async def read() -> bytes:
        return chunks.pop(0)

    fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    try:
        with pytest.raises(rq.ApiError) as info:
            asyncio.run(_spool(_state(tmp_path), read, fd, Transfer("u1", "upload", -1, 0.0)))  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert info.value.status == 507 and "No space left on device" in str(info.value)
    assert "nothing was uploaded" in str(info.value)


def test_a_body_that_goes_silent_is_a_stall(tmp_path: Path) -> None:
    async def read() -> bytes:
        await asyncio.sleep(60)
        return b""

    fd = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(_Stalled, match=r"no bytes for 0\.2 s"):
            asyncio.run(_spool(_state(tmp_path, 0.2), read, fd, Transfer("u2", "upload", -1, 0.0)))  # type: ignore[arg-type]
    finally:
        os.close(fd)


def test_a_body_still_arriving_when_the_daemon_stops_is_refused_at_once(tmp_path: Path) -> None:
    state = _state(tmp_path, 60.0)
    chunks = [b"x" * 1000]

    async def read() -> bytes:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(60)  # the rest of the body never comes
        return b""

    async def stop_soon() -> None:
        await asyncio.sleep(0.05)
        ApiState.stop(state)  # type: ignore[arg-type]

    async def both() -> None:
        stopper = asyncio.create_task(stop_soon())
        try:
            async with asyncio.timeout(5):
                await _spool(state, read, fd, Transfer("u3", "upload", -1, 0.0))  # type: ignore[arg-type]
        finally:
            await stopper

    fd = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(_Stopping, match=r"daemon is stopping .* after 1000 bytes") as info:
            asyncio.run(both())
    finally:
        os.close(fd)
    assert info.value.status == 503 and state.receiving == {}
