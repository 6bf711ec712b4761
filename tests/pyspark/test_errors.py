"""Errors reach PySpark quickly, as pyspark exceptions whose message says what is wrong — never
a hang (every call is bounded)."""

import pytest
from pyspark.errors import AnalysisException, PySparkException

from support import only_on, run_with_timeout, stage_dir

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
QUICKLY = 30  # seconds


@pytest.fixture
def events(spark, tmp):
    stage_dir("events", tmp / "in", files=["events-0.json"])
    return spark.readStream.schema(SCHEMA).json(str(tmp / "in"))


def _memory(df, name, mode="append"):
    return df.writeStream.format("memory").queryName(name).outputMode(mode).start()


# Spark's own checks, which any server must make (Spark 4.0.1's texts; the assertions take the
# words that Spark 3.5's and 4.0's texts share).
ANALYSIS_ERRORS = {
    "batch action on a stream": (
        lambda df: df.collect(),
        ["queries with streaming sources must be executed with writestream.start()"],
    ),
    "count on a stream": (
        lambda df: df.count(),
        ["queries with streaming sources must be executed with writestream.start()"],
    ),
    "complete mode without aggregation": (
        lambda df: _memory(df, "bad_complete", "complete"),
        ["complete", "aggregation"],
    ),
    "sort in append mode": (
        lambda df: _memory(df.orderBy("event_time"), "bad_sort"),
        ["sorting is not supported on streaming dataframes/datasets"],
    ),
    "aggregation in append mode without watermark": (
        lambda df: _memory(df.groupBy("action").count(), "bad_append"),
        ["append", "aggregation", "watermark"],
    ),
    "sample on a stream": (
        lambda df: _memory(df.sample(0.5), "bad_sample"),
        ["sampling is not supported on streaming dataframes/datasets"],
    ),
    "unknown column": (
        lambda df: _memory(df.select("no_such_column"), "bad_column"),
        ["no_such_column"],
    ),
}


@pytest.mark.parametrize("case", sorted(ANALYSIS_ERRORS))
def test_analysis_errors(events, case):
    action, words = ANALYSIS_ERRORS[case]
    with pytest.raises(AnalysisException) as raised:
        run_with_timeout(lambda: action(events), QUICKLY, case)
    message = str(raised.value).lower()
    for w in words:
        assert w in message, f"{case}: {w!r} not in: {str(raised.value)[:1500]}"


def test_unresolved_column_error_class(events):
    with pytest.raises(AnalysisException) as raised:
        run_with_timeout(lambda: _memory(events.select("no_such_column"), "bad_column2"), QUICKLY, "select")
    assert (raised.value.getCondition() or "").startswith("UNRESOLVED_COLUMN"), raised.value.getCondition()


# Operations sluice does not run: each must fail at start() or fail the query, quickly, with a
# pyspark exception naming the operation. (Spark runs them, hence sluice only.)


def _foreach_writer(df):
    class RowWriter:
        def open(self, partition_id, epoch_id):
            return True

        def process(self, row):
            pass

        def close(self, error):
            pass

    return df.writeStream.foreach(RowWriter()).start()


def _map_in_pandas(df):
    def identity(batches):
        yield from batches

    return _memory(df.mapInPandas(identity, df.schema), "bad_map_in_pandas")


UNSUPPORTED = {
    "writeStream.foreach": (_foreach_writer, ["foreach"]),
    "mapInPandas": (_map_in_pandas, ["mapinpandas", "mappartitions"]),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_operation_fails_fast(server, events, case):
    only_on(server, "sluice", f"Spark supports {case} on streams")
    action, names = UNSUPPORTED[case]

    def run():
        q = action(events)  # may raise here ...
        q.awaitTermination(QUICKLY)  # ... or fail the query
        q.stop()
        return q

    with pytest.raises(PySparkException) as raised:
        run_with_timeout(run, QUICKLY + 15, case)
    message = str(raised.value).lower()
    assert any(n in message for n in names), f"{case}: none of {names} in: {str(raised.value)[:1500]}"
