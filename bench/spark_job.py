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
    p.add_argument("--workload", required=True, choices=["W0", "W1", "W2", "W3"])
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
    events = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", a.max_files_per_trigger).json(a.input)

    if a.workload in ("W0", "W3"):
        query = events.where("action = 'buy'").select("event_time", "user_id", "amount")
        writer = query.writeStream.format("parquet").option("path", a.output).outputMode("append")
    elif a.workload == "W1":
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
