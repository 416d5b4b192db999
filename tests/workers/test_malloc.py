"""workers.malloc: glibc accepts the thresholds (this project runs on glibc Linux)."""

from __future__ import annotations

from workers.malloc import tune_malloc


def test_tune_malloc_applies_and_is_repeatable() -> None:
    assert tune_malloc() is True
    assert tune_malloc(mmap_threshold=1 << 20, trim_threshold=1 << 24) is True
    assert tune_malloc() is True
