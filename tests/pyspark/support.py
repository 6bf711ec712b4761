"""Helpers of the PySpark tests: loading the labs, staging input files, reading outputs without
Spark, and the independent batch recomputations (plain Python) the streaming answers are checked
against."""

import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "examples" / "pyspark"
DATA = REPO / "examples" / "data"

UTC = dt.timezone.utc


# ---------------------------------------------------------------------------------------------
# Labs


def load_lab(name):
    """Imports examples/pyspark/<name>.py as a module. Its functions are pickled by value (the
    server's Python worker cannot import the lab), as they are when the lab runs as a script."""
    module_name = f"sluice_lab_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, LABS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    pickle_by_value(module)
    return module


def pickle_by_value(module):
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(module)


# ---------------------------------------------------------------------------------------------
# Inputs

_next_mtime = [time.time() - 3600.0]
_mtime_lock = threading.Lock()


def stage_files(src_files, dst_dir):
    """Copies files into dst_dir (created if missing), giving them strictly increasing
    modification times in the given order, so a file source with maxFilesPerTrigger=1 reads
    them in that order. Returns the destination paths."""
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for src in src_files:
        src = Path(src)
        dst = dst_dir / src.name
        tmp = dst_dir / f".{src.name}.tmp"
        shutil.copyfile(src, tmp)
        with _mtime_lock:
            _next_mtime[0] = max(_next_mtime[0] + 1.0, time.time() - 3000.0)
            mtime = _next_mtime[0]
        os.utime(tmp, (mtime, mtime))
        os.rename(tmp, dst)  # appears atomically, complete
        out.append(dst)
    return out


def stage_dir(name, dst_dir, files=None):
    """Stages examples/data/<name>/* (sorted by name, or the given file names) in dst_dir."""
    src = DATA / name
    names = files if files is not None else sorted(p.name for p in src.iterdir() if p.is_file())
    return stage_files([src / n for n in names], dst_dir)


def write_jsonl(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def parse_ts(value):
    """A timestamp as written in the inputs or by a JSON/Parquet sink → naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return parse_ts(value.to_pydatetime())
    s = str(value).strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(s.replace(" ", "T", 1))
    return parse_ts(d)


def read_jsonl(path, ts_fields=()):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                for k in ts_fields:
                    if k in r:
                        r[k] = parse_ts(r[k])
                rows.append(r)
    return rows


def read_input_batches(files, ts_fields=("event_time",)):
    """The rows of each input file, in order: what each maxFilesPerTrigger=1 batch reads."""
    return [read_jsonl(f, ts_fields) for f in files]


# ---------------------------------------------------------------------------------------------
# Outputs


def normalize(value):
    """Comparable plain-Python values: naive UTC datetimes, ints, rounded floats."""
    if isinstance(value, dt.datetime) or hasattr(value, "to_pydatetime"):
        return parse_ts(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return round(value, 9)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return normalize(value.item())
    return value


def row_tuple(row, columns):
    d = row.asDict() if hasattr(row, "asDict") else row
    return tuple(normalize(d.get(c)) for c in columns)


def multiset(rows, columns):
    return Counter(row_tuple(r, columns) for r in rows)


_TS_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _read_data_file(path, fmt):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return [{k: normalize(v) for k, v in r.items()} for r in pq.read_table(path).to_pylist()]
    if fmt == "json":
        # JSON has no timestamp type: a string that reads as one is one (Spark writes
        # 2024-05-01T10:00:00.000Z).
        return [
            {k: parse_ts(v) if isinstance(v, str) and _TS_LIKE.match(v) else normalize(v) for k, v in r.items()}
            for r in read_jsonl(path)
        ]
    raise ValueError(fmt)


def read_sink_batches(path, fmt):
    """A files sink's committed rows per batch id, read without Spark: the files each
    _spark_metadata/<batch> log lists (a compact log's files not listed before belong to its
    batch). Returns {batch_id: [row dict]}."""
    meta = Path(path) / "_spark_metadata"
    logs = {}
    for p in meta.iterdir():
        name = p.name
        if name.startswith(".") or name.endswith(".tmp"):
            continue
        batch = int(name.split(".")[0])
        logs[batch] = p
    seen = set()
    out = {}
    for batch in sorted(logs):
        lines = logs[batch].read_text().splitlines()
        assert lines and lines[0] == "v1", f"{logs[batch]}: unexpected header {lines[:1]}"
        rows = []
        for line in lines[1:]:
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("action", "add") != "add":
                continue
            file_path = unquote(urlparse(entry["path"]).path) if "://" in entry["path"] else entry["path"]
            if file_path in seen:
                continue
            seen.add(file_path)
            rows.extend(_read_data_file(file_path, fmt))
        out[batch] = rows
    return out


def read_batch_output_dir(path, fmt):
    """All rows of a directory written by batch writes (part files, no metadata log)."""
    rows = []
    for p in sorted(Path(path).rglob("*")):
        if p.is_file() and not p.name.startswith((".", "_")) and p.stat().st_size > 0:
            if (fmt == "parquet" and p.suffix == ".parquet") or (fmt == "json" and ".json" in p.name):
                rows.extend(_read_data_file(p, fmt))
    return rows


# ---------------------------------------------------------------------------------------------
# Waiting


def wait_for(cond, timeout=60.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_with_timeout(fn, timeout, what):
    """Runs fn() in a thread; fails the test (instead of hanging) when it takes longer.
    Returns fn's value, or re-raises its exception."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            result["error"] = e

    t = threading.Thread(target=target, daemon=True, name=f"timeout:{what}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"{what} did not return within {timeout}s (hang)")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def progress_json(progress):
    """The raw JSON dict of a StreamingQueryProgress (what the server sent)."""
    return json.loads(progress.json)


def data_batches(progresses):
    """Progress reports of batches that read input, ordered by batch id. (`p.numInputRows`, not
    `p["numInputRows"]`: Spark 4.0.1 leaves the top-level numInputRows out of the progress JSON it
    sends; PySpark then sums the sources'.)"""
    return sorted((p for p in progresses if p.numInputRows > 0), key=lambda p: p["batchId"])


# ---------------------------------------------------------------------------------------------
# Independent recomputation of Spark's event-time semantics (Spark 3.4+):
#   * batch N runs with watermark wm(N) = max(wm(N-1), max event time of batches < N − delay)
#     (0 = none before any data);
#   * a stateful operator drops an input row as late when its event time (a window's end, for
#     a windowed key) is <= wm(N-1), the previous batch's watermark;
#   * it evicts state whose event time is <= wm(N).

EPOCH = dt.datetime(1970, 1, 1)


def watermarks(batches, delay, ts="event_time"):
    """wm(N) for every batch N (a list of row lists; empty lists are no-data batches), plus
    the watermark after the last one. None means no watermark yet."""
    wms = []
    wm = None
    max_seen = None
    for rows in batches:
        wms.append(wm)
        for r in rows:
            if r[ts] is not None and (max_seen is None or r[ts] > max_seen):
                max_seen = r[ts]
        if max_seen is not None:
            cand = max_seen - delay
            wm = cand if wm is None or cand > wm else wm
    wms.append(wm)
    return wms


def window_start(ts, size):
    secs = int((ts - EPOCH).total_seconds())
    s = secs - secs % int(size.total_seconds())
    return EPOCH + dt.timedelta(seconds=s)


def is_late(event_time, late_wm):
    return late_wm is not None and event_time <= late_wm


def model_windowed_counts(batches, *, size, delay, key="action", value="amount"):
    """Per batch, the (window_start, window_end, key) groups an update-mode windowed count
    emits, with their running count and sum: {batch: {group: (cnt, revenue)}}."""
    wms = watermarks(batches, delay)
    state = {}
    out = []
    for n, rows in enumerate(batches):
        late_wm = wms[n - 1] if n > 0 else None
        changed = set()
        for r in rows:
            start = window_start(r["event_time"], size)
            end = start + size
            if is_late(end, late_wm):
                continue
            g = (start, end, r[key])
            cnt, rev = state.get(g, (0, 0))
            state[g] = (cnt + 1, rev + r[value])
            changed.add(g)
        out.append({g: state[g] for g in changed})
        evict_wm = wms[n]
        for g in [g for g in state if evict_wm is not None and g[1] <= evict_wm]:
            del state[g]
    return out


def model_dedup(batches, *, delay, keys=("event_id", "event_time")):
    """Per batch, the rows dropDuplicates(keys) with a watermark on event_time emits."""
    wms = watermarks(batches, delay)
    state = set()
    out = []
    for n, rows in enumerate(batches):
        late_wm = wms[n - 1] if n > 0 else None
        emitted = []
        for r in rows:
            if is_late(r["event_time"], late_wm):
                continue
            k = tuple(r[c] for c in keys)
            if k in state:
                continue
            state.add(k)
            emitted.append(r)
        out.append(emitted)
        evict_wm = wms[n]
        if evict_wm is not None:
            state = {k for k in state if k[list(keys).index("event_time")] > evict_wm}
    return out


def only_on(server, kind, reason):
    """Skips, visibly and with the reason, a test that is meaningful on one server kind only."""
    import pytest

    if server.kind != kind:
        pytest.skip(f"only on {kind} (this run: {server.kind}): {reason}")


def finish(query, timeout=120.0):
    """Waits for an availableNow/once query to terminate (failing instead of hanging)."""
    done = run_with_timeout(lambda: query.awaitTermination(timeout), timeout + 30, "awaitTermination")
    assert done, f"query {query.name} still running after {timeout}s"
    return query


# ---------------------------------------------------------------------------------------------
# foreachBatch recorder: runs on the server's Python worker, writes each batch's rows to
# <dir>/<batch_id>.json (timestamps as epoch seconds, independent of the worker's time zone).


def batch_recorder(directory):
    directory = str(directory)

    def record(batch_df, batch_id):
        import datetime as _dt
        import json as _json
        import os as _os

        def plain(v):
            if isinstance(v, _dt.datetime):
                return {"$ts": v.timestamp()}
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if hasattr(v, "is_finite"):  # Decimal
                return float(v)
            return v

        rows = [plain(r.asDict(recursive=True)) for r in batch_df.collect()]
        with open(_os.path.join(directory, "calls.log"), "a") as f:
            f.write(f"{batch_id}\n")
        path = _os.path.join(directory, f"{batch_id}.json")
        with open(path + ".tmp", "w") as f:
            _json.dump({"batch_id": batch_id, "rows": rows}, f)
        _os.replace(path + ".tmp", path)

    return record


def _unplain(v):
    if isinstance(v, dict) and set(v) == {"$ts"}:
        return EPOCH + dt.timedelta(seconds=v["$ts"])
    if isinstance(v, dict):
        return {k: _unplain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unplain(x) for x in v]
    return v


def recorded_calls(directory):
    """The batch ids batch_recorder's function was called with, in call order."""
    p = Path(directory) / "calls.log"
    return [int(x) for x in p.read_text().split()] if p.exists() else []


def recorded_batches(directory):
    """{batch_id: [row dict]} written by batch_recorder."""
    out = {}
    for p in Path(directory).glob("*.json"):
        d = json.loads(p.read_text())
        out[d["batch_id"]] = [_unplain(r) for r in d["rows"]]
    return out


def batch_schedule(progresses, file_batches):
    """The input of every batch id 0..last, from the progress reports: the k-th batch that read
    data read the k-th file; a batch without input rows is a no-data batch ([])."""
    by_id = {p["batchId"]: p for p in progresses}
    assert sorted(by_id) == list(range(len(by_id))), f"batch ids not 0..n: {sorted(by_id)}"
    files = iter(file_batches)
    schedule = []
    for bid in range(len(by_id)):
        if by_id[bid].numInputRows > 0:
            rows = next(files)
            assert by_id[bid].numInputRows == len(rows), (bid, by_id[bid].numInputRows, len(rows))
            schedule.append(rows)
        else:
            schedule.append([])
    assert next(files, None) is None, "not every input file was read"
    return schedule
