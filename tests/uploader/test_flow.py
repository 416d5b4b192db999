"""Flow-control pieces of the upload, driven without processes or sockets."""

from __future__ import annotations

import asyncio

from uploader.flow import Budget, KeyedLocks, SegmentHold
from uploader.supervisor import EncodeResult, SlotSet


def test_budget_bounds_bytes_in_flight() -> None:
    async def main() -> list[str]:
        budget = Budget(100)
        events: list[str] = []

        async def write(name: str, size: int, hold_s: float) -> None:
            taken = await budget.acquire(size)
            events.append(f"start {name}")
            await asyncio.sleep(hold_s)
            events.append(f"end {name}")
            budget.release(taken)

        await asyncio.gather(write("a", 60, 0.02), write("b", 60, 0.0), write("huge", 500, 0.0))
        assert budget.idle
        return events

    events = asyncio.run(main())
    # b (60 + 60 > 100) waits for a; huge (capped to the whole budget) waits until nothing is in flight
    assert events == ["start a", "end a", "start b", "end b", "start huge", "end huge"]


def test_budget_counts_bytes_in_flight_and_acknowledged_writes() -> None:
    async def main() -> Budget:
        budget = Budget(100)
        taken = await budget.acquire(70)
        assert budget.in_flight == 70
        budget.record(70, 0.25)
        budget.release(taken)
        budget.failures += 1  # a failed attempt is counted by the writer
        budget.record(30, 0.05)
        return budget

    budget = asyncio.run(main())
    assert budget.in_flight == 0 and budget.idle
    assert (budget.bytes_sent, budget.writes, budget.failures) == (100, 2, 1)
    assert abs(budget.write_s - 0.30) < 1e-9


def test_keyed_locks_serialize_one_key_only() -> None:
    async def main() -> list[str]:
        locks = KeyedLocks()
        order: list[str] = []

        async def job(key: bytes, name: str) -> None:
            await locks.acquire(key)
            order.append(f"in {name}")
            await asyncio.sleep(0.01)
            order.append(f"out {name}")
            locks.release(key)

        await asyncio.gather(job(b"x", "1"), job(b"x", "2"), job(b"y", "3"))
        assert locks._locks == {}  # nothing kept once nobody holds or waits
        return order

    order = asyncio.run(main())
    assert order.index("out 1") < order.index("in 2")  # same key: one after the other
    assert order.index("in 3") < order.index("out 1")  # another key: at the same time


def test_segment_hold_releases_its_slot_after_the_last_write() -> None:
    slots = SlotSet([7])
    slots.free.popleft()
    done: list[int] = []
    result = EncodeResult(4, b"h" * 32, [], 10, [memoryview(b"x" * 10)], slots, 7)
    hold = SegmentHold(result, 2, done.append)
    hold.drop()
    assert list(slots.free) == [] and done == []
    hold.drop()
    assert list(slots.free) == [7] and done == [4]


def test_budget_grants_in_order_and_a_cancelled_waiter_blocks_nobody() -> None:
    async def main() -> None:
        budget = Budget(100)
        first = await budget.acquire(90)
        big = asyncio.create_task(budget.acquire(80))
        small = asyncio.create_task(budget.acquire(20))
        await asyncio.sleep(0)
        assert not big.done() and not small.done()  # small fits, but waits its turn behind big
        big.cancel()
        await asyncio.sleep(0)
        assert not small.done() and budget.in_flight == 90  # 20 more does not fit yet
        budget.release(first)
        await asyncio.sleep(0)
        assert small.done() and budget.in_flight == 20
        budget.release(await small)
        assert budget.idle

    asyncio.run(main())


def test_budget_shrunk_below_a_waiting_write_still_serves_it() -> None:
    async def main() -> None:
        budget = Budget(100)
        taken = await budget.acquire(50)
        waiter = asyncio.create_task(budget.acquire(100))
        await asyncio.sleep(0)
        await budget.resize(40)  # now smaller than what the waiter was capped to
        assert not waiter.done() and budget.in_flight == 50
        budget.release(taken)
        got = await asyncio.wait_for(waiter, 1)  # nothing else in flight: it goes
        budget.release(got)
        assert budget.idle and budget.capacity == 40

    asyncio.run(main())
