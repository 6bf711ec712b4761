"""foreachBatch: the user's function runs on the server's Python worker once per micro-batch, with
that batch's rows as a batch DataFrame."""

import pytest
from pyspark.errors import StreamingQueryException

from support import (
    batch_recorder,
    finish,
    multiset,
    read_batch_output_dir,
    read_input_batches,
    recorded_batches,
    recorded_calls,
    run_with_timeout,
    stage_dir,
)

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
EVENT_COLS = ["event_time", "user_id", "action", "amount", "event_id"]


def test_once_per_batch_with_that_batch_rows(spark, tmp):
    files = stage_dir("events", tmp / "in")
    rec = tmp / "rec"
    rec.mkdir()
    q = (
        spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(tmp / "in"))
        .writeStream.foreachBatch(batch_recorder(rec))
        .option("checkpointLocation", str(tmp / "chk"))
        .trigger(availableNow=True)
        .start()
    )
    finish(q)
    assert q.exception() is None
    batches = read_input_batches(files)
    assert recorded_calls(rec) == list(range(len(batches)))
    got = recorded_batches(rec)
    for bid, rows in enumerate(batches):
        assert multiset(got[bid], EVENT_COLS) == multiset(rows, EVENT_COLS), f"batch {bid}"
    progress = sorted(q.recentProgress, key=lambda p: p["batchId"])
    assert [p["batchId"] for p in progress] == list(range(len(batches)))
    assert [p.numInputRows for p in progress] == [len(b) for b in batches]


def test_batch_dataframe_transformations_and_writes(spark, tmp):
    """Inside the function the batch is an ordinary DataFrame: transform it, aggregate it and
    write it with the batch writer."""
    files = stage_dir("events", tmp / "in")
    out = str(tmp / "out")

    def per_batch(df, batch_id):
        from pyspark.sql import functions as F

        (
            df.where(F.col("amount") >= 100)
            .groupBy("user_id")
            .agg(F.count("*").alias("n"), F.sum("amount").alias("total"))
            .withColumn("batch_id", F.lit(batch_id))
            .write.mode("append")
            .json(out)
        )

    q = (
        spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(tmp / "in"))
        .writeStream.foreachBatch(per_batch).trigger(availableNow=True).start()
    )
    finish(q)
    assert q.exception() is None
    expected = []
    for bid, rows in enumerate(read_input_batches(files)):
        acc = {}
        for r in rows:
            if r["amount"] >= 100:
                n, t = acc.get(r["user_id"], (0, 0))
                acc[r["user_id"]] = (n + 1, t + r["amount"])
        expected += [{"user_id": u, "n": n, "total": t, "batch_id": bid} for u, (n, t) in acc.items()]
    cols = ["user_id", "n", "total", "batch_id"]
    assert multiset(read_batch_output_dir(out, "json"), cols) == multiset(expected, cols)


def test_exception_in_function_fails_query(spark, tmp):
    stage_dir("events", tmp / "in")
    rec = tmp / "rec"
    rec.mkdir()
    record = batch_recorder(rec)

    def explode(df, batch_id):
        record(df, batch_id)
        if batch_id == 1:
            raise ValueError("user function exploded at batch 1 (marker 7c1e)")

    q = (
        spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(tmp / "in"))
        .writeStream.foreachBatch(explode)
        .option("checkpointLocation", str(tmp / "chk"))
        .trigger(availableNow=True)
        .start()
    )
    with pytest.raises(StreamingQueryException) as raised:
        run_with_timeout(lambda: q.awaitTermination(60), 90, "awaitTermination of a failing query")
    assert "marker 7c1e" in str(raised.value)
    assert not q.isActive
    exc = q.exception()
    assert isinstance(exc, StreamingQueryException)
    assert "marker 7c1e" in str(exc) and "ValueError" in str(exc), str(exc)[:3000]
    # batch 0 went through; batch 1 failed and is not committed
    assert recorded_calls(rec)[:2] == [0, 1]
    assert 2 not in recorded_calls(rec)
    assert sorted(int(p.name) for p in (tmp / "chk" / "commits").iterdir() if p.name.isdigit()) == [0]
