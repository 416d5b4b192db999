"""NURL text: IPv6 hosts in brackets, and str/parse round trips (uploader/wire/nurl.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.wire.nurl import Nurl, NurlError, parse_nurl

SPKI = "A" * 42 + "E"


@pytest.mark.parametrize(
    ("host", "text_host"),
    [
        ("::1", "[::1]"),
        ("fe80::1:2", "[fe80::1:2]"),
        ("::ffff:127.0.0.1", "[::ffff:127.0.0.1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("example.org", "example.org"),
    ],
)
def test_ipv6_hosts_are_bracketed_and_round_trip(host: str, text_host: str) -> None:
    nurl = Nurl(SPKI, host, 34719, "swiss")
    assert str(nurl) == f"pb://{SPKI}@{text_host}:34719/swiss#v=1"
    assert nurl.base_url == f"https://{text_host}:34719"
    assert nurl.address == f"{text_host}:34719"
    assert parse_nurl(str(nurl)) == nurl  # host without brackets, as sockets take it


def test_an_unbracketed_ipv6_host_is_rejected() -> None:
    with pytest.raises(NurlError):
        parse_nurl(f"pb://{SPKI}@::1:34719/swiss#v=1")


@given(
    st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True)),
    st.integers(1, 65535),
)
def test_str_then_parse_is_the_same_nurl(host: str, port: int) -> None:
    nurl = Nurl(SPKI, host, port, "swissnum")
    assert parse_nurl(str(nurl)) == nurl
