"""Lab: groupBy(...).count() in complete mode — the whole, updated result every batch.

The PySpark twin of examples/complete_counts.sql: events and revenue per action over all
clicks so far, sorted by the number of events, reprinted in full after every batch.

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/complete_counts.py           # terminal 2

SPARK_REMOTE picks another server (default sc://localhost:15002); --clicks (or the
SLUICE_EXAMPLES_DATA directory) another input. Relative paths are resolved by the server.
"""

import argparse
import os

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def action_counts(clicks: DataFrame) -> DataFrame:
    return (
        clicks.groupBy("action")
        .agg(F.count("*").alias("events"), F.sum("amount").alias("revenue"))
        .orderBy(F.desc("events"))
    )


def build_query(spark, clicks_path=f"{DATA}/clicks", *, sink="console", checkpoint=None,
                trigger=None, query_name="action_counts"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    clicks = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 2).json(clicks_path)
    writer = (
        action_counts(clicks)
        .writeStream.outputMode("complete")
        .queryName(query_name)
        .trigger(**(trigger or {"availableNow": True}))
    )
    writer = writer.foreachBatch(sink) if callable(sink) else writer.format(sink)
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
