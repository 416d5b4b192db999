"""Fuzz: the web API's request parsing (uploader/api/request.py) on arbitrary paths, queries and
headers — a Request/value or ApiError (an HTTP status and a sentence), nothing else."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from uploader.api import request as r

# Text as aiohttp hands it over: headers decoded as Latin-1 or UTF-8, paths percent-encoded or not.
texts = st.one_of(st.text(max_size=80), st.text(st.characters(max_codepoint=255), max_size=80))
path_parts = st.sampled_from(
    ["uri", "status", "history", "metrics", "static", "", "URI:CHK:", "URI:LIT:", "%3A"]
)
methods = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "get", ""])
queries = st.dictionaries(st.sampled_from(["t", "since", "format", "mutable", "x"]), texts, max_size=3)


@given(methods, st.lists(st.one_of(path_parts, texts), max_size=5), queries)
def test_route_gives_a_request_or_api_error(method: str, parts: list[str], query: dict[str, str]) -> None:
    with contextlib.suppress(r.ApiError):
        req = r.route(method, "/" + "/".join(parts), query)
        assert isinstance(req.route, r.Route)


@given(texts)
def test_cap_segments_parse_or_api_error_400(segment: str) -> None:
    try:
        r.parse_cap_segment(segment)
    except r.ApiError as exc:
        assert exc.status == 400


@given(
    st.one_of(st.none(), texts, st.from_regex(r"\s*bytes\s*=\s*[0-9]{0,22}-[0-9]{0,22}\s*", fullmatch=True)),
    st.integers(0, 2**64),
)
def test_range_headers_parse_inside_the_file_or_api_error_416(header: str | None, size: int) -> None:
    try:
        span = r.parse_range(header, size)
    except r.ApiError as exc:
        assert exc.status == 416
        return
    if span is not None:
        assert span.offset >= 0 and span.length >= 1 and span.offset + span.length <= size


@given(st.one_of(st.none(), texts, st.builds(lambda b: f"multipart/form-data; boundary={b}", texts)))
def test_content_types_give_a_boundary_or_api_error(content_type: str | None) -> None:
    with contextlib.suppress(r.ApiError):
        assert 1 <= len(r.multipart_boundary(content_type)) <= 70


@given(st.one_of(st.none(), texts), st.booleans(), st.integers(0, 2**63))
def test_content_lengths_give_a_size_or_api_error(value: str | None, chunked: bool, limit: int) -> None:
    with contextlib.suppress(r.ApiError):
        size = r.upload_length(value, chunked, limit)
        assert size is None or 0 <= size <= limit


@given(st.integers(100, 599), st.one_of(st.none(), texts))
def test_exit_code_headers_give_a_code(status: int, header: str | None) -> None:
    assert 1 <= r.exit_code_for(status, header) <= 125


@given(st.one_of(st.none(), texts))
def test_upload_tags_and_display_names_are_checked(value: str | None) -> None:
    with contextlib.suppress(r.ApiError):
        r.upload_tag(value)
    name = r.display_name(value)
    assert name is None or (0 < len(name) <= 120 and "/" not in name and name.isprintable())
