"""Fuzz: NURLs (configuration, grid records) and server certificates parse or raise NurlError only."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from uploader.wire.nurl import NurlError, parse_nurl, spki_hash_of_cert, spki_hash_of_pem_cert

GOOD = f"pb://{'A' * 43}@127.0.0.1:1234/swissnumtext#v=1"
pieces = st.sampled_from(
    ["pb://", "A" * 43, "@", ":", "/", "#v=1", "[::1]", "65535", "99999", "0", " ", "\n"]
)


@given(st.text(max_size=120))
def test_arbitrary_text_is_a_nurl_or_nurl_error(text: str) -> None:
    with contextlib.suppress(NurlError):
        nurl = parse_nurl(text)
        assert 0 < nurl.port < 65536 and len(nurl.spki_hash) == 43
        assert parse_nurl(str(nurl)) == nurl
        assert nurl.swissnum not in repr(nurl)


@given(st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12))
def test_assembled_nurl_pieces_are_a_nurl_or_nurl_error(parts: list[str]) -> None:
    with contextlib.suppress(NurlError):
        parse_nurl("".join(parts))


@given(st.data())
def test_edited_nurls_are_a_nurl_or_nurl_error(data: st.DataObject) -> None:
    text = list(GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.characters())
    with contextlib.suppress(NurlError):
        parse_nurl("".join(text))


@given(st.binary(max_size=300))
def test_arbitrary_certificate_bytes_raise_nurl_error(blob: bytes) -> None:
    with contextlib.suppress(NurlError):
        spki_hash_of_cert(blob)
    with contextlib.suppress(NurlError):
        spki_hash_of_pem_cert(b"-----BEGIN CERTIFICATE-----\n" + blob + b"\n-----END CERTIFICATE-----\n")
