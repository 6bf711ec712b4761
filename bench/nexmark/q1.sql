-- Nexmark q1 — currency conversion: every bid's price from dollars to euros.
--
--   cargo run --release --bin sluice -- run bench/nexmark/q1.sql

CREATE STREAM bid WITH (
  'connector' = 'nexmark',
  'eventType' = 'bid',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q1';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid;
