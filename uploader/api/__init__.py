"""The daemon's web API: Tahoe-compatible ``/uri`` for immutable files, plus ``/status`` and ``/metrics``.

``request`` decides (pure), ``app`` moves bytes (aiohttp), ``activity`` and ``metrics`` report.
"""

from uploader.api.app import ApiState, make_app
from uploader.api.request import ApiError, Route, route

__all__ = ["ApiError", "ApiState", "Route", "make_app", "route"]
