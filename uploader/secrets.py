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


def read_secret_file(path: Path, what: str = "convergence secret") -> bytes:
    """Decode a Tahoe-style base32 secret file; raise ConfigError naming the file and the problem.

    ``what`` names the secret in messages ("convergence secret", "lease secret")."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except UnicodeDecodeError as exc:  # Python's text would quote the byte: part of the secret
        raise ConfigError(
            f"{what} file {path} is not text (a byte that is not ASCII at offset {exc.start}): expected "
            "Tahoe base32 text (a-z and 2-7); the contents are a secret and are not shown"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    try:
        secret = b32decode(text)
    except FormatError:  # its message may quote the text: the secret itself, or most of it
        raise ConfigError(
            f"{what} file {path} must hold Tahoe base32 text (a-z and 2-7, {len(text)} characters "
            "found); the contents are a secret and are not shown"
        ) from None
    if not secret:
        raise ConfigError(f"{what} file {path} is empty; expected base32 text of a secret")
    return secret


def _reason(exc: OSError) -> str:
    """Why a directory could not be made: a file in the way reads as what it is."""
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename is not None:
        blocker = Path(exc.filename)  # the path mkdir tried; the file in the way may be above it
        while not blocker.exists() and blocker.parent != blocker:
            blocker = blocker.parent
        return f"{blocker} is not a directory"
    return f"{exc.filename}: {exc.strerror}" if exc.filename is not None and exc.strerror else str(exc)


def load_or_create_secret(
    path: Path, explicit: bool, *, what: str = "convergence secret", place: str | None = None
) -> bytes:
    """Read the secret; when it is missing, create it (0600) — CONVENTIONS.md: "created on first use".

    A default location gets its directory made; a configured one (``explicit``) must be in a directory
    that exists (a service's state directory, say), and creating it is said on stderr: a mistyped path
    would otherwise quietly give other caps than the user's usual secret. ``what`` names the secret
    and ``place`` the setting that chose ``path`` (``data_dir /x (from UPLOADER_DATA_DIR)``), for
    messages. A location that cannot be used raises ConfigError (exit 3) saying why."""
    where = place or f"{what} file {path}"
    if path.is_symlink() and not path.exists():
        # exists() follows the link: creating would write through it or fail on os.link, and the
        # user's secret may be what the link was meant to reach (an unmounted volume, say).
        raise ConfigError(
            f"{where}: {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
            f"expected the {what} file there (make the link's target reachable, or remove the link "
            "to have a new secret created)"
        )
    if path.exists():
        return read_secret_file(path, what)
    if explicit:
        if not path.parent.is_dir():
            raise ConfigError(
                f"{what} file {path} does not exist, and neither does its directory to create it in"
            )
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"{where} cannot be used: cannot create the directory {path.parent} for the {what}: "
                f"{_reason(exc)}; expected a directory this user can create and write"
            ) from None
    secret = os.urandom(SECRET_SIZE)
    tmp = path.with_name(path.name + ".tmp")
    created = True
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(b32encode(secret) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)  # never overwrite a secret another process created meanwhile
        except FileExistsError:
            created = False
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{where} cannot be used: cannot create the {what} file {path}: {exc.strerror or exc}; "
            "expected a directory this user can write"
        ) from None
    if created and explicit:
        print(f"uploader: created a new convergence secret in {path}", file=sys.stderr, flush=True)
    return read_secret_file(path, what)


def convergence_secret(config: Config) -> bytes:
    path = convergence_secret_path(config)
    if config.convergence_secret_file is not None:
        place = f"convergence_secret_file {path} (from {config.origin('convergence_secret_file')})"
        return load_or_create_secret(path, True, place=place)
    place = (
        f"the default convergence secret file {path} ($XDG_CONFIG_HOME/uploader/convergence; "
        "set convergence_secret_file to use another)"
    )
    return load_or_create_secret(path, False, place=place)


def lease_secret(config: Config) -> bytes:
    """This client's lease secret (Tahoe: ``private/secret``), created once in the data dir."""
    place = f"data_dir {config.data_dir} (from {config.origin('data_dir')})"
    return load_or_create_secret(config.data_dir / "lease_secret", False, what="lease secret", place=place)
