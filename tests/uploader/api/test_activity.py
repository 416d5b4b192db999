"""Status bookkeeping: transfers, totals, utilisation, with a fake clock."""

from __future__ import annotations

from uploader.api.activity import RECENT, Activity, Utilisation, upload_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_transfer_lifecycle_and_totals() -> None:
    clock = Clock()
    activity = Activity(clock)
    t = activity.start("upload")
    assert t.id == "u1" and t.stage == "receiving"
    t.size = 1000
    progress = upload_progress(t, 1000)
    progress(600)
    assert (t.stage, t.bytes_done) == ("hashing", 600)
    progress(400)
    progress(250)
    assert (t.stage, t.bytes_done) == ("uploading", 250)
    clock.now += 2
    snap = activity.snapshot()["active"][0]
    assert snap["id"] == "u1" and snap["seconds"] == 2.0 and snap["mb_per_s"] == 0.0
    t.storage_index = "si"
    activity.finish(t)
    assert activity.count("upload") == 0
    assert activity.snapshot()["recent"][0]["stage"] == "done"
    assert activity.totals == {("upload", "ok"): 1} and activity.bytes["upload"] == 1000
    d = activity.start("download", 10, stage="downloading")
    activity.finish(d, "no shares")
    assert d.id == "d1" and d.stage == "failed" and activity.totals[("download", "failed")] == 1


def test_probe_gives_live_details_and_is_dropped_when_finished() -> None:
    activity = Activity(Clock())
    t = activity.start("upload")
    t.probe = lambda: {"storage_index": "abc", "servers": {"h:1": {"shares": [0], "state": "writing"}}}
    assert activity.snapshot()["active"][0]["storage_index"] == "abc"
    activity.finish(t)
    assert t.probe is None and t.servers == {"h:1": {"shares": [0], "state": "writing"}}


def test_recent_is_bounded() -> None:
    activity = Activity(Clock())
    for _ in range(RECENT + 5):
        activity.finish(activity.start("download", 1))
    assert len(activity.recent) == RECENT


def test_utilisation() -> None:
    u = Utilisation()
    u.sample(0.0, 1.0, {0: 0.0, 1: 5.0})
    assert u.network == 0.0 and u.workers == {}
    u.sample(2.0, 2.0, {0: 1.0, 1: 9.0})
    assert u.network == 0.5
    assert u.workers == {0: 0.5, 1: 1.0}  # capped at 1
