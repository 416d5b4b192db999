"""Where ``get -o FILE`` puts a download (one-shot, LIT caps and through the daemon alike).

| FILE is                         | what happens                                                          |
|---------------------------------|-----------------------------------------------------------------------|
| missing, or a regular file      | the bytes go into ``.FILE.XXXX.part`` beside it, moved over FILE by   |
|                                 | ``commit`` once every check passed: a failed download leaves FILE as  |
|                                 | it was                                                                |
| a symbolic link                 | the same at the link's target (the link stays a link)                 |
| a device, FIFO or socket        | written in place, in file order (``/dev/null``, a named pipe), as     |
|                                 | ``tahoe get`` and shell redirection do: nothing to move or undo        |
| a directory                     | refused                                                               |

A replaced file keeps its permission bits (and its owner, where we may set it); one we may not
write to is refused, as writing it in place would be. A new file gets 0666 less the umask, as any
file a program makes. Replacing means a new inode: other hard links keep the old content.
Standard library only (``get`` through the daemon imports this and no network stack).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from uploader.errors import LocalIOError


class Output:
    """The opened destination of one download; ``fd`` is open until ``close``, ``commit`` or ``discard``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = Path(os.path.realpath(path)) if os.path.islink(path) else path
        try:
            st: os.stat_result | None = os.stat(self.target)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise LocalIOError(f"cannot write to {path}: {exc.strerror}") from None
        self.temp: str | None = None
        self.fd = -1
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise LocalIOError(f"cannot write to {path}: it is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            try:
                self.fd = os.open(self.target, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise LocalIOError(f"cannot open {path} for writing: {exc.strerror}") from None
            return
        if st is not None and not os.access(self.target, os.W_OK):
            raise LocalIOError(f"cannot write to {path}: permission denied (the file is read-only to you)")
        directory = self.target.parent if str(self.target.parent) else Path(".")
        try:
            self.fd, self.temp = tempfile.mkstemp(
                prefix=f".{self.target.name}.", suffix=".part", dir=directory
            )
        except OSError as exc:
            raise LocalIOError(f"cannot create a file in {directory}: {exc.strerror}") from None
        try:
            if st is None:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(self.fd, 0o666 & ~umask)  # mkstemp's file is 0600
            else:
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):  # only where we may (root, or our own group)
                        os.fchown(self.fd, st.st_uid, st.st_gid)
                os.fchmod(self.fd, stat.S_IMODE(st.st_mode))
        except OSError as exc:
            self.discard()
            raise LocalIOError(f"cannot prepare a file in {directory}: {exc.strerror}") from None

    @property
    def in_place(self) -> bool:
        """Written where it is (a device or FIFO): no temp file, nothing to move into place."""
        return self.temp is None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def commit(self) -> None:
        """Every check passed: move the temp file over FILE (no-op in place)."""
        self.close()
        if self.temp is None:
            return
        try:
            os.replace(self.temp, self.target)
        except OSError as exc:
            self.discard()
            raise LocalIOError(
                f"cannot move the download into place at {self.path}: {exc.strerror}"
            ) from None
        self.temp = None

    def discard(self) -> None:
        """The download failed: remove the temp file; FILE is as it was."""
        self.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None


__all__ = ["Output"]
