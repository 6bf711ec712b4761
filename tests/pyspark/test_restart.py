"""A query stopped and started again on the same checkpointLocation continues where it left off:
batch ids go on, no input row is read twice, and the answer is the batch recomputation's."""

import datetime as dt

from support import (
    batch_recorder,
    batch_schedule,
    finish,
    load_lab,
    model_dedup,
    model_windowed_counts,
    multiset,
    read_input_batches,
    read_sink_batches,
    recorded_batches,
    stage_dir,
)

EVENT_COLS = ["event_time", "user_id", "action", "amount", "event_id"]
FIRST = ["clicks-0.json", "clicks-1.json"]
LATER = ["clicks-2.json", "clicks-3.json"]


def _run_twice(spark, tmp, start):
    """start() → availableNow over the first two files; two more files; start() again."""
    src = tmp / "clicks"
    files = stage_dir("clicks", src, files=FIRST)
    q1 = finish(start())
    assert q1.exception() is None
    p1 = sorted(q1.recentProgress, key=lambda p: p["batchId"])
    files += stage_dir("clicks", src, files=LATER)
    q2 = finish(start())
    assert q2.exception() is None
    p2 = sorted(q2.recentProgress, key=lambda p: p["batchId"])

    assert q2.id == q1.id, "the query id lives in the checkpoint"
    assert q2.runId != q1.runId
    assert [p["batchId"] for p in p1] == list(range(len(p1)))
    assert [p["batchId"] for p in p2] == list(range(len(p1), len(p1) + len(p2))), "batch ids continue"
    assert all(p["runId"] == q2.runId for p in p2)
    batches = read_input_batches(files)
    assert sum(p.numInputRows for p in p1 + p2) == sum(map(len, batches)), "an input row read twice or never"
    assert sum(p.numInputRows for p in p1) == sum(map(len, batches[:2]))
    return batch_schedule(p1 + p2, batches)


def test_windowed_counts_restart(spark, tmp):
    lab = load_lab("windowed_counts")
    rec = tmp / "rec"
    rec.mkdir()
    chk = str(tmp / "chk")

    def start():
        return lab.build_query(spark, str(tmp / "clicks"), sink=batch_recorder(rec), checkpoint=chk).start()

    schedule = _run_twice(spark, tmp, start)
    expected = model_windowed_counts(schedule, size=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=10))
    got = recorded_batches(rec)
    assert sorted(got) == list(range(len(schedule)))
    final_expected, final_got = {}, {}
    for bid in range(len(schedule)):
        rows = {(r["window_start"], r["window_end"], r["action"]): (r["cnt"], r["revenue"]) for r in got[bid]}
        assert rows == expected[bid], f"batch {bid}"
        final_expected.update(expected[bid])
        final_got.update(rows)
    assert final_got == final_expected


def test_dedup_to_parquet_restart(spark, tmp):
    """The dedup state and the Parquet sink's log survive the restart: exactly once."""
    lab = load_lab("dedup_to_parquet")
    out, chk = str(tmp / "out"), str(tmp / "chk")

    def start():
        return lab.build_query(spark, str(tmp / "clicks"), out, chk).start()

    schedule = _run_twice(spark, tmp, start)
    expected = model_dedup(schedule, delay=dt.timedelta(minutes=10))
    got = read_sink_batches(out, "parquet")
    for bid, rows in enumerate(expected):
        assert multiset(got.get(bid, []), EVENT_COLS) == multiset(rows, EVENT_COLS), f"batch {bid}"
    assert set(got) <= set(range(len(schedule)))
