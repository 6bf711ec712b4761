"""Lab: windowed counts with a watermark, update mode, printed to the console.

The PySpark twin of examples/windowed_counts.sql: counts clicks per 5-minute window and action.
Each batch prints the windows whose counts changed; events that are too far behind the
watermark (the newest event time seen minus 10 minutes) are ignored.

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/windowed_counts.py           # terminal 2

SPARK_REMOTE picks another server (default sc://localhost:15002); --clicks (or the
SLUICE_EXAMPLES_DATA directory) another input. Relative paths are resolved by the server,
so start both from the repository root.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession
import pyspark.sql.functions as F

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def windowed_counts(clicks: DataFrame) -> DataFrame:
    """Counts and revenue per 5-minute event-time window and action."""
    return (
        clicks.withWatermark("event_time", "10 minutes")
        .groupBy(F.window("event_time", "5 minutes"), "action")
        .agg(F.count("*").alias("cnt"), F.sum("amount").alias("revenue"))
        .select(
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "action",
            "cnt",
            "revenue",
        )
    )


def build_query(spark, clicks_path=f"{DATA}/clicks", *, sink="console", checkpoint=None,
                trigger=None, query_name="windowed_counts"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    clicks = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(clicks_path)
    writer = (
        windowed_counts(clicks)
        .writeStream.outputMode("update")
        .queryName(query_name)
        .trigger(**(trigger or {"availableNow": True}))
    )
    if callable(sink):
        writer = writer.foreachBatch(sink)
    else:
        writer = writer.format(sink)
        if sink == "console":
            writer = writer.option("truncate", "false")
    if checkpoint:
        writer = writer.option("checkpointLocation", checkpoint)
    return writer


def main(spark, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", default=f"{DATA}/clicks", help="directory of JSON click events")
    parser.add_argument("--checkpoint", default=None, help="checkpointLocation (default: temporary)")
    args = parser.parse_args(argv)
    query = build_query(spark, args.clicks, checkpoint=args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
