"""The upload job: key pass, placement, pipelined pass 2, trailers, completion — in the network process.

One upload, step by step (ARCHITECTURE.md):

1. key pass on the pool (convergent or random key) → storage index, geometry, allocated size;
2. servers in permuted order (SHA-1 of SI ‖ permutation seed), the first 2N; ask them which shares
   they already hold; ``placement.plan``; allocate; repeat while refusals improve happiness;
3. pass 2 through ``encode_file_pooled``: each segment's N blocks stay in their shared-memory slot
   while the writes that carry them are in flight; per share, consecutive blocks are coalesced into
   writes of up to ``write_size`` bytes (flushed early whenever the workers fall behind, so the link
   never waits for coalescing); per server, at most ``pipeline_depth`` bytes are in flight;
4. the trailing sections of every share, all but their last bytes; a barrier; then the last bytes,
   so a failed upload leaves no share complete where it can help it; the cap only after every placed
   share reported complete (HTTP 201).

A server that fails mid-upload (refused, reset, 5xx, timeout) is retried with backoff where that is
safe (writes are idempotent); once lost, its shares are re-placed on spare servers when the grid has
any — their earlier blocks re-encoded from the source — or dropped while ``happy`` still holds. When
happiness cannot be met, every bucket is aborted and NotEnoughServers names the servers and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from uploader import trace
from uploader.chk.caps import Cap
from uploader.chk.layout import ShareLayout
from uploader.chk.lease import lease_secrets
from uploader.chk.trees import expected_layout
from uploader.encoding import encode_file_pooled, small_file_cap
from uploader.errors import LocalIOError, NotEnoughServers, SourceChanged
from uploader.flow import Budget, KeyedLocks, SegmentHold
from uploader.gbs import StorageClient
from uploader.gbs.errors import ServerError
from uploader.journal import (
    JournalDir,
    JournalError,
    JournalHandle,
    JournalRecord,
    ServerState,
    SourceIdentity,
)
from uploader.placement import Candidate, placement_happiness, plan
from uploader.supervisor import EncodeResult, WorkerPool
from uploader.wire.protocol import Span
from workers.base32 import b32encode
from workers.geometry import EncodingParams, Geometry
from workers.keys import storage_index as storage_index_of
from workers.source import FileIdentity

log = logging.getLogger("uploader.upload")

RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
TAIL_HOLDBACK = 1  # bytes of each share kept back until every share is otherwise written
STOCK_WRITE_SIZE = 1_000_000  # allmydata.immutable.layout.WriteBucketProxy's batch_size (1.20)
JOURNAL_EVERY_S = 2.0  # pass 2 rewrites the upload journal at most this often


async def abort_journal_buckets(clients: Iterable[StorageClient], record: JournalRecord) -> None:
    """Abort the in-progress shares a journal placed, with its upload secrets (best effort: a share
    already complete or gone has nothing to abort; a server that is down drops its own when idle)."""
    by_id = {Upload._id(c): c for c in clients}
    secrets = record.secrets_by_server()
    await asyncio.gather(
        *(
            by_id[sid].abort(record.storage_index, shnum, secrets[sid])
            for sid, shares in record.placement().items()
            if sid in by_id
            for shnum in shares
        ),
        return_exceptions=True,
    )


@dataclass(frozen=True)
class UploadSettings:
    params: EncodingParams
    happy: int
    window: int  # segments in flight for this upload
    pipeline_depth: int  # bytes in flight per server
    write_size: int = 4 * 1024 * 1024  # coalesce consecutive blocks of a share up to this many bytes
    # Stock Tahoe-LAFS's behaviour, for side-by-side benchmarks (``Config.stock_mode``): one
    # segment at a time (window 1), each segment's writes acknowledged before the next segment is
    # encoded (stop-and-wait), blocks batched per share into writes of STOCK_WRITE_SIZE bytes.
    stock_mode: bool = False

    @classmethod
    def stock(cls, params: EncodingParams, happy: int, pipeline_depth: int) -> UploadSettings:
        return cls(params, happy, 1, pipeline_depth, STOCK_WRITE_SIZE, stock_mode=True)


@dataclass
class UploadResult:
    cap: Cap
    size: int
    seconds: float
    share_bytes_sent: int = 0
    servers: dict[str, list[int]] = field(default_factory=dict)  # server name -> shares it holds
    resumed: bool = False  # continued an interrupted upload from its journal
    share_bytes_skipped: int = 0  # resumed: share bytes the servers already held, not sent again


class _Link:
    """One server within one upload."""

    def __init__(self, client: StorageClient, budget: Budget, upload_secret: bytes | None = None) -> None:
        self.client = client
        self.budget = budget  # shared by every upload writing to this server
        # random per link; a resumed upload reuses the journal's, so its in-progress shares are its own
        self.upload_secret = upload_secret if upload_secret is not None else os.urandom(20)
        self.lost: BaseException | None = None

    @property
    def name(self) -> str:
        return self.client.nurl.address


class _Bucket:
    """One share being written to one server."""

    def __init__(self, link: _Link, shnum: int, required: Sequence[Span] | None = None) -> None:
        self.link = link
        self.shnum = shnum
        # Resumed: the byte ranges the server still needs (its answer to a write); None: all of them.
        self.required = None if required is None else tuple(required)
        self.pending: list[memoryview | bytes] = []
        self.holds: list[SegmentHold] = []
        self.pending_offset = 0
        self.pending_bytes = 0
        self.complete = False
        self.failed = False
        self.trailer_sent = False
        self.tail_sent = False

    @property
    def live(self) -> bool:
        return not self.failed and self.link.lost is None

    def needs(self, begin: int, end: int) -> bool:
        """Whether any byte of ``[begin, end)`` is still missing on the server."""
        if self.required is None:
            return True
        return any(s.begin < end and begin < s.end for s in self.required)


class Upload:
    """One file's upload; create, then ``await run()`` once."""

    def __init__(
        self,
        pool: WorkerPool,
        clients: Sequence[StorageClient],
        settings: UploadSettings,
        path: Path,
        secret: bytes | None,
        lease_secret: bytes,
        progress: Callable[[int], None] | None = None,
        locks: KeyedLocks | None = None,
        budgets: dict[str, Budget] | None = None,
        *,
        journals: JournalDir | None = None,
        journal_owner: str = "put",
        resume: tuple[JournalHandle, JournalRecord] | None = None,
        suspend_on_cancel: bool = False,
        unreachable: Mapping[str, str] | None = None,
    ) -> None:
        """``unreachable``: the grid's servers that could not be connected to (name -> why), named
        when happiness cannot be met.
        ``journals``: keep a journal of this upload there (so it can be resumed after a crash).
        ``resume``: continue the interrupted upload this claimed journal describes.
        ``suspend_on_cancel``: a cancelled upload (the daemon stopping) keeps its buckets and journal
        for a resume, instead of aborting them."""
        self.pool = pool
        self.locks = locks if locks is not None else KeyedLocks()
        # bytes in flight per server, shared by all uploads of one client (keyed by server id)
        self.budgets = budgets if budgets is not None else {}
        self._locked: bytes | None = None
        self.clients = list(clients)
        self.unreachable = dict(unreachable or {})
        self.settings = settings
        self.path = path
        self.secret = secret
        self.lease_secret = lease_secret
        self.progress = progress
        self.links: dict[str, _Link] = {}
        self.buckets: list[_Bucket] = []
        self.kept: dict[str, set[int]] = {}
        self.spares: list[_Link] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.backfills: set[asyncio.Task[None]] = set()
        self.share_bytes_sent = 0
        self._lost_event = asyncio.Event()
        self._unflushed_segments = 0
        self.next_segment = 0
        self._placing = False
        self.client_id = object()
        self.journals = journals
        self.journal_owner = journal_owner
        self.journal: JournalHandle | None = resume[0] if resume is not None else None
        self.resume = resume[1] if resume is not None else None
        self.identity: FileIdentity | None = None
        self.share_bytes_skipped = 0
        self._reclaimed: dict[tuple[str, int], tuple[Span, ...]] = {}  # in-progress shares resumed
        self._acked: set[int] = set()  # segments acknowledged beyond segments_done
        self.segments_done = 0
        self._journal_saved = 0.0  # monotonic
        self._journal_task: asyncio.Task[None] | None = None
        self._journal_created = time.time()
        self.suspend_on_cancel = suspend_on_cancel
        self.suspended = False  # cancelled and kept for a resume (``suspend_on_cancel``)

    # ---- the job ------------------------------------------------------------------------------
    async def run(self) -> UploadResult:
        start = time.monotonic()
        try:
            lit, identity = small_file_cap(self.path)
        except LocalIOError as exc:
            if self.resume is None:
                raise
            await self._abandon()  # gone or unreadable: what the journal describes is lost
            raise SourceChanged(self._changed_message([str(exc)])) from None
        self.identity = identity
        if self.resume is not None:
            await self._check_resumable(identity)
        if lit is not None:
            return UploadResult(lit, identity.size, time.monotonic() - start)
        g = Geometry.from_params(self.settings.params, identity.size)
        self.geometry = g
        self.layout: ShareLayout = expected_layout(g)
        self.lease = await self.pool.slots.lease(self.settings.window)
        try:
            cap, trailer = await encode_file_pooled(
                self.pool,
                self.path,
                self.settings.params,
                self.secret,
                window=self.settings.window,
                client=self.client_id,
                progress=self._key_progress,
                on_key=self._place,
                on_segment=self._on_segment,
                slots=self.lease,
                identity=identity,
                key=self.resume.key if self.resume is not None else None,
            )
            assert trailer is not None
            await self._finish(trailer.share_trailer)
        except asyncio.CancelledError:
            if not await self._suspend():
                await self._abort_all()
                await self._journal_remove()
            raise
        except BaseException:
            await self._abort_all()
            await self._journal_remove()  # the buckets are gone: nothing is left to resume
            raise
        else:
            await self._journal_remove()
        finally:
            await self._cancel_tasks()
            self.lease.close()
            if self._locked is not None:
                self.locks.release(self._locked)
        servers: dict[str, list[int]] = {}
        for b in self.buckets:
            if b.live and b.complete:
                servers.setdefault(b.link.name, []).append(b.shnum)
        for name, shares in self.kept.items():
            servers.setdefault(self.links[name].name if name in self.links else name, []).extend(
                sorted(shares)
            )
        return UploadResult(
            cap,
            identity.size,
            time.monotonic() - start,
            self.share_bytes_sent,
            servers,
            resumed=self.resume is not None,
            share_bytes_skipped=self.share_bytes_skipped,
        )

    # ---- the journal --------------------------------------------------------------------------
    def _journal_record(self, placed: bool) -> JournalRecord:
        assert self.identity is not None
        shares: dict[str, set[int]] = {}
        for b in self.buckets:
            shares.setdefault(self._id(b.link.client), set()).add(b.shnum)
        ident = self.identity
        return JournalRecord(
            owner=self.journal_owner,
            source=SourceIdentity(
                str(self.path.resolve()),
                ident.size,
                ident.mtime_ns,
                ident.ctime_ns,
                ident.inode,
                ident.device,
            ),
            k=self.geometry.k,
            n=self.geometry.n,
            segment_size=self.settings.params.max_segment_size,
            key=self.key,
            storage_index=self.storage_index,
            share_size=self.layout.share_size,
            servers=tuple(
                ServerState(sid, link.upload_secret, tuple(sorted(shares.get(sid, ()))))
                for sid, link in self.links.items()
            ),
            placed=placed,
            segments_done=self.segments_done,
            created=self.resume.created if self.resume is not None else self._journal_created,
            updated=time.time(),
            extra={**(self.resume.extra if self.resume is not None else {}), "happy": self.settings.happy},
        )

    async def _journal_save(self, placed: bool = True) -> None:
        """Write the journal now (after any write in flight); create it on first use."""
        if self.journal is None and self.journals is None:
            return
        if self._journal_task is not None:
            await asyncio.gather(self._journal_task, return_exceptions=True)
        record = self._journal_record(placed)
        self._journal_saved = time.monotonic()
        try:
            if self.journal is None:
                assert self.journals is not None
                self.journal = await asyncio.to_thread(self.journals.create)
            await asyncio.to_thread(self.journal.save, record)
        except JournalError as exc:  # the upload goes on; only a crash would now lose its progress
            log.warning(
                "si=%s: %s; this upload cannot be resumed after a crash", b32encode(self.storage_index), exc
            )

    def _journal_tick(self) -> None:
        """Pass 2's progress: rewrite the journal in the background, at most every JOURNAL_EVERY_S."""
        if self.journal is None or time.monotonic() - self._journal_saved < JOURNAL_EVERY_S:
            return
        if self._journal_task is not None and not self._journal_task.done():
            return
        self._journal_task = asyncio.get_running_loop().create_task(self._journal_background())

    async def _journal_background(self) -> None:
        journal = self.journal
        if journal is None:
            return
        record = self._journal_record(True)
        self._journal_saved = time.monotonic()
        try:
            await asyncio.to_thread(journal.save, record)
        except JournalError as exc:
            log.warning("si=%s: %s", b32encode(self.storage_index), exc)

    async def _journal_remove(self) -> None:
        if self._journal_task is not None:
            await asyncio.gather(self._journal_task, return_exceptions=True)
        if self.journal is None:
            return
        journal, self.journal = self.journal, None
        try:
            await asyncio.to_thread(journal.remove)
        except JournalError as exc:
            log.warning("%s", exc)

    async def _suspend(self) -> bool:
        """Cancelled while the daemon stops (a reboot, say): stop writing, leave the buckets in
        progress and the journal up to date, so the next start resumes the upload. False when
        there is nothing to resume (no journal yet: the key pass was still running)."""
        if not self.suspend_on_cancel or self.journal is None:
            return False
        await self._cancel_tasks()
        if self._journal_task is not None:
            await asyncio.gather(self._journal_task, return_exceptions=True)
        journal, self.journal = self.journal, None
        try:
            await asyncio.to_thread(journal.save, self._journal_record(bool(self.buckets)))
        except JournalError as exc:  # the last one written still describes a resumable upload
            log.warning("si=%s: %s", b32encode(self.storage_index), exc)
        journal.release()
        self.suspended = True
        log.info(
            "si=%s suspended after %d segments: the upload resumes when the daemon starts again",
            b32encode(self.storage_index),
            self.segments_done,
        )
        return True

    # ---- resuming -----------------------------------------------------------------------------
    def _changed_message(self, changes: list[str]) -> str:
        return (
            f"{self.path} changed since its upload was interrupted ({'; '.join(changes)}); the upload was "
            "abandoned (its partial shares aborted, its journal removed) and no cap is given: upload the file "
            "again without --resume"
        )

    async def _check_resumable(self, identity: FileIdentity) -> None:
        """The source must be the one the journal describes, and the journal must be consistent."""
        rec = self.resume
        assert rec is not None
        now = SourceIdentity(
            str(self.path),
            identity.size,
            identity.mtime_ns,
            identity.ctime_ns,
            identity.inode,
            identity.device,
        )
        changes = rec.source.changes(now)
        if changes:
            await self._abandon()
            raise SourceChanged(self._changed_message(changes))
        if storage_index_of(rec.key) != rec.storage_index:
            await self._abandon()
            raise JournalError(
                f"the upload journal of {self.path} is inconsistent: its key does not give its storage index"
            )
        # The journal's k, N and segment size, and its happiness (journals from before it was
        # recorded: the configured one, but never above the journal's N, as happy = min(7, N) is).
        happy = rec.extra.get("happy")
        if not isinstance(happy, int) or not 1 <= happy <= rec.n:
            happy = min(self.settings.happy, rec.n)
        self.settings = replace(
            self.settings, params=EncodingParams(rec.k, rec.n, rec.segment_size), happy=happy
        )
        log.info(
            "si=%s resuming: %d of the file's segments were acknowledged before the interruption",
            b32encode(rec.storage_index),
            rec.segments_done,
        )

    async def _abandon(self) -> None:
        """Abort the journal's in-progress shares (with its upload secrets) and remove the journal."""
        assert self.resume is not None
        await abort_journal_buckets(self.clients, self.resume)
        await self._journal_remove()

    async def _reclaim(self, real: dict[str, set[int]], allocated: dict[str, set[int]]) -> None:
        """Resume: re-establish the journal's placement. Each server is asked again, with the same
        upload secret, for the shares it had: complete ones come back in already-have, ones it lost
        (a restart drops in-progress buckets) are allocated afresh, and ours still in progress come
        back in neither set — a write of their header (bytes fixed by the geometry, so rewriting
        them is idempotent) answers which ranges are still missing. A journal written before the
        placement finished (the crash came while allocating) names no shares: then each of its
        servers is asked about every share number by that write alone (404: not ours)."""
        rec = self.resume
        assert rec is not None
        size, header = self.layout.share_size, self.layout.header_size

        def take(sid: str, shnum: int, spans: tuple[Span, ...] | None) -> None:
            if spans is None:
                return
            if not spans:
                real[sid].add(shnum)  # the header was all it lacked
                self.share_bytes_skipped += size - header
                return
            allocated.setdefault(sid, set()).add(shnum)
            self._reclaimed[(sid, shnum)] = spans
            self.share_bytes_skipped += size - header - sum(s.end - s.begin for s in spans)

        async def unplaced(sid: str) -> None:
            for shnum in sorted(set(range(self.geometry.n)) - real[sid]):
                take(sid, shnum, await self._probe(self.links[sid], shnum, quiet=True))

        if not rec.placed:
            await asyncio.gather(*(unplaced(sid) for sid in rec.secrets_by_server() if sid in real))
            return

        async def one(sid: str, shares: tuple[int, ...]) -> None:
            want = set(shares) - real[sid]
            self.share_bytes_skipped += (len(shares) - len(want)) * size
            if not want:
                return
            resp = await self._allocate(self.links[sid], want)
            if resp is None:
                return
            got, have = resp
            real[sid] |= have & set(range(self.geometry.n))
            self.share_bytes_skipped += len(want & have) * size
            allocated.setdefault(sid, set()).update(got)
            for shnum in sorted(want - got - have):
                take(sid, shnum, await self._probe(self.links[sid], shnum))

        await asyncio.gather(*(one(sid, shares) for sid, shares in rec.placement().items() if sid in real))
        log.info(
            "si=%s resume: %d shares continued, %d allocated again, %d complete",
            b32encode(rec.storage_index),
            len(self._reclaimed),
            sum(len(v) for v in allocated.values()) - len(self._reclaimed),
            sum(len(v) for v in real.values()),
        )

    async def _probe(self, link: _Link, shnum: int, *, quiet: bool = False) -> tuple[Span, ...] | None:
        """Rewrite share ``shnum``'s header: the answer lists the ranges still missing (``()``:
        complete). None if the share is not ours to write (another upload's, gone, or different)."""
        data = self.layout.pack_header()
        try:
            required = await link.client.write(self.storage_index, shnum, 0, [data], link.upload_secret)
        except ServerError as exc:
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "share %d on %s cannot be resumed: %s",
                shnum,
                link.name,
                exc,
            )
            return None
        self.share_bytes_sent += len(data)
        return tuple(required)

    def _key_progress(self, nbytes: int) -> None:
        """``encode_file_pooled`` reports the key pass, then every segment as it is *encoded*; only
        the key pass counts here, since pass 2 counts a segment once its writes are done
        (``_segment_sent``) — forwarding both made ``progress`` add up to 3× the file size."""
        if self.progress is not None and not self._placing:
            self.progress(nbytes)

    # ---- placement ----------------------------------------------------------------------------
    async def _place(self, key: bytes, storage_index: bytes) -> None:
        self._placing = True  # the key pass is over: from here, progress counts segments sent
        self.key = key
        self.storage_index = storage_index
        await self.locks.acquire(storage_index)
        self._locked = storage_index
        n, size = self.geometry.n, self.layout.share_size
        ranked = sorted(
            self.clients, key=lambda c: hashlib.sha1(storage_index + c.permutation_seed).digest()
        )[: 2 * n]
        known: dict[str, bytes] = {}
        if self.resume is not None:  # the journal's servers too, wherever they now rank
            known = self.resume.secrets_by_server()
            placed = self.resume.placement()
            ranked += [c for c in self.clients if self._id(c) in placed and c not in ranked]
        links = {self._id(c): _Link(c, self._budget(c), known.get(self._id(c))) for c in ranked}
        self.links = links
        # The upload secrets are durable before any server sees them: after a crash, every bucket
        # this upload may have created can be finished (or aborted) by a resume.
        await self._journal_save(placed=False)
        listed = await asyncio.gather(*(self._list(link) for link in links.values()))
        real: dict[str, set[int]] = {}  # complete shares servers already hold
        writable: dict[str, bool] = {}
        for (sid, link), found in zip(links.items(), listed, strict=True):
            if found is not None:  # None: unreachable, not a candidate at all
                real[sid] = set(found)
                writable[sid] = link.client.version.maximum_immutable_share_size >= size
        allocated: dict[str, set[int]] = {}
        refused: set[str] = set()
        if self.resume is not None:
            await self._reclaim(real, allocated)
        busy: dict[str, set[int]] = {}  # shares a server left out though it has room: uploads in progress
        best = -1
        while True:
            cands = [
                Candidate(
                    sid,
                    writable[sid] and sid not in refused,
                    frozenset(real[sid] | allocated.get(sid, set())),
                    frozenset(busy.get(sid, set())),
                )
                for sid in real
            ]
            requests = {sid: set(shares) for sid, shares in plan(cands, n).to_allocate.items()}
            results = await asyncio.gather(
                *(self._allocate(links[sid], shares) for sid, shares in requests.items())
            )
            newly_refused = False
            for (sid, asked), resp in zip(requests.items(), results, strict=True):
                got, have = resp if resp is not None else (set(), set())
                allocated.setdefault(sid, set()).update(got)
                real[sid] |= have & set(range(n))
                if resp is None or asked - got - have:
                    newly_refused = True
                    if resp is not None and await self._has_room(links[sid], size):
                        # An upload of those shares is in progress there (another client's, or one
                        # that crashed and whose buckets the server has not yet expired): it can
                        # still take other share numbers.
                        busy.setdefault(sid, set()).update(asked - got - have)
                    else:
                        refused.add(sid)  # Tahoe's rule: a server that refuses is read-only from now on
            holders = {sid: real[sid] | allocated.get(sid, set()) for sid in real}
            happy_now = placement_happiness(holders)
            if not newly_refused or happy_now <= best:
                break
            best = happy_now
        self.kept = {sid: shares for sid, shares in real.items() if shares}
        # A server whose shares we rely on but asked nothing of gets its lease renewed (an
        # allocate call does that implicitly), as a stock Tahoe uploader would.
        await asyncio.gather(*(self._renew(links[sid]) for sid in self.kept if sid not in allocated))
        for sid, shares in sorted(allocated.items()):
            for shnum in sorted(shares):
                self.buckets.append(_Bucket(links[sid], shnum, self._reclaimed.get((sid, shnum))))
        self.spares = [
            links[sid] for sid in real if writable[sid] and sid not in refused and not allocated.get(sid)
        ]
        if happy_now < self.settings.happy:
            raise NotEnoughServers(self._unhappy_message(happy_now))
        await self._journal_save()
        log.info(
            "si=%s placed %d shares on %d servers (happiness %d, %d kept)",
            b32encode(storage_index),
            len(self.buckets),
            len({b.link for b in self.buckets}),
            happy_now,
            sum(len(s) for s in self.kept.values()),
        )

    async def _has_room(self, link: _Link, size: int) -> bool:
        """Whether the server, asked afresh, still takes a share of ``size`` bytes."""
        try:
            version = await link.client.get_version()
        except ServerError:
            return False
        return version.maximum_immutable_share_size >= size

    def _unhappy_message(self, happiness: int) -> str:
        lost = sorted({link.name for link in self.links.values() if link.lost is not None})
        asked, reachable = len(self.links), len(self.links) - len(lost)
        text = (
            f"servers of happiness not met: {happiness} servers would hold distinct shares, {self.settings.happy} "
            f"needed (k={self.geometry.k}, N={self.geometry.n}); {asked} servers asked, {reachable} reachable"
        )
        if lost:
            text += f"; lost during the upload: {', '.join(lost)}"
        if self.unreachable:
            text += (
                f"; {len(self.unreachable)} more could not be reached: {', '.join(sorted(self.unreachable))}"
            )
        return text

    def _budget(self, client: StorageClient) -> Budget:
        sid = self._id(client)
        if sid not in self.budgets:
            self.budgets[sid] = Budget(self.settings.pipeline_depth)
        return self.budgets[sid]

    @staticmethod
    def _id(client: StorageClient) -> str:
        return client.nurl.spki_hash

    async def _list(self, link: _Link) -> frozenset[int] | None:
        try:
            return await link.client.list_shares(self.storage_index)
        except ServerError as exc:
            log.warning("server %s unavailable for placement: %s", link.name, exc)
            link.lost = exc
            return None

    async def _renew(self, link: _Link) -> None:
        renew, cancel = lease_secrets(self.lease_secret, self.storage_index, link.client.lease_seed)
        try:
            await link.client.add_or_renew_lease(self.storage_index, renew, cancel)
        except ServerError as exc:
            log.warning("server %s did not renew its lease: %s", link.name, exc)

    async def _allocate(self, link: _Link, shares: Iterable[int]) -> tuple[set[int], set[int]] | None:
        renew, cancel = lease_secrets(self.lease_secret, self.storage_index, link.client.lease_seed)
        try:
            resp = await link.client.allocate(
                self.storage_index, sorted(shares), self.layout.share_size, renew, cancel, link.upload_secret
            )
        except ServerError as exc:
            log.warning("server %s refused allocation: %s", link.name, exc)
            return None
        return set(resp.allocated), set(resp.already_have)

    # ---- pass 2 -------------------------------------------------------------------------------
    async def _on_segment(self, result: EncodeResult) -> None:
        if self.settings.stock_mode:
            await self._on_segment_stock(result)
            return
        offset = self.layout.block_offset(result.segment)
        end = offset + len(result.blocks[0])
        head = self.layout.header_size if result.segment == 0 else 0  # segment 0 carries the header
        # A resumed upload sends a bucket only what its server still lacks.
        live = [b for b in self.buckets if b.live and (b.needs(offset, end) or b.needs(0, head))]
        hold = SegmentHold(result, len(live), self._segment_sent)
        for bucket in live:
            block = result.blocks[bucket.shnum]
            if bucket.pending and bucket.pending_offset + bucket.pending_bytes != offset:
                await self._flush(bucket)  # the server has the blocks in between: not contiguous
            if not bucket.pending:
                bucket.pending_offset = offset
                if result.segment == 0 and bucket.needs(0, head):
                    bucket.pending.append(self.layout.pack_header())
                    bucket.pending_offset = 0
                    bucket.pending_bytes += self.layout.header_size
            bucket.pending.append(block)
            bucket.holds.append(hold)
            bucket.pending_bytes += len(block)
            if bucket.pending_bytes >= self.settings.write_size:
                await self._flush(bucket)
        self.next_segment = result.segment + 1
        self._unflushed_segments += 1
        if self._unflushed_segments >= max(1, self.lease.size // 2):
            await self._flush_all()  # half the lease is parked in partial writes: send them
        # No write goes out early because the workers fell behind: that bought no throughput at
        # RTT 0, 10 or 50 ms and cost ~1.9x the requests, ~0.5-1 CPU-s/GB (docs/performance.md).
        if self._lost_event.is_set():
            await self._recover()

    async def _on_segment_stock(self, result: EncodeResult) -> None:
        """Stop-and-wait, as Tahoe's encoder does: batch each share's block (copied, so the slot
        is free for the next segment, as Tahoe's buffers are its own), send the batches that are
        full, and wait for every write in flight to be acknowledged before the next segment."""
        offset = self.layout.block_offset(result.segment)
        end = offset + len(result.blocks[0])
        head = self.layout.header_size if result.segment == 0 else 0
        try:
            for bucket in (b for b in self.buckets if b.live):
                if not (bucket.needs(offset, end) or bucket.needs(0, head)):
                    continue
                if bucket.pending and bucket.pending_offset + bucket.pending_bytes != offset:
                    await self._flush(bucket)
                if not bucket.pending:
                    bucket.pending_offset = offset
                    if result.segment == 0 and bucket.needs(0, head):
                        bucket.pending.append(self.layout.pack_header())
                        bucket.pending_offset = 0
                        bucket.pending_bytes += self.layout.header_size
                block = bytes(result.blocks[bucket.shnum])
                bucket.pending.append(block)
                bucket.pending_bytes += len(block)
        finally:
            result.release()
        self._segment_sent(result.segment)
        self.next_segment = result.segment + 1
        for bucket in self.buckets:
            if bucket.pending_bytes >= self.settings.write_size:
                await self._flush(bucket)
        await self._drain()
        if self._lost_event.is_set():
            await self._recover()

    def _segment_sent(self, segment: int) -> None:
        self._acked.add(segment)
        while self.segments_done in self._acked:
            self._acked.discard(self.segments_done)
            self.segments_done += 1
        self._journal_tick()
        if self.progress is not None:
            self.progress(self.geometry.segment_length(segment))

    async def _flush_all(self) -> None:
        self._unflushed_segments = 0
        for bucket in self.buckets:
            if bucket.pending:
                await self._flush(bucket)

    async def _flush(self, bucket: _Bucket) -> None:
        buffers, holds, offset = bucket.pending, bucket.holds, bucket.pending_offset
        bucket.pending, bucket.holds, bucket.pending_bytes = [], [], 0
        if not bucket.live:
            for h in holds:
                h.drop()
            return
        await self._send(bucket, offset, buffers, holds)

    async def _send(
        self, bucket: _Bucket, offset: int, buffers: list[memoryview | bytes], holds: list[SegmentHold]
    ) -> None:
        size = sum(len(b) for b in buffers)
        try:
            taken = await bucket.link.budget.acquire(size)
        except BaseException:
            for h in holds:
                h.drop()
            raise
        task = asyncio.create_task(self._write(bucket, offset, buffers))
        self.tasks.add(task)
        budget = bucket.link.budget

        def done(task: asyncio.Task[None]) -> None:
            # Here, not in _write's `finally`: a task cancelled before it first ran never enters
            # its body, and its bytes and blocks must come back all the same.
            self.tasks.discard(task)
            budget.release(taken)
            for h in holds:
                h.drop()

        task.add_done_callback(done)

    async def _write(
        self,
        bucket: _Bucket,
        offset: int,
        buffers: list[memoryview | bytes],
    ) -> None:
        """One write, retried; the caller's done-callback gives back its budget and blocks."""
        link = bucket.link
        started = time.monotonic()
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            if not bucket.live:
                return
            try:
                asked = time.monotonic()
                required = await link.client.write(
                    self.storage_index, bucket.shnum, offset, buffers, link.upload_secret
                )
            except ServerError as exc:
                link.budget.failures += 1
                if attempt and getattr(exc, "status", None) == 404 and await self._completed(bucket):
                    bucket.complete = True  # an earlier, timed-out try did complete it
                    return
                if exc.retryable and delay is not None:
                    log.info(
                        "write to %s failed (%s); retry %d in %.1f s", link.name, exc, attempt + 1, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                self._lose(bucket, exc)
                return
            size = sum(len(b) for b in buffers)
            self.share_bytes_sent += size
            link.budget.record(size, time.monotonic() - asked)
            trace.write(link.name, started, time.monotonic(), size)
            if not required:
                bucket.complete = True
            return

    async def _completed(self, bucket: _Bucket) -> bool:
        try:
            return bucket.shnum in await bucket.link.client.list_shares(self.storage_index)
        except ServerError:
            return False

    def _lose(self, bucket: _Bucket, exc: BaseException) -> None:
        if exc is not None and getattr(exc, "status", None) in (401, 404, 409, 416):
            bucket.failed = True  # this bucket is broken, the server may be fine
            log.warning("share %d on %s failed: %s", bucket.shnum, bucket.link.name, exc)
        elif bucket.link.lost is None:
            bucket.link.lost = exc
            log.warning("server %s lost mid-upload: %s", bucket.link.name, exc)
        self._lost_event.set()

    # ---- recovery -----------------------------------------------------------------------------
    def _holders(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {
            sid: set(v) for sid, v in self.kept.items() if self.links[sid].lost is None
        }
        for b in self.buckets:
            if b.live:
                out.setdefault(self._id(b.link.client), set()).add(b.shnum)
        return out

    async def _recover(self) -> None:
        """Re-place the shares of lost buckets on spares; fail if happiness can no longer hold."""
        self._lost_event.clear()
        placed = {shnum for shares in self._holders().values() for shnum in shares}
        orphans = sorted({b.shnum for b in self.buckets if not b.live} - placed)
        while orphans and self.spares:
            link = self.spares.pop(0)
            if link.lost is not None:
                continue
            shnum = orphans[0]
            got = await self._allocate(link, {shnum})
            if got is None or shnum not in got[0]:
                continue
            orphans.pop(0)
            bucket = _Bucket(link, shnum)
            self.buckets.append(bucket)
            log.info("share %d re-placed on spare server %s", shnum, link.name)
            task = asyncio.create_task(self._backfill(bucket, self.next_segment))
            self.backfills.add(task)
            self._journal_saved = 0.0  # a new bucket: journal it (and its server's secret) soon
            self._journal_tick()
        happiness = placement_happiness(self._holders())
        if happiness < self.settings.happy:
            raise NotEnoughServers(self._unhappy_message(happiness))

    async def _backfill(self, bucket: _Bucket, upto: int) -> None:
        """Re-encode segments [0, upto) from the source and write this bucket's blocks of them."""
        g = self.geometry
        for seg in range(upto):
            if not bucket.live:
                return
            result = await self.pool.encode(
                self.client_id,
                seg,
                self.key,
                g.segment_offset(seg),
                g.segment_length(seg),
                g.k,
                g.n,
                source=str(self.path),
                slots=self.lease,
            )
            hold = SegmentHold(result, 1, None)
            buffers: list[memoryview | bytes] = [result.blocks[bucket.shnum]]
            offset = self.layout.block_offset(seg)
            if seg == 0:
                buffers.insert(0, self.layout.pack_header())
                offset = 0
            await self._send(bucket, offset, buffers, [hold])

    # ---- finish -------------------------------------------------------------------------------
    async def _finish(self, share_trailer: Callable[[int], bytes]) -> None:
        """Trailers, then — once every share is otherwise written — each share's last byte."""
        tails: dict[int, bytes] = {}
        start, end = self.layout.plaintext_hash_tree, self.layout.share_size - TAIL_HOLDBACK
        while True:
            await self._flush_all()
            while self.backfills:
                done = set(self.backfills)
                await asyncio.gather(*done)
                self.backfills -= done
            await self._drain()
            if await self._recovered():
                continue
            for bucket in self._live():
                if not bucket.trailer_sent:
                    bucket.trailer_sent = True
                    trailer = tails.setdefault(bucket.shnum, share_trailer(bucket.shnum))
                    if bucket.needs(start, end):
                        await self._send(bucket, start, [trailer[:-TAIL_HOLDBACK]], [])
            await self._drain()
            if await self._recovered():
                continue
            happiness = placement_happiness(self._holders())
            if happiness < self.settings.happy:
                raise NotEnoughServers(self._unhappy_message(happiness))
            for bucket in self._live():
                if not bucket.tail_sent:
                    bucket.tail_sent = True
                    await self._send(bucket, end, [tails[bucket.shnum][-TAIL_HOLDBACK:]], [])
            await self._drain()
            if not await self._recovered():
                break
        incomplete = [b for b in self._live() if not b.complete]
        if incomplete:
            names = ", ".join(f"share {b.shnum} on {b.link.name}" for b in incomplete)
            raise NotEnoughServers(f"servers did not report these shares complete: {names}")

    def _live(self) -> list[_Bucket]:
        return [b for b in self.buckets if b.live]

    async def _recovered(self) -> bool:
        """True when a loss was handled (and the finishing steps must run again for new buckets)."""
        if not self._lost_event.is_set():
            return False
        await self._recover()
        return True

    async def _drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _abort_all(self) -> None:
        for b in self.buckets:
            b.failed = True
        await self._cancel_tasks()
        aborts = []
        for b in self.buckets:
            if not b.complete and b.link.lost is None:
                aborts.append(self._abort(b))
        await asyncio.gather(*aborts, return_exceptions=True)

    async def _abort(self, bucket: _Bucket) -> None:
        with contextlib.suppress(ServerError):
            await bucket.link.client.abort(self.storage_index, bucket.shnum, bucket.link.upload_secret)

    async def _cancel_tasks(self) -> None:
        for task in list(self.tasks) + list(self.backfills):
            task.cancel()
        await asyncio.gather(*self.tasks, *self.backfills, return_exceptions=True)
        for b in self.buckets:
            for h in b.holds:
                h.drop()
            b.holds, b.pending = [], []
