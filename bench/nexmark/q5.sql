-- Nexmark q5 — hot items: for every sliding window of 10 seconds advancing by 2 seconds, the
-- auctions with the most bids — every one of them when several tie, as in the original query.
-- As the original, the view of bids per auction and window is used twice: once to report, once
-- to find each window's maximum; the two meet in a join on the window. Spark runs four stateful
-- operators; sluice plans the view once (`sluice.streaming.shareIdenticalOperators`), so three, in
-- append mode (Spark 3.5+ semantics): a window's counts, its maximum and the join's result all
-- come out in the batch whose watermark closes it.
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

CREATE VIEW max_bids AS
SELECT w, max(num) AS maxn
FROM auction_bids
GROUP BY w;

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q5';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT a.w.start AS starttime, a.w.end AS endtime, a.auction, a.num
FROM auction_bids a JOIN max_bids m ON a.w = m.w AND a.num >= m.maxn;
