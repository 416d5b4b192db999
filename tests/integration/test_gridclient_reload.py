"""GridClient against a real grid: reconfigure's server list (an empty list is refused as at start,
and the connections of a server a reload removed are closed once no transfer can still use them),
and a start cancelled while connecting."""

from __future__ import annotations

import asyncio
import gc
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.localgrid import LocalGrid
from uploader.config import ServerEntry
from uploader.errors import ConfigError
from uploader.gbs import StorageClient
from uploader.gridclient import GridClient
from uploader.wire.nurl import Nurl, parse_nurl

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


def test_a_start_cancelled_while_connecting_closes_every_connection(tmp_path: Path) -> None:
    """A Ctrl-C (the task cancelled) while one server has not answered yet: the connections already
    made to the others are closed, not left to be reported as unclosed sessions at exit."""
    deaf = socket.socket()  # takes the connection, never answers the TLS handshake
    deaf.bind(("127.0.0.1", 0))
    deaf.listen(8)
    deaf.setblocking(False)
    with LocalGrid(tmp_path / "grid", 2) as grid:
        config = grid.config(workers=1, connect_timeout_s=60.0)
        real = parse_nurl(config.servers[0].nurl)
        silent = Nurl(real.spki_hash, "127.0.0.1", deaf.getsockname()[1], real.swissnum)
        config = replace(config, servers=(*config.servers, ServerEntry(str(silent))))
        unclosed: list[str] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _, context: unclosed.append(context["message"]))
            client = GridClient(config, start_pool=False)
            start = asyncio.ensure_future(client.start())
            conn, _ = await loop.sock_accept(deaf)  # the silent server's connect is under way
            await asyncio.sleep(0.3)  # and the others' done (they answer at once)
            start.cancel()
            with pytest.raises(asyncio.CancelledError):
                await start
            conn.close()
            del client, start
            gc.collect()
            await asyncio.sleep(0.1)

        asyncio.run(main())
    deaf.close()
    assert not [m for m in unclosed if "Unclosed" in m], unclosed
