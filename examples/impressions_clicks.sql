-- Which ad impressions led to a click within the hour: a stream-stream left outer join with
-- watermarks and a time bound, the programming guide's impressions ⋈ clicks.
--
--   cargo run --release --bin sluice -- run examples/impressions_clicks.sql
--
-- Both streams keep their rows in state until the watermark says no matching row can still
-- arrive. A click joins its impression as soon as both are in; an impression nobody clicked
-- comes out with NULL click columns only once the clicks' watermark has passed its hour (i2:
-- its click came 85 minutes later; i5: never clicked), in the batch after that watermark moved.

CREATE STREAM impressions (
  impression_id   STRING,
  ad_id           STRING,
  impression_time TIMESTAMP,
  WATERMARK FOR impression_time AS impression_time - INTERVAL '10' MINUTE
) WITH (
  'connector' = 'files',
  'format' = 'json',
  'path' = 'examples/data/impressions',
  'maxFilesPerTrigger' = '1'
);

CREATE STREAM clicks (
  ad_id      STRING,
  click_time TIMESTAMP,
  WATERMARK FOR click_time AS click_time - INTERVAL '20' MINUTE
) WITH (
  'connector' = 'files',
  'format' = 'json',
  'path' = 'examples/data/ad_clicks',
  'maxFilesPerTrigger' = '1'
);

CREATE SINK out WITH ('connector' = 'console', 'truncate' = 'false');

SET 'queryName' = 'impressions_clicks';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT i.impression_id, i.ad_id, i.impression_time, c.click_time
FROM impressions i LEFT JOIN clicks c
  ON i.ad_id = c.ad_id
  AND c.click_time >= i.impression_time
  AND c.click_time <= i.impression_time + INTERVAL '1' HOUR;
