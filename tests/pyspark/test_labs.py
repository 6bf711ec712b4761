"""One test per lab of examples/pyspark: the lab's own query code runs over a copy of its input
files (one file per batch, in name order) and its answer is checked against a batch
recomputation in plain Python over the same files."""

import datetime as dt
from collections import Counter

import pytest

from support import (
    batch_recorder,
    batch_schedule,
    data_batches,
    finish,
    load_lab,
    model_dedup,
    model_windowed_counts,
    multiset,
    read_batch_output_dir,
    read_input_batches,
    read_jsonl,
    read_sink_batches,
    recorded_batches,
    run_with_timeout,
    stage_dir,
    wait_for,
    watermarks,
    DATA,
)

EVENT_COLS = ["event_time", "user_id", "action", "amount", "event_id"]
MIN = dt.timedelta(minutes=1)


def memory_rows(spark, name):
    return spark.sql(f"select * from {name}").collect()


def check_progress_per_file(query, file_batches, out_rows_per_batch=None):
    """Batch ids 0..n-1, one input file per batch (None: the input row counts are not checked),
    and (optionally) the sink's row counts."""
    progress = sorted(query.recentProgress, key=lambda p: p["batchId"])
    assert [p["batchId"] for p in progress] == list(range(len(progress)))
    data = data_batches(progress)
    if file_batches is not None:
        assert [p.numInputRows for p in data] == [len(b) for b in file_batches]
    for p in progress:
        assert p["id"] == query.id and p["runId"] == query.runId and p["name"] == query.name
        assert sum(s["numInputRows"] for s in p["sources"]) == p.numInputRows
    if out_rows_per_batch is not None:
        assert [p["sink"]["numOutputRows"] for p in data] == out_rows_per_batch
    return progress


# ---------------------------------------------------------------------------------------------


def test_quickstart(spark, tmp):
    lab = load_lab("quickstart")
    files = stage_dir("events", tmp / "events")
    q = lab.build_query(spark, str(tmp / "events"), sink="memory").start()
    finish(q)
    assert q.exception() is None

    batches = read_input_batches(files)
    buys = [[r for r in b if r["action"] == "buy"] for b in batches]
    expected = Counter(
        (r["event_time"], r["user_id"], r["amount"], round(r["amount"] * 1.1, 9)) for b in buys for r in b
    )
    cols = ["event_time", "user_id", "amount", "amount_with_tax"]
    assert multiset(memory_rows(spark, "buys"), cols) == expected
    # Not the input rows per batch: Spark pushes the filter into the JSON reader and counts the
    # rows that pass it as numInputRows (3, 4, 3 here, not 8, 8, 8).
    check_progress_per_file(q, None, [len(b) for b in buys])


def test_rate_to_console(spark, tmp):
    lab = load_lab("rate_to_console")
    rps = 20
    q = lab.build_query(spark, rows_per_second=rps, sink="memory", trigger={"processingTime": "200 milliseconds"}).start()
    try:
        wait_for(lambda: sum(p.numInputRows for p in q.recentProgress) >= 30, 60, "30 rate rows")
    finally:
        q.stop()
    assert not q.isActive
    rows = sorted(memory_rows(spark, "ticks"), key=lambda r: r["value"])
    values = [r["value"] for r in rows]
    # Every value once, from 0, no gaps; the parity column; Spark's timestamp formula: value v
    # is stamped start + v * (1000 / rowsPerSecond) ms.
    assert values == list(range(len(values)))
    assert len(values) == sum(p.numInputRows for p in q.recentProgress)
    assert all(r["even"] == (r["value"] % 2 == 0) for r in rows)
    t0 = rows[0]["timestamp"]
    for r in rows:
        assert r["timestamp"] - t0 == dt.timedelta(milliseconds=r["value"] * 1000 // rps), r


def test_json_to_console(spark, tmp):
    lab = load_lab("json_to_console")
    src = tmp / "events"
    first = stage_dir("events", src, files=["events-0.json", "events-1.json"])
    q = lab.build_query(spark, str(src), sink="memory", trigger={"processingTime": "100 milliseconds"}).start()
    run_with_timeout(q.processAllAvailable, 120, "processAllAvailable")
    assert multiset(memory_rows(spark, "events"), EVENT_COLS) == multiset(
        [r for b in read_input_batches(first) for r in b], EVENT_COLS
    )
    # The directory is watched: a file dropped in later is the next batch.
    later = stage_dir("events", src, files=["events-2.json"])
    run_with_timeout(q.processAllAvailable, 120, "processAllAvailable")
    all_batches = read_input_batches(first + later)
    assert multiset(memory_rows(spark, "events"), EVENT_COLS) == multiset(
        [r for b in all_batches for r in b], EVENT_COLS
    )
    assert q.isActive
    q.stop()
    check_progress_per_file(q, all_batches, [len(b) for b in all_batches])


def test_windowed_counts_update_mode(spark, tmp):
    """Every batch emits exactly the groups whose count changed in it, with their running
    count and revenue; the last update of a group is the batch recomputation's answer."""
    lab = load_lab("windowed_counts")
    files = stage_dir("clicks", tmp / "clicks")
    rec = tmp / "batches"
    rec.mkdir()
    q = lab.build_query(spark, str(tmp / "clicks"), sink=batch_recorder(rec)).start()
    finish(q)
    assert q.exception() is None

    schedule = batch_schedule(q.recentProgress, read_input_batches(files))
    expected = model_windowed_counts(schedule, size=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=10))
    got = recorded_batches(rec)
    assert sorted(got) == list(range(len(schedule)))
    final_expected, final_got = {}, {}
    for bid in range(len(schedule)):
        rows = {(r["window_start"], r["window_end"], r["action"]): (r["cnt"], r["revenue"]) for r in got[bid]}
        assert len(rows) == len(got[bid]), f"batch {bid}: a group twice: {got[bid]}"
        assert rows == expected[bid], f"batch {bid}"
        final_expected.update(expected[bid])
        final_got.update(rows)
    assert final_got == final_expected
    # The data has late events; the recomputation dropped some rows only if Spark's rule says so.
    assert sum(c for c, _ in final_expected.values()) <= sum(len(b) for b in schedule)


def test_windowed_counts_memory_sink(spark, tmp):
    """The lab as written (update mode) into a memory table: per group, the last (largest: counts
    only grow) update equals the batch recomputation."""
    lab = load_lab("windowed_counts")
    files = stage_dir("clicks", tmp / "clicks")
    q = lab.build_query(spark, str(tmp / "clicks"), sink="memory").start()
    finish(q)
    schedule = batch_schedule(q.recentProgress, read_input_batches(files))
    expected = {}
    for changed in model_windowed_counts(schedule, size=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=10)):
        expected.update(changed)
    final = {}
    rows = memory_rows(spark, "windowed_counts")
    for r in rows:
        g = (r["window_start"], r["window_end"], r["action"])
        final[g] = max(final.get(g, (0, 0)), (r["cnt"], r["revenue"]))
    assert final == expected
    progress = data_batches(q.recentProgress)
    assert sum(p["sink"]["numOutputRows"] for p in progress) == len(rows)
    # Spark's progress keys for a stateful query
    last = q.lastProgress
    assert last["stateOperators"] and "numRowsTotal" in last["stateOperators"][0]
    assert "watermark" in last["eventTime"]


def test_dedup_to_parquet(spark, tmp):
    lab = load_lab("dedup_to_parquet")
    files = stage_dir("clicks", tmp / "clicks")
    out, chk = tmp / "out", tmp / "chk"
    q = lab.build_query(spark, str(tmp / "clicks"), str(out), str(chk)).start()
    finish(q)
    assert q.exception() is None

    schedule = batch_schedule(q.recentProgress, read_input_batches(files))
    expected = model_dedup(schedule, delay=dt.timedelta(minutes=10))
    got = read_sink_batches(out, "parquet")
    for bid, rows in enumerate(expected):
        assert multiset(got.get(bid, []), EVENT_COLS) == multiset(rows, EVENT_COLS), f"batch {bid}"
    assert set(got) <= set(range(len(schedule)))
    all_rows = [r for rows in got.values() for r in rows]
    keys = Counter((r["event_id"], r["event_time"]) for r in all_rows)
    assert max(keys.values()) == 1, "a duplicate was written"
    # Every distinct (event_id, event_time) of the input is written once, except late ones.
    distinct = {(r["event_id"], r["event_time"]) for b in schedule for r in b}
    assert set(keys) == {(r["event_id"], r["event_time"]) for rows in expected for r in rows} <= distinct
    check_progress_per_file(q, [b for b in schedule if b])


def _action_counts(rows):
    acc = {}
    for r in rows:
        n, s = acc.get(r["action"], (0, 0))
        acc[r["action"]] = (n + 1, s + r["amount"])
    return acc


def test_complete_counts(spark, tmp):
    lab = load_lab("complete_counts")
    files = stage_dir("clicks", tmp / "clicks")
    batches = read_input_batches(files)
    q = lab.build_query(spark, str(tmp / "clicks"), sink="memory").start()
    finish(q)
    assert q.exception() is None
    rows = memory_rows(spark, "action_counts")
    all_rows = [r for b in batches for r in b]
    assert {r["action"]: (r["events"], r["revenue"]) for r in rows} == _action_counts(all_rows)
    assert len(rows) == len(_action_counts(all_rows))
    events = [r["events"] for r in rows]
    assert events == sorted(events, reverse=True), "complete mode keeps the ORDER BY"
    # maxFilesPerTrigger = 2: two files per batch, the whole result every batch
    progress = data_batches(q.recentProgress)
    assert [p.numInputRows for p in progress] == [
        len(batches[0]) + len(batches[1]), len(batches[2]) + len(batches[3])
    ]
    assert [p["sink"]["numOutputRows"] for p in progress] == [
        len(_action_counts(batches[0] + batches[1])), len(_action_counts(all_rows))
    ]


def test_complete_counts_every_batch(spark, tmp):
    """Complete mode hands the whole, sorted result to every batch."""
    lab = load_lab("complete_counts")
    files = stage_dir("clicks", tmp / "clicks")
    batches = read_input_batches(files)
    rec = tmp / "batches"
    rec.mkdir()
    q = lab.build_query(spark, str(tmp / "clicks"), sink=batch_recorder(rec)).start()
    finish(q)
    got = recorded_batches(rec)
    assert sorted(got) == [0, 1]
    for bid, upto in [(0, batches[0] + batches[1]), (1, [r for b in batches for r in b])]:
        assert {r["action"]: (r["events"], r["revenue"]) for r in got[bid]} == _action_counts(upto)
        events = [r["events"] for r in got[bid]]
        assert events == sorted(events, reverse=True)


def test_enrich_join(spark, tmp):
    lab = load_lab("enrich_join")
    files = stage_dir("events", tmp / "events")
    stage_dir("users", tmp / "users")
    users = {u["user_id"]: u for u in read_jsonl(DATA / "users" / "users.json")}
    q = lab.build_query(spark, str(tmp / "events"), str(tmp / "users"), sink="memory").start()
    finish(q)
    assert q.exception() is None

    batches = read_input_batches(files)
    expected = Counter()
    for b in batches:
        for e in b:
            u = users.get(e["user_id"], {})
            expected[(e["event_time"], e["user_id"], e["action"], e["amount"], u.get("country"), u.get("tier"))] += 1
    assert any(e["user_id"] not in users for b in batches for e in b), "the data has an unknown user"
    cols = ["event_time", "user_id", "action", "amount", "country", "tier"]
    assert multiset(memory_rows(spark, "enriched_events"), cols) == expected
    check_progress_per_file(q, batches, [len(b) for b in batches])


def test_impressions_clicks(spark, tmp):
    lab = load_lab("impressions_clicks")
    imp_files = stage_dir("impressions", tmp / "impressions")
    clk_files = stage_dir("ad_clicks", tmp / "ad_clicks")
    q = lab.build_query(spark, str(tmp / "impressions"), str(tmp / "ad_clicks"), sink="memory").start()
    finish(q, 300)
    assert q.exception() is None

    imps = read_input_batches(imp_files, ("impression_time",))
    clks = read_input_batches(clk_files, ("click_time",))
    hour = dt.timedelta(hours=1)
    # No row is late: every batch's rows are newer than what the previous batches' watermark
    # (min over both streams) could drop, so the answer does not depend on the batch schedule.
    imp_wm = watermarks(imps, dt.timedelta(minutes=10), "impression_time")
    clk_wm = watermarks(clks, dt.timedelta(minutes=20), "click_time")
    for k in range(1, len(imps)):
        wm = min(w for w in (imp_wm[k], clk_wm[k]) if w is not None)
        assert all(r["impression_time"] > wm for r in imps[k]) and all(r["click_time"] > wm for r in clks[k])
    expected = Counter()
    all_clicks = [c for b in clks for c in b]
    final_wm = min(imp_wm[-1], clk_wm[-1])
    for i in (i for b in imps for i in b):
        matches = [
            c for c in all_clicks
            if c["ad_id"] == i["ad_id"] and i["impression_time"] <= c["click_time"] <= i["impression_time"] + hour
        ]
        for c in matches:
            expected[(i["impression_id"], i["ad_id"], i["impression_time"], c["click_time"])] += 1
        if not matches:
            # Emitted with NULLs once the watermark passed the impression's hour (the trailing
            # no-data batch of availableNow moves it); no impression sits near that boundary.
            assert abs(i["impression_time"] + hour - final_wm) > MIN
            if i["impression_time"] + hour < final_wm:
                expected[(i["impression_id"], i["ad_id"], i["impression_time"], None)] += 1
    cols = ["impression_id", "ad_id", "impression_time", "click_time"]
    got = multiset(memory_rows(spark, "impressions_clicks"), cols)
    assert got == expected
    assert any(k[3] is None for k in expected) and any(k[3] is not None for k in expected)
    assert sum(p.numInputRows for p in q.recentProgress) == sum(map(len, imps)) + sum(map(len, clks))


def test_foreach_batch_two_sinks(spark, tmp):
    lab = load_lab("foreach_batch_two_sinks")
    files = stage_dir("events", tmp / "events")
    pq_out, js_out = tmp / "parquet", tmp / "json"
    q = lab.build_query(spark, str(tmp / "events"), str(pq_out), str(js_out), str(tmp / "chk")).start()
    finish(q)
    assert q.exception() is None
    batches = read_input_batches(files)
    expected = Counter()
    for bid, b in enumerate(batches):
        for r in b:
            expected[tuple(r[c] for c in EVENT_COLS) + (bid,)] += 1
    cols = EVENT_COLS + ["batch_id"]
    assert multiset(read_batch_output_dir(pq_out, "parquet"), cols) == expected
    assert multiset(read_batch_output_dir(js_out, "json"), cols) == expected
    # Batch ids only: Spark counts the input rows once per action on the batch DataFrame (two
    # writes: 16 per 8-row file), as it re-reads the batch's input for each.
    check_progress_per_file(q, None)
    assert len(data_batches(q.recentProgress)) == len(batches)


# ---------------------------------------------------------------------------------------------
# The labs' main() as the scripts run it: console sink, awaitTermination().

AVAILABLE_NOW_LABS = {
    "quickstart": ["events"],
    "windowed_counts": ["clicks"],
    "complete_counts": ["clicks"],
    "enrich_join": ["events", "users"],
    "impressions_clicks": ["impressions", "ad_clicks"],
}


@pytest.mark.parametrize("name", sorted(AVAILABLE_NOW_LABS))
def test_console_lab_main(spark, tmp, server, name):
    lab = load_lab(name)
    argv, total = [], 0
    for d in AVAILABLE_NOW_LABS[name]:
        files = stage_dir(d, tmp / d)
        if d != "users":
            total += sum(len(read_jsonl(f)) for f in files)
        flag = {"ad_clicks": "--clicks"}.get(d, f"--{d}")
        argv += [flag, str(tmp / d)]
    before = server.stdout().count("Batch: ")
    q = run_with_timeout(lambda: lab.main(spark, argv), 300, f"{name}.main")
    assert not q.isActive and q.exception() is None
    progress = sorted(q.recentProgress, key=lambda p: p["batchId"])
    assert [p["batchId"] for p in progress] == list(range(len(progress)))
    if name == "quickstart":
        # Spark pushes the filter into the JSON reader and counts only the rows that pass it;
        # counting every row read is as good.
        buys = sum(1 for f in (tmp / "events").iterdir() for r in read_jsonl(f) if r["action"] == "buy")
        assert sum(p.numInputRows for p in progress) in (buys, total)
    else:
        assert sum(p.numInputRows for p in progress) == total
    assert q.lastProgress["sink"]["description"]
    if server.stdout_path:  # the console sink prints on the server's stdout
        wait_for(
            lambda: server.stdout().count("Batch: ") - before >= len(data_batches(progress)),
            10, "the console sink's 'Batch: N' banners on the server's stdout",
        )
