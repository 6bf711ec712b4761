-- Nexmark q7 — highest bid: for every tumbling window of 10 seconds, the bid with the highest
-- price. The original query joins the window's maximum back to the bids; here one aggregation
-- keeps the top bid itself (ordered aggregates), which gives the same row when prices differ.
--
--   cargo run --release --bin sluice -- run bench/nexmark/q7.sql

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

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q7';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT w.end AS window_end, price, auction, bidder, date_time
FROM (
  SELECT
    window(date_time, '10 seconds') AS w,
    max(price) AS price,
    first_value(auction ORDER BY price DESC) AS auction,
    first_value(bidder ORDER BY price DESC) AS bidder,
    first_value(date_time ORDER BY price DESC) AS date_time
  FROM bid
  GROUP BY window(date_time, '10 seconds')
);
