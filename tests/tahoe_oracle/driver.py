"""Run stock Tahoe-LAFS's own immutable uploader in-process and print its caps and share bytes.

This script runs INSIDE the stock Tahoe-LAFS 1.20.0 venv (not the project venv) and imports nothing
from this repository. It reads a JSON list of cases from stdin::

    [{"id": "...", "k": 3, "n": 10, "max_segment_size": 4096, "secret_b64": "...",
      "data_b64": "..."  |  "data": {"seed_b64": "...", "length": 12345}}, ...]

(``data`` given as a seed is expanded by repetition: ``(seed * ceil(length / len(seed)))[:length]``.)

For each case it drives Tahoe's real upload path, end to end and unmodified:
``allmydata.immutable.upload.Uploader`` (as a service under a minimal stand-in for the client node)
→ ``Data`` uploadable with the convergence secret → ``EncryptAnUploadable`` → ``CHKUploader`` →
``Tahoe2ServerSelector`` / ``ServerTracker`` (which pick the layout version and the allocated size)
→ ``Encoder`` → ``WriteBucketProxy`` (v1 or v2, batched writes). The only fakes are the storage
servers: N in-memory servers that accept every ``allocate_buckets`` call and hand back bucket
writers recording each remote ``write(offset, data)`` exactly as Tahoe would send it over the wire.
When a bucket is closed, its writes are checked (in bounds, no overlaps, no holes, total length ==
the allocated size Tahoe asked for) and assembled into the share's bytes.

Output: one JSON line per case on stdout, in input order::

    {"id": ..., "cap": "URI:CHK:...", "allocated_size": ..., "shares": [b64(share 0), ..., b64(share N-1)]}

LIT files (<= 55 bytes) give ``"cap": "URI:LIT:..."`` and no shares. Any failure prints a traceback
on stderr and exits non-zero.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import traceback

from allmydata.client import SecretHolder
from allmydata.immutable import upload
from twisted.application import service
from twisted.internet import defer, task

STORAGE_V1 = b"http://allmydata.org/tahoe/protocols/storage/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _plaintext(case: dict) -> bytes:
    if "data_b64" in case:
        return base64.b64decode(case["data_b64"])
    spec = case["data"]
    seed = base64.b64decode(spec["seed_b64"])
    length = int(spec["length"])
    if length and not seed:
        raise ValueError(f"case {case['id']}: empty seed for a non-empty file")
    reps = -(-length // len(seed)) if length else 0
    return (seed * reps)[:length]


class _LocalRef:
    """Stands in for a foolscap RemoteReference: callRemote(name, ...) calls a local method."""

    def __init__(self, target: object) -> None:
        self._target = target

    def callRemote(self, name: str, *args: object, **kwargs: object) -> defer.Deferred:
        return defer.maybeDeferred(getattr(self._target, "remote_" + name), *args, **kwargs)


class _Bucket:
    """An in-memory immutable bucket writer that records every write Tahoe sends."""

    def __init__(self, upload_: _CaseUpload, shnum: int, allocated_size: int) -> None:
        self.upload = upload_
        self.shnum = shnum
        self.allocated_size = allocated_size
        self.writes: list[tuple[int, bytes]] = []
        self.closed = False
        self.aborted = False

    def remote_write(self, offset: int, data: bytes) -> None:
        if self.closed or self.aborted:
            raise RuntimeError(f"share {self.shnum}: write after close/abort")
        if offset < 0 or offset + len(data) > self.allocated_size:
            end = offset + len(data)
            raise RuntimeError(
                f"share {self.shnum}: write [{offset}, {end}) outside allocated {self.allocated_size}"
            )
        self.writes.append((offset, bytes(data)))

    def remote_close(self) -> None:
        self.closed = True

    def remote_abort(self) -> None:
        self.aborted = True

    def assemble(self) -> bytes:
        out = bytearray(self.allocated_size)
        pos = 0
        for offset, data in sorted(self.writes):
            if offset != pos:
                raise RuntimeError(
                    f"share {self.shnum}: writes leave a hole or overlap at offset {pos} (next {offset})"
                )
            out[offset : offset + len(data)] = data
            pos += len(data)
        if pos != self.allocated_size:
            raise RuntimeError(f"share {self.shnum}: {pos} bytes written, {self.allocated_size} allocated")
        return bytes(out)


class _StorageServer:
    """The IStorageServer calls the uploader makes: get_buckets and allocate_buckets."""

    def __init__(self, upload_: _CaseUpload) -> None:
        self._upload = upload_

    def get_buckets(self, storage_index: bytes) -> defer.Deferred:
        return defer.succeed({})

    def allocate_buckets(
        self,
        storage_index: bytes,
        renew_secret: bytes,
        cancel_secret: bytes,
        sharenums: set[int],
        allocated_size: int,
        canary: object = None,
    ) -> defer.Deferred:
        buckets = {}
        for shnum in sharenums:
            if shnum in self._upload.buckets:
                raise RuntimeError(f"share {shnum} allocated twice")
            bucket = _Bucket(self._upload, shnum, allocated_size)
            self._upload.buckets[shnum] = bucket
            buckets[shnum] = _LocalRef(bucket)
        return defer.succeed((set(), buckets))


class _Server:
    """An IServer as the storage broker hands it to the uploader."""

    def __init__(self, index: int, upload_: _CaseUpload) -> None:
        self._serverid = (
            b"v0-" + base64.b32encode(hashlib.sha256(b"oracle server %d" % index).digest()).lower()
        )
        self._name = f"s{index}"
        self._lease_seed = hashlib.sha256(b"oracle lease seed %d" % index).digest()[:20]  # a 20-byte tubid
        self._storage = _StorageServer(upload_)

    def get_serverid(self) -> bytes:
        return self._serverid

    def get_name(self) -> str:
        return self._name

    def get_longname(self) -> str:
        return self._name

    def get_nickname(self) -> str:
        return self._name

    def get_lease_seed(self) -> bytes:
        return self._lease_seed

    def get_version(self) -> dict:
        return {
            STORAGE_V1: {
                b"maximum-immutable-share-size": 2**64,
                b"maximum-mutable-share-size": 2**64,
                b"available-space": 2**64,
                b"tolerates-immutable-read-overrun": True,
                b"delete-mutable-shares-with-zero-length-writev": True,
                b"fills-holes-with-zero-bytes": True,
                b"prevents-read-past-end-of-share-data": True,
            },
            b"application-version": b"tahoe-oracle-fake",
        }

    def get_storage_server(self) -> _StorageServer:
        return self._storage


class _StorageBroker:
    def __init__(self, servers: list[_Server]) -> None:
        self._servers = servers

    def get_servers_for_psi(self, peer_selection_index: bytes, for_upload: bool = False) -> list[_Server]:
        return list(self._servers)


class _CaseUpload:
    """The fake grid for one case: N servers and the buckets allocated on them."""

    def __init__(self, n: int) -> None:
        self.buckets: dict[int, _Bucket] = {}
        self.broker = _StorageBroker([_Server(i, self) for i in range(n)])


class _FakeClient(service.MultiService):
    """The little of allmydata.client._Client that Uploader.upload() uses."""

    def __init__(self) -> None:
        super().__init__()
        self._secret_holder = SecretHolder(hashlib.sha256(b"oracle lease secret").digest(), b"unused")
        self.encoding_parameters: dict[str, int] = {}
        self.broker: _StorageBroker | None = None

    def get_encoding_parameters(self) -> dict[str, int]:
        return dict(self.encoding_parameters)

    def get_storage_broker(self) -> _StorageBroker:
        assert self.broker is not None
        return self.broker


async def _run_case(client: _FakeClient, uploader: upload.Uploader, case: dict) -> dict:
    k, n, max_seg = int(case["k"]), int(case["n"]), int(case["max_segment_size"])
    secret = base64.b64decode(case["secret_b64"])
    data = _plaintext(case)
    grid = _CaseUpload(n)
    client.broker = grid.broker
    # happy = n: with n servers, every share lands on its own server (bytes do not depend on it).
    client.encoding_parameters = {"k": k, "happy": n, "n": n, "max_segment_size": max_seg}
    results = await uploader.upload(upload.Data(data, convergence=secret))
    cap = results.get_uri()
    if isinstance(cap, bytes):
        cap = cap.decode("ascii")
    out: dict = {"id": case["id"], "cap": cap, "shares": []}
    if len(data) <= upload.Uploader.URI_LIT_SIZE_THRESHOLD:
        if grid.buckets:
            raise RuntimeError(f"case {case['id']}: LIT file allocated buckets")
        return out
    if sorted(grid.buckets) != list(range(n)):
        raise RuntimeError(f"case {case['id']}: shares allocated {sorted(grid.buckets)}, expected 0..{n - 1}")
    sizes = {b.allocated_size for b in grid.buckets.values()}
    if len(sizes) != 1:
        raise RuntimeError(f"case {case['id']}: differing allocated sizes {sorted(sizes)}")
    for shnum in range(n):
        bucket = grid.buckets[shnum]
        if not bucket.closed or bucket.aborted:
            raise RuntimeError(
                f"case {case['id']}: share {shnum} closed={bucket.closed} aborted={bucket.aborted}"
            )
        out["shares"].append(_b64(bucket.assemble()))
    out["allocated_size"] = sizes.pop()
    return out


async def _main(cases: list[dict], emit) -> None:
    client = _FakeClient()
    uploader = upload.Uploader()
    uploader.setServiceParent(client)
    client.startService()
    try:
        for case in cases:
            emit(await _run_case(client, uploader, case))
    finally:
        await client.stopService()


def main() -> int:
    cases = json.load(sys.stdin)
    if not isinstance(cases, list):
        raise SystemExit("expected a JSON list of cases on stdin")
    # Keep stdout for our JSON lines only: anything else that prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="ascii")
    sys.stdout = sys.stderr

    def emit(record: dict) -> None:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
        out.flush()

    failures: list[BaseException] = []

    async def run(reactor) -> None:
        try:
            await _main(cases, emit)
        except BaseException as exc:
            failures.append(exc)
            traceback.print_exc(file=sys.stderr)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as exc:
        if exc.code not in (0, None):
            return int(exc.code) if isinstance(exc.code, int) else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
