"""One benchmark workload on Apache Spark (PySpark, local[2], Trigger.AvailableNow).

Run by bench/run.py with the virtual environment's Python; prints one JSON line with the
query's progress reports so the runner computes the same figures for Spark as for sluice.
"""

import argparse
import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["W0", "W1", "W2", "W3", "W4", "W5"])
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--max-files-per-trigger", type=int, required=True)
    p.add_argument("--shuffle-partitions", type=int, required=True)
    a = p.parse_args()

    spark = (
        SparkSession.builder.master("local[2]")
        .appName(f"sluice-bench-{a.workload}")
        # The default 1 GiB heap runs out on W2's dedup state at 10M rows (java.lang.OutOfMemoryError).
        .config("spark.driver.memory", "8g")
        .config("spark.sql.shuffle.partitions", a.shuffle_partitions)
        .config("spark.sql.streaming.numRecentProgressUpdates", 10000)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    def read():
        return spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", a.max_files_per_trigger).json(a.input)

    events = read()
    if a.workload == "W4":
        # The same files as two streams, views and buys, joined per user within 10 minutes.
        views = read().withWatermark("event_time", "10 minutes").where("action = 'view'").alias("v")
        buys = read().withWatermark("event_time", "10 minutes").where("action = 'buy'").alias("b")
        query = views.join(
            buys,
            F.expr("v.user_id = b.user_id AND b.event_time BETWEEN v.event_time AND v.event_time + INTERVAL 10 MINUTES"),
        ).select(
            F.col("v.user_id").alias("user_id"),
            F.col("v.event_id").alias("view_id"),
            F.col("b.event_id").alias("buy_id"),
            F.col("b.amount").alias("amount"),
        )
        writer = query.writeStream.format("parquet").option("path", a.output).outputMode("append")
    elif a.workload in ("W0", "W3"):
        query = events.where("action = 'buy'").select("event_time", "user_id", "amount")
        writer = query.writeStream.format("parquet").option("path", a.output).outputMode("append")
    elif a.workload in ("W1", "W5"):
        query = (
            events.withWatermark("event_time", "10 minutes")
            .groupBy(F.window("event_time", "5 minutes"), "action")
            .agg(F.count("*").alias("n"), F.sum("amount").alias("total"))
        )
        writer = query.writeStream.format("noop").outputMode("update")
    else:
        query = (
            events.withWatermark("event_time", "10 minutes")
            .dropDuplicates(["event_id", "event_time"])
            .groupBy(F.window("event_time", "5 minutes"))
            .agg(F.count("*").alias("n"))
            .select(F.col("window.start").alias("start"), "n")
        )
        writer = query.writeStream.format("parquet").option("path", a.output).outputMode("append")

    q = writer.option("checkpointLocation", a.checkpoint).trigger(availableNow=True).start()
    q.awaitTermination()
    progress = [json.loads(r.json) for r in q.recentProgress]
    print("SPARK-PROGRESS " + json.dumps(progress))
    spark.stop()


if __name__ == "__main__":
    main()
