"""Lab: watch a directory of JSON-lines files and print each new file as a micro-batch.

The PySpark twin of examples/json_to_console.sql (Ctrl-C to stop). Drop more files into
examples/data/events while it runs, e.g.

    cp examples/data/events/events-0.json examples/data/events/events-copy-$(date +%s).json

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/json_to_console.py           # terminal 2

The batches are printed by the server (terminal 1). SPARK_REMOTE picks another server
(default sc://localhost:15002); --events (or the SLUICE_EXAMPLES_DATA directory) another
input; --seconds N stops the query after N seconds.
"""

import argparse
import os

from pyspark.sql import SparkSession

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def build_query(spark, events_path=f"{DATA}/events", *, sink="console", checkpoint=None,
                trigger=None, query_name="events"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    events = (
        spark.readStream.format("json")
        .schema(SCHEMA)
        .option("maxFilesPerTrigger", 1)
        .option("mode", "PERMISSIVE")
        .load(events_path)
    )
    writer = events.writeStream.queryName(query_name).trigger(**(trigger or {"processingTime": "2 seconds"}))
    if callable(sink):
        writer = writer.foreachBatch(sink)
    else:
        writer = writer.format(sink)
        if sink == "console":
            writer = writer.option("numRows", 10)
    if checkpoint:
        writer = writer.option("checkpointLocation", checkpoint)
    return writer


def main(spark, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default=f"{DATA}/events", help="directory of JSON events")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    args = parser.parse_args(argv)
    query = build_query(spark, args.events).start()
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
