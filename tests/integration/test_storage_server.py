"""Our GBS storage server as a real process on 127.0.0.1, over real TLS: every endpoint, every
error path of gbs-http-protocol §3–§7, restarts, and a SIGKILL in the middle of a write."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from tests.storage_driver import REPO, GbsClient, ServerProcess
from uploader.storage import container
from uploader.wire import protocol as wire
from uploader.wire.protocol import Secret, Span

pytestmark = pytest.mark.integration

R, C = b"r" * 32, b"c" * 32
UPLOAD = {Secret.UPLOAD: b"u" * 20}
ALLOC = {Secret.LEASE_RENEW: R, Secret.LEASE_CANCEL: C, Secret.UPLOAD: b"u" * 20}


def new_si() -> bytes:
    return os.urandom(16)


def si_path(server: ServerProcess, si: bytes, *parts: str) -> Path:
    text = wire.storage_index_text(si)
    return server.directory.joinpath("storage", "shares", *parts, text[:2], text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("gbs") / "server")
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def gbs(server: ServerProcess) -> GbsClient:
    return server.client


# --- identity, NURL, TLS ---------------------------------------------------------------------


def test_nurl_is_printed_written_and_pins_the_certificate(server: ServerProcess) -> None:
    assert (server.directory / "nurl").read_text().strip() == str(server.nurl)
    assert server.nurl.host == "127.0.0.1" and server.nurl.port > 0
    assert (server.directory / "private" / "node.pem").stat().st_mode & 0o777 == 0o600
    assert (server.directory / "nurl").stat().st_mode & 0o777 == 0o600  # it holds the swissnum
    server.client.connect().close()  # the SPKI hash matches


# --- authorization and secrets (§3) ----------------------------------------------------------


def test_version(gbs: GbsClient) -> None:
    resp = gbs.request("GET", "/storage/v1/version")
    assert resp.status == 200 and resp.header("Content-Type") == "application/cbor"
    raw = cbor2.loads(resp.body)
    assert set(raw) == {wire.V1_KEY, b"application-version"}
    assert set(raw[wire.V1_KEY]) == {
        b"maximum-immutable-share-size",
        b"maximum-mutable-share-size",
        b"available-space",
    }
    info = wire.parse_version(resp.body)
    assert info.available_space > 0 and info.maximum_immutable_share_size > 0
    assert gbs.request("GET", "/storage/v1/version", accept=None).status == 200


@pytest.mark.parametrize(
    "auth",
    [None, "Tahoe-LAFS " + base64.b64encode(b"wrong").decode(), "Basic abc", "Tahoe-LAFS", "tahoe-lafs x"],
)
def test_missing_or_wrong_swissnum_is_401(gbs: GbsClient, auth: str | None) -> None:
    for method, path in [("GET", "/storage/v1/version"), ("GET", wire.list_shares_path(new_si()))]:
        resp = gbs.request(method, path, auth=auth)
        assert resp.status == 401
        assert gbs.nurl.swissnum.encode() not in resp.body


def test_swissnum_with_wrong_case_or_padding_is_401(gbs: GbsClient) -> None:
    good = wire.build_authorization(gbs.nurl.swissnum)
    # (Whitespace around a header value is not part of it in HTTP, so "good + ' '" is good.)
    for bad in (good.rstrip("="), good.lower(), good.replace("Tahoe-LAFS", "Tahoe-LAFS ")):
        assert gbs.request("GET", "/storage/v1/version", auth=bad).status == 401


def test_non_utf8_authorization_is_400(gbs: GbsClient) -> None:
    conn = gbs.connect()
    try:
        conn.putrequest("GET", "/storage/v1/version")
        conn.putheader("Authorization", b"Tahoe-LAFS \xff\xfe")
        conn.endheaders()
        assert conn.getresponse().status == 400
    finally:
        conn.close()


def test_only_the_first_authorization_header_counts(gbs: GbsClient) -> None:
    good = wire.build_authorization(gbs.nurl.swissnum)
    assert gbs.request("GET", "/storage/v1/version", headers=[("Authorization", "x")]).status == 200
    assert (
        gbs.request("GET", "/storage/v1/version", auth="x", headers=[("Authorization", good)]).status == 401
    )


def test_secret_rules(gbs: GbsClient) -> None:
    si = new_si()
    body = wire.build_allocate_request([0], 10)
    path = wire.allocate_path(si)
    post = lambda **kw: gbs.request("POST", path, body, content_type=wire.CBOR_MIME_TYPE, **kw)  # noqa: E731
    # Extra secrets, even on endpoints that need none.
    assert gbs.request("GET", "/storage/v1/version", secrets=UPLOAD).status == 400
    # Missing one.
    assert post(secrets={Secret.LEASE_RENEW: R, Secret.UPLOAD: b"u"}).status == 400
    # A lease secret that is not 32 bytes.
    short = ("X-Tahoe-Authorization", "lease-cancel-secret " + base64.b64encode(b"c" * 31).decode())
    assert post(secrets={Secret.LEASE_RENEW: R, Secret.UPLOAD: b"u"}, headers=[short]).status == 400
    # Unknown name, empty value, bad base64, comma-joined lines.
    for value in (
        "bogus-secret dXA=",
        "upload-secret ",
        "upload-secret %%%",
        "upload-secret dXA=, upload-secret dXA=",
    ):
        resp = post(
            secrets={Secret.LEASE_RENEW: R, Secret.LEASE_CANCEL: C},
            headers=[("X-Tahoe-Authorization", value)],
        )
        assert resp.status == 400, value
    # The same secret twice.
    line = wire.build_secret_headers(UPLOAD)[0]
    assert post(secrets={Secret.LEASE_RENEW: R, Secret.LEASE_CANCEL: C}, headers=[line, line]).status == 400
    # Nothing was allocated by any of those.
    assert post(secrets=ALLOC).status == 200
    assert gbs.allocate(si, [0], 10, b"u" * 20).allocated == frozenset()


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json", "text/html"])
def test_accept_other_than_cbor_is_406(gbs: GbsClient, accept: str) -> None:
    assert gbs.request("GET", "/storage/v1/version", accept=accept).status == 406
    assert gbs.request("GET", wire.list_shares_path(new_si()), accept=accept).status == 406
    resp = gbs.request(
        "POST",
        wire.allocate_path(new_si()),
        wire.build_allocate_request([0], 10),
        secrets=ALLOC,
        accept=accept,
    )
    assert resp.status == 406


def test_cbor_with_lower_quality_alternatives_is_fine(gbs: GbsClient) -> None:
    assert gbs.request("GET", "/storage/v1/version", accept="application/cbor, */*;q=0.5").status == 200


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/storage/v1/immutable/" + "A" * 26 + "/shares",  # upper case
        "/storage/v1/immutable/" + "a" * 25 + "b/shares",  # last character has spare bits
        "/storage/v1/immutable/" + "a" * 25 + "/shares",  # 25 characters
        "/storage/v1/mutable/" + "a" * 26 + "/shares",  # mutable: not served
        "/storage/v2/version",
        "/",
    ],
)
def test_unknown_paths_are_404(gbs: GbsClient, path: str) -> None:
    assert gbs.request("GET", path).status == 404
    assert gbs.request("GET", path, auth=None).status == 404  # routing comes first


def test_wrong_method_is_405(gbs: GbsClient) -> None:
    assert gbs.request("DELETE", wire.share_path(new_si(), 0)).status == 405
    assert gbs.request("POST", "/storage/v1/version").status == 405


# --- allocate (§6.2) -------------------------------------------------------------------------


def test_allocate_write_list_read_round_trip(gbs: GbsClient) -> None:
    si = new_si()
    assert gbs.list_shares(si) == frozenset()  # unknown SI: empty set, not 404
    created = gbs.allocate(si, [0, 1, 2], 48, b"u" * 20)
    assert created == wire.AllocateResponse(frozenset(), frozenset({0, 1, 2}))
    data = bytes(range(48))
    first = gbs.write(si, 0, b"u" * 20, 0, data[:16])
    assert first.status == 200 and first.header("Content-Type") == "application/cbor"
    assert wire.parse_required_ranges(first.body) == (Span(16, 48),)
    second = gbs.write(si, 0, b"u" * 20, 32, data[32:])
    assert wire.parse_required_ranges(second.body) == (Span(16, 32),)
    assert gbs.list_shares(si) == frozenset()  # not complete yet
    last = gbs.write(si, 0, b"u" * 20, 16, data[16:32])
    assert last.status == 201 and last.body == bytes.fromhex("a16872657175697265648" + "0")
    assert gbs.list_shares(si) == frozenset({0})
    got = gbs.read(si, 0, 0, 47)
    assert got.status == 206 and got.body == data
    assert got.header("Content-Range") == "bytes 0-47/*"
    assert got.header("Content-Type") == "application/octet-stream"
    # Everything complete is already-have (unasked ones too); in-progress shares are in neither set.
    again = gbs.allocate(si, [1, 3], 48, b"v" * 20)
    assert again == wire.AllocateResponse(frozenset({0}), frozenset({3}))


def test_allocate_body_errors(gbs: GbsClient) -> None:
    path = wire.allocate_path(new_si())

    def post(body: bytes, content_type: str | None = wire.CBOR_MIME_TYPE) -> int:
        return gbs.request("POST", path, body, secrets=ALLOC, content_type=content_type).status

    assert post(b"\xff\x00garbage") == 400  # malformed CBOR
    assert post(cbor2.dumps({"share-numbers": [0], "allocated-size": 5})) == 400  # array, not set
    assert post(cbor2.dumps({"share-numbers": {0}, "allocated-size": 5, "x": 1})) == 400  # extra key
    assert post(cbor2.dumps({"share-numbers": {0}})) == 400  # missing key
    assert post(cbor2.dumps({"share-numbers": {0}, "allocated-size": -5})) == 400
    assert post(cbor2.dumps({"share-numbers": {0}, "allocated-size": 0})) == 400
    assert post(cbor2.dumps({"share-numbers": set(range(257)), "allocated-size": 5})) == 400
    assert post(b"") == 400
    assert post(wire.build_allocate_request([0], 5), "application/json") == 415
    too_big = cbor2.dumps({"share-numbers": {0}, "allocated-size": 5, "pad": b"x" * 9000})
    assert post(too_big) == 413
    assert post(wire.build_allocate_request([0], 5), None) == 200  # no Content-Type means CBOR


def test_allocate_over_8192_bytes_chunked_is_413(gbs: GbsClient) -> None:
    body = b"\x00" * 9000
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    resp = gbs.request(
        "POST",
        wire.allocate_path(new_si()),
        chunked,
        secrets=ALLOC,
        headers=[("Transfer-Encoding", "chunked")],
    )
    assert resp.status == 413


# --- write (§6.3) ----------------------------------------------------------------------------


@pytest.fixture
def bucket(gbs: GbsClient) -> bytes:
    si = new_si()
    assert gbs.allocate(si, [0, 1], 100, b"u" * 20).allocated == {0, 1}
    return si


def test_write_errors(gbs: GbsClient, bucket: bytes) -> None:
    si, path = bucket, wire.share_path(bucket, 0)

    def patch(body: bytes, content_range: str | None, **kw: object) -> int:
        headers = [("Content-Range", content_range)] if content_range is not None else []
        return gbs.request(
            "PATCH", path, body, secrets=kw.pop("secrets", UPLOAD), headers=headers, **kw
        ).status  # type: ignore[arg-type]

    assert patch(b"x" * 10, None) == 416
    assert patch(b"x" * 10, "bytes 0-9") == 416
    assert patch(b"x" * 10, "items 0-9/*") == 416
    assert patch(b"x" * 10, "bytes 9-0/*") == 416
    assert patch(b"x" * 10, "bytes */100") == 416
    assert patch(b"x" * 10, "bytes 95-104/*") == 416  # past the allocation
    assert patch(b"x" * 10, "bytes 0-9/*", secrets={Secret.UPLOAD: b"v" * 20}) == 401
    assert patch(b"x" * 10, "bytes 0-9/*", secrets={}) == 400
    assert patch(b"x" * 10, "bytes 0-9/*", secrets=ALLOC) == 400  # extra secrets
    assert patch(b"x" * 9, "bytes 0-9/*") == 400  # body shorter than the range
    assert patch(b"x" * 10, "bytes 0-9/*", accept="*/*") == 406
    assert gbs.write(si, 5, b"u" * 20, 0, b"x").status == 404  # not allocated
    assert gbs.write(new_si(), 0, b"u" * 20, 0, b"x").status == 404  # unknown SI
    assert (
        gbs.request(
            "PATCH",
            wire.share_path(si, 0)[:-1] + "256",
            b"x",
            secrets=UPLOAD,
            headers=[("Content-Range", "bytes 0-0/*")],
        ).status
        == 404
    )
    # None of that stored anything.
    resp = gbs.write(si, 0, b"u" * 20, 0, b"a" * 10)
    assert resp.status == 200 and wire.parse_required_ranges(resp.body) == (Span(10, 100),)


def test_explicit_total_in_content_range(gbs: GbsClient, bucket: bytes) -> None:
    resp = gbs.request(
        "PATCH",
        wire.share_path(bucket, 0),
        b"q" * 10,
        secrets=UPLOAD,
        headers=[("Content-Range", "bytes 0-9/100")],
    )
    assert resp.status == 200


def test_conflicting_and_idempotent_writes(gbs: GbsClient, bucket: bytes) -> None:
    si, up = bucket, b"u" * 20
    assert gbs.write(si, 0, up, 0, b"0123456789").status == 200
    assert gbs.write(si, 0, up, 0, b"0123456789").status == 200  # same bytes again
    assert gbs.write(si, 0, up, 5, b"56789ABCDE").status == 200  # overlap equal, then new
    resp = gbs.write(si, 0, up, 8, b"XY")
    assert resp.status == 409
    resp = gbs.write(si, 0, up, 10, b"ABCDE")
    assert resp.status == 200 and wire.parse_required_ranges(resp.body) == (Span(15, 100),)


def test_chunked_write_and_body_longer_than_range(gbs: GbsClient, bucket: bytes) -> None:
    def chunked(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"

    path = wire.share_path(bucket, 0)
    ok = gbs.request(
        "PATCH",
        path,
        chunked(b"z" * 10),
        secrets=UPLOAD,
        headers=[("Content-Range", "bytes 0-9/*"), ("Transfer-Encoding", "chunked")],
    )
    assert ok.status == 200
    long = gbs.request(
        "PATCH",
        path,
        chunked(b"z" * 11),
        secrets=UPLOAD,
        headers=[("Content-Range", "bytes 10-19/*"), ("Transfer-Encoding", "chunked")],
    )
    assert long.status == 400
    assert (
        gbs.request(
            "PATCH", path, b"z" * 11, secrets=UPLOAD, headers=[("Content-Range", "bytes 20-29/*")]
        ).status
        == 400
    )  # Content-Length disagrees with the range


def test_complete_share_cannot_be_written_or_aborted(gbs: GbsClient, bucket: bytes) -> None:
    si, up = bucket, b"u" * 20
    assert gbs.write(si, 0, up, 0, b"w" * 100).status == 201
    assert gbs.write(si, 0, up, 0, b"w" * 10).status == 404
    abort = gbs.request("PUT", wire.abort_path(si, 0), secrets=UPLOAD)
    assert abort.status == 405


def test_abort(gbs: GbsClient, bucket: bytes, server: ServerProcess) -> None:
    si = bucket
    assert gbs.write(si, 1, b"u" * 20, 0, b"p" * 10).status == 200
    assert gbs.request("PUT", wire.abort_path(si, 1), secrets={Secret.UPLOAD: b"v" * 20}).status == 401
    assert gbs.request("PUT", wire.abort_path(si, 1), secrets={}).status == 400
    resp = gbs.request("PUT", wire.abort_path(si, 1), secrets=UPLOAD)
    assert resp.status == 200 and resp.body == b""
    assert not (si_path(server, si, "incoming") / "1").exists()
    assert gbs.request("PUT", wire.abort_path(si, 1), secrets=UPLOAD).status == 404
    assert gbs.request("PUT", wire.abort_path(si, 7), secrets=UPLOAD).status == 404
    assert gbs.write(si, 1, b"u" * 20, 10, b"p" * 10).status == 404
    assert gbs.allocate(si, [1], 100, b"x" * 20).allocated == {1}  # can be made again


def _open_patch(gbs: GbsClient, si: bytes, shnum: int, secret: bytes, first: int, size: int) -> ssl.SSLSocket:
    """A raw TLS connection with a PATCH's head sent (chunked): the test sends the body itself."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    tls = ctx.wrap_socket(socket.create_connection((gbs.nurl.host, gbs.nurl.port), timeout=30))
    head = (
        f"PATCH {wire.share_path(si, shnum)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {wire.build_authorization(gbs.nurl.swissnum)}\r\n"
        f"X-Tahoe-Authorization: {wire.build_secret_headers({Secret.UPLOAD: secret})[0][1]}\r\n"
        f"Content-Range: bytes {first}-{first + size - 1}/*\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    tls.sendall(head.encode())
    return tls


def _status(tls: ssl.SSLSocket) -> int:
    line = tls.recv(200).split(b"\r\n", 1)[0]  # b"HTTP/1.1 201 Created"
    tls.close()
    return int(line.split()[1])


def test_two_patches_that_complete_a_share_together_both_succeed(gbs: GbsClient) -> None:
    """Each PATCH has written its half before either ends its body: both then find the share
    complete; one finishes it, the other waits for that and answers the same (not a 500)."""
    for _ in range(3):
        si, up, data = new_si(), b"u" * 20, os.urandom(32)
        assert gbs.allocate(si, [0], 32, up).allocated == {0}
        a = _open_patch(gbs, si, 0, up, 0, 16)
        b = _open_patch(gbs, si, 0, up, 16, 16)
        a.sendall(b"10\r\n" + data[:16] + b"\r\n")
        b.sendall(b"10\r\n" + data[16:] + b"\r\n")
        time.sleep(0.2)  # both halves stored; neither body has ended yet
        a.sendall(b"0\r\n\r\n")
        b.sendall(b"0\r\n\r\n")
        assert (_status(a), _status(b)) == (201, 201)
        assert gbs.read(si, 0, 0, 31).body == data


def test_abort_during_a_patch_then_a_new_upload_of_the_share(gbs: GbsClient, server: ServerProcess) -> None:
    si, first, second, data = new_si(), b"u" * 20, b"v" * 20, os.urandom(1000)
    assert gbs.allocate(si, [0], 1000, first).allocated == {0}
    old = _open_patch(gbs, si, 0, first, 0, 1000)
    old.sendall(b"%x\r\n" % 100 + data[:100] + b"\r\n")
    time.sleep(0.2)
    assert gbs.request("PUT", wire.abort_path(si, 0), secrets={Secret.UPLOAD: first}).status == 200
    assert gbs.allocate(si, [0], 1000, second).allocated == {0}
    assert gbs.write(si, 0, second, 0, data[:100]).status == 200
    old.sendall(b"%x\r\n" % 900 + data[100:] + b"\r\n0\r\n\r\n")
    assert _status(old) == 404  # the aborted upload's PATCH
    assert gbs.write(si, 0, second, 100, data[100:]).status == 201
    assert gbs.read(si, 0, 0, 999).body == data


# --- read (§6.6) -------------------------------------------------------------------------------


@pytest.fixture
def share(gbs: GbsClient) -> tuple[bytes, bytes]:
    si, data = new_si(), os.urandom(48)
    gbs.allocate(si, [0], 48, b"u" * 20)
    assert gbs.write(si, 0, b"u" * 20, 0, data).status == 201
    return si, data


def test_ranged_reads(gbs: GbsClient, share: tuple[bytes, bytes]) -> None:
    si, data = share
    inside = gbs.read(si, 0, 5, 9)
    assert (inside.status, inside.body, inside.header("Content-Range")) == (206, data[5:10], "bytes 5-9/*")
    past = gbs.read(si, 0, 10, 99)
    assert (past.status, past.body, past.header("Content-Range")) == (206, data[10:], "bytes 10-47/*")
    empty = gbs.read(si, 0, 48, 60)
    assert (empty.status, empty.body, empty.header("Content-Range")) == (204, b"", None)
    whole = gbs.request("GET", wire.share_path(si, 0))
    assert (whole.status, whole.body) == (200, data)


@pytest.mark.parametrize(
    "value", ["bytes=0-5,10-15", "bytes=5-", "bytes=-5", "items=0-5", "bytes=9-2", "nonsense"]
)
def test_bad_ranges_are_416(gbs: GbsClient, share: tuple[bytes, bytes], value: str) -> None:
    resp = gbs.request("GET", wire.share_path(share[0], 0), headers=[("Range", value)])
    assert resp.status == 416


def test_reads_of_missing_or_incomplete_shares_are_404(gbs: GbsClient, bucket: bytes) -> None:
    assert gbs.read(bucket, 0, 0, 10).status == 404  # allocated, not complete
    assert gbs.read(bucket, 9, 0, 10).status == 404
    assert gbs.read(new_si(), 0, 0, 10).status == 404
    assert gbs.read(bucket, 0, 0, 10).status == 404


def test_large_reads_stream(gbs: GbsClient) -> None:
    si, data = new_si(), os.urandom(3 * 2**20 + 7)
    gbs.allocate(si, [4], len(data), b"u" * 20)
    gbs.upload_share(si, 4, b"u" * 20, data)
    assert gbs.read(si, 4, 0, len(data) + 100).body == data
    assert gbs.read(si, 4, 100, 2**21 + 99).body == data[100 : 2**21 + 100]


# --- leases and corruption (§6.7, §6.8) -----------------------------------------------------------


def test_lease(gbs: GbsClient, share: tuple[bytes, bytes], server: ServerProcess) -> None:
    si, data = share
    path = wire.lease_path(si)
    lease_secrets = {Secret.LEASE_RENEW: R, Secret.LEASE_CANCEL: C}
    resp = gbs.request("PUT", path, secrets=lease_secrets)
    assert resp.status == 204 and resp.body == b""
    assert (
        gbs.request("PUT", path, secrets={Secret.LEASE_RENEW: b"n" * 32, Secret.LEASE_CANCEL: C}).status
        == 204
    )
    assert gbs.request("PUT", path, secrets={Secret.LEASE_RENEW: R}).status == 400
    assert gbs.request("PUT", path, secrets={**lease_secrets, **UPLOAD}).status == 400
    assert gbs.request("PUT", wire.lease_path(new_si()), secrets=lease_secrets).status == 404
    raw = (si_path(server, si) / "0").read_bytes()
    header = container.unpack_header(raw)
    assert header.num_leases == 2  # renewed the allocate-time lease, added one
    assert raw[container.HEADER_SIZE : container.HEADER_SIZE + 48] == data
    stored = container.unpack_lease(raw[-72:])
    assert stored.renew == container.hash_lease_secret(b"n" * 32)
    assert gbs.read(si, 0, 0, 100).body == data  # leases never leak into the share


def test_corruption_advisory(gbs: GbsClient, share: tuple[bytes, bytes], server: ServerProcess) -> None:
    si = share[0]
    path = wire.corrupt_path(si, 0)

    def post(body: bytes, content_type: str | None = wire.CBOR_MIME_TYPE, p: str = path) -> int:
        return gbs.request("POST", p, body, content_type=content_type).status

    assert post(wire.build_corruption_advisory("block 1 hash mismatch")) == 200
    reports = list((server.directory / "storage" / "corruption-advisories").iterdir())
    assert any("block 1 hash mismatch" in r.read_text() for r in reports)
    assert post(wire.build_corruption_advisory("x"), p=wire.corrupt_path(si, 3)) == 404
    assert post(wire.build_corruption_advisory("x"), p=wire.corrupt_path(new_si(), 0)) == 404
    assert post(b"\xa1") == 400
    assert post(cbor2.dumps({"reason": ""})) == 400
    assert post(cbor2.dumps({"reason": b"bytes"})) == 400
    assert post(cbor2.dumps({"reason": "x" * 40000})) == 413
    assert post(wire.build_corruption_advisory("x"), "text/plain") == 415
    assert gbs.request("POST", path, wire.build_corruption_advisory("x"), secrets=UPLOAD).status == 400


def test_oversized_headers_are_rejected(gbs: GbsClient) -> None:
    resp = gbs.request("GET", "/storage/v1/version", headers=[("X-Padding", "p" * 9000)])
    assert resp.status in (400, 431)
    assert gbs.request("GET", "/storage/v1/version").status == 200


# --- limits, timeouts, restarts and crashes (separate servers) -----------------------------------


def test_reserved_space_and_max_share_size(tmp_path: Path) -> None:
    full = ServerProcess(tmp_path / "full", "--reserved-space", "1000000000TiB")
    try:
        info = full.client.version()
        assert info.available_space == 0 and info.maximum_immutable_share_size == 0
        assert full.client.allocate(new_si(), [0, 1], 10, b"u" * 20).allocated == frozenset()
    finally:
        assert full.stop() == 0
    small = ServerProcess(tmp_path / "small", "--max-share-size", "1000")
    try:
        assert small.client.version().maximum_immutable_share_size == 1000
        si = new_si()
        assert small.client.allocate(si, [0], 1001, b"u" * 20).allocated == frozenset()
        assert small.client.allocate(si, [0], 1000, b"u" * 20).allocated == {0}
    finally:
        assert small.stop() == 0


def test_idle_buckets_are_aborted_and_slow_bodies_time_out(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "idle", "--idle-timeout", "0.3", "--request-timeout", "0.5")
    try:
        gbs, si = srv.client, new_si()
        assert gbs.allocate(si, [0], 100, b"u" * 20).allocated == {0}
        deadline = time.monotonic() + 60
        while gbs.allocate(si, [0], 100, b"v" * 20).allocated != {0}:  # free again once aborted
            assert time.monotonic() < deadline, "the idle bucket was never aborted"
            time.sleep(0.1)
        assert gbs.write(si, 0, b"u" * 20, 0, b"x" * 10).status == 401  # the new upload's secret rules
        # A PATCH that announces 50 bytes and sends 10, then goes silent: 408, and the bytes stay.
        conn = gbs.connect()
        try:
            conn.putrequest("PATCH", wire.share_path(si, 0))
            conn.putheader("Authorization", wire.build_authorization(gbs.nurl.swissnum))
            conn.putheader(*wire.build_secret_headers({Secret.UPLOAD: b"v" * 20})[0])
            conn.putheader("Content-Range", "bytes 0-49/*")
            conn.putheader("Content-Length", "50")
            conn.endheaders(b"y" * 10)
            assert conn.getresponse().status == 408
        finally:
            conn.close()
        resp = gbs.write(si, 0, b"v" * 20, 0, b"y" * 10)
        assert resp.status == 200 and wire.parse_required_ranges(resp.body) == (Span(10, 100),)
    finally:
        assert srv.stop() == 0


def test_a_client_gone_mid_body_and_a_stalled_cbor_body(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "gone", "--request-timeout", "0.5")
    try:
        gbs, si = srv.client, new_si()
        assert gbs.allocate(si, [0], 100, b"v" * 20).allocated == {0}
        assert gbs.write(si, 0, b"v" * 20, 0, b"y" * 10).status == 200
        # A client that goes away mid-body: the bytes that came are kept, and the log stays calm.
        tls = _open_patch(gbs, si, 0, b"v" * 20, 10, 90)
        tls.sendall(b"a\r\n" + b"z" * 10 + b"\r\n")
        time.sleep(0.2)
        tls.close()
        # An allocate whose CBOR body stalls: 408 too (not a 500).
        conn = gbs.connect()
        try:
            conn.putrequest("POST", wire.allocate_path(new_si()))
            conn.putheader("Authorization", wire.build_authorization(gbs.nurl.swissnum))
            for name, value in wire.build_secret_headers(ALLOC):
                conn.putheader(name, value)
            conn.putheader("Content-Type", wire.CBOR_MIME_TYPE)
            conn.putheader("Content-Length", "100")
            conn.endheaders(b"\xa2")
            assert conn.getresponse().status == 408
        finally:
            conn.close()
        deadline = time.monotonic() + 10
        while (required := gbs.write(si, 0, b"v" * 20, 0, b"y" * 10).body) != wire.build_required_ranges(
            [Span(20, 100)]
        ):
            assert time.monotonic() < deadline, wire.parse_required_ranges(required)
            time.sleep(0.05)
    finally:
        assert srv.stop() == 0
    log = (tmp_path / "gone.log").read_text()
    assert "Traceback" not in log and "Error handling request" not in log, log


def test_shares_survive_a_restart_on_the_same_nurl(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "s")
    si, data = new_si(), os.urandom(100_000)
    first.client.allocate(si, [2], len(data), b"u" * 20)
    first.client.upload_share(si, 2, b"u" * 20, data, chunk=30_000)
    assert first.stop() == 0
    second = ServerProcess(tmp_path / "s", listen=None)  # default: the previous run's address
    try:
        assert second.nurl == first.nurl
        assert second.client.list_shares(si) == {2}
        assert second.client.read(si, 2, 0, len(data) - 1).body == data
    finally:
        assert second.stop() == 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_server_keeps_its_nurl_across_a_restart(tmp_path: Path) -> None:
    """The NURL of ``--listen [::1]:0`` brackets the host, so the next start (no --listen) reads
    it back and listens on the same address and port, instead of moving to 127.0.0.1 and a new port."""
    first = ServerProcess(tmp_path / "s", listen="[::1]:0")
    try:
        assert first.nurl.host == "::1" and f"@[::1]:{first.nurl.port}/" in str(first.nurl)
        assert (tmp_path / "s" / "nurl").read_text().strip() == str(first.nurl)
        assert first.client.version().available_space > 0
    finally:
        assert first.stop() == 0
    second = ServerProcess(tmp_path / "s", listen=None)
    try:
        assert second.nurl == first.nurl
        assert second.client.version().available_space > 0
    finally:
        assert second.stop() == 0


def test_sigkill_mid_write_never_leaves_a_complete_share(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "k")
    gbs, si, up = srv.client, new_si(), b"u" * 20
    size = 4 * 2**20
    data = os.urandom(size)
    assert gbs.allocate(si, [0], size, up).allocated == {0}
    resp = gbs.write(si, 0, up, 0, data[: 2**20])
    acknowledged = size - sum(s.end - s.begin for s in wire.parse_required_ranges(resp.body))
    assert 0 < acknowledged < size
    # The rest of the share in one PATCH, of which only part is sent before the kill.
    raw = socket.create_connection((gbs.nurl.host, gbs.nurl.port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    tls = ctx.wrap_socket(raw)
    head = (
        f"PATCH {wire.share_path(si, 0)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {wire.build_authorization(gbs.nurl.swissnum)}\r\n"
        f"X-Tahoe-Authorization: {wire.build_secret_headers(UPLOAD)[0][1]}\r\n"
        f"Content-Range: bytes {acknowledged}-{size - 1}/*\r\nContent-Length: {size - acknowledged}\r\n\r\n"
    )
    tls.sendall(head.encode() + data[acknowledged : acknowledged + 2**20])
    incoming = si_path(srv, si, "incoming") / "0"
    final = si_path(srv, si) / "0"
    assert srv.kill() != 0
    tls.close()
    assert incoming.exists() and not final.exists()
    again = ServerProcess(tmp_path / "k", listen=None)
    try:
        assert again.client.list_shares(si) == frozenset()
        assert again.client.read(si, 0, 0, 10).status == 404
        assert not incoming.exists()  # start-up removed the partial upload
        assert again.client.allocate(si, [0], size, b"w" * 20).allocated == {0}
    finally:
        assert again.stop() == 0


def test_a_second_server_on_the_same_directory_refuses_to_start(server: ServerProcess) -> None:
    with pytest.raises(RuntimeError, match="exited"):
        ServerProcess(server.directory)
    assert server.client.version().available_space > 0  # the first one is untouched
    log = server.directory.parent / f"{server.directory.name}.log"
    assert "already running" in log.read_text()


def _storage(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", "storage", "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def test_a_directory_failure_names_the_path_not_the_listen_address(tmp_path: Path) -> None:
    """Only the bind is a listen error: DIR/server.lock that cannot be opened (here a directory;
    a read-only DIR is the same path) is reported as what it is, on one line."""
    (tmp_path / "s" / "server.lock").mkdir(parents=True)
    failed = _storage(tmp_path / "s")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "cannot listen" not in failed.stderr
    assert f"{tmp_path / 's' / 'server.lock'}: Is a directory" in failed.stderr
    assert not (tmp_path / "s" / "nurl").exists()

    with socket.socket() as squatter:  # a taken port is still a listen error
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = _storage(tmp_path / "t", "--listen", f"127.0.0.1:{port}")
    assert taken.returncode == 1 and "Traceback" not in taken.stderr
    assert f"cannot listen on 127.0.0.1:{port}:" in taken.stderr


# --- RTT emulation (benchmarks only) ------------------------------------------------------------


def test_emulated_rtt_holds_every_response(tmp_path: Path) -> None:
    """``--emulate-rtt-ms`` holds each response at least that long (a lower bound only: an
    overloaded machine may add any delay, never take it away)."""
    delayed = ServerProcess(tmp_path / "delayed", "--emulate-rtt-ms", "150")
    try:
        conn = delayed.client
        assert conn.request("GET", "/storage/v1/version").status == 200  # connected, warm
        for method, path in (
            ("GET", "/storage/v1/version"),
            ("GET", f"/storage/v1/immutable/{wire.storage_index_text(new_si())}/shares"),
        ):
            start = time.monotonic()
            resp = conn.request(method, path)
            elapsed = time.monotonic() - start
            assert resp.status == 200
            assert elapsed >= 0.15 * 0.95, (method, path, elapsed)  # asyncio may wake a tick early
    finally:
        assert delayed.stop() == 0
