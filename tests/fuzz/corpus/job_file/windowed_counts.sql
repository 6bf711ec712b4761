-- Lab: windowed counts with a watermark, update mode, printed to the console.
--
--   cargo run --release --bin sluice -- run examples/windowed_counts.sql
--
-- Counts clicks per 5-minute window and action. Each batch prints the windows whose counts
-- changed; events more than 10 minutes behind the newest one are too late and ignored.

CREATE STREAM clicks (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH ('connector' = 'files', 'format' = 'json', 'path' = 'examples/data/clicks', 'maxFilesPerTrigger' = '1');

CREATE SINK console WITH ('connector' = 'console', 'truncate' = 'false');

SET 'queryName' = 'windowed_counts';
SET 'outputMode' = 'update';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '4';

INSERT INTO console
SELECT window.start AS window_start, window.end AS window_end, action, cnt, revenue FROM (
  SELECT window(event_time, '5 minutes') AS window, action, count(*) AS cnt, sum(amount) AS revenue
  FROM clicks
  GROUP BY window(event_time, '5 minutes'), action
);
