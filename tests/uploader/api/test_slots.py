"""``uploader.api.app.upload_slot``: an upload waiting for a slot gives up when the daemon stops
(``SetAside``), and no way out of the wait leaves a slot taken."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from uploader.api.app import SetAside, upload_slot


def _state() -> SimpleNamespace:
    # only what upload_slot reads of the daemon's state
    return SimpleNamespace(upload_slots=asyncio.Semaphore(1), stopping=asyncio.Event(), draining=False)


def test_a_waiting_upload_is_set_aside_when_the_daemon_stops() -> None:
    async def run() -> None:
        state = _state()
        async with upload_slot(state):  # type: ignore[arg-type]
            waiter = asyncio.create_task(upload_slot(state).__aenter__())  # type: ignore[arg-type]
            await asyncio.sleep(0.01)
            assert not waiter.done()
            state.draining = True
            state.stopping.set()
            with pytest.raises(SetAside):
                await waiter
        assert not state.upload_slots.locked()
        with pytest.raises(SetAside):  # once stopping, not even a free slot is taken
            async with upload_slot(state):  # type: ignore[arg-type]
                pass
        assert not state.upload_slots.locked()

    asyncio.run(run())


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_a_waiter_cancelled_as_the_slot_frees_leaves_no_slot_taken(steps: int) -> None:
    async def run() -> None:
        state = _state()
        await state.upload_slots.acquire()
        waiter = asyncio.create_task(upload_slot(state).__aenter__())  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        state.upload_slots.release()  # handed to the waiter...
        for _ in range(steps):  # ...which gets that far with it...
            await asyncio.sleep(0)
        cancelled = waiter.cancel()  # ...and is cancelled
        try:
            await waiter
        except asyncio.CancelledError:
            assert cancelled
        else:  # it was in its block, holding the slot, before the cancel could land: leave it
            state.upload_slots.release()
        assert not state.upload_slots.locked()

    asyncio.run(run())
