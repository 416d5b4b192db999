"""The pure GBS codec: literal examples from the spec, round trips, cbor2 as an independent oracle,
and arbitrary input giving a value or our own WireError and nothing else."""

from __future__ import annotations

import base64
import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.wire import protocol as p
from uploader.wire.protocol import RangeError, Secret, SecretsError, Span, WireError

u64 = st.integers(0, 2**64 - 1)
shnums = st.frozensets(st.integers(0, 255), max_size=256)
secret32 = st.binary(min_size=32, max_size=32)
SI = bytes(range(16))


# --- literal examples (gbs-http-protocol §6.2, §6.3, §9) ------------------------------------------


def test_allocate_response_bytes_match_spec_example() -> None:
    assert p.build_allocate_response([], [0]).hex() == (
        "a2" + "6c" + b"already-have".hex() + "d9010280" + "69" + b"allocated".hex() + "d9010281" + "00"
    )


def test_completing_write_body_matches_spec_example() -> None:
    assert p.build_required_ranges([]).hex() == "a1" + "68" + b"required".hex() + "80"


def test_version_uses_byte_string_keys_and_exactly_the_spec_keys() -> None:
    info = p.VersionInfo(10, 20, 30, b"uploader/0.1.0")
    decoded = cbor2.loads(p.build_version(info))
    assert decoded == {
        p.V1_KEY: {
            b"maximum-immutable-share-size": 10,
            b"maximum-mutable-share-size": 20,
            b"available-space": 30,
        },
        b"application-version": b"uploader/0.1.0",
    }
    assert p.parse_version(p.build_version(info)) == info


def test_version_with_extra_inner_key_is_rejected() -> None:
    body = cbor2.dumps(
        {
            p.V1_KEY: {
                b"maximum-immutable-share-size": 1,
                b"maximum-mutable-share-size": 2,
                b"available-space": 3,
                b"tolerates-immutable-read-overrun": True,
            },
            b"application-version": b"x",
        }
    )
    with pytest.raises(WireError, match="unexpected"):
        p.parse_version(body)


def test_version_with_text_keys_is_rejected() -> None:
    body = cbor2.dumps(
        {
            p.V1_KEY.decode(): {
                "maximum-immutable-share-size": 1,
                "maximum-mutable-share-size": 2,
                "available-space": 3,
            },
            "application-version": b"x",
        }
    )
    with pytest.raises(WireError):
        p.parse_version(body)


def test_allocate_request_needs_a_tagged_set() -> None:
    good = cbor2.dumps({"share-numbers": {0, 1}, "allocated-size": 48})
    assert p.parse_allocate_request(good) == p.AllocateRequest(frozenset({0, 1}), 48)
    with pytest.raises(WireError, match="tag 258"):
        p.parse_allocate_request(cbor2.dumps({"share-numbers": [0, 1], "allocated-size": 48}))


@pytest.mark.parametrize(
    "msg",
    [
        {"share-numbers": {0}},
        {"share-numbers": {0}, "allocated-size": 48, "extra": 1},
        {"share-numbers": {0}, "allocated-size": -1},
        {"share-numbers": {0}, "allocated-size": 2**64},
        {"share-numbers": {0}, "allocated-size": 1.5},
        {"share-numbers": {256}, "allocated-size": 1},
        {"share-numbers": {"a"}, "allocated-size": 1},
        {"share-numbers": {0}, "allocated-size": True},
        {b"share-numbers": {0}, "allocated-size": 1},
        [1, 2],
    ],
)
def test_bad_allocate_requests(msg: object) -> None:
    with pytest.raises(WireError):
        p.parse_allocate_request(cbor2.dumps(msg))


def test_trailing_bytes_duplicate_keys_and_other_tags_are_rejected() -> None:
    good = p.build_allocate_request([1], 5)
    with pytest.raises(WireError, match="follow"):
        p.parse_allocate_request(good + b"\x00")
    with pytest.raises(WireError, match="twice"):
        p.decode_cbor(bytes.fromhex("a2616101616102"))
    with pytest.raises(WireError, match="tag 1 "):
        p.decode_cbor(cbor2.dumps(cbor2.CBORTag(1, 0)))
    with pytest.raises(WireError, match="tag 2 "):
        p.decode_cbor(cbor2.dumps(2**70))
    with pytest.raises(WireError, match="indefinite"):
        p.decode_cbor(bytes.fromhex("9f01ff"))
    with pytest.raises(WireError, match="repeated"):
        p.decode_cbor(bytes.fromhex("d90102820101"))
    with pytest.raises(WireError, match="early"):
        p.decode_cbor(bytes.fromhex("5bffffffffffffffff"))
    with pytest.raises(WireError, match="claims"):
        p.decode_cbor(bytes.fromhex("9bffffffffffffffff"))


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(WireError, match="deeper"):
        p.decode_cbor(b"\x81" * 100 + b"\x00")


def test_required_ranges_spec_example() -> None:
    body = p.build_required_ranges([Span(16, 48)])
    assert cbor2.loads(body) == {"required": [{"begin": 16, "end": 48}]}
    assert p.parse_required_ranges(body) == (Span(16, 48),)
    with pytest.raises(WireError):
        p.parse_required_ranges(cbor2.dumps({"required": [{"begin": 5, "end": 5}]}))
    with pytest.raises(WireError):
        p.parse_required_ranges(cbor2.dumps({"required": [{"begin": 5, "end": 9}, {"begin": 1, "end": 2}]}))
    with pytest.raises(WireError):
        p.parse_required_ranges(cbor2.dumps({"required": {1}}))


def test_share_list_needs_a_set() -> None:
    assert p.parse_share_list(cbor2.dumps({3, 1})) == frozenset({1, 3})
    with pytest.raises(WireError):
        p.parse_share_list(cbor2.dumps([3, 1]))


def test_corruption_advisory_limits() -> None:
    assert p.parse_corruption_advisory(p.build_corruption_advisory("bad block 3")) == "bad block 3"
    with pytest.raises(WireError):
        p.parse_corruption_advisory(cbor2.dumps({"reason": ""}))
    with pytest.raises(WireError):
        p.parse_corruption_advisory(cbor2.dumps({"reason": "x" * 32766}))
    assert p.parse_corruption_advisory(cbor2.dumps({"reason": "x" * 32765})) == "x" * 32765
    with pytest.raises(WireError):
        p.parse_corruption_advisory(cbor2.dumps({"reason": b"bytes"}))
    with pytest.raises(WireError):
        p.build_corruption_advisory("")


# --- headers ---------------------------------------------------------------------------------------


def test_authorization_examples() -> None:
    assert p.build_authorization("SWISSNUM") == "Tahoe-LAFS U1dJU1NOVU0="
    assert p.parse_authorization("Tahoe-LAFS U1dJU1NOVU0=") == b"SWISSNUM"
    assert p.authorization_matches("Tahoe-LAFS U1dJU1NOVU0=", b"SWISSNUM")
    for bad in (
        None,
        "",
        "Tahoe-LAFS U1dJU1NOVU0",
        "tahoe-lafs U1dJU1NOVU0=",
        "Tahoe-LAFS  U1dJU1NOVU0=",
        "Tahoe-LAFS é",
    ):
        assert not p.authorization_matches(bad, b"SWISSNUM")
    for bad_value in ("Basic U1dJU1NOVU0=", "Tahoe-LAFS !!!!", "Tahoe-LAFS"):
        with pytest.raises(WireError):
            p.parse_authorization(bad_value)


def _line(name: str, value: bytes) -> str:
    return f"{name} {base64.b64encode(value).decode()}"


def test_secret_headers_round_trip_and_exact_set() -> None:
    secrets = {Secret.LEASE_RENEW: b"r" * 32, Secret.LEASE_CANCEL: b"c" * 32, Secret.UPLOAD: b"u" * 20}
    headers = p.build_secret_headers(secrets)
    assert all(name == "X-Tahoe-Authorization" for name, _ in headers)
    assert p.parse_secret_headers([v for _, v in headers], p.ALLOCATE_SECRETS) == secrets
    with pytest.raises(SecretsError, match="expected"):
        p.parse_secret_headers([v for _, v in headers], p.UPLOAD_SECRETS)  # extra secrets
    with pytest.raises(SecretsError, match="expected"):
        p.parse_secret_headers([], p.UPLOAD_SECRETS)  # missing
    with pytest.raises(SecretsError):
        p.parse_secret_headers([_line("upload-secret", b"u")], p.NO_SECRETS)  # extra on a no-secret route


@pytest.mark.parametrize(
    "value",
    [
        "lease-renew-secret " + base64.b64encode(b"x" * 31).decode(),  # not 32 bytes
        "upload-secret ",  # empty
        "upload-secret !!!!",  # not base64
        "upload-secret dXBsb2Fk,upload-secret dXBsb2Fk",  # comma-joined lines
        "nonsense dXBsb2Fk",
        "upload-secret",
    ],
)
def test_bad_secret_values(value: str) -> None:
    with pytest.raises(SecretsError):
        p.parse_secret_headers([value], p.UPLOAD_SECRETS)


def test_repeated_secret_is_rejected() -> None:
    line = _line("upload-secret", b"u" * 20)
    with pytest.raises(SecretsError, match="more than once"):
        p.parse_secret_headers([line, line], p.UPLOAD_SECRETS)


def test_secret_error_messages_never_contain_secret_values() -> None:
    value = base64.b64encode(b"S" * 31).decode()
    with pytest.raises(SecretsError) as info:
        p.parse_secret_headers([f"lease-renew-secret {value}"], p.LEASE_SECRETS)
    assert value not in str(info.value)


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("application/cbor", True),
        ("application/cbor;q=0.9, */*;q=0.1", True),
        ("*/*", False),
        ("application/*", False),
        ("application/json", False),
        ("application/json;q=0.5, application/cbor", True),
        ("", False),
    ],
)
def test_accept_rule(accept: str | None, ok: bool) -> None:
    assert p.accepts_cbor(accept) is ok


def test_content_type_rule() -> None:
    assert p.is_cbor_content_type(None)
    assert p.is_cbor_content_type("application/cbor")
    assert p.is_cbor_content_type("Application/CBOR; charset=x")
    assert not p.is_cbor_content_type("application/json")


def test_content_range_examples() -> None:
    assert p.parse_content_range("bytes 0-15/*") == p.ByteRange(0, 15)
    assert p.parse_content_range("bytes 32-47/48") == p.ByteRange(32, 47)
    assert p.format_content_range(10, 47) == "bytes 10-47/*"
    assert p.ByteRange(10, 47).length == 38
    for bad in (
        None,
        "",
        "bytes 5-4/*",
        "bytes 0-47/47",
        "items 0-1/*",
        "bytes */48",
        "bytes 0-/*",
        "bytes 01-2/*",
    ):
        with pytest.raises(RangeError):
            p.parse_content_range(bad)


def test_range_examples() -> None:
    assert p.parse_range("bytes=0-47") == p.ByteRange(0, 47)
    assert p.format_range(10, 99) == "bytes=10-99"
    for bad in (
        "bytes=5-",
        "bytes=-5",
        "bytes=0-1,3-4",
        "items=0-1",
        "bytes=9-1",
        "bytes=0-99999999999999999999",
    ):
        with pytest.raises(RangeError):
            p.parse_range(bad)


def test_paths() -> None:
    si_text = p.storage_index_text(SI)
    assert p.parse_storage_index(si_text) == SI
    assert p.share_path(SI, 7) == f"/storage/v1/immutable/{si_text}/7"
    assert p.abort_path(SI, 7).endswith("/7/abort")
    assert p.lease_path(SI) == f"/storage/v1/lease/{si_text}"
    for bad in ("", si_text.upper(), si_text[:-1] + "b", si_text + "a"):
        with pytest.raises(WireError):
            p.parse_storage_index(bad)
    assert p.parse_share_number("255") == 255
    for bad_n in ("256", "-1", "1a", "", "٣"):
        with pytest.raises(WireError):
            p.parse_share_number(bad_n)


# --- properties --------------------------------------------------------------------------------------


@given(shnums, u64)
def test_allocate_request_round_trip_and_cbor2_agrees(shares: frozenset[int], size: int) -> None:
    body = p.build_allocate_request(shares, size)
    assert p.parse_allocate_request(body) == p.AllocateRequest(shares, size)
    assert cbor2.loads(body) == {"share-numbers": set(shares), "allocated-size": size}
    assert (
        p.parse_allocate_request(
            cbor2.dumps({"allocated-size": size, "share-numbers": set(shares)})
        ).allocated_size
        == size
    )


@given(shnums, shnums)
def test_allocate_response_round_trip(have: frozenset[int], allocated: frozenset[int]) -> None:
    assert p.parse_allocate_response(p.build_allocate_response(have, allocated)) == p.AllocateResponse(
        have, allocated
    )


@given(u64, u64, u64, st.binary(max_size=40))
def test_version_round_trip(a: int, b: int, c: int, app: bytes) -> None:
    info = p.VersionInfo(a, b, c, app)
    assert p.parse_version(p.build_version(info)) == info


@given(st.lists(st.integers(0, 2**20), max_size=40, unique=True))
def test_required_ranges_round_trip(points: list[int]) -> None:
    points.sort()
    spans = [
        Span(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2) if points[i] < points[i + 1]
    ]
    spans = [s for i, s in enumerate(spans) if i == 0 or spans[i - 1].end < s.begin]
    assert p.parse_required_ranges(p.build_required_ranges(spans)) == tuple(spans)


@given(shnums)
def test_share_list_round_trip(shares: frozenset[int]) -> None:
    assert p.parse_share_list(p.build_share_list(shares)) == shares


@given(st.text(min_size=1, max_size=200))
def test_corruption_advisory_round_trip(reason: str) -> None:
    assert p.parse_corruption_advisory(p.build_corruption_advisory(reason)) == reason


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(max_size=8) | st.binary(max_size=8) | st.integers(0, 100), children, max_size=5
        )
        | st.frozensets(st.integers(0, 300), max_size=5)
    ),
    max_leaves=20,
)


@given(cbor_values)
def test_cbor_round_trip_and_cbor2_agrees(value: object) -> None:
    body = p.encode_cbor(value)
    assert p.decode_cbor(body) == value
    assert p.decode_cbor(cbor2.dumps(value, canonical=True)) == value
    assert cbor2.loads(body) == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_value_or_wire_error(data: bytes) -> None:
    for parse in (
        p.decode_cbor,
        p.parse_version,
        p.parse_allocate_request,
        p.parse_allocate_response,
        p.parse_required_ranges,
        p.parse_share_list,
        p.parse_corruption_advisory,
    ):
        with contextlib.suppress(WireError):
            parse(data)


@given(cbor_values)
def test_arbitrary_cbor_gives_a_value_or_wire_error(value: object) -> None:
    body = p.encode_cbor(value)
    for parse in (
        p.parse_version,
        p.parse_allocate_request,
        p.parse_allocate_response,
        p.parse_required_ranges,
    ):
        with contextlib.suppress(WireError):
            parse(body)


@given(st.text(max_size=60))
def test_arbitrary_header_text_gives_a_value_or_our_error(text: str) -> None:
    for parse in (
        p.parse_range,
        p.parse_content_range,
        p.parse_authorization,
        p.parse_storage_index,
        p.parse_share_number,
    ):
        with contextlib.suppress(WireError):
            parse(text)
    with contextlib.suppress(SecretsError):
        p.parse_secret_headers([text], p.UPLOAD_SECRETS)
    p.accepts_cbor(text)
    p.is_cbor_content_type(text)


@given(u64, u64)
def test_range_round_trips(a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    assert p.parse_range(p.format_range(first, last)) == p.ByteRange(first, last)
    assert p.parse_content_range(p.format_content_range(first, last)) == p.ByteRange(first, last)


@given(st.dictionaries(st.sampled_from(list(Secret)), st.binary(min_size=1, max_size=64)))
def test_secret_headers_property(secrets: dict[Secret, bytes]) -> None:
    try:
        lines = [v for _, v in p.build_secret_headers(secrets)]
    except SecretsError:
        assert any(s in p.LEASE_SECRETS and len(v) != 32 for s, v in secrets.items())
        return
    assert p.parse_secret_headers(lines, frozenset(secrets)) == secrets


@given(shnums, u64, shnums)
def test_every_truncation_is_a_wire_error(shares: frozenset[int], size: int, other: frozenset[int]) -> None:
    for body, parse in (
        (p.build_allocate_request(shares, size), p.parse_allocate_request),
        (p.build_allocate_response(shares, other), p.parse_allocate_response),
        (p.build_version(p.VersionInfo(size, 0, size, b"v")), p.parse_version),
    ):
        for cut in range(len(body)):
            with pytest.raises(WireError):
                parse(body[:cut])
