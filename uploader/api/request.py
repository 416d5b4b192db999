"""The web API's request decisions, pure: which route a request is, which cap a path names, what a
Range header asks for, whether a multipart body can be read, and which status an error gets.

Tahoe-LAFS web API, immutable files only (docs/frontends/webapi.rst in tahoe-lafs 1.20):

| request                   | answer                                                        |
|---------------------------|---------------------------------------------------------------|
| ``PUT /uri``              | body = the file; 200, the cap as text/plain                   |
| ``POST /uri?t=upload``    | multipart/form-data, field ``file``; 200, the cap             |
| ``GET /uri/CAP``          | the file (``Range: bytes=…`` → 206, unsatisfiable → 416)      |
| ``GET /uri/CAP?t=json``   | ``["filenode", {ro_uri, verify_uri, size, mutable, format}]`` |
| ``GET /status``           | JSON: transfers, workers, the network process                 |
| ``GET /status/history``   | JSON: the chart's samples (``?since=SEQ`` for newer ones)     |
| ``GET /``                 | the status page (HTML), its files under ``/static/NAME``      |
| ``GET /metrics``          | Prometheus text format                                        |

Nothing here touches sockets or the event loop; ``uploader.api.app`` only moves bytes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from uploader.chk.caps import CapError, ChkCap, LitCap, parse_read_cap
from workers.errors import UploaderError


class ApiError(Exception):
    """A request we refuse: ``status`` is the HTTP status, ``str(exc)`` a sentence for the client."""

    def __init__(
        self, status: int, message: str, allow: tuple[str, ...] = (), size: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow  # for 405: the methods the path does accept
        self.size = size  # for 416: the file's size (``Content-Range: bytes */size``, RFC 9110)


class Route(enum.Enum):
    UPLOAD_PUT = "upload-put"
    UPLOAD_FORM = "upload-form"
    DOWNLOAD = "download"
    FILENODE_JSON = "filenode-json"
    STATUS = "status"
    HISTORY = "history"
    METRICS = "metrics"
    PAGE = "page"
    STATIC = "static"


@dataclass(frozen=True)
class Request:
    route: Route
    cap: ChkCap | LitCap | None = None
    name: str | None = None  # the file under /static/
    since: int = 0  # /status/history: samples after this sequence number


# The methods each path accepts; anything else is 405 with an Allow header.
_ALLOWED = {
    "uri": ("PUT", "POST"),
    "uri/CAP": ("GET", "HEAD"),
    "status": ("GET", "HEAD"),
    "metrics": ("GET", "HEAD"),
    "status/history": ("GET", "HEAD"),
    "": ("GET", "HEAD"),
    "static": ("GET", "HEAD"),
}
# The page's own files: a plain name with one of the extensions we serve (no paths, no dot files).
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:html|js|css|svg)")
_IMMUTABLE_FORMATS = ("", "chk")


def route(method: str, path: str, query: Mapping[str, str]) -> Request:
    """Classify a request; raise ApiError (404, 405, 400) for one we cannot serve.

    ``path`` is the raw (still percent-encoded) path: ``tahoe put``/``tahoe get`` quote the cap's
    colons as ``%3A``."""
    parts = [p for p in path.split("/") if p]
    if parts == ["uri"]:
        _check_method(method, "uri", "/uri")
        _check_immutable(query)
        if method == "PUT":
            if query.get("t", "") not in ("", "upload"):
                raise ApiError(400, f"PUT /uri takes no t= other than upload, got t={query['t']!r}")
            return Request(Route.UPLOAD_PUT)
        if query.get("t") != "upload":
            raise ApiError(400, "POST /uri needs ?t=upload (a multipart form with a 'file' field)")
        return Request(Route.UPLOAD_FORM)
    if len(parts) == 2 and parts[0] == "uri":
        _check_method(method, "uri/CAP", "/uri/CAP")
        cap = parse_cap_segment(parts[1])
        t = query.get("t", "")
        if t == "json":
            return Request(Route.FILENODE_JSON, cap)
        if t != "":
            raise ApiError(400, f"GET /uri/CAP supports t=json or no t, got t={t!r}")
        return Request(Route.DOWNLOAD, cap)
    if len(parts) > 2 and parts[0] == "uri":
        raise ApiError(400, "paths below a file cap are not supported: immutable files have no children")
    if parts in (["status"], ["metrics"]):
        _check_method(method, parts[0], "/" + parts[0])
        return Request(Route.STATUS if parts[0] == "status" else Route.METRICS)
    if parts == ["status", "history"]:
        _check_method(method, "status/history", "/status/history")
        since = query.get("since", "0")
        if not (since.isascii() and since.isdigit()) or len(since) > 18:
            raise ApiError(400, f"since= takes a sample sequence number (0 or more), got {since[:32]!r}")
        return Request(Route.HISTORY, since=int(since))
    if not parts:
        _check_method(method, "", "/")
        return Request(Route.PAGE)
    if len(parts) == 2 and parts[0] == "static":
        _check_method(method, "static", "/static/NAME")
        if _STATIC_NAME.fullmatch(parts[1]) is None:
            raise ApiError(404, f"no such page file: {_clip(parts[1])}")
        return Request(Route.STATIC, name=parts[1])
    raise ApiError(
        404,
        "no such resource; this API serves /, /uri, /uri/CAP, /status, /status/history and /metrics, "
        f"not {_clip(path)}",
    )


def _check_method(method: str, key: str, shown: str) -> None:
    allowed = _ALLOWED[key]
    if method not in allowed:
        raise ApiError(405, f"{shown} accepts {', '.join(allowed)}, not {method}", allow=allowed)


def _check_immutable(query: Mapping[str, str]) -> None:
    if query.get("mutable", "false").lower() not in ("false", "0", ""):
        raise ApiError(400, "only immutable (CHK) uploads are supported; mutable=true is not")
    fmt = query.get("format", "").lower()
    if fmt not in _IMMUTABLE_FORMATS:
        raise ApiError(400, f"only immutable CHK uploads are supported, not format={query['format']!r}")


def parse_cap_segment(segment: str) -> ChkCap | LitCap:
    """The read cap a path segment names (percent-decoded first); 400 for anything else.

    The message never repeats the segment: it may be a slightly damaged secret."""
    text = unquote(segment)
    try:
        return parse_read_cap(text)
    except CapError as exc:
        raise ApiError(400, f"bad cap in the path: {exc}") from None


def _clip(path: str) -> str:
    return repr(path if len(path) <= 64 else path[:61] + "...")


_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")  # ASCII digits (\d takes any Unicode digit)


@dataclass(frozen=True)
class ByteRange:
    offset: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.offset}-{self.offset + self.length - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One byte range from a ``Range`` header (RFC 9110 §14.2), or None for the whole file.

    Several ranges, or a unit other than bytes, are ignored (the whole file is sent, as the RFC
    allows); a range that starts past the end raises ApiError 416."""
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or (not m[1] and not m[2]):
        return None  # not a single bytes range we understand: serve the whole file
    if len(m[1]) > 20:  # a first byte beyond any file size
        raise ApiError(416, f"range {header[:48]!r} starts beyond any file size", size=size)
    # a last byte or suffix past the end means "to the end" / "the whole file" (RFC 9110 §14.1.2);
    # past 20 digits it is only compared, never converted (int() refuses 4300+ digits)
    far = 2**64
    if not m[1]:  # suffix: the last N bytes
        suffix = int(m[2]) if len(m[2]) <= 20 else far
        if suffix == 0 or size == 0:
            raise ApiError(
                416, f"an empty suffix range cannot be satisfied for a {size}-byte file", size=size
            )
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = int(m[1])
    end = (int(m[2]) if len(m[2]) <= 20 else far) if m[2] else max(start, size - 1)
    if end < start:
        return None  # syntactically invalid: ignore the header (RFC 9110)
    if start >= size:
        raise ApiError(416, f"range starts at byte {start} but the file has {size} bytes", size=size)
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)


def multipart_boundary(content_type: str | None) -> str:
    """The boundary of a ``multipart/form-data`` body; 400 (415 for another type) otherwise."""
    if not content_type:
        raise ApiError(400, "POST /uri?t=upload needs a multipart/form-data body with a 'file' field")
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise ApiError(415, f"POST /uri?t=upload takes multipart/form-data, not {kind.strip()[:64]!r}")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            value = value.strip().strip('"')
            if 1 <= len(value) <= 70:  # RFC 2046 §5.1.1
                return value
            raise ApiError(400, "the multipart boundary must be 1 to 70 characters long")
    raise ApiError(400, "the multipart/form-data Content-Type has no boundary parameter")


def upload_length(content_length: str | None, chunked: bool, max_bytes: int) -> int | None:
    """The declared body size of an upload (None when chunked); 411 / 400 / 413 when unusable."""
    if content_length is None:
        if chunked:
            return None
        raise ApiError(411, "an upload needs a Content-Length or chunked transfer encoding")
    if not (content_length.isascii() and content_length.isdigit()) or len(content_length) > 20:
        raise ApiError(400, f"Content-Length must be a whole number of bytes, got {content_length[:32]!r}")
    size = int(content_length)
    if size > max_bytes:
        raise ApiError(413, f"the body is {size} bytes; this daemon accepts at most {max_bytes}")
    return size


# The page names each of its uploads with a random id of its own, to follow that one in /status.
TAG_HEADER = "X-Uploader-Tag"
_TAG = re.compile(r"[A-Za-z0-9_-]{8,64}")


def upload_tag(header: str | None) -> str | None:
    """The page's id for an upload (8 to 64 letters, digits, ``-`` or ``_``); 400 for anything else."""
    if header is None:
        return None
    if _TAG.fullmatch(header) is None:
        raise ApiError(400, f"{TAG_HEADER} takes 8 to 64 letters, digits, '-' or '_', got {header[:72]!r}")
    return header


def display_name(filename: str | None, limit: int = 120) -> str | None:
    """A form upload's file name as shown to everyone on the status page: the last path component
    (browsers of old sent whole paths), control characters dropped, at most ``limit`` characters."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if c.isprintable()).strip()
    if not clean:
        return None
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def filenode_json(cap: ChkCap | LitCap) -> list[Any]:
    """What Tahoe answers to ``GET /uri/CAP?t=json`` for an immutable file."""
    info: dict[str, Any] = {
        "ro_uri": str(cap),
        "size": cap.size,
        "mutable": False,
        "format": "CHK" if isinstance(cap, ChkCap) else "LIT",
    }
    if isinstance(cap, ChkCap):
        info["verify_uri"] = str(cap.verify_cap)
    return ["filenode", info]


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message for an error escaping a handler (our own errors carry theirs)."""
    if isinstance(exc, ApiError):
        return exc.status, str(exc)
    if isinstance(exc, UploaderError):
        return exc.http_status, str(exc)
    return 500, f"internal error ({type(exc).__name__}); the daemon's log has the details"


# An error answer carries the exit code `put`/`get` should exit with (CONVENTIONS.md) in this header.
EXIT_CODE_HEADER = "X-Uploader-Exit-Code"
SHARE_BYTES_HEADER = "X-Uploader-Share-Bytes-Sent"  # on a successful PUT: what the upload sent


def exit_code_for(status: int, header: str | None) -> int:
    """The exit code for a daemon's error answer: its header when present and sane, else by status."""
    if header is not None and header.isascii() and header.isdigit() and 1 <= int(header) <= 125:
        return int(header)
    return {400: 2, 404: 6, 503: 4, 502: 1}.get(status, 1)


__all__ = [
    "EXIT_CODE_HEADER",
    "SHARE_BYTES_HEADER",
    "TAG_HEADER",
    "ApiError",
    "ByteRange",
    "Request",
    "Route",
    "display_name",
    "error_status",
    "exit_code_for",
    "filenode_json",
    "multipart_boundary",
    "parse_cap_segment",
    "parse_range",
    "route",
    "upload_length",
    "upload_tag",
]
