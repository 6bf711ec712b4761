-- Lab: groupBy(...).count() in complete mode — the whole, updated result every batch.
--
--   cargo run --release --bin sluice -- run examples/complete_counts.sql

CREATE STREAM clicks (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING
) WITH ('connector' = 'files', 'format' = 'json', 'path' = 'examples/data/clicks', 'maxFilesPerTrigger' = '2');

CREATE SINK console WITH ('connector' = 'console');

SET 'queryName' = 'action_counts';
SET 'outputMode' = 'complete';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '2';

INSERT INTO console
SELECT action, count(*) AS events, sum(amount) AS revenue FROM clicks GROUP BY action ORDER BY events DESC;
