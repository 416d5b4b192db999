"""The status page's files: ``GET /`` is ``static/index.html``, ``GET /static/NAME`` the rest.

All of it is ours (HTML, CSS and JavaScript written for this project, no external network, no build
step), installed as package data beside this module. The files are small: they are read once, when
the API starts, and answered from memory with an ETag, so a reload of the page costs a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from uploader.api.request import ApiError
from uploader.errors import LocalIOError

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# The page loads nothing from elsewhere, and no other site may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    etag: str


class Assets:
    """The page's files, read once from the package (or from ``files`` in tests)."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        if files is None:
            files = _packaged()
        self._assets: dict[str, Asset] = {}
        for name, body in files.items():
            suffix = name[name.rfind(".") :]
            if suffix not in CONTENT_TYPES:
                continue
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            self._assets[name] = Asset(name, body, CONTENT_TYPES[suffix], etag)
        if INDEX not in self._assets:
            raise LocalIOError(
                f"the status page's {INDEX} is not installed beside {__name__} (reinstall the package)"
            )

    @property
    def names(self) -> list[str]:
        return sorted(self._assets)

    def get(self, name: str | None) -> Asset:
        """The file ``name`` (the page itself for None); 404 for a file the page does not have."""
        asset = self._assets.get(name or INDEX)
        if asset is None:
            raise ApiError(404, f"the status page has no file {name!r}; it has {', '.join(self.names)}")
        return asset


def not_modified(asset: Asset, if_none_match: str | None) -> bool:
    """Whether the client's ``If-None-Match`` already names this version of the file."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return asset.etag in tags or "*" in tags


def _packaged() -> dict[str, bytes]:
    folder = resources.files("uploader.api").joinpath("static")
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


__all__ = ["CONTENT_TYPES", "INDEX", "SECURITY_HEADERS", "Asset", "Assets", "not_modified"]
