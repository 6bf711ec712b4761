-- Nexmark q3 — local item suggestion: every auction in category 10 with its seller, for sellers
-- in Oregon, Idaho or California. A stream-stream inner join of persons and auctions on the
-- seller, with no watermark: as in Nexmark, the state keeps every matching person and auction.
-- The filters sit inside the inputs, so only those rows are kept. (The generator spells states
-- in lower case.)
--
--   cargo run --release --bin sluice -- run bench/nexmark/q3.sql

CREATE STREAM person WITH (
  'connector' = 'nexmark',
  'eventType' = 'person',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE STREAM auction WITH (
  'connector' = 'nexmark',
  'eventType' = 'auction',
  'maxEvents' = '10000000',
  'maxEventsPerTrigger' = '1000000',
  'baseTime' = '1700000000000'
);

CREATE SINK out WITH ('connector' = 'noop');

SET 'queryName' = 'nexmark_q3';
SET 'trigger' = 'availableNow';
SET 'spark.sql.shuffle.partitions' = '8';

INSERT INTO out
SELECT p.name, p.city, p.state, a.id
FROM (SELECT * FROM auction WHERE category = 10) a
JOIN (SELECT * FROM person WHERE state IN ('or', 'id', 'ca')) p
  ON a.seller = p.id;
