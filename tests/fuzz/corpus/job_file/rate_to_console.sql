-- Lab: the rate source printed to the console every second (Ctrl-C to stop).
--
--   cargo run --release --bin sluice -- run examples/rate_to_console.sql
--
-- The rate source emits `rowsPerSecond` rows per second with Spark's value/timestamp formula.

CREATE STREAM ticks WITH ('connector' = 'rate', 'rowsPerSecond' = '5');

CREATE SINK console WITH ('connector' = 'console');

SET 'queryName' = 'ticks';
SET 'trigger' = 'processingTime=1 second';

INSERT INTO console
SELECT timestamp, value, value % 2 = 0 AS even
FROM ticks;
