-- Nexmark q8 — monitor new users: every person who opened an auction in the same 10-second
-- tumbling window in which they registered. A windowed stream-stream join of persons and
-- auctions (the window is a join key, so both sides' state leaves as the watermark passes the
-- window's end), then one row per (person, window) as the original's GROUP BY gives.
--
--   cargo run --release --bin sluice -- run bench/nexmark/q8.sql

CREATE STREAM person (
  id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, state STRING,
  date_time TIMESTAMP, extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND
) WITH (
  'connector' = 'nexmark',
  'eventType' = 'person',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE STREAM auction (
  id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, reserve BIGINT,
  date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND
) WITH (
  'connector' = 'nexmark',
  'eventType' = 'auction',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE VIEW new_people AS
SELECT id, name, window(date_time, '10 seconds') AS w FROM person;

CREATE VIEW new_sellers AS
SELECT seller, window(date_time, '10 seconds') AS w FROM auction;

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q8';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT id, name, w.start AS starttime
FROM (
  SELECT DISTINCT p.id, p.name, p.w
  FROM new_people p JOIN new_sellers a ON p.id = a.seller AND p.w = a.w
);
