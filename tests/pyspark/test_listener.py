"""spark.streams.addListener / removeListener: PySpark 4 runs the listener in the client and
receives the server's listener events over a long-running ExecutePlan stream (QueryStarted from
the start() response itself)."""

import threading

from pyspark.sql.streaming import StreamingQueryListener

from support import finish, run_with_timeout, stage_dir, wait_for

SCHEMA = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"


class Recorder(StreamingQueryListener):
    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def _add(self, *event):
        with self._lock:
            self.events.append(event)

    def onQueryStarted(self, event):
        self._add("started", str(event.id), str(event.runId), event.name, event.timestamp)

    def onQueryProgress(self, event):
        p = event.progress
        self._add("progress", str(p.id), str(p.runId), p.batchId, p.numInputRows)

    def onQueryIdle(self, event):
        self._add("idle", str(event.id), str(event.runId), event.timestamp)

    def onQueryTerminated(self, event):
        self._add("terminated", str(event.id), str(event.runId), event.exception, event.errorClassOnException)

    def of(self, query_id):
        with self._lock:
            return [e for e in self.events if e[1] == query_id]


def availabe_now_query(spark, src, name):
    return (
        spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(src))
        .writeStream.format("memory").queryName(name).trigger(availableNow=True).start()
    )


def test_started_progress_terminated(spark, tmp):
    stage_dir("events", tmp / "in", files=["events-0.json", "events-1.json"])
    listener = Recorder()
    spark.streams.addListener(listener)
    try:
        q = availabe_now_query(spark, tmp / "in", "listened")
        finish(q)
        events = wait_for(
            lambda: (lambda ev: ev if ev and ev[-1][0] == "terminated" else None)(listener.of(q.id)),
            30, "the QueryTerminatedEvent",
        )
    finally:
        run_with_timeout(lambda: spark.streams.removeListener(listener), 30, "removeListener")
    kinds = [e[0] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "terminated", kinds
    assert set(kinds) <= {"started", "progress", "idle", "terminated"}
    started, terminated = events[0], events[-1]
    assert started[1:4] == (q.id, q.runId, "listened") and started[4]
    assert terminated[1:3] == (q.id, q.runId) and terminated[3] is None and terminated[4] is None
    progress = [e for e in events if e[0] == "progress"]
    assert [e[3] for e in progress] == [0, 1]
    assert all(e[2] == q.runId for e in progress)
    assert [e[4] for e in progress] == [8, 8]


def test_failed_query_terminated_event_has_exception(spark, tmp):
    src = tmp / "bad"
    src.mkdir()
    (src / "x.json").write_text("{not json}\n")
    listener = Recorder()
    spark.streams.addListener(listener)
    try:
        q = (
            spark.readStream.schema(SCHEMA).option("mode", "FAILFAST").json(str(src))
            .writeStream.format("memory").queryName("listened_failure").trigger(availableNow=True).start()
        )
        terminated = wait_for(
            lambda: [e for e in listener.of(q.id) if e[0] == "terminated"], 60, "the QueryTerminatedEvent"
        )
    finally:
        run_with_timeout(lambda: spark.streams.removeListener(listener), 30, "removeListener")
    assert terminated[0][3] and "x.json" in terminated[0][3], terminated[0][3][:2000]


def test_idle_events(spark, tmp):
    """A query without new data reports QueryIdleEvents, every
    spark.sql.streaming.noDataProgressEventInterval."""
    stage_dir("events", tmp / "in", files=["events-0.json"])
    spark.conf.set("spark.sql.streaming.noDataProgressEventInterval", "100ms")
    listener = Recorder()
    spark.streams.addListener(listener)
    try:
        q = (
            spark.readStream.schema(SCHEMA).json(str(tmp / "in"))
            .writeStream.format("memory").queryName("idle_query")
            .trigger(processingTime="50 milliseconds").start()
        )
        idle = wait_for(lambda: [e for e in listener.of(q.id) if e[0] == "idle"], 60, "a QueryIdleEvent")
        assert idle[0][2] == q.runId and idle[0][3]
        q.stop()
        # The last event before removing the listener: PySpark's removeListener holds the bus
        # lock while it joins the thread that delivers events, and that thread takes the same
        # lock to deliver one, so an event still in flight then deadlocks the client.
        wait_for(lambda: any(e[0] == "terminated" for e in listener.of(q.id)), 30, "the QueryTerminatedEvent")
    finally:
        run_with_timeout(lambda: spark.streams.removeListener(listener), 30, "removeListener")


def test_remove_listener(spark, tmp):
    stage_dir("events", tmp / "a", files=["events-0.json"])
    stage_dir("events", tmp / "b", files=["events-0.json"])
    first, second = Recorder(), Recorder()
    spark.streams.addListener(first)
    spark.streams.addListener(second)
    try:
        q1 = availabe_now_query(spark, tmp / "a", "before_removal")
        finish(q1)
        wait_for(lambda: any(e[0] == "terminated" for e in first.of(q1.id)), 30, "first sees q1 terminate")
        wait_for(lambda: any(e[0] == "terminated" for e in second.of(q1.id)), 30, "second sees q1 terminate")

        run_with_timeout(lambda: spark.streams.removeListener(first), 30, "removeListener(first)")
        q2 = availabe_now_query(spark, tmp / "b", "after_removal")
        finish(q2)
        # `second` still listens: once it has seen q2 end, `first` would have too.
        wait_for(lambda: any(e[0] == "terminated" for e in second.of(q2.id)), 30, "second sees q2 terminate")
        assert first.of(q2.id) == []
    finally:
        run_with_timeout(lambda: spark.streams.removeListener(first), 30, "removeListener(first)")
        # The last listener: the client asks the server to end the event stream and joins it.
        run_with_timeout(lambda: spark.streams.removeListener(second), 30, "removeListener(second)")
    stage_dir("events", tmp / "c", files=["events-0.json"])
    q3 = availabe_now_query(spark, tmp / "c", "no_listener")
    finish(q3)
    assert second.of(q3.id) == [] and first.of(q3.id) == []
