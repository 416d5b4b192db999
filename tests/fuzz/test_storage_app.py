"""Fuzz a real storage server process (uploader/storage) over TLS with hypothesis-built requests, all
carrying the right swissnum so they reach the handlers: any method on any of its paths, arbitrary
secret headers, Content-Range/Range values and bodies (CBOR-ish or not). Every answer is a 4xx or
2xx — never a 5xx (an unexpected exception in a handler) — and the server is still up at the end,
with its log free of tracebacks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.storage_driver import GbsClient, ServerProcess
from uploader.wire import protocol as wire

pytestmark = pytest.mark.integration

SI = os.urandom(16)  # one storage index the run also allocates in, so writes reach real buckets
UPLOAD = b"u" * 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz") / "server", "--max-share-size", "65536")
    gbs = GbsClient(proc.nurl)
    gbs.allocate(SI, [0, 1, 2], 256, UPLOAD)
    yield proc
    alive = proc.proc.poll() is None
    log = Path(proc.log.name)
    assert proc.stop() == 0 and alive
    assert "Traceback" not in log.read_text(errors="replace")


si_text = st.one_of(
    st.just(wire.storage_index_text(SI)), st.text("abcdefghijklmnopqrstuvwxyz234567", max_size=30)
)
shnum = st.one_of(st.integers(0, 300).map(str), st.text(max_size=4).map(lambda t: quote(t, safe="")))
paths = st.one_of(
    st.just("/storage/v1/version"),
    st.builds(lambda s: f"/storage/v1/immutable/{s}", si_text),
    st.builds(lambda s: f"/storage/v1/immutable/{s}/shares", si_text),
    st.builds(lambda s, n: f"/storage/v1/immutable/{s}/{n}", si_text, shnum),
    st.builds(lambda s, n: f"/storage/v1/immutable/{s}/{n}/abort", si_text, shnum),
    st.builds(lambda s, n: f"/storage/v1/immutable/{s}/{n}/corrupt", si_text, shnum),
    st.builds(lambda s: f"/storage/v1/lease/{s}", si_text),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
secret_header = st.one_of(
    st.builds(
        lambda kind, value: f"{kind} {value}",
        st.sampled_from(["upload-secret", "lease-renew-secret", "lease-cancel-secret", "other"]),
        st.one_of(st.just("dXVVdXV1dXV1dXV1dXV1dXV1dXU="), header_text),
    ),
    header_text,
)
ranges = st.one_of(
    header_text,
    st.builds(lambda a, b: f"bytes {a}-{b}/*", st.integers(-5, 300), st.integers(-5, 300)),
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(-5, 300), st.integers(-5, 300)),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda shares, size: wire.build_allocate_request(shares, size),
        st.frozensets(st.integers(0, 255), max_size=4),
        st.integers(0, 2**64 - 1),
    ),
    st.builds(wire.build_corruption_advisory, st.text(min_size=1, max_size=40)),
)


@given(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "HEAD", "DELETE"]),
    paths,
    st.lists(secret_header, max_size=3),
    st.one_of(st.none(), ranges),
    st.one_of(st.none(), bodies),
    st.sampled_from([wire.CBOR_MIME_TYPE, None, "text/plain", "application/cbor; q=0", "*/*"]),
)
def test_any_request_is_answered_without_a_server_error(
    server: ServerProcess,
    method: str,
    path: str,
    secrets: list[str],
    range_value: str | None,
    body: bytes | None,
    content_type: str | None,
) -> None:
    headers = [("X-Tahoe-Authorization", s) for s in secrets]
    if range_value is not None:
        headers.append(("Content-Range" if method == "PATCH" else "Range", range_value))
    resp = server.client.request(method, path, body, headers=headers, content_type=content_type)
    assert resp.status < 500, (method, path, headers, resp.status, resp.body[:200])
