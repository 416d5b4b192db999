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


labels = st.from_regex(r"[a-z0-9_](?:[a-z0-9_-]{0,10}[a-z0-9_])?", fullmatch=True)
host_names = (
    st.lists(labels, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
)


@given(
    st.one_of(st.ip_addresses().map(str), host_names),
    st.integers(1, 65535),
)
def test_str_then_parse_is_the_same_nurl(host: str, port: int) -> None:
    nurl = Nurl(SPKI, host, port, "swissnum")
    assert parse_nurl(str(nurl)) == nurl


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("[:::::]", r"NURL host '\[:::::\]' is not an IPv6 address"),
        ("[]", r"NURL host '\[\]' is not an IPv6 address"),
        ("[1.2.3.4]", r"is not an IPv6 address"),
        ("[fe80::1%eth0]", r"has a zone index"),
        ("ü..invalid", r"NURL host 'ü\.\.invalid' is not a host name: expected .* ASCII letters"),
        ("bücher.example", r"is not a host name"),
        ("a..b", r"is not a host name"),
        ("-a.example", r"is not a host name"),
        ("a-.example", r"is not a host name"),
        ("x" * 64 + ".example", r"is not a host name"),
        (".".join(["a" * 63] * 4), r"is not a host name"),  # 255 characters
        ("1.2.3", r"NURL host '1\.2\.3' is not an IPv4 address"),
        ("256.1.1.1", r"is not an IPv4 address"),
        ("example.١٢", r"is not a host name"),
    ],
)
def test_hosts_that_are_no_address_are_rejected(host: str, message: str) -> None:
    with pytest.raises(NurlError, match=message):
        parse_nurl(f"pb://{SPKI}@{host}:42275/swissnum#v=1")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "[2001:db8::7]",
        "[::ffff:127.0.0.1]",
        "localhost",
        "storage-1.example.org",
        "example.org.",
        "xn--bcher-kva.example",
        "storage_1",
        "1.2.3.example",
    ],
)
def test_real_hosts_are_accepted(host: str) -> None:
    nurl = parse_nurl(f"pb://{SPKI}@{host}:42275/swissnum#v=1")
    assert nurl.host == host.strip("[]")


@pytest.mark.parametrize("swissnum", ["swissü", "abc%41def", "caf\u00e9", "\u0661\u0662"])
def test_a_swissnum_that_is_not_ascii_url_text_is_rejected_without_showing_it(swissnum: str) -> None:
    with pytest.raises(NurlError, match=r"NURL swissnum \(\d+ characters\) must be ASCII") as info:
        parse_nurl(f"pb://{SPKI}@127.0.0.1:42275/{swissnum}#v=1")
    assert swissnum not in str(info.value)


def test_tahoe_and_our_swissnums_are_accepted() -> None:
    for swissnum in ["n2bsicpyz6ldp3qcqrwg6w5zuq5yrbcc", "AbC-_~.!$&'()*+,;=:@09"]:  # base32; every pchar
        assert parse_nurl(f"pb://{SPKI}@127.0.0.1:42275/{swissnum}#v=1").swissnum == swissnum
