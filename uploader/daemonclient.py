"""``put`` and ``get`` through a running daemon (setting ``daemon = "http://HOST:PORT"``), as ``tahoe put``
uses its node: ``PUT /uri`` streams the file, ``GET /uri/CAP`` streams it back. The daemon checks
every hash; a body shorter than its Content-Length (the daemon cut it after a failed check) is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp

from uploader.api.request import EXIT_CODE_HEADER, exit_code_for
from uploader.errors import LocalIOError, UploaderError

CHUNK = 1024 * 1024


class DaemonError(UploaderError):
    """The daemon refused or failed a request; ``exit_code`` follows its answer."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _base(url: str) -> str:
    return url.rstrip("/")


async def _fail(resp: aiohttp.ClientResponse, what: str) -> DaemonError:
    text = (await resp.text(errors="replace")).strip()[:500]
    return DaemonError(
        f"{what}: the daemon answered {resp.status}: {text}",
        exit_code_for(resp.status, resp.headers.get(EXIT_CODE_HEADER)),
    )


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


async def put(url: str, path: Path) -> tuple[str, int, float]:
    """Upload ``path``; the cap, the size and the seconds it took."""
    start = time.monotonic()
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            async with _session() as http, http.put(f"{_base(url)}/uri", data=fh) as resp:
                if resp.status != 200:
                    raise await _fail(resp, f"uploading {path}")
                cap = (await resp.text()).strip()
        except aiohttp.ClientError as exc:
            raise DaemonError(f"cannot reach the daemon at {url}: {exc}") from None
    return cap, size, time.monotonic() - start


async def get(url: str, cap: str, output: Path | None, offset: int = 0, length: int | None = None) -> int:
    """Download ``cap`` (a byte range of it when asked) to ``output`` (atomically) or stdout; bytes written."""
    headers = {}
    if offset or length is not None:
        end = "" if length is None else str(offset + length - 1)
        headers["Range"] = f"bytes={offset}-{end}"
    if length == 0:
        if output is not None:
            output.write_bytes(b"")
        return 0
    tmp: str | None = None
    if output is not None:
        directory = output.parent if str(output.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=directory)
        except OSError as exc:
            raise LocalIOError(f"cannot create a file in {directory}: {exc.strerror}") from None
    else:
        fd = 1
    written = 0
    loop = asyncio.get_running_loop()
    try:
        async with (
            _session() as http,
            http.get(f"{_base(url)}/uri/{quote(cap, safe='')}", headers=headers) as resp,
        ):
            if resp.status == 416:
                return 0  # a range past the end: nothing to write, as `get --offset` beyond the file
            if resp.status not in (200, 206):
                raise await _fail(resp, "downloading")
            async for chunk in resp.content.iter_chunked(CHUNK):
                await loop.run_in_executor(None, _write_all, fd, chunk)
                written += len(chunk)
        if tmp is not None and output is not None:
            os.close(fd)
            fd = -1
            os.replace(tmp, output)
            tmp = None
    except aiohttp.ClientPayloadError as exc:
        raise DaemonError(f"the download broke off after {written} bytes: {exc}", exit_code=5) from None
    except aiohttp.ClientError as exc:
        raise DaemonError(f"cannot reach the daemon at {url}: {exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


__all__ = ["DaemonError", "get", "put"]
