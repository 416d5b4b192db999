"""The upload's own bookkeeping of writes, driven without processes or sockets.

A stand-in storage client whose writes never answer is the injected fault here: it lets a test
cancel writes at exact points (before they ever ran, and mid-request)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from uploader.flow import Budget, SegmentHold
from uploader.supervisor import EncodeResult
from uploader.upload import Upload, UploadSettings, _Bucket, _Link
from workers.geometry import EncodingParams


class NeverAnswers:
    """A storage client whose writes hang until cancelled."""

    def __init__(self) -> None:
        self.started = 0

    async def write(self, *args: Any) -> None:
        self.started += 1
        await asyncio.Event().wait()


def upload_with_one_bucket(depth: int) -> tuple[Upload, _Bucket, NeverAnswers]:
    settings = UploadSettings(EncodingParams(1, 1, 1024), 1, 2, depth)
    up = Upload(None, [], settings, Path("unused"), None, b"l" * 32)  # type: ignore[arg-type]
    up.storage_index = b"s" * 16
    client = NeverAnswers()
    bucket = _Bucket(_Link(client, Budget(depth), b"u" * 20), 0)  # type: ignore[arg-type]
    up.buckets.append(bucket)
    return up, bucket, client


def segment(released: list[int], n: int) -> SegmentHold:
    result = EncodeResult(n, b"", [], 1, [memoryview(b"x")])
    return SegmentHold(result, 1, released.append)


def test_writes_cancelled_before_they_ran_give_back_their_budget_and_blocks() -> None:
    """The resume hang: a write task cancelled before its first step never runs its body, so a
    `finally` there never gave the server's budget back and the next upload waited forever."""

    async def main() -> None:
        up, bucket, client = upload_with_one_bucket(100)
        released: list[int] = []
        await up._send(bucket, 0, [b"a" * 40], [segment(released, 0)])
        await up._send(bucket, 40, [b"b" * 40], [segment(released, 1)])
        assert bucket.link.budget.in_flight == 80 and client.started == 0
        await up._cancel_tasks()  # before either task's first step
        assert client.started == 0
        assert bucket.link.budget.idle and released == [0, 1] and not up.tasks
        # ... and the budget serves the next upload at once.
        await asyncio.wait_for(bucket.link.budget.acquire(100), 1)

    asyncio.run(main())


def test_writes_cancelled_mid_request_give_back_their_budget_and_blocks() -> None:
    async def main() -> None:
        up, bucket, client = upload_with_one_bucket(100)
        released: list[int] = []
        await up._send(bucket, 0, [b"a" * 60], [segment(released, 0)])
        waiting = asyncio.create_task(up._send(bucket, 60, [b"b" * 60], [segment(released, 1)]))
        await asyncio.sleep(0.01)
        assert client.started == 1 and not waiting.done()  # 60 + 60 > 100: the second waits
        waiting.cancel()
        await up._cancel_tasks()
        assert bucket.link.budget.idle and sorted(released) == [0, 1]

    asyncio.run(main())
