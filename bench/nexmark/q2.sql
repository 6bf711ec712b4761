-- Nexmark q2 — selection: the bids on a fixed set of auctions (auction id divisible by 123).
--
--   cargo run --release --bin sluice -- run bench/nexmark/q2.sql

CREATE STREAM bid WITH (
  'connector' = 'nexmark',
  'eventType' = 'bid',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q2';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT auction, price FROM bid WHERE auction % 123 = 0;
