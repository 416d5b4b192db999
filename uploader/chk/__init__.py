"""The network side of the CHK format, pure: UEB, share layout, trees, caps, lease secrets."""

from uploader.chk.caps import Cap, CapError, ChkCap, LitCap, VerifyCap, parse_cap, parse_read_cap
from uploader.chk.layout import ShareLayout, parse_share
from uploader.chk.trees import FileTrailer, HashCollector, expected_layout
from uploader.chk.ueb import UEB, parse_ueb, ueb_hash

__all__ = [
    "UEB",
    "Cap",
    "CapError",
    "ChkCap",
    "FileTrailer",
    "HashCollector",
    "LitCap",
    "ShareLayout",
    "VerifyCap",
    "expected_layout",
    "parse_cap",
    "parse_read_cap",
    "parse_share",
    "parse_ueb",
    "ueb_hash",
]
