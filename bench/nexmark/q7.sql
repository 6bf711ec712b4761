-- Nexmark q7 — highest bid: for every tumbling window of 10 seconds, the bids with the highest
-- price (all of them when several tie), as the original query finds them: the window's maximum
-- price, joined back to the bids of that window. The window is a join key, so the bids wait in
-- the join's state until the watermark closes their window and its maximum arrives.
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

CREATE VIEW max_prices AS
SELECT window(date_time, '10 seconds') AS w, max(price) AS maxprice
FROM bid
GROUP BY window(date_time, '10 seconds');

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q7';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT b.auction, b.price, b.bidder, b.date_time, b.extra
FROM (SELECT *, window(date_time, '10 seconds') AS w FROM bid) b
JOIN max_prices m ON b.w = m.w AND b.price = m.maxprice;
