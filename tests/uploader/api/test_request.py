"""The web API's pure request layer, driven with literals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.api import request as rq
from uploader.chk.caps import ChkCap, LitCap, parse_cap
from uploader.errors import NotEnoughServers, NotFound

CAP = "URI:CHK:sgv3vxugyfpupuz2ngalflemje:g5erbm3tish64chfa4kk4s2hdyhewsqhcvxudbs5v4f37szkizmq:3:10:3000000"
QUOTED = CAP.replace(":", "%3A")  # as `tahoe get` quotes it


def test_put_and_post_uri() -> None:
    assert rq.route("PUT", "/uri", {}).route is rq.Route.UPLOAD_PUT
    assert rq.route("PUT", "/uri/", {"format": "CHK"}).route is rq.Route.UPLOAD_PUT
    assert rq.route("POST", "/uri", {"t": "upload"}).route is rq.Route.UPLOAD_FORM


@pytest.mark.parametrize("path", [f"/uri/{CAP}", f"/uri/{QUOTED}"])
def test_download_routes_parse_the_cap(path: str) -> None:
    req = rq.route("GET", path, {})
    assert req.route is rq.Route.DOWNLOAD
    assert isinstance(req.cap, ChkCap) and str(req.cap) == CAP
    assert rq.route("GET", path, {"t": "json"}).route is rq.Route.FILENODE_JSON
    assert rq.route("HEAD", path, {}).route is rq.Route.DOWNLOAD


def test_lit_cap_route() -> None:
    req = rq.route("GET", "/uri/URI:LIT:nbswy3dp", {})
    assert isinstance(req.cap, LitCap) and req.cap.data == b"hello"


@pytest.mark.parametrize(
    ("method", "path", "query", "status"),
    [
        ("DELETE", "/uri", {}, 405),
        ("GET", "/uri", {}, 405),
        ("PUT", f"/uri/{CAP}", {}, 405),
        ("POST", "/status", {}, 405),
        ("GET", "/nope", {}, 404),
        ("POST", "/", {}, 405),
        ("GET", "/static/../secret", {}, 404),
        ("GET", "/static/.hidden.js", {}, 404),
        ("GET", "/static/page.exe", {}, 404),
        ("GET", "/static/a/b.js", {}, 404),
        ("PUT", "/static/status.js", {}, 405),
        ("GET", "/status/history", {"since": "-1"}, 400),
        ("GET", "/status/history", {"since": "x"}, 400),
        ("POST", "/status/history", {}, 405),
        ("GET", "/uri/URI:CHK:abc", {}, 400),
        ("GET", "/uri/" + CAP.replace(":3:10:", ":11:10:"), {}, 400),
        ("GET", "/uri/URI:CHK-Verifier:x", {}, 400),
        ("GET", f"/uri/{CAP}/child", {}, 400),
        ("GET", f"/uri/{CAP}", {"t": "info"}, 400),
        ("PUT", "/uri", {"mutable": "true"}, 400),
        ("PUT", "/uri", {"format": "MDMF"}, 400),
        ("PUT", "/uri", {"t": "mkdir"}, 400),
        ("POST", "/uri", {}, 400),
    ],
)
def test_refused_requests(method: str, path: str, query: dict[str, str], status: int) -> None:
    with pytest.raises(rq.ApiError) as info:
        rq.route(method, path, query)
    assert info.value.status == status
    assert str(info.value)  # a sentence for the client
    if status == 405:
        assert info.value.allow and method not in info.value.allow


def test_a_damaged_cap_is_not_echoed() -> None:
    damaged = CAP[:-1] + "x"
    with pytest.raises(rq.ApiError) as info:
        rq.route("GET", f"/uri/{damaged}", {})
    assert damaged[8:30] not in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", rq.ByteRange(0, 100)),
        ("bytes=100-", rq.ByteRange(100, 900)),
        ("bytes=-100", rq.ByteRange(900, 100)),
        ("bytes=-5000", rq.ByteRange(0, 1000)),
        ("bytes=990-5000", rq.ByteRange(990, 10)),
        ("bytes=999-999", rq.ByteRange(999, 1)),
        ("bytes=5-2", None),  # invalid: ignored, whole file
        ("bytes=0-1,5-6", None),  # several ranges: whole file
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=0-" + "9" * 30, rq.ByteRange(0, 1000)),  # a last byte past any size: to the end
        ("bytes=10-" + "9" * 5000, rq.ByteRange(10, 990)),  # (beyond int()'s 4300 digits too)
        ("bytes=-" + "9" * 30, rq.ByteRange(0, 1000)),  # a suffix longer than any file: all of it
    ],
)
def test_parse_range(header: str | None, expected: rq.ByteRange | None) -> None:
    assert rq.parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=" + "9" * 30 + "-"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(rq.ApiError) as info:
        rq.parse_range(header, 1000)
    assert info.value.status == 416


def test_content_range() -> None:
    assert rq.ByteRange(10, 5).content_range(100) == "bytes 10-14/100"


@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(1, 1500))
def test_ranges_stay_inside_the_file(start: int, end: int, size: int) -> None:
    try:
        r = rq.parse_range(f"bytes={start}-{end}", size)
    except rq.ApiError as exc:
        assert exc.status == 416 and start >= size
        return
    if r is not None:
        assert 0 <= r.offset < size and r.length >= 1 and r.offset + r.length <= size


def test_multipart_boundary() -> None:
    assert rq.multipart_boundary("multipart/form-data; boundary=abc") == "abc"
    assert rq.multipart_boundary('multipart/form-data; charset=utf-8; boundary="a b"') == "a b"
    for bad, status in [
        (None, 400),
        ("application/json", 415),
        ("multipart/form-data", 400),
        ("multipart/form-data; boundary=" + "x" * 71, 400),
    ]:
        with pytest.raises(rq.ApiError) as info:
            rq.multipart_boundary(bad)
        assert info.value.status == status


def test_upload_length() -> None:
    assert rq.upload_length("123", False, 1000) == 123
    assert rq.upload_length(None, True, 1000) is None
    for value, chunked, status in [
        (None, False, 411),
        ("-1", False, 400),
        ("12a", False, 400),
        ("1001", False, 413),
    ]:
        with pytest.raises(rq.ApiError) as info:
            rq.upload_length(value, chunked, 1000)
        assert info.value.status == status


def test_filenode_json() -> None:
    cap = parse_cap(CAP)
    assert isinstance(cap, ChkCap)
    kind, info = rq.filenode_json(cap)
    assert kind == "filenode"
    assert info == {
        "ro_uri": CAP,
        "verify_uri": str(cap.verify_cap),
        "size": 3000000,
        "mutable": False,
        "format": "CHK",
    }
    assert rq.filenode_json(LitCap(b"hi"))[1]["format"] == "LIT"


def test_error_status_and_exit_codes() -> None:
    assert rq.error_status(rq.ApiError(416, "x")) == (416, "x")
    assert rq.error_status(NotFound("no shares"))[0] == 404
    assert rq.error_status(NotEnoughServers("few"))[0] == 503
    status, message = rq.error_status(KeyError("URI:CHK:secret"))
    assert status == 500 and "secret" not in message
    assert rq.exit_code_for(404, None) == 6
    assert rq.exit_code_for(503, None) == 4
    assert rq.exit_code_for(500, "7") == 7
    assert rq.exit_code_for(500, "junk") == 1


# ---- the status page -----------------------------------------------------------------------------
def test_page_routes() -> None:
    assert rq.route("GET", "/", {}).route is rq.Route.PAGE
    assert rq.route("HEAD", "/", {}).route is rq.Route.PAGE
    static = rq.route("GET", "/static/status.js", {})
    assert (static.route, static.name) == (rq.Route.STATIC, "status.js")
    assert rq.route("GET", "/status/history", {}).since == 0
    history = rq.route("GET", "/status/history", {"since": "42"})
    assert (history.route, history.since) == (rq.Route.HISTORY, 42)


def test_upload_tag() -> None:
    assert rq.upload_tag(None) is None
    assert rq.upload_tag("page-0123abcd") == "page-0123abcd"
    for bad in ("short", "x" * 65, "has space in it", "semi;colon12", ""):
        with pytest.raises(rq.ApiError) as info:
            rq.upload_tag(bad)
        assert info.value.status == 400 and rq.TAG_HEADER in str(info.value)


def test_display_name() -> None:
    assert rq.display_name(None) is None
    assert rq.display_name("") is None
    assert rq.display_name("report.pdf") == "report.pdf"
    assert rq.display_name("C:\\Users\\me\\photo.jpg") == "photo.jpg"
    assert rq.display_name("/home/me/notes.txt") == "notes.txt"
    assert rq.display_name("bad\x00\x1b[31mname\n") == "bad[31mname"
    assert rq.display_name("\x07\x08") is None
    long = rq.display_name("a" * 500, limit=20)
    assert long is not None and len(long) == 20 and long.endswith("…")
