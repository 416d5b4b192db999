"""``storage`` command argument parsing (the server itself is tested in tests/integration)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from uploader.commands.storage import parse_listen, parse_size, previous_listen


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1000", 1000),
        ("5G", 5 * 10**9),
        ("5GiB", 5 * 2**30),
        ("2k", 2000),
        ("3 MiB", 3 * 2**20),
        ("1TB", 10**12),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "5X", "1.5G", "G"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8000") == ("::1", 8000)
    for bad in ("127.0.0.1", ":80", "host:99999", "host:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_listen(bad)


def test_previous_listen_reads_the_last_nurl(tmp_path: Path) -> None:
    assert previous_listen(tmp_path) is None
    (tmp_path / "nurl").write_text("pb://" + "A" * 43 + "@127.0.0.1:4567/swiss#v=1\n")
    assert previous_listen(tmp_path) == ("127.0.0.1", 4567)
    (tmp_path / "nurl").write_text("garbage")
    assert previous_listen(tmp_path) is None
