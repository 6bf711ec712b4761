-- Deduplicate re-delivered click events (Spark's dropDuplicates with a watermark) and write the
-- clean stream to Parquet, exactly once. Every path is under /data, the volume that the driver
-- and every executor mount (dev overlay): input in /data/in, output in /data/out, checkpoints in
-- /data/checkpoints.
--
--   kubectl -n sluice exec sluice-driver-0 -- sluice submit /etc/sluice/jobs/dedup.sql \
--     --driver https://localhost:7077 --tls-ca /etc/sluice/tls/ca.crt --token-file /etc/sluice/tokens/tokens
--   kubectl -n sluice exec sluice-driver-0 -- sluice queries   (with the same --driver, --tls-ca, --token-file)
--   kubectl -n sluice exec sluice-driver-0 -- sluice cat /data/out/clicks-dedup
--
-- Drop JSON files with the schema below into /data/in (examples/data/clicks/ has some); each
-- one-second trigger reads at most one new file.

CREATE STREAM clicks (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH ('connector' = 'files', 'format' = 'json', 'path' = '/data/in', 'maxFilesPerTrigger' = '1');

CREATE SINK clean WITH ('connector' = 'files', 'format' = 'parquet', 'path' = '/data/out/clicks-dedup');

SET 'queryName' = 'dedup';
SET 'checkpointLocation' = '/data/checkpoints/dedup';
SET 'trigger' = 'processingTime=1 second';
SET 'spark.sql.shuffle.partitions' = '4';

-- DISTINCT ON (event_id, event_time) is dropDuplicates("event_id", "event_time"): the first copy
-- of an event wins, and keys leave the state once the watermark passes them.
INSERT INTO clean
SELECT event_time, user_id, action, amount, event_id
FROM (SELECT DISTINCT ON (event_id, event_time) * FROM clicks);
