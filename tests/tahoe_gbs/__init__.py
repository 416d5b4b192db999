"""Drivers that run inside the stock Tahoe-LAFS venv to exercise our GBS storage server."""
