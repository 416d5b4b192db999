"""uploader.interrupts: a Ctrl-C during start-up is held, then raised at the release point."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from uploader import interrupts


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    with contextlib.suppress(KeyboardInterrupt):  # a test that failed with one still held
        interrupts.release()
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_held_raises_nothing_until_release() -> None:
    interrupts.hold()
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(1000))  # the interpreter runs Python signal handlers between bytecodes
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_release_without_a_ctrl_c_only_restores_the_handler() -> None:
    interrupts.hold()
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    interrupts.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupts.release()  # a second release (cli.main's after the command's own) does nothing


def test_a_held_ctrl_c_is_raised_once() -> None:
    interrupts.hold()
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    interrupts.hold()
    interrupts.release()  # the earlier ones are spent


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
