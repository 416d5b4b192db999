"""The upload journal: the pure codec (round trip; corrupt, truncated or malformed → JournalError)
and the file shell (atomic, 0600, locked while owned, removed without a trace)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uploader.journal import (
    MAGIC,
    JournalDir,
    JournalError,
    JournalRecord,
    ServerState,
    SourceIdentity,
    decode,
    encode,
)
from workers.errors import UploaderError


def record(**overrides: object) -> JournalRecord:
    base = JournalRecord(
        owner="put",
        source=SourceIdentity(
            "/data/backup.tar", 10_000_000, 1_700_000_000_123_456_789, 1_700_000_001_000_000_001, 4242, 2049
        ),
        k=3,
        n=10,
        segment_size=1 << 20,
        key=bytes(range(16)),
        storage_index=bytes(range(100, 116)),
        share_size=3_400_000,
        servers=(
            ServerState("spki-a", b"\x01" * 20, (0, 3)),
            ServerState("spki-b", b"\x02" * 20, (1,)),
            ServerState("spki-c", b"\x03" * 20, ()),
        ),
        placed=True,
        segments_done=7,
        created=1_700_000_000.5,
        updated=1_700_000_010.25,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_round_trip() -> None:
    rec = record()
    assert decode(encode(rec)) == rec
    assert decode(encode(replace(rec, placed=False, servers=(), segments_done=0))) == replace(
        rec, placed=False, servers=(), segments_done=0
    )


def test_encoding_is_canonical_and_checksummed() -> None:
    data = encode(record())
    assert data.startswith(MAGIC) and data == encode(record())
    assert data.endswith(b"\n") and b"\nsha256:" in data


def test_placement_and_secrets() -> None:
    rec = record()
    assert rec.placement() == {"spki-a": (0, 3), "spki-b": (1,)}
    assert rec.secrets_by_server()["spki-c"] == b"\x03" * 20


def test_every_truncation_is_a_typed_error() -> None:
    data = encode(record())
    for cut in range(len(data)):
        with pytest.raises(JournalError):
            decode(data[:cut])


def test_any_flipped_byte_is_a_typed_error() -> None:
    data = encode(record())
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 0x20
        with pytest.raises(JournalError):
            decode(bytes(bad))


def _resealed(mutate: object) -> bytes:
    """A journal whose JSON was edited by ``mutate`` and whose checksum was then recomputed."""
    import hashlib

    data = encode(record())
    body = data[len(MAGIC) :].rpartition(b"\nsha256:")[0]
    obj = json.loads(body)
    mutate(obj)  # type: ignore[operator]
    new = json.dumps(obj).encode()
    return MAGIC + new + b"\nsha256:" + hashlib.sha256(new).hexdigest().encode() + b"\n"


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda o: o.__setitem__("key", "00" * 15), "key"),
        (lambda o: o.__setitem__("key", "zz" * 16), "key"),
        (lambda o: o.__setitem__("storage_index", 5), "storage_index"),
        (lambda o: o.__setitem__("owner", "someone"), "owner"),
        (lambda o: o.__setitem__("k", 11), "k=11"),
        (lambda o: o.__setitem__("segments_done", -1), "segments_done"),
        (lambda o: o.__setitem__("placed", "yes"), "placed"),
        (lambda o: o["source"].__setitem__("size", "big"), "size"),
        (lambda o: o["source"].__setitem__("ctime_ns", None), "ctime_ns"),
        (lambda o: o.__delitem__("source"), "source"),
        (lambda o: o["servers"][0].__setitem__("shares", [0, 10]), "shares"),
        (lambda o: o["servers"][0].__setitem__("shares", [True]), "shares"),
        (lambda o: o["servers"][1].__setitem__("upload_secret", ""), "upload_secret"),
        (lambda o: o.__setitem__("servers", {}), "servers"),
        (lambda o: o.__setitem__("extra", []), "extra"),
    ],
)
def test_malformed_fields_are_named(mutate: object, names: str) -> None:
    with pytest.raises(JournalError, match=names):
        decode(_resealed(mutate))


def test_errors_never_quote_secrets() -> None:
    bad = _resealed(lambda o: o.__setitem__("key", "ab" * 15))
    with pytest.raises(JournalError) as info:
        decode(bad)
    assert "ab" * 15 not in str(info.value)


def test_not_json_and_not_object() -> None:
    import hashlib

    for body in (b"\xff\xfe", b"[1, 2]", b"nul"):
        data = MAGIC + body + b"\nsha256:" + hashlib.sha256(body).hexdigest().encode() + b"\n"
        with pytest.raises(JournalError):
            decode(data)


def test_oversized_and_foreign_files() -> None:
    with pytest.raises(JournalError, match="at most"):
        decode(MAGIC + b" " * (1 << 21))
    with pytest.raises(JournalError, match="not an upload journal"):
        decode(b"#!/bin/sh\n")


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_journal_errors(data: bytes) -> None:
    for candidate in (data, MAGIC + data, encode(record())[: len(MAGIC) + 20] + data):
        with contextlib.suppress(JournalError):
            decode(candidate)


@settings(deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    ),
    st.sampled_from(["source", "servers", "key", "k", "owner", "extra", "placed"]),
)
def test_any_json_value_in_any_field_is_a_journal_error_or_valid(value: object, name: str) -> None:
    try:
        rec = decode(_resealed(lambda o: o.__setitem__(name, value)))
    except JournalError:
        return
    assert isinstance(rec, JournalRecord)


def test_journal_error_is_a_typed_local_error() -> None:
    assert issubclass(JournalError, UploaderError) and JournalError.exit_code == 7


# ---- the file shell ----------------------------------------------------------------------------------


def test_save_load_remove(tmp_path: Path) -> None:
    jd = JournalDir(tmp_path / "journal")
    handle = jd.create()
    assert not handle.path.exists()
    handle.save(record())
    assert stat.S_IMODE(os.stat(handle.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(jd.directory).st_mode) == 0o700
    assert handle.load() == record()
    handle.save(record(segments_done=9))  # replaced atomically: no temporary file stays
    assert handle.load().segments_done == 9
    assert sorted(p.name for p in jd.directory.iterdir()) == sorted([handle.path.name, handle.lock_path.name])
    handle.remove()
    assert list(jd.directory.iterdir()) == []


def _hold_lock(directory: str, name: str, ready: Any, done: Any) -> None:
    handle = JournalDir(Path(directory)).claim(name)
    assert handle is not None
    ready.set()
    done.wait(30)


@pytest.mark.integration  # a second process holds the lock
def test_a_journal_held_by_a_live_process_is_not_resumed(tmp_path: Path) -> None:
    jd = JournalDir(tmp_path / "journal")
    handle = jd.create()
    handle.save(record())
    name = handle.name
    handle.release()
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_lock, args=(str(jd.directory), name, ready, done))
    other.start()
    try:
        assert ready.wait(30)
        assert jd.claim(name) is None
        assert list(jd.unfinished("put")) == []
    finally:
        done.set()
        other.join(30)
    # the holder is gone (as after a SIGKILL): its lock went with it
    found = list(jd.unfinished("put"))
    assert [(h.name, r) for h, r in found] == [(name, record())]
    found[0][0].release()


def test_unfinished_filters_by_owner_and_reports_corrupt_ones(tmp_path: Path) -> None:
    jd = JournalDir(tmp_path / "journal")
    mine, theirs, broken = jd.create(), jd.create(), jd.create()
    mine.save(record())
    theirs.save(record(owner="daemon"))
    broken.save(record())
    for h in (mine, theirs, broken):
        h.release()
    broken.path.write_bytes(broken.path.read_bytes()[:-10])
    claimed = list(jd.unfinished("put"))
    found = {h.name: r for h, r in claimed}
    assert found[mine.name] == record()
    assert isinstance(found[broken.name], JournalError)
    assert theirs.name not in found
    for h, _ in claimed:
        h.release()
    daemon = {h.name: (h, r) for h, r in jd.unfinished("daemon")}
    assert daemon[theirs.name][1] == record(owner="daemon")
    assert set(daemon) == {theirs.name, broken.name}  # an unreadable one has no known owner
    for h, _ in daemon.values():
        h.release()


def test_a_lock_left_without_its_journal_is_dropped_unless_held(tmp_path: Path) -> None:
    """A process killed inside ``remove`` (journal unlinked, lock not yet) leaves a lock file that
    nothing else would ever delete; the next scan drops it — but not one a live upload holds before
    its first save."""
    jd = JournalDir(tmp_path / "journal")
    orphan = jd.create()
    orphan.release()  # as if killed: a lock file, no journal
    live = jd.create()  # held, journal not written yet
    assert list(jd.unfinished("put")) == []
    assert sorted(p.name for p in jd.directory.iterdir()) == [live.lock_path.name]
    live.remove()


def test_save_failure_is_typed(tmp_path: Path) -> None:
    jd = JournalDir(tmp_path / "journal")
    handle = jd.create()
    os.chmod(jd.directory, 0o500)
    try:
        if os.geteuid() == 0:  # root writes anyway: make the target a directory instead
            os.chmod(jd.directory, 0o700)
            handle.path.mkdir()
        with pytest.raises(JournalError, match="cannot write the upload journal"):
            handle.save(record())
    finally:
        os.chmod(jd.directory, 0o700)


def test_source_identity_changes() -> None:
    a = record().source
    assert a.changes(a) == []
    assert a.changes(replace(a, device=7)) == []  # renumbered at boot: not a change of contents
    moved = a.changes(replace(a, size=1, ctime_ns=a.ctime_ns + 1))
    assert [m.split()[0] for m in moved] == ["size", "ctime_ns"]
