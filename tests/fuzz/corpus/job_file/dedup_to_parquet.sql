-- Lab: drop re-delivered events (dropDuplicates on event_id with a watermark) and write the
-- clean stream to Parquet, exactly once.
--
--   cargo run --release --bin sluice -- run examples/dedup_to_parquet.sql
--   cargo run --release --bin sluice -- cat examples/out/clicks-dedup
--
-- `DISTINCT ON (event_id, event_time)` is Spark's dropDuplicates("event_id", "event_time"):
-- the first copy of an event wins, and keys leave the state once the watermark passes them.
-- (`DISTINCT ON (within_watermark(event_id))` would be dropDuplicatesWithinWatermark.)

CREATE STREAM clicks (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH ('connector' = 'files', 'format' = 'json', 'path' = 'examples/data/clicks', 'maxFilesPerTrigger' = '1');

CREATE SINK clean WITH ('connector' = 'files', 'format' = 'parquet', 'path' = 'examples/out/clicks-dedup');

SET 'queryName' = 'dedup';
SET 'checkpointLocation' = 'examples/out/clicks-dedup-checkpoint';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '4';

INSERT INTO clean
SELECT event_time, user_id, action, amount, event_id
FROM (SELECT DISTINCT ON (event_id, event_time) * FROM clicks);
