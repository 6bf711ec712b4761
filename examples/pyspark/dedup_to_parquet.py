"""Lab: drop re-delivered events (dropDuplicates on event_id with a watermark) and write the
clean stream to Parquet, exactly once.

The PySpark twin of examples/dedup_to_parquet.sql. dropDuplicates(["event_id", "event_time"])
keeps the first copy of an event; keys leave the state once the watermark passes them.
(dropDuplicatesWithinWatermark(["event_id"]) would keep a key only for the watermark delay.)

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/dedup_to_parquet.py          # terminal 2
    cargo run --release --bin sluice -- cat examples/out/clicks-dedup

SPARK_REMOTE picks another server (default sc://localhost:15002). --clicks, --output and
--checkpoint (or the SLUICE_EXAMPLES_DATA / SLUICE_EXAMPLES_OUT directories) move the input and
the outputs; relative paths are resolved by the server.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")
OUT = os.environ.get("SLUICE_EXAMPLES_OUT", "examples/out")

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def deduplicated(clicks: DataFrame) -> DataFrame:
    return (
        clicks.withWatermark("event_time", "10 minutes")
        .dropDuplicates(["event_id", "event_time"])
        .select("event_time", "user_id", "action", "amount", "event_id")
    )


def build_query(spark, clicks_path=f"{DATA}/clicks", output=f"{OUT}/clicks-dedup",
                checkpoint=f"{OUT}/clicks-dedup-checkpoint", *, sink="parquet", trigger=None,
                query_name="dedup"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    clicks = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(clicks_path)
    writer = (
        deduplicated(clicks)
        .writeStream.queryName(query_name)
        .option("checkpointLocation", checkpoint)
        .trigger(**(trigger or {"availableNow": True}))
    )
    if callable(sink):
        return writer.foreachBatch(sink)
    writer = writer.format(sink)
    if sink in ("parquet", "json", "csv"):
        writer = writer.option("path", output)
    return writer


def main(spark, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", default=f"{DATA}/clicks", help="directory of JSON click events")
    parser.add_argument("--output", default=f"{OUT}/clicks-dedup", help="Parquet output directory")
    parser.add_argument("--checkpoint", default=f"{OUT}/clicks-dedup-checkpoint", help="checkpointLocation")
    args = parser.parse_args(argv)
    query = build_query(spark, args.clicks, args.output, args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
