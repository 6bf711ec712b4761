"""Kafka through PySpark: a query writes the rate-micro-batch source to a topic and another
reads the topic back, on a real Kafka-protocol broker (tansu, in memory, on 127.0.0.1)."""

import os
import shutil
import socket
import subprocess
import time

import pytest

from support import only_on


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp):
    tansu = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    if not os.path.exists(tansu):
        pytest.fail("tansu is not installed (tests/run.sh installs it: cargo install tansu@0.6.0 --locked --no-default-features --features dynostore)")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(tmp / "tansu.log", "wb")
    proc = subprocess.Popen(
        [tansu, "--storage-engine", "memory://tansu/", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "tansu did not start: " + (tmp / "tansu.log").read_text()
                time.sleep(0.1)
        yield tansu, url, f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_query_writes_a_topic_another_reads_it_back(spark, tmp, server, broker):
    only_on(server, "sluice", "Spark's Kafka connector (spark-sql-kafka) is a package the local Spark server does not load")
    tansu, url, bootstrap = broker
    # tansu answers ListOffsets "latest" with the last record *batch*'s base offset + 1, so
    # records are produced one per record batch (librdkafka's batch.num.messages), where that
    # is the end of the log, as a real broker would answer.
    subprocess.run([tansu, "topic", "create", "--broker", url, "--partitions", "1", "ticks"], check=True, capture_output=True)
    ticks = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 4).load()
    q = (
        ticks.selectExpr("CAST(value AS STRING) AS key", "CAST(value * 10 AS STRING) AS value")
        .writeStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("topic", "ticks")
        .option("kafka.batch.num.messages", "1")
        .option("checkpointLocation", str(tmp / "chk-out"))
        .trigger(processingTime="100 milliseconds")
        .start()
    )
    deadline = time.time() + 60
    while len([p for p in q.recentProgress if p.numInputRows > 0]) < 3:
        assert time.time() < deadline, "three batches written to Kafka"
        q.awaitTermination(0.1)
    q.stop()
    written = sum(p.numInputRows for p in q.recentProgress)

    back = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", "ticks")
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr("CAST(key AS STRING) AS k", "CAST(value AS STRING) AS v", "topic", "partition", "offset")
    )
    q2 = back.writeStream.format("memory").queryName("ticks_back").option("checkpointLocation", str(tmp / "chk-in")).trigger(availableNow=True).start()
    q2.awaitTermination(120)
    rows = spark.sql("select * from ticks_back").collect()
    assert sorted(int(r.k) for r in rows) == list(range(written))
    assert all(int(r.v) == 10 * int(r.k) and r.topic == "ticks" and r.partition == 0 for r in rows)
    assert sorted(r.offset for r in rows) == list(range(written))
