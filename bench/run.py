#!/usr/bin/env python3
"""sluice's benchmark suite: the same streaming workloads on sluice and on Apache Spark, on this
machine, side by side with the decode limit; plus sluice's recovery time after a SIGKILLed
executor.

    bench/run.py                 # 1M-row inputs (add --rows 10000000 for the 10M run)
    bench/run.py --smoke         # tiny inputs, a few seconds per engine: checks the runner works
    bench/run.py --no-spark      # sluice and the decode limit only
    bench/run.py --repeat 3      # every measurement three times; the median run is reported
    bench/run.py --workloads '' --no-spark --nexmark-events 10000000   # Nexmark only
    bench/run.py --smoke --no-spark --workloads W3 --queries '' --metrics-cost --repeat 3   # metrics' cost

Spark runs from a virtual environment outside the repository (~/.cache/sluice-bench/venv,
created on first use with `pip install pyspark==4.0.1`; Java 17 must be installed). Results are
printed as a table and written to bench/results/<name>.json and .png.

Figures, for both engines, come from the engines' own progress reports:
  * processing time = from the first batch's trigger start to the end of the last batch, so
    process start-up (JVM, cluster) is excluded; start-up = wall time - processing time;
  * rows/s = input rows / processing time;
  * rows/CPU-s = input rows / CPU time (user + system) of the whole run, start-up included —
    the engine's speed per core;
  * peak RSS = the largest summed resident set of the engine's process tree, sampled every 50 ms.
The decode limit is the time sluice's own JSON decoder needs to turn the same files into Arrow
on the same number of threads, with nothing else to do.

Nexmark (sluice only: Spark has no Nexmark source) runs the job files in bench/nexmark/ over
`--nexmark-events` generated events (all types; the queries read the 92% that are bids) into
the noop sink, and reports events/s over the processing time, events/s per core (the machine's
cores, all of which the embedded engine uses) and events per CPU-second (user + system time of
the whole run, start-up included). The generator limit is the time the nexmark connector's own
split reader needs to generate the same events into Arrow on the same threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path.home() / ".cache" / "sluice-bench" / "venv"
SLUICE = ROOT / "target" / "release" / "sluice"
BENCH = ROOT / "target" / "release" / "sluice-bench"
EVENT_COLUMNS = "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"
WORKLOADS = {
    "W0": "stateless: filter + projection -> parquet",
    "W1": "window 5 min by action, count + sum, watermark 10 min, update",
    "W2": "dedup with watermark -> window count, append -> parquet",
    "W3": "per-batch overhead: 1 tiny file per batch, 50 batches",
    "W4": "stream-stream join: a user's buys within 10 min of a view, watermarks 10 min -> parquet",
    "W5": "stateful per-batch overhead: W1 over 1-row files, one per batch, 50 batches, at Spark's default 200 state partitions",
}

# W5 measures what a batch costs with Spark's default partition count, whatever --shuffle-partitions says.
W5_PARTITIONS = 200


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ensure_venv() -> Path:
    """The virtual environment with PySpark, psutil, matplotlib and pyarrow; created once."""
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV} (pip install pyspark==4.0.1 psutil matplotlib pyarrow)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import pyspark, psutil, matplotlib, pyarrow"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pyspark==4.0.1", "psutil", "matplotlib", "pyarrow"], check=True)
    return python


def reexec_in_venv(python: Path) -> None:
    """The runner itself needs psutil and matplotlib: re-run it with the venv's Python."""
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def build() -> None:
    log("building sluice and sluice-bench (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "sluice", "--bin", "sluice-bench"], cwd=ROOT, check=True)


def repeated(n: int, key: str, run) -> dict:
    """Calls `run(i)` for i in 0..n and returns the result whose `key` (a duration) is the
    median, with every run's `key` under `<key>_runs`: this machine is shared and noisy, and one
    run can be off by a third."""
    runs = [run(i) for i in range(max(n, 1))]
    chosen = dict(sorted(runs, key=lambda r: r[key])[len(runs) // 2])
    if len(runs) > 1:
        chosen[f"{key}_runs"] = [r[key] for r in runs]
    return chosen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A free port whose successor is free too (etcd's client and peer ports)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


class PeakRss:
    """Samples the summed RSS of a process and its descendants, and the CPU time each of them
    has used (the JVM that PySpark starts is not a child the runner waits for, so the kernel's
    accounting of waited-for children misses it)."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
                for p in procs:
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
            time.sleep(0.05)

    def finish(self) -> tuple[int, float]:
        """Peak RSS (bytes) and the CPU seconds seen (up to the last sample of each process)."""
        self.stop.set()
        self.thread.join()
        return self.peak, sum(self.cpu.values())


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, int, float]:
    """Runs `cmd`; returns its result, wall seconds, peak RSS bytes and CPU seconds (user +
    system of the process and all its descendants)."""
    cpu_before = children_cpu_s()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = PeakRss(proc.pid)
    out, err = proc.communicate()
    wall = time.monotonic() - started
    peak, sampled_cpu = rss.finish()
    cpu = max(children_cpu_s() - cpu_before, sampled_cpu)
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{err[-3000:]}")
    return done, wall, peak, cpu


def iso_ms(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000.0


def summarize(progress: list[dict], wall: float, peak: int, cpu: float, input_rows: int) -> dict:
    """The same figures for either engine, from its progress reports. Throughput counts the
    input records (`input_rows`), not the engine's numInputRows: Spark pushes the W0 filter
    into its JSON reader and reports only the rows that passed it."""
    reported = sum(p["numInputRows"] for p in progress)
    starts = [iso_ms(p["timestamp"]) for p in progress]
    ends = [iso_ms(p["timestamp"]) + p["batchDuration"] for p in progress]
    processing = max((max(ends) - min(starts)) / 1000.0, 1e-3) if progress else wall
    parts = {}
    for key in ("triggerExecution", "latestOffset", "walCommit", "queryPlanning", "addBatch", "commitOffsets"):
        values = [p["durationMs"].get(key, 0) for p in progress if "durationMs" in p]
        if values:
            parts[key] = statistics.median(values)
    # The state commit of a batch: every stateful operator's commitTimeMs (summed over its partitions).
    commits = [sum(op.get("commitTimeMs", 0) for op in p["stateOperators"]) for p in progress if p.get("stateOperators")]
    if commits:
        parts["stateCommit"] = statistics.median(commits)
    return {
        "batches": len(progress),
        "input_rows": input_rows,
        "reported_input_rows": reported,
        "wall_s": round(wall, 3),
        "processing_s": round(processing, 3),
        "startup_s": round(max(wall - processing, 0.0), 3),
        "rows_per_s": round(input_rows / processing, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "cpu_s": round(cpu, 2),
        "median_ms": parts,
    }


def sluice_join_job(input_dir: Path, out: Path, chk: Path, max_files: int, partitions: int) -> str:
    """W4: the same files read as two streams, views and buys, joined per user within 10 minutes."""
    streams = "".join(
        f"CREATE STREAM {name} ({EVENT_COLUMNS},\n  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n"
        f"  WITH ('connector' = 'files', 'format' = 'json', 'path' = '{input_dir}', 'maxFilesPerTrigger' = '{max_files}');\n"
        for name in ("views", "buys")
    )
    return (
        streams
        + f"CREATE SINK out WITH ('connector' = 'files', 'format' = 'parquet', 'path' = '{out}');\n"
        + f"SET 'checkpointLocation' = '{chk}';\n"
        + "SET 'trigger' = 'availableNow';\n"
        + f"SET 'spark.sql.shuffle.partitions' = '{partitions}';\n"
        + "INSERT INTO out SELECT v.user_id, v.event_id AS view_id, b.event_id AS buy_id, b.amount\n"
        + "FROM (SELECT * FROM views WHERE action = 'view') v\n"
        + "JOIN (SELECT * FROM buys WHERE action = 'buy') b\n"
        + "  ON v.user_id = b.user_id AND b.event_time BETWEEN v.event_time AND v.event_time + INTERVAL '10' MINUTE;\n"
    )


def sluice_job(workload: str, input_dir: Path, out: Path, chk: Path, max_files: int, partitions: int) -> str:
    if workload == "W4":
        return sluice_join_job(input_dir, out, chk, max_files, partitions)
    watermark = ",\n  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE" if workload in ("W1", "W2", "W5") else ""
    head = (
        f"CREATE STREAM events ({EVENT_COLUMNS}{watermark})\n"
        f"  WITH ('connector' = 'files', 'format' = 'json', 'path' = '{input_dir}', 'maxFilesPerTrigger' = '{max_files}');\n"
        f"SET 'checkpointLocation' = '{chk}';\n"
        "SET 'trigger' = 'availableNow';\n"
        f"SET 'spark.sql.shuffle.partitions' = '{partitions}';\n"
    )
    parquet = f"CREATE SINK out WITH ('connector' = 'files', 'format' = 'parquet', 'path' = '{out}');\n"
    if workload in ("W0", "W3"):
        return head + parquet + "INSERT INTO out SELECT event_time, user_id, amount FROM events WHERE action = 'buy';\n"
    if workload in ("W1", "W5"):
        return (
            head
            + "CREATE SINK out WITH ('connector' = 'memory');\nSET 'outputMode' = 'update';\n"
            + "INSERT INTO out SELECT window(event_time, '5 minutes') AS window, action, count(*) AS n, sum(amount) AS total\n"
            + "FROM events GROUP BY window(event_time, '5 minutes'), action;\n"
        )
    return (
        head
        + parquet
        + "INSERT INTO out SELECT w.start AS start, n FROM (\n"
        + "  SELECT window(event_time, '5 minutes') AS w, count(*) AS n\n"
        + "  FROM (SELECT DISTINCT ON (event_id, event_time) * FROM events)\n"
        + "  GROUP BY window(event_time, '5 minutes'));\n"
    )


def run_sluice(workload: str, input_dir: Path, work: Path, max_files: int, partitions: int, ui: str = "127.0.0.1:0") -> dict:
    """One workload on `sluice run` with its UI, REST API and metrics on `ui` (as a user gets
    them by default), or without (`off`)."""
    job = work / "job.sql"
    job.write_text(sluice_job(workload, input_dir, work / "out", work / "chk", max_files, partitions))
    env = dict(os.environ, RUST_LOG="warn")
    cmd = [str(SLUICE), "run", str(job), "--executors", "2", "--progress-json", str(work / "progress.jsonl"), "--ui-listen", ui]
    _, wall, peak, cpu = run_measured(cmd, work, env)
    progress = [json.loads(line) for line in (work / "progress.jsonl").read_text().splitlines() if line.strip()]
    return summarize(progress, wall, peak, cpu, count_lines(input_dir))


def run_spark(python: Path, workload: str, input_dir: Path, work: Path, max_files: int, partitions: int) -> dict:
    cmd = [
        str(python), str(ROOT / "bench" / "spark_job.py"), "--workload", workload, "--input", str(input_dir),
        "--output", str(work / "out"), "--checkpoint", str(work / "chk"),
        "--max-files-per-trigger", str(max_files), "--shuffle-partitions", str(partitions),
    ]
    done, wall, peak, cpu = run_measured(cmd, work, dict(os.environ, PYSPARK_PYTHON=str(python)))
    line = next(l for l in done.stdout.splitlines() if l.startswith("SPARK-PROGRESS "))
    return summarize(json.loads(line[len("SPARK-PROGRESS "):]), wall, peak, cpu, count_lines(input_dir))


def run_nexmark(query: str, events: int, work: Path) -> dict:
    """One Nexmark job file over `events` events (its maxEvents rewritten), into the noop sink."""
    text = (ROOT / "bench" / "nexmark" / f"{query}.sql").read_text()
    # Every stream of the job (q3 and q8 join two) reads the same events.
    text, n = re.subn(r"'maxEvents' = '\d+'", f"'maxEvents' = '{events}'", text)
    if n == 0:
        raise RuntimeError(f"bench/nexmark/{query}.sql: no 'maxEvents' option to set")
    job = work / f"{query}.sql"
    job.write_text(text)
    progress_file = work / f"{query}-progress.jsonl"
    env = dict(os.environ, RUST_LOG="warn")
    _, wall, peak, cpu = run_measured([str(SLUICE), "run", str(job), "--executors", "2", "--progress-json", str(progress_file)], work, env)
    progress = [json.loads(line) for line in progress_file.read_text().splitlines() if line.strip()]
    summary = summarize(progress, wall, peak, cpu, events)
    cores = os.cpu_count() or 1
    return {
        "events": events,
        "bids": summary["reported_input_rows"],
        "output_rows": sum(p["sink"].get("numOutputRows", 0) for p in progress),
        "batches": summary["batches"],
        "wall_s": summary["wall_s"],
        "startup_s": summary["startup_s"],
        "processing_s": summary["processing_s"],
        "events_per_s": summary["rows_per_s"],
        "events_per_s_per_core": round(summary["rows_per_s"] / cores, 1),
        "events_per_cpu_s": round(events / max(cpu, 1e-3), 1),
        "cpu_s": summary["cpu_s"],
        "peak_rss_mb": summary["peak_rss_mb"],
    }


def nexmark_limit(events: int, event_type: str = "bid") -> dict:
    cmd = [str(BENCH), "nexmark-gen", "--events", str(events), "--threads", "2", "--event-type", event_type]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def query_limit(query: str, events: int, limits: dict) -> float:
    """The generator limit of one job file in events/s: the time to generate every event type its
    streams read (q3 and q8 read persons and auctions, the others bids), one after the other on
    the same threads. `limits` caches each type's measurement."""
    text = (ROOT / "bench" / "nexmark" / f"{query}.sql").read_text()
    seconds = 0.0
    for event_type in re.findall(r"'eventType' = '(\w+)'", text):
        if event_type not in limits:
            limits[event_type] = nexmark_limit(events, event_type)
        seconds += limits[event_type]["seconds"]
    return events / max(seconds, 1e-9)


def count_lines(input_dir: Path) -> int:
    """Input records: one JSON object per line."""
    return sum(f.read_bytes().count(b"\n") for f in input_dir.iterdir() if f.suffix == ".json")


def parquet_rows(directory: Path) -> list[tuple]:
    """Rows of a file-sink directory, through its _spark_metadata (committed files only)."""
    import pyarrow.parquet as pq

    files = []
    entries = [e for e in (directory / "_spark_metadata").iterdir() if e.name.split(".")[0].isdigit()]
    for entry in sorted(entries, key=lambda p: p.name):
        for line in entry.read_text().splitlines()[1:]:
            files.append(json.loads(line)["path"].removeprefix("file://"))
    def plain(v):
        # Spark writes INT96 timestamps (read back naive), sluice microseconds in UTC.
        if isinstance(v, datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=timezone.utc)
            return round(v.timestamp() * 1_000_000)
        return v

    rows = []
    for f in files:
        table = pq.read_table(f)
        rows.extend(tuple(plain(v) for v in r.values()) for r in table.to_pylist())
    return sorted(rows, key=repr)


def decode_limit(input_dir: Path) -> dict:
    done = subprocess.run([str(BENCH), "decode", "--dir", str(input_dir), "--threads", "2"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


class LocalCluster:
    """deploy/local/cluster.sh with 3 executors, TLS on (as users run it) or off (--no-tls)."""

    def __init__(self, work: Path, tls: bool = True):
        self.env = dict(
            os.environ,
            SLUICE_BIN=str(SLUICE),
            SLUICE_WORK=str(work / "cluster"),
            SLUICE_DRIVER_PORT=str(free_port()),
            SLUICE_ETCD_PORT=str(free_port_pair()),
            SLUICE_ALLOW_LOCATIONS=f"{work},{tempfile.gettempdir()}",
            RUST_LOG="warn",
        )
        self.script = ROOT / "deploy" / "local" / "cluster.sh"
        self.tls = tls

    def __enter__(self) -> "LocalCluster":
        args = [str(self.script), "start", "--executors", "3"] + ([] if self.tls else ["--no-tls"])
        started = subprocess.run(args, env=self.env, capture_output=True, text=True)
        if started.returncode != 0:
            self.__exit__()
            raise RuntimeError(f"cluster.sh start failed: {(started.stdout + started.stderr).strip()}")
        # The CLI's settings (driver URL, CA, token), as `eval "$(cluster.sh env)"` sets them.
        printed = subprocess.run([str(self.script), "env"], env=self.env, capture_output=True, text=True, check=True).stdout
        for line in printed.splitlines():
            words = shlex.split(line)
            if words[:1] == ["unset"]:
                for key in words[1:]:
                    self.env.pop(key, None)
            elif words[:1] == ["export"]:
                for word in words[1:]:
                    key, _, value = word.partition("=")
                    self.env[key] = value
        return self

    def __exit__(self, *_exc) -> None:
        subprocess.run([str(self.script), "stop"], env=self.env, capture_output=True)

    def submit(self, job: Path) -> None:
        # The driver answers once it has been elected leader.
        deadline = time.monotonic() + 60
        while True:
            submitted = subprocess.run([str(SLUICE), "submit", str(job)], env=self.env, capture_output=True, text=True)
            if submitted.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"submit failed: {submitted.stderr.strip()}")
            time.sleep(0.5)

    def kill_executor(self, i: int) -> None:
        subprocess.run([str(self.script), "kill-executor", str(i)], env=self.env, check=True, capture_output=True)


def batch_times(chk: Path, log_dir: str) -> dict[int, float]:
    """Batch id -> modification time (epoch s) of its file in the checkpoint's `offsets` or
    `commits` log."""
    d = chk / log_dir
    if not d.exists():
        return {}
    return {int(f.name): f.stat().st_mtime for f in d.iterdir() if f.name.isdigit()}


def recovery(input_dir: Path, work: Path, partitions: int) -> dict:
    """W1 on a 3-executor local cluster; one executor SIGKILLed after three committed batches.

    Recovery is timed from the kill to the commit of the first batch planned after it (its
    offsets file written after the kill): that batch runs without the dead executor, its
    partitions and their state moved. A batch already in flight at the kill may commit moments
    later without needing anything from the dead executor, so its commit says nothing about
    recovery. Both ends are the checkpoint's own file times. `normal_batch_ms` (median, offsets
    to commit, of the batches before the kill) is what a batch takes without a failure."""
    chk = work / "chk"
    job = work / "job.sql"
    job.write_text(sluice_job("W1", input_dir, work / "out", chk, 1, partitions))
    with LocalCluster(work) as cluster:
        cluster.submit(job)
        deadline = time.monotonic() + 300
        while len(batch_times(chk, "commits")) < 3:
            if time.monotonic() > deadline:
                raise RuntimeError("the recovery run committed no batches")
            time.sleep(0.02)
        killed = time.time()
        cluster.kill_executor(1)
        while True:
            offsets, committed = batch_times(chk, "offsets"), batch_times(chk, "commits")
            planned = sorted(b for b, t in offsets.items() if t >= killed)
            if planned and planned[0] in committed:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no batch planned after the kill committed (planned after it: {planned})")
            time.sleep(0.005)
        first = planned[0]
        before = [committed[b] - offsets[b] for b in committed if b in offsets and committed[b] < killed]
        return {
            "kill_to_recovered_commit_ms": round((committed[first] - killed) * 1000.0, 1),
            "batches_before_kill": len(before),
            "normal_batch_ms": round(statistics.median(before) * 1000.0, 1) if before else None,
        }


def cluster_run(workload: str, input_dir: Path, work: Path, max_files: int, partitions: int, tls: bool) -> dict:
    """One workload on a 3-executor local cluster, timed from its checkpoint: the first offsets
    file to the last commit (throughput), and commit to commit (per-batch time)."""
    chk = work / "chk"
    job = work / "job.sql"
    job.write_text(sluice_job(workload, input_dir, work / "out", chk, max_files, partitions))
    files = len(list(input_dir.iterdir()))
    data_batches = -(-files // max_files)
    with LocalCluster(work, tls) as cluster:
        cluster.submit(job)
        deadline = time.monotonic() + 600
        last, settled = -1, time.monotonic()
        # Done when every file's batch committed and nothing new commits for 3 s.
        while True:
            n = len(batch_times(chk, "commits"))
            if n != last:
                last, settled = n, time.monotonic()
            elif n >= data_batches and time.monotonic() - settled > 3:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workload} committed {n} of {data_batches} batches")
            time.sleep(0.05)
    stamps = sorted(f.stat().st_mtime for f in (chk / "commits").iterdir())
    started = min(f.stat().st_mtime for f in (chk / "offsets").iterdir())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    rows = count_lines(input_dir)
    return {
        "batches": len(stamps),
        "processing_s": round(stamps[-1] - started, 3),
        "rows_per_s": round(rows / max(stamps[-1] - started, 1e-3), 1),
        "median_batch_ms": round(1000.0 * statistics.median(gaps), 1) if gaps else None,
    }


class Scraper:
    """Scrapes `url` every `interval` seconds in a thread, as Prometheus would (much more often
    than its usual 15 s, to bound the cost from above); counts the scrapes that answered."""

    def __init__(self, url: str, interval: float):
        import threading
        import urllib.request

        self.scrapes = 0
        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        r.read()
                        self.scrapes += 1
                except OSError:
                    pass  # not listening yet, or already gone

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.scrapes


def metrics_cost(tiny: Path, work: Path, partitions: int, repeat: int) -> dict:
    """W3's per-batch time on `sluice run` without the HTTP server (`--ui-listen off`: no
    metrics kept) and with it, /metrics scraped every 10 ms — W3's 50 batches take well under a
    second, and a scrape per batch or two is the worst case (Prometheus scrapes every 15 s)."""
    out: dict = {}
    for mode in ("off", "scraped"):
        log(f"W3 with metrics {mode}")

        def run(i: int) -> dict:
            d = work / f"W3-metrics-{mode}-{i}"
            d.mkdir()
            if mode == "off":
                return run_sluice("W3", tiny, d, 1, partitions, ui="off")
            port = free_port()
            scraper = Scraper(f"http://127.0.0.1:{port}/metrics", 0.01)
            try:
                r = run_sluice("W3", tiny, d, 1, partitions, ui=f"127.0.0.1:{port}")
            finally:
                r_scrapes = scraper.stop()
            r["scrapes"] = r_scrapes
            return r

        def per_batch(r: dict) -> dict:
            # durationMs is whole ms: the mean over the run is the finer figure.
            r["mean_batch_ms"] = round(1000.0 * r["processing_s"] / max(r["batches"], 1), 2)
            return r

        out[mode] = repeated(repeat, "processing_s", lambda i: per_batch(run(i)))
    return out


def tls_cost(events: Path, tiny: Path, work: Path, files: int, partitions: int, repeat: int) -> dict:
    """W1 throughput and W3 per-batch time on a 3-executor local cluster, with and without TLS."""
    out: dict = {}
    for tls in (False, True):
        mode = "tls" if tls else "plain"
        for w, source, max_files in (("W1", events, max(files // 4, 1)), ("W3", tiny, 1)):
            log(f"{w} on a 3-executor local cluster, {mode}")

            def run(i: int) -> dict:
                d = work / f"{w}-{mode}-{i}"
                d.mkdir()
                return cluster_run(w, source, d, max_files, partitions, tls)

            out.setdefault(w, {})[mode] = repeated(repeat, "processing_s", run)
    return out


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "kernel": platform.release()}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nexmark = results.get("nexmark", {}).get("queries", {})
    panels = 2 if nexmark else 1
    fig, axes = plt.subplots(1, panels, figsize=(8 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    names = [w for w in ("W0", "W1", "W2", "W4") if w in results["workloads"]]
    if not names and nexmark:
        ax.set_axis_off()
    series = [("sluice", "sluice"), ("spark", "Spark"), ("decode_limit", "decode limit")]
    width = 0.27
    for i, (key, label) in enumerate(series):
        values = []
        for w in names:
            if key == "decode_limit":
                values.append(results["decode_limit"]["rows_per_sec"])
            else:
                values.append((results["workloads"][w].get(key) or {}).get("rows_per_s", 0))
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=label)
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("input rows / s (processing, start-up excluded; log scale)")
    ax.set_title(f"sluice vs Spark, {results['rows']:,} rows, {results['machine']['cores']} cores")
    ax.legend()
    if nexmark:
        nx = axes[0][1]
        queries = list(nexmark)
        nx.bar(queries, [nexmark[q]["events_per_s"] for q in queries], label="sluice")
        bid_limit = results["nexmark"]["generator_limit"]["events_per_sec"]
        limits = [nexmark[q].get("generator_limit_events_per_s", bid_limit) for q in queries]
        nx.scatter(queries, limits, color="gray", marker="_", s=900, label="generator limit (the query's event types)")
        nx.set_ylabel("events / s (processing, start-up excluded)")
        nx.set_title(f"Nexmark on sluice, {results['nexmark']['events']:,} events, {results['machine']['cores']} cores")
        nx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results: dict) -> str:
    lines = [
        f"{'workload':<9}{'engine':<9}{'wall s':>9}{'startup s':>11}{'rows/s':>13}{'rows/CPU-s':>12}{'peak RSS MB':>13}{'sluice/Spark':>14}{'% of decode':>13}",
    ]
    limit = results.get("decode_limit", {}).get("rows_per_sec", 0)
    for w, r in results["workloads"].items():
        s, k = r.get("sluice"), r.get("spark")
        for engine, m in (("sluice", s), ("spark", k)):
            if not m:
                continue
            ratio = f"{s['rows_per_s'] / k['rows_per_s']:.2f}x" if engine == "sluice" and k and k["rows_per_s"] else ""
            pct = f"{100.0 * m['rows_per_s'] / limit:.0f}%" if w not in ("W3", "W5") and limit else ""
            per_cpu = m["input_rows"] / max(m["cpu_s"], 1e-3)
            lines.append(
                f"{w:<9}{engine:<9}{m['wall_s']:>9.2f}{m['startup_s']:>11.2f}{m['rows_per_s']:>13,.0f}{per_cpu:>12,.0f}{m['peak_rss_mb']:>13.0f}{ratio:>14}{pct:>13}"
            )
        if "spark_error" in r:
            lines.append(f"{w:<9}{'spark':<9}failed: {r['spark_error'].strip().splitlines()[-1][:100]}")
        if w in ("W3", "W5"):
            for engine, m in (("sluice", s), ("spark", k)):
                if m:
                    parts = ", ".join(f"{key} {v:g}" for key, v in m["median_ms"].items())
                    lines.append(f"{'':<9}{engine:<9}median per batch (ms): {parts}")
    if limit:
        lines.append(f"decode limit (sluice's JSON decoder, 2 threads): {limit:,.0f} rows/s")
    cost = results.get("tls_cost", {})
    if "error" in cost:
        lines.append(f"TLS cost run failed: {cost['error']}")
    elif cost:
        lines.append("")
        lines.append("TLS cost (3-executor local cluster, deploy/local/cluster.sh; plain = --no-tls):")
        lines.append(f"{'workload':<9}{'plain':>16}{'tls':>16}{'tls/plain':>11}")
        w1, w3 = cost.get("W1", {}), cost.get("W3", {})
        if "plain" in w1 and "tls" in w1:
            p, t = w1["plain"]["rows_per_s"], w1["tls"]["rows_per_s"]
            lines.append(f"{'W1 rows/s':<9}{p:>16,.0f}{t:>16,.0f}{t / p:>10.2f}x")
        if "plain" in w3 and "tls" in w3:
            p, t = w3["plain"]["median_batch_ms"], w3["tls"]["median_batch_ms"]
            lines.append(f"{'W3 ms/batch':<9}{p:>14.1f}{t:>16.1f}{t / p:>10.2f}x")
    mcost = results.get("metrics_cost", {})
    if "error" in mcost:
        lines.append(f"metrics cost run failed: {mcost['error']}")
    elif "off" in mcost and "scraped" in mcost:
        off, on = mcost["off"], mcost["scraped"]
        lines.append("")
        lines.append("Metrics cost (W3 on sluice run, median run; off = --ui-listen off, scraped = /metrics every 10 ms):")
        lines.append(f"{'W3 ms/batch':<24}{'off':>8}{'scraped':>10}{'scraped/off':>13}")
        for label, key in (("mean over the run", "mean_batch_ms"),):
            a, b = off.get(key, 0), on.get(key, 0)
            ratio = f"{b / a:>12.2f}x" if a else f"{'-':>13}"
            lines.append(f"{label:<24}{a:>8.2f}{b:>10.2f}{ratio}")
        a, b = off["median_ms"].get("triggerExecution", 0), on["median_ms"].get("triggerExecution", 0)
        ratio = f"{b / a:>12.2f}x" if a else f"{'-':>13}"
        lines.append(f"{'median triggerExecution':<24}{a:>8.1f}{b:>10.1f}{ratio}")
        lines.append(f"scrapes during the scraped run: {on.get('scrapes', 0)}; runs (processing s): off {off.get('processing_s_runs')}, scraped {on.get('processing_s_runs')}")
    rec = results.get("recovery", {})
    if "kill_to_recovered_commit_ms" in rec:
        lines.append(
            f"recovery (W1, 3 executors, one SIGKILLed): {rec['kill_to_recovered_commit_ms']:.0f} ms from the kill to the commit of"
            f" the first batch planned after it (a batch without failure: {rec['normal_batch_ms']} ms)"
        )
    elif "kill_to_next_commit_ms" in rec:
        lines.append(f"recovery (W1, 3 executors, one SIGKILLed): {rec['kill_to_next_commit_ms']:.0f} ms from kill to the next committed batch")
    elif "error" in rec:
        lines.append(f"recovery run failed: {rec['error']}")
    nexmark = results.get("nexmark")
    if nexmark:
        gen = nexmark["generator_limit"]["events_per_sec"]
        lines.append("")
        lines.append(f"Nexmark on sluice, {nexmark['events']:,} events (embedded, 2 executors, noop sink):")
        lines.append(
            f"{'query':<7}{'wall s':>8}{'startup s':>11}{'events/s':>13}{'/core':>11}{'/CPU-s':>11}{'peak RSS MB':>13}{'out rows':>11}{'% of gen':>10}"
        )
        for q, m in nexmark["queries"].items():
            lines.append(
                f"{q:<7}{m['wall_s']:>8.2f}{m['startup_s']:>11.2f}{m['events_per_s']:>13,.0f}{m['events_per_s_per_core']:>11,.0f}"
                f"{m['events_per_cpu_s']:>11,.0f}{m['peak_rss_mb']:>13.0f}{m['output_rows']:>11,}"
                f"{100.0 * m['events_per_s'] / m.get('generator_limit_events_per_s', gen):>9.0f}%"
            )
        lines.append(
            f"generator limit (nexmark connector's split reader, 2 threads): {gen:,.0f} events/s for bids; a query's % is of its"
            " own limit, the time to generate every event type it reads"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--smoke", action="store_true", help="tiny inputs: checks the runner end to end")
    p.add_argument("--no-spark", action="store_true")
    p.add_argument("--workloads", default="W0,W1,W2,W3,W4,W5")
    p.add_argument("--shuffle-partitions", type=int, default=8)
    p.add_argument("--nexmark-events", type=int, default=10_000_000)
    p.add_argument("--queries", default="q0,q1,q2,q3,q5,q7,q8", help="Nexmark queries ('' for none)")
    p.add_argument("--repeat", type=int, default=1, help="runs of every measurement; the median run is reported")
    p.add_argument("--name", default=None, help="results file name (default: <rows>-rows)")
    p.add_argument("--tls-cost", action="store_true", help="also measure TLS's cost in --smoke runs (on by default in full runs)")
    p.add_argument("--metrics-cost", action="store_true", help="also measure the metrics' cost on W3 in --smoke runs (on by default in full runs)")
    p.add_argument("--report", type=Path, default=None, help="print the table and redraw the chart of a results file")
    a = p.parse_args()
    if a.report:
        results = json.loads(a.report.read_text())
        chart(results, a.report.with_suffix(".png"))
        print(table(results))
        return

    python = ensure_venv()
    reexec_in_venv(python)
    build()
    rows = 20_000 if a.smoke else a.rows
    name = a.name or ("smoke" if a.smoke else f"{rows}-rows")
    results: dict = {"rows": rows, "files": a.files, "machine": machine(), "date": datetime.now().isoformat(timespec="seconds"), "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        tmp_path = Path(tmp)
        events = tmp_path / "events"
        tiny = tmp_path / "tiny"
        single = tmp_path / "single"
        workloads = [w for w in a.workloads.split(",") if w]
        if workloads:
            log(f"generating {rows:,} events in {a.files} files")
            subprocess.run([str(BENCH), "gen", "--rows", str(rows), "--files", str(a.files), "--out", str(events)], check=True)
            subprocess.run([str(BENCH), "gen", "--rows", "500", "--files", "50", "--out", str(tiny)], check=True)
            subprocess.run([str(BENCH), "gen", "--rows", "50", "--files", "50", "--out", str(single)], check=True)
            results["input_bytes"] = sum(f.stat().st_size for f in events.iterdir())
            results["decode_limit"] = repeated(a.repeat, "seconds", lambda _: decode_limit(events))
        for w in workloads:
            source, max_files = {"W3": (tiny, 1), "W5": (single, 1)}.get(w, (events, max(a.files // 4, 1)))
            partitions = W5_PARTITIONS if w == "W5" else a.shuffle_partitions
            entry: dict = {"what": WORKLOADS[w]}
            for engine in ("sluice", "spark"):
                if engine == "spark" and a.no_spark:
                    continue
                log(f"{w} on {engine}")
                # Run i works in <w>-<engine>-<i>; the outputs of run 0 are compared below.
                def workdir(i: int) -> Path:
                    d = tmp_path / f"{w}-{engine}-{i}"
                    d.mkdir()
                    return d

                if engine == "sluice":
                    entry[engine] = repeated(a.repeat, "processing_s", lambda i: run_sluice(w, source, workdir(i), max_files, partitions))
                else:
                    try:
                        entry[engine] = repeated(
                            a.repeat, "processing_s", lambda i: run_spark(python, w, source, workdir(i), max_files, partitions)
                        )
                    except RuntimeError as e:
                        # Keep sluice's figures and the other workloads; the table says what failed.
                        entry["spark_error"] = str(e)[-2000:]
                        log(f"{w} on Spark failed: {str(e).splitlines()[-1]}")
            if "spark" in entry and w in ("W0", "W2", "W3", "W4"):
                same = parquet_rows(tmp_path / f"{w}-sluice-0" / "out") == parquet_rows(tmp_path / f"{w}-spark-0" / "out")
                entry["same_output"] = same
                if not same:
                    log(f"{w}: sluice and Spark wrote different rows")
            results["workloads"][w] = entry
            save(results, name)
        queries = [q for q in a.queries.split(",") if q]
        if queries:
            n = 200_000 if a.smoke else a.nexmark_events
            limit = repeated(a.repeat, "seconds", lambda _: nexmark_limit(n))
            results["nexmark"] = {"events": n, "generator_limit": limit, "queries": {}}
            type_limits: dict = {"bid": limit}
            for q in queries:
                log(f"Nexmark {q} over {n:,} events")

                def nexmark_run(i: int) -> dict:
                    d = tmp_path / f"nexmark-{q}-{i}"
                    d.mkdir()
                    return run_nexmark(q, n, d)

                results["nexmark"]["queries"][q] = repeated(a.repeat, "processing_s", nexmark_run)
                results["nexmark"]["queries"][q]["generator_limit_events_per_s"] = round(query_limit(q, n, type_limits), 1)
                save(results, name)
        if not a.smoke and "W1" in workloads:
            log("recovery: W1 on a 3-executor cluster, one executor SIGKILLed")
            rec = tmp_path / "recovery"
            rec.mkdir()
            try:
                def recovery_run(i: int) -> dict:
                    d = rec / str(i)
                    d.mkdir()
                    return recovery(events, d, a.shuffle_partitions)

                results["recovery"] = repeated(a.repeat, "kill_to_recovered_commit_ms", recovery_run)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                results["recovery"] = {"error": str(e)}
                log(f"recovery run failed: {e}")
        if a.tls_cost or (not a.smoke and "W1" in workloads and "W3" in workloads):
            cost_dir = tmp_path / "tls-cost"
            cost_dir.mkdir()
            try:
                results["tls_cost"] = tls_cost(events, tiny, cost_dir, a.files, a.shuffle_partitions, a.repeat)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                results["tls_cost"] = {"error": str(e)}
                log(f"TLS cost run failed: {e}")
        if a.metrics_cost or (not a.smoke and "W3" in workloads):
            cost_dir = tmp_path / "metrics-cost"
            cost_dir.mkdir()
            try:
                results["metrics_cost"] = metrics_cost(tiny, cost_dir, a.shuffle_partitions, a.repeat)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                results["metrics_cost"] = {"error": str(e)}
                log(f"metrics cost run failed: {e}")
    out = save(results, name)
    chart(results, out.with_suffix(".png"))
    print(table(results))
    print(f"\nresults: {out} and .png")


def save(results: dict, name: str) -> Path:
    """Writes the results so far, so a failure late in a long run keeps the earlier figures."""
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
