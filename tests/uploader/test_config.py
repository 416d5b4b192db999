"""Configuration: precedence (defaults < file < environment < flags), clear errors, the README example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from uploader.config import Config, find_config_file, load_config
from uploader.errors import ConfigError

NURL = "pb://JIj6ezHkdSBlHhrnezAgIC_mrVQHy4KAFyL-8ZNPGPM@127.0.0.1:1234/swiss#v=1"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "uploader.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = load_config(None, {"HOME": "/nonexistent"}, {})
    assert (config.shares_needed, config.shares_total, config.shares_happy) == (3, 10, 7)
    assert config.max_segment_size == 1048576
    assert config.api_listen == "127.0.0.1:3456"
    assert config.source is None


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "workers = 3\nwindow = 5\npipeline_depth = 1000\n")
    env = {"HOME": str(tmp_path), "UPLOADER_WINDOW": "6", "UPLOADER_PIPELINE_DEPTH": "2000"}
    config = load_config(path, env, {"pipeline_depth": 3000})
    assert (config.workers, config.window, config.pipeline_depth) == (3, 6, 3000)
    assert config.source == path


def test_happy_defaults_to_at_most_n(tmp_path: Path) -> None:
    assert (
        load_config(None, {"HOME": str(tmp_path)}, {"shares_needed": 1, "shares_total": 1}).shares_happy == 1
    )
    with pytest.raises(
        ConfigError,
        match=r"shares_happy = 9 \(from --happy\) must be between 1 and shares_total = 5 \(from --shares-total\)",
    ):
        load_config(None, {"HOME": str(tmp_path)}, {"shares_total": 5, "shares_happy": 9})


def test_relation_errors_say_where_each_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, "shares_happy = 7\n")
    with pytest.raises(
        ConfigError,
        match=r"shares_happy = 7 \(from .*uploader.toml\) must be between 1 and shares_total = 4 \(from --shares-total\)",
    ):
        load_config(path, {"HOME": str(tmp_path)}, {"shares_total": 4})
    with pytest.raises(
        ConfigError,
        match=r"shares_needed = 11 \(from UPLOADER_SHARES_NEEDED\) and shares_total = 10 \(from the default\)",
    ):
        load_config(None, {"HOME": str(tmp_path), "UPLOADER_SHARES_NEEDED": "11"}, {})
    # happy left to its default follows N
    assert (
        load_config(None, {"HOME": str(tmp_path)}, {"shares_needed": 2, "shares_total": 4}).shares_happy == 4
    )


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("workers = 0\n", {}, r"workers is 0 \(from .*uploader.toml\): expected a whole number >= 1"),
        (
            "workers = 100000\n",
            {},
            r"workers is 100000 \(from .*uploader.toml\): expected a whole number from 1 to 256",
        ),
        ("", {"UPLOADER_WORKERS": "257"}, r"workers is '257' \(from UPLOADER_WORKERS\): .* from 1 to 256"),
        (
            "",
            {"UPLOADER_WORKERS": "many"},
            r"workers is 'many' \(from UPLOADER_WORKERS\): expected a whole number",
        ),
        ("api_listen = 'localhost'\n", {}, r"api_listen .*expected HOST:PORT"),
        ("erasure_backend = 'fast'\n", {}, r"erasure_backend .*expected one of auto, isal, zfec"),
        ("colour = 'blue'\n", {}, r"unknown setting 'colour'"),
        ("workers = [\n", {}, r"is not valid TOML"),
        ("[[servers]]\nnickname = 'x'\n", {}, r"servers\[0\] .* needs a nurl"),
        ("[[servers]]\nnurl = 'http://x'\n", {}, r"must start with pb://"),
        ("shares_needed = 4\nshares_total = 3\n", {}, r"must satisfy 1 <= needed <= total <= 256"),
        (
            "[[servers]]\nnurl = 'pb://garbage'\n",
            {},
            r"servers\[0\]\.nurl \(from .*uploader.toml\) is not a NURL",
        ),
        ("request_timeout_s = inf\n", {}, r"request_timeout_s is inf .*finite"),
        ("max_segment_size = 999999999999999999999\n", {}, r"max_segment_size .*from 1 to 1073741824"),
    ],
)
def test_bad_values_name_setting_and_source(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, {"HOME": str(tmp_path), **env}, {})
    assert info.value.exit_code == 3


def test_bad_flag_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(from --window\)"):
        load_config(None, {"HOME": str(tmp_path)}, {"window": 0})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {"HOME": str(tmp_path)}, {})


def test_file_search_order(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    assert find_config_file(None, env) is None
    grid = write(tmp_path, f"[[servers]]\nnurl = '{NURL}'\n")
    (tmp_path / "data" / "uploader").mkdir(parents=True)
    (tmp_path / "data" / "uploader" / "current-grid").write_text(str(grid))
    assert find_config_file(None, env) == grid  # the grid `grid start` made last
    user = tmp_path / "cfg" / "uploader" / "uploader.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config_file(None, env) == user
    assert find_config_file(None, {**env, "UPLOADER_CONFIG": "/x.toml"}) == Path("/x.toml")
    assert find_config_file(tmp_path / "y.toml", env) == tmp_path / "y.toml"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "data_dir = 'state'\n"), {"HOME": "/"}, {})
    assert config.data_dir == tmp_path / "state"


def test_the_readme_example_is_a_valid_configuration(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert example is not None
    # the example's placeholders, filled in as a real NURL would be
    text = example.group(1).replace("<spki-hash>", "A" * 43).replace("<swissnum>", "s" * 26)
    path = write(tmp_path, text)
    config = load_config(path, {"HOME": "/"}, {})
    assert isinstance(config, Config) and len(config.servers) == 1


def test_stock_mode_parses_booleans(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "stock_mode = true\n"), {}, {}).stock_mode is True
    assert load_config(None, {"UPLOADER_STOCK_MODE": "false", "HOME": str(tmp_path)}, {}).stock_mode is False
    assert load_config(None, {"UPLOADER_STOCK_MODE": "1", "HOME": str(tmp_path)}, {}).stock_mode is True
    with pytest.raises(ConfigError, match=r"stock_mode is 'maybe' .*UPLOADER_STOCK_MODE.*true or false"):
        load_config(None, {"UPLOADER_STOCK_MODE": "maybe", "HOME": str(tmp_path)}, {})


def test_pipeline_depth_is_auto_by_default_or_a_whole_number(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert load_config(None, home, {}).pipeline_depth == "auto"
    assert load_config(None, home, {}).link_mbit_per_s is None
    assert load_config(write(tmp_path, "pipeline_depth = 'AUTO'\n"), {}, {}).pipeline_depth == "auto"
    assert load_config(write(tmp_path, "pipeline_depth = 65536\n"), {}, {}).pipeline_depth == 65536
    assert load_config(None, {**home, "UPLOADER_PIPELINE_DEPTH": "4096"}, {}).pipeline_depth == 4096
    assert load_config(None, home, {"pipeline_depth": "auto"}).pipeline_depth == "auto"
    with pytest.raises(
        ConfigError, match=r"pipeline_depth is 'deep' \(from --pipeline-depth\): expected \"auto\""
    ):
        load_config(None, home, {"pipeline_depth": "deep"})
    with pytest.raises(
        ConfigError,
        match=r"pipeline_depth is 0 .*expected \"auto\" or a whole number of bytes from 1 to 1073741824",
    ):
        load_config(write(tmp_path, "pipeline_depth = 0\n"), {}, {})


def test_link_mbit_per_s_parses_a_positive_rate(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "link_mbit_per_s = 100\n"), {}, {}).link_mbit_per_s == 100.0
    env = {"HOME": str(tmp_path), "UPLOADER_LINK_MBIT_PER_S": "2.5"}
    assert load_config(None, env, {}).link_mbit_per_s == 2.5
    for bad in ("0", "-3", "fast", "inf"):
        with pytest.raises(ConfigError, match=r"link_mbit_per_s is .*expected a link rate in Mbit/s"):
            load_config(None, {"HOME": str(tmp_path), "UPLOADER_LINK_MBIT_PER_S": bad}, {})
    with pytest.raises(ConfigError, match=r"link_mbit_per_s is True"):
        load_config(write(tmp_path, "link_mbit_per_s = true\n"), {}, {})


@pytest.mark.parametrize(
    ("var", "text"),
    [
        ("UPLOADER_MAX_SEGMENT_SIZE", "١٠٠٠٠"),  # Arabic-Indic digits: int() reads 10000
        ("UPLOADER_MAX_SEGMENT_SIZE", " 1_0 "),  # int() reads 10
        ("UPLOADER_WINDOW", "1_6"),
        ("UPLOADER_WORKERS", "²"),  # str.isdigit() is true of it, int() is not
        ("UPLOADER_WORKERS", "0x10"),
        ("UPLOADER_CONNECT_TIMEOUT_S", "1_0"),  # float() reads 10.0
        ("UPLOADER_REQUEST_TIMEOUT_S", " nan "),
        ("UPLOADER_SHUTDOWN_TIMEOUT_S", "1e3"),
        ("UPLOADER_LINK_MBIT_PER_S", "١٠٠"),
        ("UPLOADER_LINK_MBIT_PER_S", "infinity"),
        ("UPLOADER_API_LISTEN", "127.0.0.1:٣٤٥٦"),
        ("UPLOADER_API_LISTEN", "127.0.0.1:²"),
    ],
)
def test_numbers_from_the_environment_are_plain_ascii_decimals(tmp_path: Path, var: str, text: str) -> None:
    key = var.removeprefix("UPLOADER_").lower()
    with pytest.raises(ConfigError) as info:
        load_config(None, {"HOME": str(tmp_path), var: text}, {})
    message = str(info.value)
    assert message.startswith(f"{key} is {text!r} (from {var}): expected ")
    assert info.value.exit_code == 3
    assert "invalid literal" not in message and "could not convert" not in message  # Python's own words


def test_plain_decimal_numbers_from_the_environment_still_parse(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "UPLOADER_MAX_SEGMENT_SIZE": "131072",
        "UPLOADER_WINDOW": "+8",
        "UPLOADER_CONNECT_TIMEOUT_S": "2.5",
        "UPLOADER_REQUEST_TIMEOUT_S": ".5",
        "UPLOADER_SHUTDOWN_TIMEOUT_S": "30.",
        "UPLOADER_API_LISTEN": "[::1]:3456",
    }
    config = load_config(None, env, {})
    assert (config.max_segment_size, config.window) == (131072, 8)
    assert (config.connect_timeout_s, config.request_timeout_s, config.shutdown_timeout_s) == (2.5, 0.5, 30.0)
    with pytest.raises(
        ConfigError, match=r"max_segment_size is '1{41}' .*expected a whole number, got one of 41"
    ):
        load_config(None, {"HOME": str(tmp_path), "UPLOADER_MAX_SEGMENT_SIZE": "1" * 41}, {})


@pytest.mark.parametrize(
    ("key", "bound"),
    [("window", 1024), ("max_uploads", 256), ("pipeline_depth", 1 << 30)],
)
def test_window_uploads_and_depth_have_an_upper_bound(tmp_path: Path, key: str, bound: int) -> None:
    var = "UPLOADER_" + key.upper()
    assert getattr(load_config(None, {"HOME": str(tmp_path), var: str(bound)}, {}), key) == bound
    path = write(tmp_path, f"{key} = 99999999999999999999\n")
    with pytest.raises(
        ConfigError, match=rf"{key} is 99999999999999999999 \(from .*uploader.toml\): .* 1 to {bound}"
    ):
        load_config(path, {"HOME": str(tmp_path)}, {})
    with pytest.raises(ConfigError, match=rf"{key} is '{bound + 1}' \(from {var}\): .* 1 to {bound}") as info:
        load_config(None, {"HOME": str(tmp_path), var: str(bound + 1)}, {})
    assert info.value.exit_code == 3
    flag = "--" + key.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"{key} is {bound * 10} \(from {flag}\): .* 1 to {bound}"):
        load_config(None, {"HOME": str(tmp_path)}, {key: bound * 10})


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe\n", "is not UTF-8 text"),
        (b"", "is empty"),
        (b"\n  \n", "is empty"),
        (b"grid/uploader.toml\n", "does not hold one absolute path"),
        (b"/a/uploader.toml\n/b/uploader.toml\n", "does not hold one absolute path"),
        (None, r"cannot be read \(Is a directory\)"),
    ],
)
def test_an_unusable_current_grid_record_is_a_config_error(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    record = tmp_path / "data" / "uploader" / "current-grid"
    record.parent.mkdir(parents=True)
    if content is None:
        record.mkdir()
    else:
        record.write_bytes(content)
    with pytest.raises(
        ConfigError, match=f"the current-grid record {re.escape(str(record))} {why}: expected"
    ) as info:
        load_config(None, env, {})
    assert info.value.exit_code == 3
    # an explicit configuration does not look at the record
    assert load_config(write(tmp_path, ""), env, {}).source == tmp_path / "uploader.toml"


def test_no_current_grid_record_is_no_configuration(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    # a data dir that is a file holds no record; what is wrong with it is said where it is used
    assert (
        find_config_file(None, {"HOME": str(tmp_path), "UPLOADER_DATA_DIR": str(tmp_path / "afile")}) is None
    )
    assert find_config_file(None, {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "none")}) is None


def test_a_current_grid_record_naming_a_removed_grid_is_no_configuration(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    record = tmp_path / "data" / "uploader" / "current-grid"
    record.parent.mkdir(parents=True)
    record.write_text(f"{tmp_path / 'gone' / 'uploader.toml'}\n")
    assert find_config_file(None, env) is None


@pytest.mark.parametrize(
    ("nurl", "message"),
    [
        (NURL.replace("/swiss#", "/swissü#"), r"NURL swissnum \(6 characters\) must be ASCII"),
        (NURL.replace("127.0.0.1", "[:::::]"), r"NURL host '\[:::::\]' is not an IPv6 address"),
        (NURL.replace("127.0.0.1", "ü..invalid"), r"NURL host 'ü\.\.invalid' is not a host name"),
    ],
)
def test_a_nurl_that_cannot_be_used_fails_at_load(tmp_path: Path, nurl: str, message: str) -> None:
    path = write(tmp_path, f"[[servers]]\nnurl = '{NURL}'\n\n[[servers]]\nnurl = '{nurl}'\n")
    with pytest.raises(
        ConfigError, match=r"servers\[1\]\.nurl \(from .*uploader.toml\) is not a NURL: " + message
    ) as info:
        load_config(path, {"HOME": str(tmp_path)}, {})
    assert info.value.exit_code == 3
    assert "swissü" not in str(info.value)
