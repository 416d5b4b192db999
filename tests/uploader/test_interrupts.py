"""uploader.interrupts: a Ctrl-C during an import is held, then raised at the release point; one
anywhere else is raised at once."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uploader import interrupts


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    with contextlib.suppress(KeyboardInterrupt):  # a test that failed with one still held
        interrupts.release()
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def interrupted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module whose import is hit by a Ctrl-C halfway through its class definitions."""
    name = f"ctrl_c_{os.getpid()}_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(
        "import dataclasses, os, signal\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Before:\n    x: int = 1\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class After:\n    y: int = dataclasses.field(default=2)\n"
        "DONE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_ctrl_c_during_an_import_is_raised_at_release(interrupted_module: str) -> None:
    interrupts.hold()
    module = importlib.import_module(interrupted_module)
    assert module.DONE and module.After().y == 2  # the import ran to its end
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_the_hold_the_import_is_broken(interrupted_module: str) -> None:
    """What the hold is for: the same import, not held, is cut where the signal lands."""
    with pytest.raises(KeyboardInterrupt):
        importlib.import_module(interrupted_module)
    assert interrupted_module not in sys.modules


def test_a_ctrl_c_outside_an_import_is_raised_at_once() -> None:
    """A command blocked in a read before its release point (a configuration FIFO) stays interruptible."""
    interrupts.hold()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the interpreter runs Python signal handlers between bytecodes
    interrupts.release()  # nothing more was held


def test_release_without_a_ctrl_c_only_restores_the_handler() -> None:
    interrupts.hold()
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupts.release()  # a second release (cli.main's after the command's own) does nothing


def test_a_held_ctrl_c_is_raised_once(interrupted_module: str) -> None:
    interrupts.hold()
    importlib.import_module(interrupted_module)
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    interrupts.hold()
    interrupts.release()  # the earlier one is spent


def test_release_without_hold_touches_nothing() -> None:
    marker = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupts.release()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, marker)


def test_an_ignored_sigint_stays_ignored() -> None:
    """A shell's background job starts with SIGINT ignored: holding must not make it interruptible."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.hold()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
