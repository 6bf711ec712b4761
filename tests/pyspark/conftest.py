"""Fixtures of the PySpark tests: a Spark Connect server for the whole session, and a fresh
SparkSession plus a temporary directory per test.

The server is, in order of preference:

* PYSPARK_TEST_REMOTE=sc://host:port — an already running server (sluice or Spark);
* PYSPARK_TEST_LOCAL_SPARK=1 — a real Apache Spark Connect server (local[2]) started from the
  full `pyspark` package's jars (or SPARK_HOME), to check the tests' expectations against Spark;
* PYSPARK_TEST_LOCAL_SPARK=classic — classic PySpark, `SparkSession.builder.master("local[2]")`
  in this process (no Connect at all), the same check by another route;
* otherwise `$SLUICE_BIN connect --listen 127.0.0.1:0 --ui-listen off`.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.dont_write_bytecode = True  # no __pycache__ next to the labs

import support
from support import REPO

# The helpers' functions travel inside foreachBatch functions to the server's Python worker,
# which cannot import this directory: pickle them by value.
support.pickle_by_value(support)

# Timestamps come back from PySpark as naive local times, and the server's Python worker
# (foreachBatch) converts with its own local zone: make both UTC, like the data.
os.environ["TZ"] = "UTC"
time.tzset()

SERVER_START_TIMEOUT = 60.0

_LISTENING = re.compile(r"listening on (sc://127\.0\.0\.1:(\d+))")


class Server:
    def __init__(self, kind, url, proc=None, stdout=None, stderr=None, classic=False):
        self.kind = kind  # "sluice" or "spark"
        self.url = url  # None for classic (non-Connect) Spark
        self.proc = proc
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.classic = classic

    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace") if self.stdout_path else ""

    def stderr_tail(self, n=60):
        if not self.stderr_path:
            return ""
        lines = Path(self.stderr_path).read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _server_env():
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable  # the foreachBatch worker: this venv's Python
    env["TZ"] = "UTC"
    env.pop("SPARK_REMOTE", None)
    return env


def _wait_for_line(proc, out_path, err_path, pattern, what):
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        text = Path(out_path).read_text(errors="replace") + "\n" + Path(err_path).read_text(errors="replace")
        m = pattern.search(text)
        if m:
            return m
        if proc.poll() is not None:
            pytest.fail(
                f"{what} exited with status {proc.returncode} before serving; its stderr:\n"
                + Path(err_path).read_text(errors="replace")[-6000:],
                pytrace=False,
            )
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(
                f"{what} did not announce its address within {SERVER_START_TIMEOUT:.0f} s; its stderr:\n"
                + Path(err_path).read_text(errors="replace")[-6000:],
                pytrace=False,
            )
        time.sleep(0.05)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _start_sluice(logdir):
    binary = os.environ.get("SLUICE_BIN")
    if not binary:
        pytest.fail(
            "SLUICE_BIN is not set: point it at a built sluice binary (e.g. "
            "SLUICE_BIN=target/debug/sluice), or set PYSPARK_TEST_LOCAL_SPARK=1 to run the tests "
            "against Apache Spark, or PYSPARK_TEST_REMOTE=sc://host:port to use a running server",
            pytrace=False,
        )
    binary = str(Path(binary).resolve()) if os.sep in binary else binary
    out, err = logdir / "sluice-connect.stdout", logdir / "sluice-connect.stderr"
    proc = subprocess.Popen(
        [binary, "connect", "--listen", "127.0.0.1:0", "--ui-listen", "off"],
        cwd=REPO, env=_server_env(), stdin=subprocess.DEVNULL,
        stdout=open(out, "wb"), stderr=open(err, "wb"),
    )
    m = _wait_for_line(proc, out, err, _LISTENING, f"`{binary} connect`")
    return Server("sluice", m.group(1), proc, out, err)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_spark(logdir):
    try:
        from pyspark.find_spark_home import _find_spark_home

        spark_home = Path(os.environ.get("SPARK_HOME") or _find_spark_home())
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"PYSPARK_TEST_LOCAL_SPARK=1 needs the full pyspark package: {e}", pytrace=False)
    submit = spark_home / "bin" / "spark-submit"
    if not submit.exists() or not list((spark_home / "jars").glob("spark-connect_*.jar")):
        pytest.fail(
            f"PYSPARK_TEST_LOCAL_SPARK=1 needs the full pyspark==4.0.1 package (with its jars), "
            f"not pyspark-client: no {submit} or Spark Connect jar under {spark_home}",
            pytrace=False,
        )
    port = _free_port()
    out, err = logdir / "spark-connect.stdout", logdir / "spark-connect.stderr"
    env = _server_env()
    env["SPARK_HOME"] = str(spark_home)
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    proc = subprocess.Popen(
        [
            str(submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master", "local[2]",
            "--conf", f"spark.connect.grpc.binding.port={port}",
            "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf", "spark.ui.enabled=false",
            # Fewer state partitions than Spark's 200 (the labs that care set their own):
            # Spark's local mode is slow with 200 state stores per stateful operator.
            "--conf", "spark.sql.shuffle.partitions=4",
        ],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=open(out, "wb"), stderr=open(err, "wb"),
    )
    _wait_for_line(proc, out, err, re.compile(r"Spark Connect server started at: \S+"), "Spark Connect server")
    return Server("spark", f"sc://127.0.0.1:{port}", proc, out, err)


def _start_classic():
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    return Server("spark", None, classic=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    remote = os.environ.get("PYSPARK_TEST_REMOTE")
    if remote:
        # PYSPARK_TEST_SERVER says what it is (sluice by default): some tests run on one only.
        yield Server(os.environ.get("PYSPARK_TEST_SERVER", "sluice"), remote)
        return
    local_spark = os.environ.get("PYSPARK_TEST_LOCAL_SPARK")
    if local_spark == "classic":
        # Classic PySpark (py4j, no Connect) in this process: SparkSession.builder.master(...)
        yield _start_classic()
        from pyspark.sql import SparkSession

        SparkSession.builder.getOrCreate().stop()
        return
    logdir = tmp_path_factory.mktemp("server")
    if local_spark == "1":
        srv = _start_spark(logdir)
    elif local_spark:
        pytest.fail(f"PYSPARK_TEST_LOCAL_SPARK={local_spark!r}: 1 (a Spark Connect server) or classic", pytrace=False)
    else:
        srv = _start_sluice(logdir)
    try:
        yield srv
    finally:
        _stop(srv.proc)


@pytest.fixture(scope="session")
def connect_url(server):
    return server.url


# Stopped sessions stay referenced until the end: PySpark 4.0.1's SparkSession.__del__ closes
# its client again, which shuts down the release thread pool all clients share; when the
# garbage collector runs that inside ThreadPoolExecutor.submit of the same pool, the process
# deadlocks (seen in these tests).
_stopped_sessions = []


@pytest.fixture
def spark(server):
    from pyspark.sql import SparkSession

    if server.classic:  # one JVM for the run; a session (own conf, views, queries) per test
        session = SparkSession.builder.getOrCreate().newSession()
    else:
        session = SparkSession.builder.remote(server.url).getOrCreate()
        _stopped_sessions.append(session)
    try:
        yield session
    finally:
        try:
            for q in session.streams.active:
                try:
                    q.stop()
                except Exception:  # noqa: BLE001 - best effort
                    pass
        finally:
            if not server.classic:
                session.stop()


@pytest.fixture
def tmp(tmp_path):
    """A temporary directory for a test's inputs, outputs and checkpoints."""
    return tmp_path

