"""Fuzz: configuration values from a file, the environment and flags — a Config or ConfigError."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from uploader.config import SETTINGS, Config, load_config
from uploader.errors import ConfigError

keys = st.one_of(st.sampled_from([*SETTINGS, "servers"]), st.text(min_size=1, max_size=12))
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(
        ["0", "-1", "1e999", "nan", "127.0.0.1:0", "auto", "debug", "http://127.0.0.1:1", "pb://x"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["nurl", "nickname", "x"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def check(path: Path | None, env: dict[str, str], cli: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        config = load_config(path, env, cli)
        assert isinstance(config, Config)
        assert 1 <= config.shares_needed <= config.shares_total <= 256
        assert 1 <= config.shares_happy <= config.shares_total  # (happy < needed is allowed, as in Tahoe)


@given(st.dictionaries(keys, values, max_size=5))
def test_config_files_give_a_config_or_config_error(table: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "uploader.toml"
        lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        check(path, {"HOME": tmp}, {})


@given(st.binary(max_size=200))
def test_arbitrary_file_bytes_give_a_config_or_config_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "uploader.toml"
        path.write_bytes(raw)
        check(path, {"HOME": tmp}, {})


@given(st.dictionaries(st.sampled_from(SETTINGS), st.text(max_size=30), max_size=4))
def test_environment_values_give_a_config_or_config_error(env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check(None, {"HOME": tmp, **{"UPLOADER_" + k.upper(): v for k, v in env.items()}}, {})


@given(st.dictionaries(st.sampled_from(SETTINGS), scalars, max_size=4))
def test_flag_values_give_a_config_or_config_error(cli: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check(None, {"HOME": tmp}, cli)
