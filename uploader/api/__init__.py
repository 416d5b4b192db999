"""The daemon's web API: Tahoe-compatible ``/uri`` for immutable files, plus ``/status`` and ``/metrics``.

``request`` decides (pure), ``app`` moves bytes (aiohttp), ``activity`` and ``metrics`` report.
The package itself imports nothing: clients of the API (``daemonclient``, the CLI) import
``request`` alone, without paying for the aiohttp server at start-up.
"""
