"""SIGHUP: which settings of a re-read configuration the daemon applies live, and which need a restart.

Pure: ``plan(old, new)`` compares two Configs. Live: ``workers`` (the pool resizes without failing
jobs), ``pipeline_depth``, ``link_mbit_per_s`` and ``window`` (new uploads), ``servers`` (new transfers), ``log_level``.
Everything else (the listening address, encoding parameters, secrets, the data dir, timeouts)
is reported as needing a restart and keeps its old value until then.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from uploader.config import Config

LIVE = ("workers", "pipeline_depth", "link_mbit_per_s", "window", "servers", "log_level")
_IGNORED = ("source", "origins")  # where the config and its settings came from are not settings


@dataclass(frozen=True)
class ReloadPlan:
    live: tuple[str, ...]  # settings that changed and are applied now
    restart: tuple[str, ...]  # settings that changed but need a restart
    config: Config  # the config to run with: old values for the restart-only settings

    def describe(self) -> str:
        parts = [f"applied {', '.join(self.live)}" if self.live else "no live setting changed"]
        if self.restart:
            parts.append(f"needs a restart to change {', '.join(self.restart)}")
        return "; ".join(parts)


def plan(old: Config, new: Config) -> ReloadPlan:
    changed = [
        f.name
        for f in fields(Config)
        if f.name not in _IGNORED and getattr(old, f.name) != getattr(new, f.name)
    ]
    live = tuple(name for name in changed if name in LIVE)
    restart = tuple(name for name in changed if name not in LIVE)
    keep = {name: getattr(old, name) for name in restart}
    origins = {k: v for k, v in new.origins.items() if k not in restart}
    origins.update((k, v) for k, v in old.origins.items() if k in restart)
    return ReloadPlan(live, restart, replace(new, **keep, origins=origins))


__all__ = ["LIVE", "ReloadPlan", "plan"]
