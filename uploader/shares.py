"""One file's shares on the grid as a reader sees them: who holds what, how fast each server answers,
which shares proved good, which corrupt.

- ``discover``: every server is asked for its share list at once; the reader goes on as soon as k
  distinct shares are known and the stragglers had a short grace period (a hung server must not
  hold a download up); late answers still add shares.
- ``acquire``: open shares — header, the UEB (once; checked against the cap), the trailer (crypttext
  tree, block tree, share hash chain; ``uploader.chk.sharecheck``) — best first: primary shares
  (0..k-1: nothing to erasure-decode), on healthy servers, fastest first. An open that takes too
  long is hedged with another share.
- ``fail``: every failure is classified. A hash that does not match marks the share corrupt, and the
  server gets a corruption advisory (GBS §6.8) — but only once some share's UEB proved the cap right,
  so a wrong cap never makes us accuse good shares. A 404 means the share is gone; an unreachable or
  misbehaving server is avoided from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from uploader.chk.caps import ChkCap, VerifyCap
from uploader.chk.layout import ShareLayout
from uploader.chk.sharecheck import (
    HEADER_READ,
    CapMismatch,
    FileInfo,
    ShareHashes,
    check_header,
    check_trailer,
    check_ueb,
    header_version,
    trailer_span,
    ueb_span,
)
from uploader.errors import IntegrityError, NotEnoughServers, NotFound, UploaderError
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError, ServerRefused, ServerUnreachable
from workers.base32 import b32encode

log = logging.getLogger("uploader.shares")

EWMA = 0.3  # weight of the newest sample in a server's cost
MAX_FAILURES = 2  # unreachable this many times: not asked again by this job
ADVISORY_TIMEOUT_S = 5.0


@dataclass(eq=False)
class Server:
    """One storage server within one job."""

    client: StorageClient
    listed_s: float = 0.0  # how long its share list took
    cost_sample: float | None = None  # EWMA of seconds per MB (plus a fixed latency allowance)
    failures: int = 0
    slow: int = 0  # times a read or open from it took so long that another share was asked
    error: str | None = None  # why it was given up, if it was

    @property
    def name(self) -> str:
        return self.client.server

    @property
    def dead(self) -> bool:
        return self.error is not None

    @property
    def healthy(self) -> bool:
        return not self.failures and not self.slow

    def observe(self, nbytes: int, seconds: float) -> None:
        sample = seconds * 1e6 / (nbytes + 65536)
        self.cost_sample = (
            sample if self.cost_sample is None else (1 - EWMA) * self.cost_sample + EWMA * sample
        )

    def cost(self) -> float:
        base = self.cost_sample if self.cost_sample is not None else self.listed_s * 1e6 / 65536
        return base * (1 + 3 * self.slow)


@dataclass(eq=False)
class ShareSource:
    """One share on one server."""

    server: Server
    shnum: int
    layout: ShareLayout | None = None
    hashes: ShareHashes | None = None
    bad: str | None = None  # why it is not used (corrupt, gone, its server failed)
    corrupt: str | None = None  # what did not match, when it is corrupt
    opening: asyncio.Task[bool] | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return self.bad is None and not self.server.dead

    @property
    def is_open(self) -> bool:
        return self.hashes is not None and self.usable


@dataclass(frozen=True, slots=True)
class CorruptShare:
    server: str
    shnum: int
    reason: str


class FileShares:
    """The shares of one storage index for one job (a download or a verify)."""

    def __init__(
        self,
        clients: Iterable[StorageClient],
        cap: ChkCap | VerifyCap,
        unreachable: Mapping[str, str] | None = None,
    ) -> None:
        """``unreachable``: servers of the grid that could not be connected to (name -> why): none
        of their shares can be read, and a read that fails must not call the file absent."""
        self.cap = cap
        self.k = cap.k
        self.storage_index = cap.storage_index
        self.si_text = b32encode(self.storage_index)
        self.servers = [Server(c) for c in clients]
        self.sources: list[ShareSource] = []
        self.info: FileInfo | None = None
        self.crypttext_tree: bytes | None = None
        self.crypttext_leaves = b""
        self.corrupt: list[CorruptShare] = []
        self.listing_errors: dict[str, str] = dict(unreachable or {})
        self._listing: dict[asyncio.Task[frozenset[int]], Server] = {}
        self._unsent: list[tuple[ShareSource, str]] = []
        self._opens: set[asyncio.Task[bool]] = set()
        self._advisories: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    # ---- discovery ------------------------------------------------------------------------
    async def discover(self, want: int, grace_s: float = 0.5, *, wait_all: bool = False) -> None:
        """Ask every server which shares it holds; return once all answered, or once ``want``
        distinct shares are known and ``grace_s`` more has passed (``wait_all``: all answers)."""
        start = time.monotonic()
        for server in self.servers:
            task = asyncio.create_task(server.client.list_shares(self.storage_index))
            self._listing[task] = server
            task.add_done_callback(functools.partial(self._listed, server=server, start=start))
        while self._listing:
            timeout = None
            if not wait_all and len(self.distinct()) >= want:
                timeout = max(0.0, start + grace_s - time.monotonic())
            done, _ = await asyncio.wait(
                list(self._listing), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return
            await asyncio.sleep(0)  # let the done-callbacks run

    def _listed(self, task: asyncio.Task[frozenset[int]], *, server: Server, start: float) -> None:
        seconds = time.monotonic() - start
        self._listing.pop(task, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not isinstance(exc, ServerError):
                log.error("share list of %s from %s failed: %r", self.si_text, server.name, exc)
            server.error = str(exc)
            self.listing_errors[server.name] = str(exc)
            return
        server.listed_s = seconds
        for shnum in sorted(task.result()):
            if 0 <= shnum < self.cap.n:
                self.sources.append(ShareSource(server, shnum))

    @property
    def listing_pending(self) -> bool:
        return bool(self._listing)

    async def wait_listing(self) -> None:
        """Wait until one more server answers its share list (or none is left to)."""
        if self._listing:
            await asyncio.wait(list(self._listing), return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0)

    def distinct(self, *, usable: bool = True) -> set[int]:
        return {s.shnum for s in self.sources if s.usable or not usable}

    # ---- choosing and opening -------------------------------------------------------------
    def rank(self, src: ShareSource) -> tuple[bool, bool, bool, float]:
        """Sort key, best first: healthy server, primary share (no decoding), fast server."""
        srv = src.server
        return (srv.failures > 0, srv.slow > 0, src.shnum >= self.k, srv.cost())

    def best_open(self, exclude: set[int]) -> list[ShareSource]:
        """Open usable shares with distinct numbers not in ``exclude``, best first."""
        out: list[ShareSource] = []
        seen = set(exclude)
        for src in sorted((s for s in self.sources if s.is_open), key=self.rank):
            if src.shnum not in seen:
                seen.add(src.shnum)
                out.append(src)
        return out

    def _candidate(self, exclude: set[int]) -> ShareSource | None:
        fresh = [
            s
            for s in self.sources
            if s.usable and s.hashes is None and s.shnum not in exclude and s.server.failures < MAX_FAILURES
        ]
        return min(fresh, key=self.rank, default=None)

    async def pick(self, need: int, exclude: set[int], hedge_s: float) -> list[ShareSource]:
        """``need`` open shares (distinct numbers, none in ``exclude``), opening more as needed.
        Fewer come back only when no other share can be opened."""
        async with self._lock:
            chosen = [s for s in self.best_open(exclude) if s.server.healthy][:need]
            if len(chosen) < need:
                taken = exclude | {s.shnum for s in chosen}
                chosen += await self.acquire(need - len(chosen), taken, hedge_s)
            if len(chosen) < need:  # settle for shares on slow or once-failed servers
                taken = exclude | {s.shnum for s in chosen}
                chosen += self.best_open(taken)[: need - len(chosen)]
            return chosen

    async def acquire(self, want: int, exclude: set[int], hedge_s: float) -> list[ShareSource]:
        """Open up to ``want`` more shares with distinct numbers outside ``exclude``."""
        got: list[ShareSource] = []
        trying: dict[asyncio.Task[bool], ShareSource] = {}
        excluded = set(exclude)
        while len(got) < want:
            while len(got) + len(trying) < want:
                src = self._candidate(excluded)
                if src is None:
                    break
                excluded.add(src.shnum)
                trying[self._opening(src)] = src
            if not trying:
                if self.listing_pending:
                    await self.wait_listing()
                    continue
                break
            done, _ = await asyncio.wait(list(trying), timeout=hedge_s, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # every open in flight is slow: try one more share beside them
                for src in trying.values():
                    src.server.slow += 1
                extra = self._candidate(excluded)
                if extra is None:
                    await asyncio.wait(list(trying), return_when=asyncio.FIRST_COMPLETED)
                else:
                    excluded.add(extra.shnum)
                    trying[self._opening(extra)] = extra
                continue
            for task in done:
                src = trying.pop(task)
                if task.result() and src.usable:
                    got.append(src)
                else:
                    excluded.discard(src.shnum)  # another server may hold the same share
        return got[:want]  # slow opens still running finish in the background, for later use

    def _opening(self, src: ShareSource) -> asyncio.Task[bool]:
        if src.opening is None:
            src.opening = asyncio.create_task(self.open(src))
            self._opens.add(src.opening)
            src.opening.add_done_callback(self._opened)
        return src.opening

    def _opened(self, task: asyncio.Task[bool]) -> None:
        self._opens.discard(task)
        if not task.cancelled():
            # An open that raises (the cap does not match the share: fatal) may finish after the
            # read already failed on another one, with nobody left to await it. Its error is known
            # either way; take it here so it is not logged as "never retrieved" at exit.
            task.exception()

    async def open(self, src: ShareSource, *, full: bool = False) -> bool:
        """Read and check a share's metadata; False (and the share marked) when it fails.

        ``full`` also reads the unused plaintext hash tree area, which must be zero (the verifier)."""
        try:
            header = await self.read(src, 0, HEADER_READ)
            if self.info is None:
                region = await self.read(src, *ueb_span(header))
                info = check_ueb(region, header_version(header), self.cap)
                if self.info is None:
                    self.info = info
                    self._send_advisories()
            layout = check_header(header, self.info)
            at, length = trailer_span(layout)
            skip = 0
            if full:
                skip = layout.crypttext_hash_tree - layout.plaintext_hash_tree
                at, length = at - skip, length + skip
            trailer = await self.read(src, at, length)
            if any(trailer[:skip]):
                raise IntegrityError("the unused plaintext hash tree area is not zero")
            hashes, tree = check_trailer(trailer[skip:], layout, self.info, src.shnum, self.crypttext_tree)
            if self.crypttext_tree is None:
                self.crypttext_tree = tree
                first = (len(tree) // 32 + 1) // 2 - 1
                self.crypttext_leaves = tree[32 * first : 32 * (first + self.info.geometry.num_segments)]
        except CapMismatch:
            raise
        except (IntegrityError, ServerError) as exc:
            self.fail(src, exc)
            return False
        src.layout, src.hashes = layout, hashes
        return True

    async def read(self, src: ShareSource, offset: int, length: int) -> bytes:
        """A ranged read of one share, timed into its server's cost."""
        start = time.monotonic()
        data = await src.server.client.read(self.storage_index, src.shnum, offset, length)
        src.server.observe(len(data), time.monotonic() - start)
        return data

    # ---- failures -------------------------------------------------------------------------
    def fail(self, src: ShareSource, exc: BaseException) -> None:
        """Classify a failure of one share; the share (or its server) is not used again."""
        if isinstance(exc, CapMismatch):
            raise exc
        if isinstance(exc, IntegrityError):
            self.mark_corrupt(src, str(exc))
        elif isinstance(exc, ServerRefused) and exc.status == 404:
            src.bad = "the server no longer holds it"
        elif isinstance(exc, ServerUnreachable):
            src.bad = src.bad or str(exc)
            src.server.failures += 1
            if src.server.failures >= MAX_FAILURES:
                src.server.error = str(exc)
            log.warning("share %d of %s on %s: %s", src.shnum, self.si_text, src.server.name, exc)
        else:  # refused, or an answer the protocol does not allow: do not ask this server again
            src.bad = str(exc)
            src.server.error = str(exc)
            log.warning("share %d of %s on %s: %s", src.shnum, self.si_text, src.server.name, exc)

    def mark_corrupt(self, src: ShareSource, reason: str) -> None:
        if src.corrupt is not None:
            return
        src.corrupt = reason
        src.bad = f"corrupt: {reason}"
        self.corrupt.append(CorruptShare(src.server.name, src.shnum, reason))
        log.info("share %d of %s on %s is corrupt: %s", src.shnum, self.si_text, src.server.name, reason)
        self._unsent.append((src, reason))
        if self.info is not None:
            self._send_advisories()

    def _send_advisories(self) -> None:
        for src, reason in self._unsent:
            self._advisories.add(asyncio.create_task(self._advise(src, reason)))
        self._unsent.clear()

    async def _advise(self, src: ShareSource, reason: str) -> None:
        text = f"uploader found share {src.shnum} of storage index {self.si_text} corrupt: {reason}"
        try:
            await src.server.client.advise_corrupt(self.storage_index, src.shnum, text)
        except ServerError as exc:
            log.warning("could not report corrupt share %d to %s: %s", src.shnum, src.server.name, exc)

    def not_enough(self, good: int) -> UploaderError:
        """The error for a read that cannot go on with ``good`` good shares of the k it needs:
        NotFound when no server holds any, IntegrityError when corrupt ones are among the missing,
        NotEnoughServers otherwise (servers down or shares gone)."""
        if not self.sources and not self.listing_errors:
            return NotFound(
                f"no shares of storage index {self.si_text} on any of the {len(self.servers)} servers asked"
            )
        problems = [f"share {c.shnum} on {c.server} is corrupt ({c.reason})" for c in self.corrupt]
        problems += [f"{name}: {why}" for name, why in sorted(self.listing_errors.items())]
        problems += sorted(
            {
                f"{s.server.name}: {s.server.error}"
                for s in self.sources
                if s.server.error and s.corrupt is None
            }
        )
        detail = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        text = (
            f"only {good} good share{'' if good == 1 else 's'} of storage index {self.si_text} can be read, {self.k} needed"
            + (f": {detail}" if detail else "")
        )
        return IntegrityError(text) if self.corrupt else NotEnoughServers(text)

    # ---- the end --------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop opens and listings still running; send the corruption advisories (waiting briefly)."""
        listing, opens = list(self._listing), list(self._opens)
        for task in [*listing, *opens]:
            task.cancel()
        if self.info is not None:
            self._send_advisories()
        if self._advisories:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._advisories, return_exceptions=True), ADVISORY_TIMEOUT_S
                )
        await asyncio.gather(*listing, *opens, return_exceptions=True)

    def shares_used(self, sources: Iterable[ShareSource]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for src in sources:
            out.setdefault(src.server.name, []).append(src.shnum)
        return {name: sorted(set(nums)) for name, nums in sorted(out.items())}


__all__ = ["CapMismatch", "CorruptShare", "FileShares", "Server", "ShareSource"]
