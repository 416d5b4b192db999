"""Text that came from the file system, made safe to print and to encode as UTF-8.

File names are bytes; Python decodes the ones that are not UTF-8 with ``surrogateescape``, so a
path ``str`` can hold lone surrogates (byte 0xFF becomes U+DCFF). Such a string opens the file
fine but cannot be encoded as UTF-8: msgpack, ``print`` to a UTF-8 stdout and strict JSON readers
all refuse it. Paths travel between processes as bytes (``workers.messages``); text meant for
people (messages, ``--json`` output) shows each escaped byte as ``\\xNN`` instead.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that ``surrogateescape`` carried: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every lone surrogate written out (``bad\\udcffname`` -> ``bad\\xffname``): valid
    UTF-8 whatever the file names in it were. Text without surrogates comes back unchanged."""
    return _SURROGATE.sub(_shown, text)
