"""Drive OUR storage server with stock Tahoe-LAFS 1.20.0's own HTTP storage client.

Runs INSIDE the stock Tahoe venv and imports nothing from this repository. Usage::

    python http_client_driver.py NURL < request.json

``request.json``: ``{"storage_index_b64": ..., "share_size": int, "seed_b64": ...,
"renew_b64": ..., "cancel_b64": ..., "upload_b64": ...}``. Share ``i`` is
``(seed + bytes([i])) * ...`` cut to ``share_size``. The script uses
``allmydata.storage.http_client`` unmodified (TLS with SPKI pinning, CBOR schemas, Range reads):
version; allocate shares 0-3; write 0-2 in two out-of-order chunks; abort 3; list; ranged reads
(inside, running past the end, starting past the end); add/renew a lease; report corruption; and
allocate again. It prints one JSON object with what each call returned; any exception exits 1.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback

from allmydata.storage.http_client import (
    StorageClientFactory,
    StorageClientGeneral,
    StorageClientImmutables,
)
from hyperlink import DecodedURL
from twisted.internet import defer, task


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def share_bytes(seed: bytes, shnum: int, size: int) -> bytes:
    unit = seed + bytes([shnum])
    return (unit * (size // len(unit) + 1))[:size]


async def scenario(reactor, nurl: str, req: dict) -> dict:
    si = base64.b64decode(req["storage_index_b64"])
    size = req["share_size"]
    seed = base64.b64decode(req["seed_b64"])
    renew, cancel, upload = (base64.b64decode(req[k]) for k in ("renew_b64", "cancel_b64", "upload_b64"))
    factory = StorageClientFactory({"tcp": "tcp"}, None)
    client = await factory.create_storage_client(DecodedURL.from_text(nurl), reactor)
    general = StorageClientGeneral(client)
    imm = StorageClientImmutables(client)
    out: dict = {}
    version = await general.get_version()
    v1 = version[b"http://allmydata.org/tahoe/protocols/storage/v1"]
    out["version"] = {
        "maximum-immutable-share-size": v1[b"maximum-immutable-share-size"],
        "available-space": v1[b"available-space"],
        "application-version": version[b"application-version"].decode("ascii", "replace"),
    }
    created = await imm.create(si, {0, 1, 2, 3}, size, upload, renew, cancel)
    out["create"] = {"already_have": sorted(created.already_have), "allocated": sorted(created.allocated)}
    writes = []
    half = size // 2
    for shnum in (0, 1, 2):
        data = share_bytes(seed, shnum, size)
        second = await imm.write_share_chunk(si, shnum, upload, half, data[half:])
        first = await imm.write_share_chunk(si, shnum, upload, 0, data[:half])
        writes.append(
            {
                "shnum": shnum,
                "second_finished": second.finished,
                "second_required": [[r.start, r.stop] for r in _ranges(second.required)],
                "first_finished": first.finished,
            }
        )
    out["writes"] = writes
    await imm.abort_upload(si, 3, upload)
    out["list"] = sorted(await imm.list_shares(si))
    reads = {}
    for shnum in (0, 1, 2):
        whole = await imm.read_share_chunk(si, shnum, 0, size)
        reads[str(shnum)] = whole == share_bytes(seed, shnum, size)
    out["reads_match"] = reads
    part = await imm.read_share_chunk(si, 1, 10, 20)
    out["part_match"] = part == share_bytes(seed, 1, size)[10:30]
    tail = await imm.read_share_chunk(si, 2, size - 5, 100)
    out["tail_len"] = len(tail)
    out["tail_match"] = tail == share_bytes(seed, 2, size)[size - 5 :]
    beyond = await imm.read_share_chunk(si, 2, size + 10, 10)
    out["beyond"] = b64(beyond)
    await general.add_or_renew_lease(si, renew, cancel)
    await general.add_or_renew_lease(si, b"R" * 32, b"C" * 32)
    await imm.advise_corrupt_share(si, 0, "stock client says: bad block")
    again = await imm.create(si, {0, 1, 2, 3, 4}, size, b"u" * 20, renew, cancel)
    out["create_again"] = {"already_have": sorted(again.already_have), "allocated": sorted(again.allocated)}
    await imm.abort_upload(si, 3, b"u" * 20)
    await imm.abort_upload(si, 4, b"u" * 20)
    await client.shutdown()
    return out


def _ranges(rangemap):
    return [range(start, stop) for start, stop, _ in rangemap.ranges()]


def main(reactor, nurl: str):
    req = json.load(sys.stdin)

    async def go():
        try:
            result = await scenario(reactor, nurl, req)
        except Exception:
            traceback.print_exc()
            raise
        print(json.dumps(result), flush=True)

    return defer.Deferred.fromCoroutine(go())


if __name__ == "__main__":
    task.react(main, [sys.argv[1]])
