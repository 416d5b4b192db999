"""An off-by-default, bounded recorder of an upload's real events, for the utilisation timeline
(``tools/timeline.py``, docs/performance.md).

Two kinds of span, each ``(kind, who, start, end, nbytes)`` on ``time.monotonic()``:

| kind | who | recorded where |
|---|---|---|
| ``"busy"`` | worker index | ``supervisor.WorkerPool`` when a job's answer arrives: the worker was busy from ``busy_since`` |
| ``"write"`` | server ``host:port`` | ``upload.Upload._write`` when a write is acknowledged: sent at start, its bytes acked at end |

Nothing is recorded unless ``start()`` was called (one module-level check per event otherwise);
at most ``limit`` spans are kept, later ones are counted in ``dropped``. No secrets: worker
indexes, server addresses, times and byte counts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Span(NamedTuple):
    kind: str  # "busy" or "write"
    who: str  # worker index or server host:port
    start: float
    end: float
    nbytes: int = 0


@dataclass
class Recorder:
    limit: int = 200_000
    spans: list[Span] = field(default_factory=list)
    dropped: int = 0

    def add(self, span: Span) -> None:
        if len(self.spans) < self.limit:
            self.spans.append(span)
        else:
            self.dropped += 1


_recorder: Recorder | None = None


def start(limit: int = 200_000) -> Recorder:
    """Start recording (replacing any recorder); returns the new one."""
    global _recorder
    if limit < 1:
        raise ValueError(f"a trace needs room for at least one span, got limit={limit}")
    _recorder = Recorder(limit)
    return _recorder


def stop() -> Recorder | None:
    """Stop recording; returns what was recorded (None if nothing was started)."""
    global _recorder
    recorder, _recorder = _recorder, None
    return recorder


def busy(worker: int, start: float, end: float) -> None:
    if _recorder is not None:
        _recorder.add(Span("busy", str(worker), start, end))


def write(server: str, start: float, end: float, nbytes: int) -> None:
    if _recorder is not None:
        _recorder.add(Span("write", server, start, end, nbytes))
