"""Benchmarks, the throughput model, and build helpers (run as ``python -m tools.NAME``)."""
