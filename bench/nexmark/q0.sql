-- Nexmark q0 — passthrough: every bid, unchanged. Measures the cost of moving rows through
-- the engine (generator -> plan -> sink) with no work in between.
--
--   cargo run --release --bin sluice -- run bench/nexmark/q0.sql
--
-- bench/run.py runs all Nexmark queries and reports events/s; it rewrites 'maxEvents'.

CREATE STREAM bid WITH (
  'connector' = 'nexmark',
  'eventType' = 'bid',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q0';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT auction, bidder, price, date_time, extra FROM bid;
