-- Deduplicate re-delivered click events (dropDuplicates with a watermark) → Parquet, exactly
-- once, with input, output and checkpoints on S3. CHANGE ME: the bucket and prefixes.
-- Credentials come from the Secret sluice-s3 (AWS_* variables; see deploy/k8s/README.md).
--
--   kubectl -n sluice exec sluice-driver-0 -- sluice submit /etc/sluice/jobs/dedup.sql \
--     --driver https://localhost:7077 --tls-ca /etc/sluice/tls/ca.crt --token-file /etc/sluice/tokens/tokens

CREATE STREAM clicks (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH ('connector' = 'files', 'format' = 'json', 'path' = 's3://sluice-example/in', 'maxFilesPerTrigger' = '1');

CREATE SINK clean WITH ('connector' = 'files', 'format' = 'parquet', 'path' = 's3://sluice-example/out/clicks-dedup');

SET 'queryName' = 'dedup';
SET 'checkpointLocation' = 's3://sluice-example/checkpoints/dedup';
SET 'trigger' = 'processingTime=1 second';
SET 'spark.sql.shuffle.partitions' = '16';

INSERT INTO clean
SELECT event_time, user_id, action, amount, event_id
FROM (SELECT DISTINCT ON (event_id, event_time) * FROM clicks);
