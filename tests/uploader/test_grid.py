"""The grid's pure parts: the client configuration and servers.yaml texts, and the grid record."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from uploader.config import load_config
from uploader.grid import (
    GridError,
    GridRecord,
    ServerRecord,
    client_config_text,
    is_running,
    servers_yaml_text,
)
from uploader.wire.nurl import Nurl, lease_seed_of_cert
from workers.base32 import b32decode, b32encode

NURLS = [Nurl("A" * 41 + c + "E", "127.0.0.1", 4000 + i, f"swiss{i}") for i, c in enumerate("BCD")]


def test_client_config_is_valid_for_load_config(tmp_path: Path) -> None:
    grid = tmp_path / 'my "odd" grid'
    text = client_config_text(grid, [(f"server-0{i}", n) for i, n in enumerate(NURLS, 1)])
    assert tomllib.loads(text)["data_dir"] == str(grid / "client")
    path = tmp_path / "uploader.toml"
    path.write_text(text)
    config = load_config(path, {}, {})
    assert [s.nurl for s in config.servers] == [str(n) for n in NURLS]
    assert [s.nickname for s in config.servers] == ["server-01", "server-02", "server-03"]
    assert (config.shares_needed, config.shares_happy, config.shares_total) == (3, 3, 10)


@pytest.mark.parametrize(
    "name",
    [
        "grid \U0001f600",
        "tab\tnew\nline",
        "del\x7f nul\x00 esc\x1b",
        'q"uote\\back',
        "\u00e9t\u00e9 \ufeff \U0010ffff",
    ],
)
def test_any_unicode_path_gives_a_valid_config(tmp_path: Path, name: str) -> None:
    """Characters outside the BMP (json.dumps wrote them as surrogate pairs, which TOML forbids),
    control characters and quotes all survive: load_config reads the data_dir back unchanged."""
    grid = tmp_path / name
    path = tmp_path / "uploader.toml"
    path.write_text(client_config_text(grid, [("server-01", NURLS[0])]), encoding="utf-8")
    config = load_config(path, {}, {})
    assert config.data_dir == grid / "client" and [s.nurl for s in config.servers] == [str(NURLS[0])]


@given(st.text())
def test_config_toml_round_trips_any_text(name: str) -> None:
    grid = Path("/g") / name
    doc = tomllib.loads(client_config_text(grid, [("server-01", NURLS[0])]))
    assert doc["data_dir"] == str(grid / "client")


def test_a_path_with_undecodable_bytes_is_a_grid_error() -> None:
    with pytest.raises(GridError, match="not UTF-8"):
        client_config_text(Path("/g/\udcff"), [("server-01", NURLS[0])])


def test_one_server_grid_config() -> None:
    doc = tomllib.loads(client_config_text(Path("/g"), [("server-01", NURLS[0])]))
    assert (doc["shares_needed"], doc["shares_happy"]) == (1, 1)


def test_a_ten_server_grid_leaves_k_n_and_happy_to_their_defaults(tmp_path: Path) -> None:
    nurls = [Nurl("A" * 42 + "E", "127.0.0.1", 4000 + i, f"swiss{i}") for i in range(10)]
    path = tmp_path / "uploader.toml"
    path.write_text(client_config_text(tmp_path, [(f"server-{i:02}", n) for i, n in enumerate(nurls)]))
    config = load_config(path, {}, {})
    assert (config.shares_needed, config.shares_happy, config.shares_total) == (3, 7, 10)
    # the README's `cap -k 2 -n 4` against the grid's configuration: happiness follows N
    config = load_config(path, {}, {"shares_needed": 2, "shares_total": 4})
    assert (config.shares_needed, config.shares_happy, config.shares_total) == (2, 4, 4)


def test_servers_yaml_shape() -> None:
    certs = [os.urandom(300) for _ in NURLS]
    doc = yaml.safe_load(
        servers_yaml_text([(f"s{i}", n, c) for i, (n, c) in enumerate(zip(NURLS, certs, strict=True))])
    )
    entries = list(doc["storage"].values())
    for n, cert, entry in zip(NURLS, certs, entries, strict=True):
        ann = entry["ann"]
        assert ann["anonymous-storage-NURLs"] == [str(n)]
        furl = ann["anonymous-storage-FURL"]
        assert furl.startswith("pb://") and furl.endswith("@")
        assert b32decode(furl[5:-1], 20) == lease_seed_of_cert(cert)
        assert ann["permutation-seed-base32"] == b32encode(n.spki_digest)
    assert list(doc["storage"]) == [f"gbs-{b32encode(n.spki_digest)}" for n in NURLS]


def test_grid_record_round_trip(tmp_path: Path) -> None:
    record = GridRecord([ServerRecord("server-01", 4000, None, None), ServerRecord("server-02")])
    record.save(tmp_path)
    assert GridRecord.load(tmp_path) == record
    assert GridRecord.load(tmp_path / "none") is None
    assert not is_running(record.servers[0])
    assert not is_running(ServerRecord("x", 1, os.getpid(), 0))  # right PID, wrong start time
