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
    assert (t.stage, t.bytes_done) == ("encoding", 0)  # the key pass is done, no shares sent yet
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


# ---- progress, rate and ETA for the status page ---------------------------------------------------
def test_work_counts_both_passes_of_an_upload() -> None:
    from uploader.api.activity import work

    assert work("upload", "receiving", 10, 100) is None  # the client's pace, not ours
    assert work("upload", "hashing", 0, -1) is None  # size not known yet
    assert work("upload", "queued", 0, 100) == (0, 200)
    assert work("upload", "hashing", 50, 100) == (50, 200)
    assert work("upload", "encoding", 0, 100) == (100, 200)
    assert work("upload", "uploading", 50, 100) == (150, 200)
    assert work("upload", "done", 100, 100) == (200, 200)
    assert work("download", "downloading", 30, 60) == (30, 60)
    assert work("download", "done", 0, 60) == (60, 60)


def test_rate_and_eta_from_the_marks_of_the_current_stage() -> None:
    clock = Clock()
    activity = Activity(clock)
    t = activity.start("upload")
    t.size = 1000
    progress = upload_progress(t, 1000)
    progress(1000)  # the key pass is done
    progress(100)  # 100 bytes sent
    activity.tick()
    snap = activity.snapshot()["active"][0]
    assert snap["rate"] is None and snap["eta_s"] is None  # one mark is not a rate
    assert snap["progress"] == 0.55
    clock.now += 2
    progress(200)
    activity.tick()
    snap = activity.snapshot()["active"][0]
    assert snap["rate"] == 100.0  # 200 bytes in 2 s
    assert snap["eta_s"] == 7.0  # 700 bytes left at 100 bytes/s
    activity.finish(t)
    done = activity.snapshot()["recent"][0]
    assert done["progress"] == 1.0 and done["eta_s"] is None and done["rate"] == 500.0  # 1000 B in 2 s


def test_marks_of_an_earlier_stage_do_not_count_and_hashing_has_no_eta() -> None:
    clock = Clock()
    activity = Activity(clock)
    t = activity.start("upload")
    t.size = 1000
    progress = upload_progress(t, 1000)
    progress(100)
    activity.tick()
    clock.now += 1
    progress(800)
    activity.tick()
    snap = activity.snapshot()["active"][0]
    assert snap["stage"] == "hashing" and snap["rate"] == 800.0 and snap["eta_s"] is None
    progress(100)
    progress(50)  # into "uploading": the hashing marks are another stage
    clock.now += 1
    activity.tick()
    assert activity.snapshot()["active"][0]["rate"] is None


def test_a_failed_transfer_keeps_its_error_in_words_and_no_rate() -> None:
    activity = Activity(Clock())
    t = activity.start("upload", 10)
    t.name, t.tag = "photo.jpg", "page-0123456789"
    activity.finish(t, "servers of happiness not met: 3 servers would hold distinct shares, 7 needed")
    snap = activity.snapshot()["recent"][0]
    assert snap["name"] == "photo.jpg" and snap["tag"] == "page-0123456789"
    assert snap["stage"] == "failed" and snap["rate"] is None and snap["progress"] is None
    assert snap["error"].startswith("servers of happiness not met")
