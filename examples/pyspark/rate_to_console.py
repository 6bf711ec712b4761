"""Lab: the rate source printed to the console every second (Ctrl-C to stop).

The PySpark twin of examples/rate_to_console.sql. The rate source emits `rowsPerSecond` rows
per second with Spark's value/timestamp formula.

Run it against sluice's Spark Connect server:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/rate_to_console.py           # terminal 2

The batches are printed by the server (terminal 1). SPARK_REMOTE picks another server
(default sc://localhost:15002); --seconds N stops the query after N seconds.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import col


def ticks_with_parity(ticks: DataFrame) -> DataFrame:
    return ticks.select("timestamp", "value", (col("value") % 2 == 0).alias("even"))


def build_query(spark, *, rows_per_second=5, sink="console", checkpoint=None, trigger=None,
                query_name="ticks"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    ticks = spark.readStream.format("rate").option("rowsPerSecond", rows_per_second).load()
    writer = (
        ticks_with_parity(ticks)
        .writeStream.queryName(query_name)
        .trigger(**(trigger or {"processingTime": "1 second"}))
    )
    if callable(sink):
        writer = writer.foreachBatch(sink)
    else:
        writer = writer.format(sink)
    if checkpoint:
        writer = writer.option("checkpointLocation", checkpoint)
    return writer


def main(spark, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-second", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    args = parser.parse_args(argv)
    query = build_query(spark, rows_per_second=args.rows_per_second).start()
    try:
        query.awaitTermination(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        query.stop()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
