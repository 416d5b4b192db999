"""For fault tests: download a cap with our own downloader (the code ``get`` runs) and compare."""

from __future__ import annotations

import asyncio
from pathlib import Path

from uploader.chk.caps import ChkCap
from uploader.config import Config
from uploader.download import FileSink
from uploader.gridclient import GridClient


def download_matches(config: Config, cap: ChkCap, source: Path, out: Path) -> bool:
    """Download ``cap`` (every hash checked) to ``out`` and compare it with ``source`` byte for byte."""

    async def main() -> None:
        sink = FileSink(out, 0)
        try:
            async with GridClient(config, slot_count=32) as client:
                await client.download(cap, sink)
        except BaseException:
            sink.discard()
            raise
        sink.commit()

    asyncio.run(main())
    return out.read_bytes() == source.read_bytes()
