"""Lab: foreachBatch — write every micro-batch to two sinks, Parquet and JSON.

No SQL twin: a job file cannot run user code per batch. The function runs once per batch, on
the server's Python worker, with that batch's rows as an ordinary (batch) DataFrame; here it
tags them with the batch id and appends them to a Parquet and a JSON directory with plain batch
writes. (Appends are not idempotent: a batch re-run after a crash would be written twice —
use the batch id to make such writes idempotent when that matters.)

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/foreach_batch_two_sinks.py   # terminal 2

The server needs a Python with pyspark (the client package is enough) for the function: set
PYSPARK_PYTHON for it if `python3` is not that one. SPARK_REMOTE picks another server (default
sc://localhost:15002); --events, --parquet, --json and --checkpoint (or the SLUICE_EXAMPLES_DATA /
SLUICE_EXAMPLES_OUT directories) move the input and the outputs.
"""

import argparse
import os

from pyspark.sql import SparkSession
from pyspark.sql.functions import lit

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")
OUT = os.environ.get("SLUICE_EXAMPLES_OUT", "examples/out")

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


def two_sinks(parquet_path, json_path):
    """The foreachBatch function: appends each batch, tagged with its id, to both outputs."""

    def write_batch(batch_df, batch_id):
        tagged = batch_df.withColumn("batch_id", lit(batch_id))
        tagged.write.mode("append").parquet(parquet_path)
        tagged.write.mode("append").json(json_path)

    return write_batch


def build_query(spark, events_path=f"{DATA}/events", parquet_path=f"{OUT}/events-parquet",
                json_path=f"{OUT}/events-json", checkpoint=f"{OUT}/events-two-sinks-checkpoint", *,
                trigger=None, query_name="two_sinks"):
    """The query's DataStreamWriter, ready to start()."""
    events = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(events_path)
    return (
        events.writeStream.foreachBatch(two_sinks(parquet_path, json_path))
        .queryName(query_name)
        .option("checkpointLocation", checkpoint)
        .trigger(**(trigger or {"availableNow": True}))
    )


def main(spark, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default=f"{DATA}/events", help="directory of JSON events")
    parser.add_argument("--parquet", default=f"{OUT}/events-parquet", help="Parquet output directory")
    parser.add_argument("--json", default=f"{OUT}/events-json", help="JSON output directory")
    parser.add_argument("--checkpoint", default=f"{OUT}/events-two-sinks-checkpoint", help="checkpointLocation")
    args = parser.parse_args(argv)
    query = build_query(spark, args.events, args.parquet, args.json, args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
