"""Lab: which ad impressions led to a click within the hour — a stream-stream left outer join
with watermarks and a time bound, the programming guide's impressions ⋈ clicks.

The PySpark twin of examples/impressions_clicks.sql. Both streams keep their rows in state
until the watermark says no matching row can still arrive. A click joins its impression as soon
as both are in; an impression nobody clicked comes out with a NULL click_time only once the
clicks' watermark has passed its hour (i2: its click came 85 minutes later; i5: never clicked).

Run it against sluice's Spark Connect server, from the repository root:

    cargo run --release --bin sluice -- connect          # terminal 1
    python examples/pyspark/impressions_clicks.py        # terminal 2

SPARK_REMOTE picks another server (default sc://localhost:15002); --impressions and --clicks
(or the SLUICE_EXAMPLES_DATA directory) other inputs. Relative paths are resolved by the server.
"""

import argparse
import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import expr
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

DATA = os.environ.get("SLUICE_EXAMPLES_DATA", "examples/data")

IMPRESSION_SCHEMA = StructType([
    StructField("impression_id", StringType()),
    StructField("ad_id", StringType()),
    StructField("impression_time", TimestampType()),
])
CLICK_SCHEMA = StructType([
    StructField("ad_id", StringType()),
    StructField("click_time", TimestampType()),
])


def impressions_with_clicks(impressions: DataFrame, clicks: DataFrame) -> DataFrame:
    impressions = impressions.withWatermark("impression_time", "10 minutes")
    clicks = clicks.withWatermark("click_time", "20 minutes").withColumnRenamed("ad_id", "click_ad_id")
    return impressions.join(
        clicks,
        expr("""
            click_ad_id = ad_id AND
            click_time >= impression_time AND
            click_time <= impression_time + interval 1 hour
        """),
        "leftOuter",
    ).select("impression_id", "ad_id", "impression_time", "click_time")


def build_query(spark, impressions_path=f"{DATA}/impressions", clicks_path=f"{DATA}/ad_clicks", *,
                sink="console", checkpoint=None, trigger=None, query_name="impressions_clicks"):
    """The query's DataStreamWriter, ready to start(). `sink` is a format name or a
    foreachBatch function."""
    impressions = (
        spark.readStream.schema(IMPRESSION_SCHEMA).option("maxFilesPerTrigger", 1).json(impressions_path)
    )
    clicks = spark.readStream.schema(CLICK_SCHEMA).option("maxFilesPerTrigger", 1).json(clicks_path)
    writer = (
        impressions_with_clicks(impressions, clicks)
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
    parser.add_argument("--impressions", default=f"{DATA}/impressions", help="directory of JSON impressions")
    parser.add_argument("--clicks", default=f"{DATA}/ad_clicks", help="directory of JSON ad clicks")
    parser.add_argument("--checkpoint", default=None, help="checkpointLocation (default: temporary)")
    args = parser.parse_args(argv)
    query = build_query(spark, args.impressions, args.clicks, checkpoint=args.checkpoint).start()
    query.awaitTermination()
    return query


if __name__ == "__main__":
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://localhost:15002")).getOrCreate()
    main(spark)
