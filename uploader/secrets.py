"""Per-user secrets on disk: the convergence secret (Tahoe base32 text, as ``private/convergence``).

Created once with mode 0600 and reused. The convergence secret is part of every convergent key:
losing it only loses deduplication, but leaking it lets others confirm guesses of file contents.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from uploader.config import Config, xdg_config_home
from uploader.errors import ConfigError
from workers.base32 import b32decode, b32encode
from workers.errors import FormatError

SECRET_SIZE = 32


def convergence_secret_path(config: Config, env: dict[str, str] | None = None) -> Path:
    if config.convergence_secret_file is not None:
        return config.convergence_secret_file
    return xdg_config_home(dict(os.environ) if env is None else env) / "uploader" / "convergence"


def read_secret_file(path: Path) -> bytes:
    """Decode a Tahoe-style base32 secret file; raise ConfigError naming the file and the problem."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"convergence secret file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read convergence secret file {path}: {exc}") from None
    try:
        secret = b32decode(text)
    except FormatError:  # its message may quote the text: the secret itself, or most of it
        raise ConfigError(
            f"convergence secret file {path} must hold Tahoe base32 text (a-z and 2-7, {len(text)} characters "
            "found); the contents are a secret and are not shown"
        ) from None
    if not secret:
        raise ConfigError(f"convergence secret file {path} is empty; expected base32 text of a secret")
    return secret


def load_or_create_secret(path: Path, explicit: bool) -> bytes:
    """Read the secret; when it is missing, create it (0600) — CONVENTIONS.md: "created on first use".

    A default location gets its directory made; a configured one (``explicit``) must be in a directory
    that exists (a service's state directory, say), and creating it is said on stderr: a mistyped path
    would otherwise quietly give other caps than the user's usual secret."""
    if path.exists():
        return read_secret_file(path)
    if explicit:
        if not path.parent.is_dir():
            raise ConfigError(
                f"convergence secret file {path} does not exist, and neither does its directory to create it in"
            )
        print(f"uploader: created a new convergence secret in {path}", file=sys.stderr, flush=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = os.urandom(SECRET_SIZE)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(b32encode(secret) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # never overwrite a secret another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return read_secret_file(path)


def convergence_secret(config: Config) -> bytes:
    return load_or_create_secret(convergence_secret_path(config), config.convergence_secret_file is not None)


def lease_secret(config: Config) -> bytes:
    """This client's lease secret (Tahoe: ``private/secret``), created once in the data dir."""
    return load_or_create_secret(config.data_dir / "lease_secret", explicit=False)
