"""The StreamingQuery and StreamingQueryManager API as PySpark (Connect) exposes it."""

import json
import os
import shutil
import uuid

import pytest
from pyspark.errors import StreamingQueryException

from support import (
    finish,
    multiset,
    progress_json,
    read_input_batches,
    run_with_timeout,
    stage_dir,
    write_jsonl,
)

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
EVENT_COLS = ["event_time", "user_id", "action", "amount", "event_id"]

# What Spark 4.0.1 puts in a progress report (its JSON); PySpark's StreamingQueryProgress also
# has numInputRows, inputRowsPerSecond and processedRowsPerSecond (None when the JSON leaves
# them out, as Spark 4.0.1 does: the attributes then sum the sources').
PROGRESS_KEYS = {"id", "runId", "name", "timestamp", "batchId", "batchDuration", "durationMs",
                 "stateOperators", "sources", "sink"}
SOURCE_KEYS = {"description", "startOffset", "endOffset", "numInputRows"}


def file_stream(spark, path, **options):
    reader = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1)
    for k, v in options.items():
        reader = reader.option(k, v)
    return reader.json(str(path))


def test_query_handle_status_progress_and_stop(spark, tmp, capsys):
    src = tmp / "in"
    first = stage_dir("events", src, files=["events-0.json"])
    q = (
        file_stream(spark, src)
        .writeStream.format("memory")
        .queryName("api_events")
        .trigger(processingTime="100 milliseconds")
        .start()
    )
    # identity
    assert str(uuid.UUID(q.id)) == q.id and str(uuid.UUID(q.runId)) == q.runId and q.id != q.runId
    assert q.name == "api_events"
    # running
    assert q.isActive
    assert run_with_timeout(lambda: q.awaitTermination(0.3), 30, "awaitTermination(0.3)") is False
    status = q.status
    assert set(status) == {"message", "isDataAvailable", "isTriggerActive"}
    assert isinstance(status["message"], str) and status["message"]
    assert isinstance(status["isDataAvailable"], bool) and isinstance(status["isTriggerActive"], bool)

    run_with_timeout(q.processAllAvailable, 60, "processAllAvailable")
    rows = read_input_batches(first)[0]
    assert multiset(spark.sql("select * from api_events").collect(), EVENT_COLS) == multiset(rows, EVENT_COLS)

    last = q.lastProgress
    assert last is not None
    assert PROGRESS_KEYS <= set(progress_json(last)), sorted(progress_json(last))
    assert {"numInputRows", "inputRowsPerSecond", "processedRowsPerSecond", "eventTime"} <= set(last)
    assert last["id"] == q.id and last["runId"] == q.runId and last["name"] == "api_events"
    assert last.id == uuid.UUID(q.id) and last.runId == uuid.UUID(q.runId)
    assert last["batchId"] == 0 and last.batchId == 0
    assert last.numInputRows == len(rows)
    assert isinstance(last["timestamp"], str) and isinstance(last["batchDuration"], int)
    assert "triggerExecution" in last["durationMs"]
    assert last["stateOperators"] == []
    (source,) = last["sources"]
    assert SOURCE_KEYS <= set(progress_json(source))
    assert source["numInputRows"] == len(rows)
    assert last["sink"]["description"] and last["sink"]["numOutputRows"] == len(rows)
    json.loads(last.json) and json.loads(last.prettyJson)

    # a second file: the next batch
    more = stage_dir("events", src, files=["events-1.json"])
    run_with_timeout(q.processAllAvailable, 60, "processAllAvailable")
    recent = q.recentProgress
    assert isinstance(recent, list) and len(recent) >= 2
    data = [p for p in recent if p.numInputRows > 0]
    assert [p["batchId"] for p in data] == [0, 1]
    assert [p["batchId"] for p in recent] == sorted(p["batchId"] for p in recent)
    assert q.lastProgress["batchId"] == recent[-1]["batchId"]
    assert data[1].numInputRows == len(read_input_batches(more)[0])

    # the manager
    assert q.id in [a.id for a in spark.streams.active]
    same = spark.streams.get(q.id)
    assert (same.id, same.runId, same.name, same.isActive) == (q.id, q.runId, q.name, True)
    assert spark.streams.get(str(uuid.uuid4())) is None

    capsys.readouterr()
    q.explain()
    assert capsys.readouterr().out.strip(), "explain() printed nothing"
    q.explain(extended=True)
    assert capsys.readouterr().out.strip()

    assert q.exception() is None
    # stop
    run_with_timeout(q.stop, 60, "stop()")
    assert not q.isActive
    assert q.status["isTriggerActive"] is False
    assert run_with_timeout(lambda: q.awaitTermination(5), 30, "awaitTermination") is True
    assert q.exception() is None
    assert q.id not in [a.id for a in spark.streams.active]
    # a stopped query keeps its progress
    assert q.lastProgress["batchId"] >= 1
    q.stop()  # idempotent


def test_await_any_termination_and_reset_terminated(spark, tmp):
    stage_dir("events", tmp / "a", files=["events-0.json"])
    stage_dir("events", tmp / "b", files=["events-0.json"])
    running = (
        file_stream(spark, tmp / "a").writeStream.format("memory").queryName("long_running")
        .trigger(processingTime="100 milliseconds").start()
    )
    spark.streams.resetTerminated()
    assert run_with_timeout(lambda: spark.streams.awaitAnyTermination(0.3), 30, "awaitAnyTermination") is False
    short = (
        file_stream(spark, tmp / "b").writeStream.format("memory").queryName("short_lived")
        .trigger(availableNow=True).start()
    )
    assert run_with_timeout(lambda: spark.streams.awaitAnyTermination(60), 90, "awaitAnyTermination") is True
    finish(short)
    assert {a.id for a in spark.streams.active} == {running.id}
    spark.streams.resetTerminated()
    assert run_with_timeout(lambda: spark.streams.awaitAnyTermination(0.3), 30, "awaitAnyTermination") is False
    running.stop()
    assert run_with_timeout(lambda: spark.streams.awaitAnyTermination(30), 60, "awaitAnyTermination") is True
    assert spark.streams.active == []


def test_failed_query_exception(spark, tmp):
    """A FAILFAST JSON source over a malformed file fails the query: awaitTermination raises,
    exception() returns the StreamingQueryException, naming the file."""
    src = tmp / "bad"
    write_jsonl(src / "good.json", [{"event_time": "2024-05-01T10:00:00Z", "user_id": "u1",
                                     "action": "buy", "amount": 1, "event_id": "e1"}])
    with open(src / "good.json", "a") as f:
        f.write('{"event_time": "2024-05-01T10:01:00Z", "user_id": "u2", "amount": \n')
    q = (
        file_stream(spark, src, mode="FAILFAST")
        .writeStream.format("memory").queryName("failfast").trigger(availableNow=True).start()
    )
    with pytest.raises(StreamingQueryException) as raised:
        run_with_timeout(lambda: q.awaitTermination(60), 90, "awaitTermination of a failing query")
    assert not q.isActive
    exc = q.exception()
    assert isinstance(exc, StreamingQueryException)
    # Spark's message names the file ("[FAILED_READ_FILE.NO_HINT] Encountered error while
    # reading file file:///…/good.json"); "Malformed records are detected" is only in its cause.
    assert "good.json" in str(exc), str(exc)[:2000]
    assert "good.json" in str(raised.value)
    assert q.id not in [a.id for a in spark.streams.active]


def test_failed_query_shows_in_await_any_termination(spark, tmp):
    src = tmp / "bad"
    src.mkdir()
    (src / "x.json").write_text("{not json}\n")
    spark.streams.resetTerminated()
    q = (
        file_stream(spark, src, mode="FAILFAST")
        .writeStream.format("memory").queryName("failfast_any").trigger(availableNow=True).start()
    )
    with pytest.raises(StreamingQueryException):
        run_with_timeout(lambda: spark.streams.awaitAnyTermination(60), 90, "awaitAnyTermination")
    assert q.exception() is not None


def test_to_table_then_read_it_as_a_table_and_as_a_stream(spark, tmp):
    """`toTable(name)` writes a table `spark.read.table` and `readStream.table` read (under the
    server's warehouse directory, `spark-warehouse/` in its working directory; removed after)."""
    src = tmp / "in"
    files = stage_dir("events", src)
    name = "events_" + uuid.uuid4().hex[:8]
    q = (
        file_stream(spark, src)
        .writeStream.option("checkpointLocation", str(tmp / "chk"))
        .trigger(availableNow=True)
        .toTable(name)
    )
    finish(q)
    expected = [r for batch in read_input_batches(files) for r in batch]
    assert multiset(spark.read.table(name).collect(), EVENT_COLS) == multiset(expected, EVENT_COLS)
    assert spark.readStream.table(name).isStreaming
    q2 = spark.readStream.table(name).writeStream.format("memory").queryName(name + "_copy").trigger(availableNow=True).start()
    finish(q2)
    assert multiset(spark.sql(f"select * from {name}_copy").collect(), EVENT_COLS) == multiset(expected, EVENT_COLS)
    shutil.rmtree(os.path.join("spark-warehouse", name), ignore_errors=True)
    if os.path.isdir("spark-warehouse") and not os.listdir("spark-warehouse"):
        os.rmdir("spark-warehouse")


def test_partition_by_writes_directories_readers_fill_back_in(spark, tmp):
    """`writeStream.partitionBy` writes Spark's `col=value/` directories, without the partition
    column inside the files; `spark.read.parquet` finds the column again (last, as Spark orders
    it), and so does a streaming read whose schema names it."""
    import pyarrow.parquet as pq

    src = tmp / "in"
    files = stage_dir("events", src)
    out = tmp / "out"
    q = (
        file_stream(spark, src)
        .writeStream.partitionBy("action")
        .format("parquet")
        .option("checkpointLocation", str(tmp / "chk"))
        .trigger(availableNow=True)
        .start(str(out))
    )
    finish(q)
    expected = [r for batch in read_input_batches(files) for r in batch]
    dirs = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert dirs == sorted({f"action={r['action']}" for r in expected})
    part_files = [f for d in dirs for f in (out / d).iterdir() if f.suffix == ".parquet"]
    assert part_files and all("action" not in pq.read_schema(f).names for f in part_files)

    batch = spark.read.parquet(str(out))
    assert batch.columns == [c for c in EVENT_COLS if c != "action"] + ["action"]
    assert multiset(batch.collect(), EVENT_COLS) == multiset(expected, EVENT_COLS)

    back = (
        spark.readStream.schema(SCHEMA).parquet(str(out))
        .writeStream.format("memory").queryName("partitioned_back").trigger(availableNow=True).start()
    )
    finish(back)
    assert multiset(spark.sql("select * from partitioned_back").collect(), EVENT_COLS) == multiset(expected, EVENT_COLS)
