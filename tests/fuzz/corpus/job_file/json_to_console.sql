-- Lab: watch a directory of JSON-lines files and print each new file as a micro-batch
-- (Ctrl-C to stop). Drop more files into examples/data/events while it runs, e.g.
--
--   cp examples/data/events/events-0.json examples/data/events/events-copy-$(date +%s).json
--
--   cargo run --release --bin sluice -- run examples/json_to_console.sql

CREATE STREAM events (
  event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING
) WITH (
  'connector' = 'files', 'format' = 'json', 'path' = 'examples/data/events',
  'maxFilesPerTrigger' = '1', 'mode' = 'PERMISSIVE'
);

CREATE SINK console WITH ('connector' = 'console', 'numRows' = '10');

SET 'queryName' = 'events';
SET 'trigger' = 'processingTime=2 seconds';

INSERT INTO console SELECT * FROM events;
