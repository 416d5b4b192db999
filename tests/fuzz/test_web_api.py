"""Fuzz a real daemon's web API (``serve``) with hypothesis-built requests: any method, paths around
/uri, /uri/CAP, /status, /metrics and /static, arbitrary queries, Range and Content-Type headers and
small bodies. Every answer is a 2xx/3xx/4xx — never a 5xx (an unexpected exception) — and the daemon
is still up afterwards and stops cleanly, with no traceback in its log."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.localgrid import LocalGrid

pytestmark = pytest.mark.integration

LIT = "URI:LIT:nfxw4ylopfsxg5dznvqxg2dfnzsw4"  # a small file's cap: served without the grid


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    work = tmp_path_factory.mktemp("fuzz-daemon")
    with LocalGrid(work / "grid", 3) as grid:
        config = write_config(
            grid.dir / "uploader.toml",
            work / "daemon.toml",
            api_listen="127.0.0.1:0",
            workers=1,
            window=2,
            shares_needed=1,
            shares_total=3,
            shares_happy=1,
            data_dir=work / "data",
        )
        d = DaemonProcess(config, work).start()
        yield d
        alive = d.proc is not None and d.proc.poll() is None
        assert d.stop() == 0 and alive
        assert "Traceback" not in d.log()


text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
segments = st.one_of(
    st.sampled_from(["uri", "status", "history", "metrics", "static", "index.html", LIT, "URI:CHK:", ""]),
    text.map(lambda t: quote(t, safe="")),
)
queries = st.dictionaries(st.sampled_from(["t", "since", "format", "mutable", "x"]), text, max_size=3)
headers = st.dictionaries(
    st.sampled_from(["Range", "Content-Type", "X-Uploader-Tag", "Accept", "If-None-Match"]),
    st.one_of(text, st.sampled_from(["bytes=0-3", "bytes=-2", "multipart/form-data; boundary=xyz"])),
    max_size=3,
)


@given(
    st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]),
    st.lists(segments, max_size=3),
    queries,
    headers,
    st.one_of(st.none(), st.binary(max_size=200)),
)
def test_any_request_is_answered_without_a_server_error(
    daemon: DaemonProcess,
    method: str,
    parts: list[str],
    query: dict[str, str],
    extra: dict[str, str],
    body: bytes | None,
) -> None:
    path = "/" + "/".join(parts) + ("?" + urlencode(query) if query else "")
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=extra)
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (method, path, extra, resp.status)
