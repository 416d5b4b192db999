"""The GBS storage server: a Tahoe-LAFS compatible share store behind HTTPS (gbs-http-protocol.md).

``store`` keeps shares in Tahoe's directory layout and container format (``container``), with
written-range bookkeeping (``ranges``); ``app`` is the thin aiohttp shell of endpoints;
``identity`` makes and keeps the certificate and swissnum; ``server`` runs it all on uvloop.
"""

from uploader.storage.server import ServerSettings, StorageServer, run_server
from uploader.storage.store import ShareStore, StoreSettings

__all__ = ["ServerSettings", "ShareStore", "StorageServer", "StoreSettings", "run_server"]
