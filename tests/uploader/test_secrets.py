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


def test_a_dangling_symlink_as_the_secret_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "dangle"
    link.symlink_to(tmp_path / "nothere")
    config = load_config(None, env_for(tmp_path), {"convergence_secret_file": str(link)})
    with pytest.raises(ConfigError) as info:
        convergence_secret(config)
    assert str(info.value).startswith(
        f"convergence_secret_file {link} (from --convergence-secret-file): {link} is a symbolic link to "
        f"{tmp_path / 'nothere'}, which does not exist"
    )
    assert info.value.exit_code == 3
    assert "created" not in capsys.readouterr().err  # no false "created a new convergence secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangle"]  # nothing created, the link kept
    assert link.is_symlink()


def test_a_dangling_symlink_in_the_data_dir_is_not_written_through(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "lease_secret").symlink_to(tmp_path / "elsewhere")
    config = load_config(None, env_for(tmp_path, UPLOADER_DATA_DIR=str(data)), {})
    with pytest.raises(
        ConfigError, match=r"data_dir .* \(from UPLOADER_DATA_DIR\): .* is a symbolic link to"
    ):
        lease_secret(config)
    assert not (tmp_path / "elsewhere").exists()


def test_a_configured_secret_file_is_created_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "convergence"
    config = load_config(None, env_for(tmp_path), {"convergence_secret_file": str(path)})
    secret = convergence_secret(config)
    assert capsys.readouterr().err == f"uploader: created a new convergence secret in {path}\n"
    assert convergence_secret(config) == secret and capsys.readouterr().err == ""


def test_a_binary_secret_file_says_what_was_expected_without_showing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "convergence"
    path.write_bytes(b"mfrg\xff\xfegzdf\n")
    config = load_config(None, env_for(tmp_path), {"convergence_secret_file": str(path)})
    with pytest.raises(ConfigError) as info:
        convergence_secret(config)
    message = str(info.value)
    assert message == (
        f"convergence secret file {path} is not text (a byte that is not ASCII at offset 4): expected "
        "Tahoe base32 text (a-z and 2-7); the contents are a secret and are not shown"
    )
    assert "codec" not in message and "0xff" not in message
