"""The DataFrame operations the tutorials use beyond the labs, each on a stream, each checked
against a recomputation in plain Python over the same input files."""

import datetime as dt
import time
from collections import Counter

import pyspark.sql.functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from support import DATA, finish, model_windowed_counts, multiset, read_input_batches, read_jsonl, stage_dir

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def events(spark, src, **options):
    reader = spark.readStream.schema(SCHEMA)
    for k, v in options.items():
        reader = reader.option(k, v)
    return reader.json(str(src))


def to_memory(df, name, mode="append", trigger=None):
    writer = df.writeStream.format("memory").queryName(name).outputMode(mode)
    writer = writer.trigger(**(trigger or {"availableNow": True}))
    q = writer.start()
    finish(q)
    return q


def all_rows(files):
    return [r for batch in read_input_batches(files) for r in batch]


def test_session_windows_per_user(spark, tmp):
    files = stage_dir("events", tmp / "in")
    gap = dt.timedelta(minutes=5)
    df = events(spark, tmp / "in").groupBy(F.session_window("event_time", "5 minutes"), "user_id").count()
    to_memory(df, "sessions", mode="complete")
    got = Counter(
        (r.session_window.start, r.session_window.end, r.user_id, r["count"]) for r in spark.sql("select * from sessions").collect()
    )
    # A session is a run of a user's events each starting before the previous one's gap ends.
    expected = Counter()
    by_user = {}
    for r in all_rows(files):
        by_user.setdefault(r["user_id"], []).append(r["event_time"])
    for user, times in by_user.items():
        times.sort()
        start, end, n = times[0], times[0] + gap, 1
        for t in times[1:]:
            if t < end:
                end, n = max(end, t + gap), n + 1
            else:
                expected[(start, end, user, n)] += 1
                start, end, n = t, t + gap, 1
        expected[(start, end, user, n)] += 1
    assert got == expected


def test_union_of_two_streams(spark, tmp):
    files_a = stage_dir("events", tmp / "a")
    files_b = stage_dir("clicks", tmp / "b")
    cols = ["event_id", "amount"]
    both = events(spark, tmp / "a").select(*cols).union(events(spark, tmp / "b").select(*cols))
    to_memory(both, "unioned")
    expected = multiset(all_rows(files_a) + all_rows(files_b), cols)
    assert multiset(spark.sql("select * from unioned").collect(), cols) == expected


def test_sql_over_a_streaming_temp_view(spark, tmp):
    files = stage_dir("events", tmp / "in")
    events(spark, tmp / "in").createOrReplaceTempView("ev_view")
    counts = spark.sql("SELECT action, count(*) AS n, sum(amount) AS total FROM ev_view GROUP BY action")
    assert counts.isStreaming
    to_memory(counts, "view_counts", mode="complete")
    expected = Counter()
    totals = Counter()
    for r in all_rows(files):
        expected[r["action"]] += 1
        totals[r["action"]] += r["amount"]
    got = {r.action: (r.n, r.total) for r in spark.sql("select * from view_counts").collect()}
    assert got == {a: (expected[a], totals[a]) for a in expected}


def test_column_operations(spark, tmp):
    files = stage_dir("events", tmp / "in")
    df = (
        events(spark, tmp / "in")
        .withColumn("doubled", F.col("amount") * 2)
        .withColumns({"day": F.to_timestamp(F.date_format("event_time", "yyyy-MM-dd"), "yyyy-MM-dd"), "amount_str": F.col("amount").cast("string")})
        .withColumnRenamed("user_id", "user")
        .drop("event_id")
        .where(F.col("action") != "view")
        .select("user", "action", "doubled", "day", "amount_str", F.expr("amount + 1 AS plus_one"))
    )
    assert df.columns == ["user", "action", "doubled", "day", "amount_str", "plus_one"]
    to_memory(df, "columns")
    expected = Counter(
        (r["user_id"], r["action"], 2 * r["amount"], dt.datetime(r["event_time"].year, r["event_time"].month, r["event_time"].day), str(r["amount"]), r["amount"] + 1)
        for r in all_rows(files)
        if r["action"] != "view"
    )
    assert multiset(spark.sql("select * from columns").collect(), df.columns) == expected


def test_aggregates_and_the_batch_timestamp(spark, tmp):
    files = stage_dir("events", tmp / "in")
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=5)
    df = events(spark, tmp / "in").groupBy("action").agg(
        F.approx_count_distinct("user_id").alias("users"),
        F.min("amount").alias("lo"),
        F.max("amount").alias("hi"),
        F.avg("amount").alias("mean"),
    )
    to_memory(df, "aggs", mode="complete", trigger={"once": True})
    rows = all_rows(files)
    for r in spark.sql("select * from aggs").collect():
        mine = [x for x in rows if x["action"] == r.action]
        assert r.users == len({x["user_id"] for x in mine})  # exact for a handful of values
        assert (r.lo, r.hi) == (min(x["amount"] for x in mine), max(x["amount"] for x in mine))
        assert abs(r.mean - sum(x["amount"] for x in mine) / len(mine)) < 1e-9

    # current_timestamp() is the batch's timestamp: one value for every row of a batch, now-ish.
    stamped = events(spark, tmp / "in", maxFilesPerTrigger=1).withColumn("processed_at", F.current_timestamp())
    to_memory(stamped, "stamped")
    per_batch = {}
    for r in spark.sql("select event_id, processed_at from stamped").collect():
        per_batch.setdefault(r.processed_at, []).append(r.event_id)
    assert len(per_batch) == len(files) and sum(map(len, per_batch.values())) == len(rows)
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=5)
    for ts in per_batch:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts
        assert before <= ts <= after, ts


def test_trigger_once_reads_everything_in_one_batch(spark, tmp):
    files = stage_dir("events", tmp / "in")
    q = to_memory(events(spark, tmp / "in"), "once_all", trigger={"once": True})
    data = [p for p in q.recentProgress if p.numInputRows > 0]
    assert [p.numInputRows for p in data] == [len(all_rows(files))]


def test_kafka_style_json_parsing_then_watermark_and_windows(spark, tmp):
    """text → from_json → select("data.*") → withWatermark → window: the Kafka tutorials' shape."""
    files = stage_dir("clicks", tmp / "in")
    schema = StructType(
        [StructField("event_time", TimestampType()), StructField("action", StringType()), StructField("amount", StringType())]
    )
    parsed = (
        spark.readStream.option("maxFilesPerTrigger", 1)
        .text(str(tmp / "in"))
        .select(F.from_json(F.col("value"), schema).alias("data"))
        .select("data.*")
        .withColumn("amount", F.col("amount").cast("long"))
    )
    counts = (
        parsed.withWatermark("event_time", "10 minutes")
        .groupBy(F.window("event_time", "5 minutes"), "action")
        .agg(F.count("*").alias("cnt"), F.sum("amount").alias("revenue"))
    )
    q = to_memory(counts, "parsed_counts", mode="update")
    got = Counter(
        (r.window.start, r.window.end, r.action, r.cnt, r.revenue) for r in spark.sql("select * from parsed_counts").collect()
    )
    batches = read_input_batches(files)
    per_batch = model_windowed_counts(
        batches + [[]], size=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=10)
    )
    expected = Counter((g[0], g[1], g[2], c, s) for b in per_batch for g, (c, s) in b.items())
    assert got == expected
    assert q.lastProgress is not None


def test_rate_micro_batch_and_static_results_to_pandas(spark, tmp):
    ticks = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 4).load()
    q = ticks.writeStream.format("memory").queryName("ticks_pd").trigger(processingTime="100 milliseconds").start()
    deadline = time.time() + 60
    while len([p for p in q.recentProgress if p.numInputRows > 0]) < 3:
        assert time.time() < deadline, "three batches of the rate-micro-batch source"
        q.awaitTermination(0.1)
    q.stop()
    values = sorted(spark.sql("select value from ticks_pd").toPandas()["value"].tolist())
    assert values == list(range(len(values))) and len(values) % 4 == 0 and len(values) >= 12

    users = spark.read.schema("user_id STRING, country STRING, tier STRING").json("examples/data/users")
    pdf = users.toPandas()
    expected = sorted(
        (r["user_id"], r["country"], r["tier"]) for p in sorted((DATA / "users").iterdir()) if p.is_file() for r in read_jsonl(p)
    )
    assert sorted(zip(pdf["user_id"], pdf["country"], pdf["tier"])) == expected


def test_batch_write_partition_by_and_read_back(spark, tmp):
    """`df.write.partitionBy(...)` of a static DataFrame: the same `col=value/` layout as the
    streaming sink (NULL in the Hive default partition), read back with the column last."""
    users = [r for p in sorted((DATA / "users").iterdir()) if p.is_file() for r in read_jsonl(p)]
    out = tmp / "users_by_country"
    (
        spark.read.schema("user_id STRING, country STRING, tier STRING").json(str(DATA / "users"))
        .write.partitionBy("country").mode("overwrite").parquet(str(out))
    )
    expected_dirs = {f"country={u['country']}" if u.get("country") else "country=__HIVE_DEFAULT_PARTITION__" for u in users}
    assert {p.name for p in out.iterdir() if not p.name.startswith(("_", "."))} == expected_dirs
    back = spark.read.parquet(str(out))
    assert back.columns == ["user_id", "tier", "country"]
    cols = ["user_id", "country", "tier"]
    assert multiset(back.collect(), cols) == multiset(users, cols)
