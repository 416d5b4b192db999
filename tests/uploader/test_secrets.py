"""Secrets on disk (uploader/secrets.py): where they go, and the errors when they cannot go there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from uploader.config import load_config
from uploader.errors import ConfigError
from uploader.secrets import convergence_secret, convergence_secret_path, lease_secret


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        **extra,
    }


def test_both_secrets_are_created_once_in_their_default_places(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    config = load_config(None, env, {})
    lease = lease_secret(config)
    assert (tmp_path / "data" / "uploader" / "lease_secret").stat().st_mode & 0o777 == 0o600
    assert lease_secret(config) == lease
    path = convergence_secret_path(config, env)
    assert path == tmp_path / "cfg" / "uploader" / "convergence"


@pytest.mark.parametrize("layout", ["a file", "a file's child", "under /proc"])
def test_a_data_dir_that_cannot_be_created_names_the_setting_and_its_source(
    tmp_path: Path, layout: str
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory\n")
    data_dir = {"a file": blocker, "a file's child": blocker / "sub", "under /proc": Path("/proc/uploader")}[
        layout
    ]
    config = load_config(None, env_for(tmp_path, UPLOADER_DATA_DIR=str(data_dir)), {})
    with pytest.raises(ConfigError) as info:
        lease_secret(config)
    message = str(info.value)
    assert message.startswith(f"data_dir {data_dir} (from UPLOADER_DATA_DIR) cannot be used: ")
    assert info.value.exit_code == 3
    if layout != "under /proc":
        assert f"{blocker} is not a directory" in message
    assert blocker.read_text() == "not a directory\n"  # nothing lost


def test_a_data_dir_from_the_file_is_named_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    config_file = tmp_path / "uploader.toml"
    config_file.write_text("data_dir = 'afile'\n")
    config = load_config(config_file, env_for(tmp_path), {})
    with pytest.raises(ConfigError, match=re.escape(f"data_dir {tmp_path / 'afile'} (from {config_file})")):
        lease_secret(config)


def test_a_default_convergence_secret_place_that_cannot_be_created_says_how_to_choose_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "uploader").write_text("a file where the directory would go\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    config = load_config(None, env_for(tmp_path), {})
    with pytest.raises(ConfigError) as info:
        convergence_secret(config)
    message = str(info.value)
    assert message.startswith(
        f"the default convergence secret file {tmp_path / 'cfg' / 'uploader' / 'convergence'}"
    )
    assert f"{tmp_path / 'cfg' / 'uploader'} is not a directory" in message
    assert "set convergence_secret_file" in message
    assert info.value.exit_code == 3
