"""Quickstart: read the sample JSON events, keep the purchases, print them batch by batch.

The PySpark twin of examples/quickstart.sql. Runs with Trigger.AvailableNow: one file per
micro-batch (maxFilesPerTrigger = 1), then stops.

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/quickstart.py                # terminal 2

SPARK_REMOTE picks another server (default sc://localhost:15002); --events (or the
SLUICE_EXAMPLES_DATA directory) another input. Relative paths are resolved by the server.

Unlike the SQL twin, `amount * 1.1` is a DOUBLE here: a Python float is a double literal,
while the SQL literal 1.1 is a DECIMAL.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import col
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

SCHEMA = StructType([
    StructField("event_time", TimestampType()),
    StructField("user_id", StringType()),
    StructField("action", StringType()),
    StructField("amount", LongType()),
    StructField("event_id", StringType()),
])


def buys(events: DataFrame) -> DataFrame:
    """The purchases, with the amount including a 10% tax."""
    return (
        events.withWatermark("event_time", "10 minutes")
        .where(col("action") == "buy")
        .select("event_time", "user_id", "amount", (col("amount") * 1.1).alias("amount_with_tax"))
    )


def build_query(spark, events_path=f"{DATA}/events", *, sink="console", checkpoint=None,
                trigger=None, query_name="buys"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    events = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(events_path)
    writer = buys(events).writeStream.queryName(query_name).trigger(**(trigger or {"availableNow": True}))
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
    parser.add_argument("--events", default=f"{DATA}/events", help="directory of JSON events")
    parser.add_argument("--checkpoint", default=None, help="checkpointLocation (default: temporary)")
    args = parser.parse_args(argv)
    query = build_query(spark, args.events, checkpoint=args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
