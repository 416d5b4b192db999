"""``storage`` command argument parsing (the server itself is tested in tests/integration)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
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


@pytest.mark.parametrize("flag", ["--idle-timeout", "--request-timeout"])
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "١٠", "1_0", " 5 ", "1e3"])
def test_timeouts_must_be_positive_and_finite(tmp_path: Path, flag: str, value: str) -> None:
    cmd = [sys.executable, "-m", "uploader", "storage", "--dir", str(tmp_path / "s"), f"{flag}={value}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"argument {flag}: expected a finite number of seconds > 0, got '{value}'" in out.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("host", ["bad_host!", "ü.example", "[:::::]", "1.2.3", "-lead.example"])
def test_a_nurl_host_clients_would_refuse_is_a_usage_error(tmp_path: Path, host: str) -> None:
    cmd = [sys.executable, "-m", "uploader", "storage", "--dir", str(tmp_path / "s"), f"--nurl-host={host}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "argument --nurl-host: NURL host" in out.stderr, out.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("host", "kept"), [("localhost", "localhost"), ("[::1]", "::1"), ("::1", "::1"), ("10.0.0.7", "10.0.0.7")]
)
def test_nurl_hosts_clients_accept(host: str, kept: str) -> None:
    from uploader.commands.storage import _nurl_host

    assert _nurl_host(host) == kept
