"""Capability strings (chk-format §11): read caps, verify caps, LIT caps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.chk.caps import CapError, ChkCap, LitCap, VerifyCap, parse_cap, parse_read_cap
from workers.base32 import b32encode
from workers.errors import FormatError, UploaderError
from workers.keys import storage_index

KEY32 = "yzxcoagbetwet65ltjpbqyli3m"
HASH52 = "6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a"
EXAMPLE = f"URI:CHK:{KEY32}:{HASH52}:1:1:56"
EXAMPLE_VERIFIER = f"URI:CHK-Verifier:i5nhq74zw2crkop634ra4hrvzm:{HASH52}:1:1:56"


def test_worked_example_read_and_verify_caps() -> None:
    cap = parse_cap(EXAMPLE)
    assert isinstance(cap, ChkCap)
    assert cap.key.hex() == "c66e2700c124ec49fbab9a5e186168db"
    assert b32encode(cap.ueb_hash) == HASH52
    assert (cap.k, cap.n, cap.size) == (1, 1, 56)
    assert cap.storage_index.hex() == "475a787f99b6851539fedf220e1e35cb"
    assert str(cap) == EXAMPLE
    assert str(cap.verify_cap) == EXAMPLE_VERIFIER
    assert parse_cap(EXAMPLE_VERIFIER) == cap.verify_cap
    assert parse_read_cap(EXAMPLE) == cap


def test_lit_caps() -> None:
    assert str(LitCap(b"hello")) == "URI:LIT:nbswy3dp"
    assert parse_cap("URI:LIT:nbswy3dp") == LitCap(b"hello")
    assert parse_cap("URI:LIT:") == LitCap(b"")
    assert str(LitCap(b"")) == "URI:LIT:"
    assert parse_read_cap("URI:LIT:nbswy3dp").size == 5
    assert parse_cap(str(LitCap(bytes(55)))) == LitCap(bytes(55))


def test_surrounding_whitespace_is_ignored() -> None:
    assert str(parse_cap(f"  {EXAMPLE}\n")) == EXAMPLE


keys = st.binary(min_size=16, max_size=16)
hashes = st.binary(min_size=32, max_size=32)


@st.composite
def kn(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 256))
    return draw(st.integers(1, n)), n


sizes = st.integers(56, 2**64 - 1)  # a share records the size in 8 bytes


@given(keys, hashes, kn(), sizes)
def test_read_cap_round_trip(key: bytes, ueb_hash: bytes, k_n: tuple[int, int], size: int) -> None:
    cap = ChkCap(key, ueb_hash, *k_n, size)
    text = str(cap)
    assert text.startswith("URI:CHK:")
    assert parse_cap(text) == cap
    assert parse_read_cap(text) == cap
    assert cap.storage_index == storage_index(key)
    verify = cap.verify_cap
    assert parse_cap(str(verify)) == verify
    assert str(verify).startswith("URI:CHK-Verifier:")


@given(hashes, hashes, kn(), sizes)
def test_verify_cap_round_trip(si: bytes, ueb_hash: bytes, k_n: tuple[int, int], size: int) -> None:
    cap = VerifyCap(si[:16], ueb_hash, *k_n, size)
    assert parse_cap(str(cap)) == cap
    with pytest.raises(CapError, match="verify cap"):
        parse_read_cap(str(cap))


def test_a_size_of_2_to_the_64_or_more_is_refused() -> None:
    for size in (2**64, 10**19 * 2):
        with pytest.raises(CapError, match="fewer than 2\\*\\*64 bytes"):
            parse_cap(_chk(size=str(size)))


@given(st.binary(max_size=55))
def test_lit_round_trip(data: bytes) -> None:
    assert parse_read_cap(str(LitCap(data))) == LitCap(data)


def _chk(key: str = KEY32, h: str = HASH52, k: str = "3", n: str = "10", size: str = "1000") -> str:
    return f"URI:CHK:{key}:{h}:{k}:{n}:{size}"


MALFORMED = {
    "empty": "",
    "no URI prefix": EXAMPLE[4:],
    "lower-case prefix": "uri" + EXAMPLE[3:],
    "unknown kind": EXAMPLE.replace("CHK", "SSK", 1),
    "mutable cap": "URI:SSK:" + KEY32 + ":" + HASH52,
    "directory cap": "URI:DIR2-CHK:" + EXAMPLE[8:],
    "key last char with spare bits": _chk(key=KEY32[:-1] + "n"),
    "hash last char with spare bits": _chk(h=HASH52[:-1] + "b"),
    "key too short": _chk(key=KEY32[:-2] + "a"),
    "hash too long": _chk(h="a" + HASH52),
    "upper-case key": _chk(key=KEY32.upper()),
    "k greater than N": _chk(k="11", n="10"),
    "k zero": _chk(k="0"),
    "N above 256": _chk(k="3", n="257"),
    "k and N above 256": _chk(k="300", n="300"),
    "leading zero in k": _chk(k="03"),
    "leading zero in N": _chk(n="010"),
    "leading zero in size": _chk(size="01000"),
    "negative size": _chk(size="-1000"),
    "plus sign": _chk(k="+3"),
    "non-ASCII digits": _chk(size="１０００"),
    "size 55": _chk(size="55"),
    "size 0": _chk(size="0"),
    "missing size": f"URI:CHK:{KEY32}:{HASH52}:3:10",
    "extra field": _chk() + ":7",
    "verifier with bad SI": f"URI:CHK-Verifier:{KEY32[:-1]}b:{HASH52}:1:1:56",
    "verifier with N above 256": f"URI:CHK-Verifier:{KEY32}:{HASH52}:1:257:56",
    "LIT of 56 bytes": "URI:LIT:" + b32encode(bytes(56)),
    "LIT with bad length": "URI:LIT:a",
    "LIT with spare bits": "URI:LIT:mzxw6yr",
    "LIT upper case": "URI:LIT:NBSWY3DP",
    "embedded newline": EXAMPLE[:20] + "\n" + EXAMPLE[20:],
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_caps_raise_cap_error(text: str) -> None:
    with pytest.raises(CapError):
        parse_cap(text)
    with pytest.raises(CapError):
        parse_read_cap(text)


def test_cap_error_is_a_format_error_with_a_useful_message() -> None:
    assert issubclass(CapError, FormatError)
    with pytest.raises(CapError, match=r"1 <= k <= N <= 256"):
        parse_cap(_chk(k="11", n="10"))
    with pytest.raises(CapError, match="LIT"):
        parse_cap(_chk(size="55"))
    with pytest.raises(CapError, match="at most 55 bytes"):
        parse_cap("URI:LIT:" + b32encode(bytes(56)))


def test_error_for_unknown_text_does_not_echo_a_secret() -> None:
    secret = "URI:CHK:" + "z" * 200
    with pytest.raises(CapError) as info:
        parse_cap(secret)
    assert "z" * 30 not in str(info.value)


@pytest.mark.parametrize("field", ["k", "n", "size"])
@pytest.mark.parametrize("digits", [21, 5000])
def test_huge_numbers_raise_cap_error(field: str, digits: int) -> None:
    # Python refuses int() of more than 4300 digits with ValueError; that must not leak out.
    with pytest.raises(CapError, match="digits"):
        parse_cap(_chk(**{field: "9" * digits}))


def test_twenty_digit_size_is_accepted() -> None:
    assert parse_cap(_chk(size=str(2**64 - 1))).size == 2**64 - 1


def test_repr_of_a_read_cap_hides_the_key() -> None:
    cap = parse_cap(EXAMPLE)
    assert isinstance(cap, ChkCap)
    for shown in (repr(cap), f"{cap!r}", repr([cap]), repr({"cap": cap})):
        assert EXAMPLE not in shown
        assert KEY32 not in shown
        assert cap.key.hex() not in shown
        assert "i5nhq74zw2crkop634ra4hrvzm" in shown  # the storage index identifies it without the key


def test_repr_of_a_lit_cap_hides_the_data() -> None:
    assert "nbswy3dp" not in repr(LitCap(b"hello"))
    assert "hello" not in repr(LitCap(b"hello"))


@given(st.text(max_size=200))
def test_arbitrary_text_is_a_cap_or_cap_error(text: str) -> None:
    for parser in (parse_cap, parse_read_cap):
        try:
            parser(text)
        except UploaderError as exc:
            assert isinstance(exc, CapError)


@given(st.data())
def test_edited_caps_are_a_cap_or_cap_error(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([EXAMPLE, EXAMPLE_VERIFIER, "URI:LIT:nbswy3dp", _chk()]))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        pos = data.draw(st.integers(0, len(text)), label="position")
        char = data.draw(st.sampled_from("aq4bz7019:-ACHKLIT \n"), label="char")
        op = data.draw(st.sampled_from(["set", "insert", "delete"]), label="op")
        if op == "insert":
            text = text[:pos] + char + text[pos:]
        elif op == "set":
            text = text[:pos] + char + text[pos + 1 :]
        else:
            text = text[:pos] + text[pos + 1 :]
    try:
        cap = parse_cap(text)
    except UploaderError as exc:
        assert isinstance(exc, CapError)
    else:
        assert parse_cap(str(cap)) == cap
