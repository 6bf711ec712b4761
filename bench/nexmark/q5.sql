-- Nexmark q5 — hot items: for every sliding window of 10 seconds advancing by 2 seconds, the
-- auction with the most bids. Two chained aggregations in append mode (Spark 3.5+ semantics):
-- bids per auction per window, then the largest count per window. The original query joins
-- the counts back to their maximum to list every tied auction; streams here cannot join two
-- aggregations, so one auction per window is reported (the first of the tied ones).
--
--   cargo run --release --bin sluice -- run bench/nexmark/q5.sql

CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP, extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND
) WITH (
  'connector' = 'nexmark',
  'eventType' = 'bid',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE VIEW auction_bids AS
SELECT window(date_time, '10 seconds', '2 seconds') AS w, auction, count(*) AS num
FROM bid
GROUP BY window(date_time, '10 seconds', '2 seconds'), auction;

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q5';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT w.start AS starttime, w.end AS endtime, first_value(auction ORDER BY num DESC) AS auction, max(num) AS num
FROM auction_bids
GROUP BY w;
