"""``python -m uploader cap``: caps equal the reference encoder's, JSON output, secrets, exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from uploader.chk import reference
from workers.base32 import b32decode
from workers.geometry import EncodingParams

pytestmark = pytest.mark.integration  # spawns the CLI and its worker pool


def cap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uploader", "cap", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_caps_match_the_reference_and_json_lines(tmp_path: Path) -> None:
    secret_file = tmp_path / "convergence"
    secret_file.write_text("mfrggzdfmztwq2lknnwg23tpobyhe43uov3ho6dzpjqwcytdmrswmz3i\n")  # Tahoe base32 text
    secret = b32decode("mfrggzdfmztwq2lknnwg23tpobyhe43uov3ho6dzpjqwcytdmrswmz3i")
    files = {"lit": b"small", "one": os.urandom(5000), "many": os.urandom(300_001)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = cap(
        *(str(tmp_path / n) for n in files),
        "-k",
        "2",
        "-n",
        "5",
        "--max-segment-size",
        "65536",
        "--convergence-secret-file",
        str(secret_file),
        "--json",
        "--workers",
        "2",
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(r["file"]).name for r in rows] == list(files)
    for row, data in zip(rows, files.values(), strict=True):
        expected, _ = reference.encode(data, EncodingParams(2, 5, 65536), secret)
        assert row["cap"] == str(expected) and row["size"] == len(data)
    assert rows[0]["cap"].startswith("URI:LIT:")


def test_a_per_user_secret_is_created_once_with_mode_0600(tmp_path: Path, isolated_home: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1000))
    first, second = cap(str(path)), cap(str(path))
    assert first.returncode == 0 and first.stdout == second.stdout  # the same secret both times
    secret = Path(os.environ["XDG_CONFIG_HOME"]) / "uploader" / "convergence"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(b32decode(secret.read_text().strip())) == 32


def test_a_configured_secret_file_is_created_on_first_use(tmp_path: Path, isolated_home: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1000))
    secret = tmp_path / "state" / "convergence"
    secret.parent.mkdir()
    first = cap(str(path), "--convergence-secret-file", str(secret))
    assert first.returncode == 0 and f"created a new convergence secret in {secret}" in first.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    again = cap(str(path), "--convergence-secret-file", str(secret))
    assert again.stdout == first.stdout and "created" not in again.stderr
    nowhere = cap(str(path), "--convergence-secret-file", str(tmp_path / "no" / "such" / "convergence"))
    assert nowhere.returncode == 3 and "neither does its directory" in nowhere.stderr


def test_errors_have_their_exit_codes(tmp_path: Path) -> None:
    missing = cap(str(tmp_path / "nope"), "--json")
    assert missing.returncode == 7
    error = json.loads(missing.stdout)
    assert error["exit_code"] == 7 and error["error_class"] == "LocalIOError" and "nope" in error["error"]
    bad_secret = tmp_path / "bad"
    bad_secret.write_text("not base32!")
    (tmp_path / "f").write_bytes(b"x" * 100)
    out = cap(str(tmp_path / "f"), "--convergence-secret-file", str(bad_secret))
    assert out.returncode == 3 and "convergence secret file" in out.stderr
    out = cap(str(tmp_path / "f"), "-k", "11", "-n", "10")
    assert out.returncode == 3 and "shares_needed" in out.stderr
    assert cap().returncode == 2  # argparse: FILE is required
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused = cap(str(fifo))  # refused at once (opening it used to wait for a writer forever)
    assert refused.returncode == 7 and "is not a regular file" in refused.stderr


def test_a_file_name_that_is_not_utf8_gets_its_cap(tmp_path: Path) -> None:
    data = os.urandom(300_001)
    bad = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"bad\xffname"))  # as argv hands it over
    Path(bad).write_bytes(data)
    (tmp_path / "good").write_bytes(data)
    out = cap(bad, str(tmp_path / "good"), "--json", "--workers", "2")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]  # valid UTF-8 JSON, one line each
    assert [r["file"] for r in rows] == [str(tmp_path / "bad") + "\\xffname", str(tmp_path / "good")]
    assert rows[0]["cap"] == rows[1]["cap"]  # the same bytes, read through the odd name
    human = cap(bad, "--workers", "2")
    assert human.returncode == 0 and human.stdout.strip() == rows[0]["cap"]
    both = cap(bad, str(tmp_path / "good"), "--workers", "2")
    assert both.returncode == 0 and f"{tmp_path}/bad\\xffname: {rows[0]['cap']}" in both.stdout
    os.unlink(bad)
    gone = cap(bad, "--json", "--workers", "2")
    assert gone.returncode == 7 and json.loads(gone.stdout)["file"] == f"{tmp_path}/bad\\xffname"
