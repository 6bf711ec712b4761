"""Lab: enrich events with the user they belong to — a stream-static left outer join.

The PySpark twin of examples/enrich_join.sql, the tutorial's
`events.join(users, "user_id", "left")`. Events of users missing from the users table (u4)
keep their row, with NULL country and tier.

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/enrich_join.py               # terminal 2

SPARK_REMOTE picks another server (default sc://localhost:15002); --events and --users (or the
SLUICE_EXAMPLES_DATA directory) other inputs. Relative paths are resolved by the server.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

EVENT_SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
USER_SCHEMA = "user_id STRING, country STRING, tier STRING"


def enrich(events: DataFrame, users: DataFrame) -> DataFrame:
    return events.join(users, "user_id", "left").select(
        "event_time", "user_id", "action", "amount", "country", "tier"
    )


def build_query(spark, events_path=f"{DATA}/events", users_path=f"{DATA}/users", *,
                sink="console", checkpoint=None, trigger=None, query_name="enriched_events"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    events = spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", 1).json(events_path)
    users = spark.read.schema(USER_SCHEMA).json(users_path)
    writer = (
        enrich(events, users)
        .writeStream.queryName(query_name)
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
    parser.add_argument("--events", default=f"{DATA}/events", help="directory of JSON events")
    parser.add_argument("--users", default=f"{DATA}/users", help="directory of the JSON users table")
    parser.add_argument("--checkpoint", default=None, help="checkpointLocation (default: temporary)")
    args = parser.parse_args(argv)
    query = build_query(spark, args.events, args.users, checkpoint=args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
