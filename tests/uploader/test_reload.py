"""SIGHUP's plan: live settings applied, the rest kept until a restart."""

from __future__ import annotations

from dataclasses import replace

from uploader.config import Config, ServerEntry
from uploader.reload import plan


def test_live_and_restart_settings() -> None:
    old = Config(workers=2, window=16, api_listen="127.0.0.1:3456", shares_needed=3)
    new = replace(
        old,
        workers=4,
        window=8,
        log_level="debug",
        servers=(ServerEntry("pb://x"),),
        api_listen="127.0.0.1:9999",
        shares_needed=2,
    )
    p = plan(old, new)
    assert set(p.live) == {"workers", "window", "log_level", "servers"}
    assert set(p.restart) == {"api_listen", "shares_needed"}
    assert p.config.workers == 4 and p.config.window == 8
    assert p.config.api_listen == "127.0.0.1:3456" and p.config.shares_needed == 3
    assert "restart" in p.describe() and "api_listen" in p.describe()


def test_nothing_changed() -> None:
    c = Config(workers=2)
    p = plan(c, replace(c, source=None))
    assert p.live == () and p.restart == ()
    assert p.describe() == "no live setting changed"
