"""Differential: a query submitted through Spark Connect (PySpark) and the same query as a job
file (`sluice run`) give the same rows in every batch. Both write a `files` sink (JSON) over the
same input, with availableNow and maxFilesPerTrigger=1, so their batches are deterministic;
each batch's rows are read from the files its `_spark_metadata/<batch>` log lists.

Only against sluice with SLUICE_BIN (the job-file front end is sluice's own)."""

import os
import subprocess
from pathlib import Path

import pytest
import pyspark.sql.functions as F

from support import finish, load_lab, multiset, only_on, read_sink_batches, stage_dir

STREAM_COLUMNS = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
WATERMARK = ",\n  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE"


def _stateless(clicks):
    return clicks.where(F.col("action") == "buy").select(
        "event_time", "user_id", "amount", (F.col("amount") * 2).alias("doubled")
    )


CASES = {
    "stateless": dict(
        pyspark=lambda lab, df: _stateless(df),
        watermark=False,
        sql="SELECT event_time, user_id, amount, amount * 2 AS doubled FROM clicks WHERE action = 'buy'",
    ),
    "windowed_append": dict(
        pyspark=lambda labs, df: labs["windowed_counts"].windowed_counts(df),
        watermark=True,
        sql="""SELECT window.start AS window_start, window.end AS window_end, action, cnt, revenue FROM (
  SELECT window(event_time, '5 minutes') AS window, action, count(*) AS cnt, sum(amount) AS revenue
  FROM clicks GROUP BY window(event_time, '5 minutes'), action
)""",
    ),
    "dedup": dict(
        pyspark=lambda labs, df: labs["dedup_to_parquet"].deduplicated(df),
        watermark=True,
        sql="""SELECT event_time, user_id, action, amount, event_id
FROM (SELECT DISTINCT ON (event_id, event_time) * FROM clicks)""",
    ),
}


def _job(src, out, chk, name, case):
    return f"""
CREATE STREAM clicks (
  {STREAM_COLUMNS}{WATERMARK if case['watermark'] else ''}
) WITH ('connector' = 'files', 'format' = 'json', 'path' = '{src}', 'maxFilesPerTrigger' = '1');

CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = '{out}');

SET 'queryName' = '{name}';
SET 'outputMode' = 'append';
SET 'trigger' = 'availableNow';
SET 'checkpointLocation' = '{chk}';
SET 'spark.sql.shuffle.partitions' = '4';

INSERT INTO out {case['sql']};
"""


@pytest.mark.parametrize("name", sorted(CASES))
def test_connect_equals_job_file(server, spark, tmp, name):
    only_on(server, "sluice", "compares with sluice's job-file front end")
    binary = os.environ.get("SLUICE_BIN")
    if not binary:
        pytest.skip("SLUICE_BIN is not set: the job-file side needs `$SLUICE_BIN run`")
    case = CASES[name]
    labs = {n: load_lab(n) for n in ("windowed_counts", "dedup_to_parquet")}
    src = tmp / "clicks"
    stage_dir("clicks", src)

    # the job file
    job = tmp / f"{name}.sql"
    job.write_text(_job(src, tmp / "out-sql", tmp / "chk-sql", f"{name}_sql", case))
    run = subprocess.run(
        [str(Path(binary).resolve()), "run", str(job), "--ui-listen", "off"],
        cwd=tmp, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, f"sluice run failed ({run.returncode}):\n{run.stderr[-4000:]}"

    # PySpark
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    clicks = spark.readStream.schema(STREAM_COLUMNS).option("maxFilesPerTrigger", 1).json(str(src))
    q = (
        case["pyspark"](labs, clicks)
        .writeStream.format("json")
        .option("path", str(tmp / "out-py"))
        .option("checkpointLocation", str(tmp / "chk-py"))
        .outputMode("append")
        .queryName(f"{name}_py")
        .trigger(availableNow=True)
        .start()
    )
    finish(q)
    assert q.exception() is None

    sql_batches = read_sink_batches(tmp / "out-sql", "json")
    py_batches = read_sink_batches(tmp / "out-py", "json")
    assert sum(map(len, py_batches.values())) > 0
    columns = sorted({k for rows in sql_batches.values() for r in rows for k in r})
    assert columns == sorted({k for rows in py_batches.values() for r in rows for k in r})
    nonempty = lambda batches: {b: rows for b, rows in batches.items() if rows}  # noqa: E731
    assert sorted(nonempty(py_batches)) == sorted(nonempty(sql_batches)), "rows in different batches"
    for b in sorted(nonempty(sql_batches)):
        assert multiset(py_batches[b], columns) == multiset(sql_batches[b], columns), f"batch {b}"
