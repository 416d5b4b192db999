"""GridClient.reconfigure's server list against a real grid: an empty list is refused as at start,
and the connections of a server a reload removed are closed once no transfer can still use them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.localgrid import LocalGrid
from uploader.errors import ConfigError
from uploader.gbs import StorageClient
from uploader.gridclient import GridClient

pytestmark = pytest.mark.integration


def _open(client: StorageClient) -> bool:
    return client._session is not None and not client._session.closed


def test_a_reload_with_no_servers_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with LocalGrid(tmp_path / "grid", 2) as grid:

        async def main() -> None:
            config = grid.config(workers=1)
            async with GridClient(config, start_pool=False) as client:
                before = list(client.clients)
                with pytest.raises(ConfigError, match="no storage servers configured"):
                    await client.reconfigure(replace(config, servers=(), window=3))
                assert client.clients == before
                assert client.config.servers == config.servers and client.settings.window != 3
                assert all(_open(c) for c in before)

        asyncio.run(main())


def test_a_removed_servers_client_is_closed_once_the_transfers_using_it_end(tmp_path: Path) -> None:
    with LocalGrid(tmp_path / "grid", 2) as grid:

        async def main() -> None:
            config = grid.config(workers=1)
            async with GridClient(config, start_pool=False) as client:
                removed = client.clients[1]
                transfer_may_end = asyncio.Event()
                running = asyncio.ensure_future(
                    client._track(transfer_may_end.wait())
                )  # a transfer in flight
                await asyncio.sleep(0)
                await client.reconfigure(replace(config, servers=config.servers[:1]))
                assert removed not in client.clients
                await asyncio.sleep(0.05)
                assert _open(removed)  # the running transfer may still be writing to it
                transfer_may_end.set()
                await running
                for _ in range(50):
                    if not _open(removed):
                        break
                    await asyncio.sleep(0.01)
                assert not _open(removed)
                assert client._retired == []
                await client.reconfigure(config)  # added back: a fresh client
                assert len(client.clients) == 2 and removed not in client.clients
                assert all(_open(c) for c in client.clients)

        asyncio.run(main())
