//! The server side of PySpark's `foreachBatch` Python worker
//! (`pyspark.sql.connect.streaming.worker.foreach_batch_worker`).
//!
//! A Spark Connect client sends its `foreachBatch` function pickled, and only Python can run it.
//! So, as Spark's server does, a query with such a function gets one long-lived Python process:
//! it connects back to a loopback port we listen on, loads the function once, then runs it once
//! per micro-batch. The worker is an ordinary Spark Connect client of the query's own session:
//! what it receives per batch is only the id of a DataFrame the server cached, which it reads
//! back over gRPC. So while [`ForeachBatchWorker::call`] waits, the server must go on serving
//! that session's RPCs; `call` holds nothing but the socket.
//!
//! The socket protocol (big-endian; "UTF" is an `i32` byte length and that many UTF-8 bytes), as
//! the worker and PySpark's `local_connect_and_auth` speak it:
//! 1. worker → UTF(secret); server → UTF("ok"), or UTF("err") and closes the connection;
//! 2. worker → `i32` pid;
//! 3. server → UTF(python version), UTF(session id), `i32` length + the pickled function;
//! 4. worker → `i32` 0 once it loaded the function, or -2 + UTF(traceback) and exits;
//! 5. per batch: server → UTF(DataFrame id) + `i64` batch id; worker → `i32` 0, or -2 +
//!    UTF(traceback) when the function raised (the worker then exits). Closing the socket ends
//!    the worker.

use std::collections::VecDeque;
use std::fmt::{Display, Write as _};
use std::io;
use std::net::Ipv4Addr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

use crate::error::{ConnectError, ExceptionClass, Result};

/// The module PySpark runs as the worker (`python -m …`).
const WORKER_MODULE: &str = "pyspark.sql.connect.streaming.worker.foreach_batch_worker";
/// How long the worker may take from spawning to having loaded the function (importing pyspark
/// and unpickling a function can take seconds on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one connection may take to send its secret (Spark's `SocketAuthHelper` allows 10 s),
/// so that a stray connection cannot hold the port while the real worker waits.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` lets the worker end by itself after its socket closed before killing it.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a failed worker gets to exit (and its pipes to drain) before it is killed, so that
/// its exit status and last stderr lines can go into the error.
const EXIT_WAIT: Duration = Duration::from_secs(1);
/// PySpark's `SpecialLengths.PYTHON_EXCEPTION_THROWN`: a traceback follows.
const PYTHON_EXCEPTION_THROWN: i32 = -2;
/// Longest secret a connecting process may send (ours is 64 bytes).
const MAX_SECRET_LEN: usize = 1024;
/// Longest traceback read from the worker.
const MAX_TRACEBACK_LEN: usize = 16 << 20;
/// How many of the worker's last stderr lines an error quotes.
const TAIL_LINES: usize = 20;
/// Longest stderr line kept for an error, in characters.
const MAX_TAIL_LINE_CHARS: usize = 2000;

/// Spark's error class for a worker that failed to start (`StreamingPythonRunner`).
const INIT_FAILURE: &str = "STREAMING_PYTHON_RUNNER_INITIALIZATION_FAILURE";
/// Spark's error class for a `foreachBatch` function that raised.
const USER_FUNCTION_ERROR: &str = "FOREACH_BATCH_USER_FUNCTION_ERROR";

/// What starting a worker needs: what the client sent with `foreachBatch` and where the worker
/// finds its session.
#[derive(Clone)]
pub struct WorkerSpec {
    /// The Python executable to run the worker with; it must have `pyspark` (the client's
    /// version) importable, and be the Python version that pickled the function.
    pub python: String,
    /// The client's Python version, `major.minor` (its `PythonUDF.python_ver`); the worker
    /// refuses a function pickled by another version.
    pub python_ver: String,
    /// The pickled function, as the client sent it (`PythonUDF.command`).
    pub command: Vec<u8>,
    /// The Spark Connect session the worker attaches to (the query's session).
    pub session_id: String,
    /// The session's user, so that the worker's session is the same user's session.
    pub user_id: String,
    /// The port of this server's Spark Connect gRPC endpoint, on localhost.
    pub connect_port: u16,
    /// Names the query in logs and errors.
    pub query_label: String,
}

/// A running `foreachBatch` worker: a Python process that has loaded the query's function and
/// waits for batches. Dropping it kills the process; [`ForeachBatchWorker::stop`] lets it end
/// cleanly first.
pub struct ForeachBatchWorker {
    stream: BufStream<TcpStream>,
    process: Process,
    label: String,
    /// Why the worker cannot take another batch: a call failed or was cancelled midway, so the
    /// conversation is out of step (or the worker is gone).
    broken: Option<String>,
}

impl ForeachBatchWorker {
    /// Spawns `<python> -m pyspark.sql.connect.streaming.worker.foreach_batch_worker`, waits for
    /// it to connect back with the secret, and hands it the Python version, the session and the
    /// function. Fails with `STREAMING_PYTHON_RUNNER_INITIALIZATION_FAILURE` (as Spark does) when
    /// the worker cannot be run, does not connect and load the function within 60 s (the error
    /// names the step it was waiting for), or reports an error (its traceback is the cause).
    pub async fn start(spec: WorkerSpec) -> Result<Self> {
        Self::start_with(spec, START_TIMEOUT, spawn_python).await
    }

    /// [`ForeachBatchWorker::start`] with the time limit and the spawning given, so that tests can
    /// play the worker in-process (`spawn` returns no child then).
    async fn start_with<F>(spec: WorkerSpec, limit: Duration, spawn: F) -> Result<Self>
    where
        F: FnOnce(&str, &[(&'static str, String)]) -> io::Result<Option<Child>>,
    {
        let label = spec.query_label.clone();
        let who = format!("the foreachBatch worker of {label} (`{} -m {WORKER_MODULE}`)", spec.python);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| init_failure("nothing", format!("could not listen on a loopback port for {who}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| init_failure("nothing", format!("could not listen on a loopback port for {who}: {e}")))?
            .port();
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let env = worker_env(&spec, port, &secret);
        let child = spawn(&spec.python, &env).map_err(|e| init_failure("nothing", format!("could not run {who}: {e}")))?;
        let mut process = Process::watch(child, &label);

        let deadline = Instant::now() + limit;
        let started = match accept_worker(&listener, secret.as_bytes(), process.child.as_mut(), deadline, &label).await {
            Ok(mut stream) => init(&mut stream, &spec, deadline).await.map(|pid| (stream, pid)),
            Err(failure) => Err(failure),
        };
        drop(listener);
        match started {
            Ok((stream, pid)) => {
                tracing::info!(query = %label, pid, "foreachBatch Python worker started");
                Ok(Self { stream, process, label, broken: None })
            }
            Err(failure) => {
                let exit = process.finish(EXIT_WAIT).await;
                let post_mortem = post_mortem(exit, &process.tail);
                let error = failure.into_error(&who, limit, &post_mortem);
                tracing::warn!(query = %label, "foreachBatch Python worker failed to start: {}", error.message);
                Err(error)
            }
        }
    }

    /// Runs the function on one batch: the DataFrame the server cached as `df_id`, and its batch
    /// id. Fails with `FOREACH_BATCH_USER_FUNCTION_ERROR` (the traceback in the message) when the
    /// function raised, or with a `SparkException` when the worker crashed. After a failure (or a
    /// call cancelled midway) the worker takes no more batches: the query must fail.
    ///
    /// Holds nothing but the worker's socket while it waits, since the function's own Spark
    /// Connect calls must be served meanwhile.
    pub async fn call(&mut self, df_id: &str, batch_id: i64) -> Result<()> {
        if let Some(reason) = &self.broken {
            return Err(ConnectError::new(
                ExceptionClass::Spark,
                format!("The foreachBatch worker of {} cannot run batch {batch_id}: {reason}.", self.label),
            ));
        }
        // Cleared on success: a call dropped before its answer leaves the conversation out of step.
        self.broken = Some("a previous call was interrupted before the worker answered".into());
        let answer = async {
            write_utf(&mut self.stream, df_id).await?;
            self.stream.write_i64(batch_id).await?;
            self.stream.flush().await?;
            self.stream.read_i32().await
        }
        .await;
        match answer {
            Ok(0) => {
                self.broken = None;
                Ok(())
            }
            Ok(PYTHON_EXCEPTION_THROWN) => match read_utf(&mut self.stream, MAX_TRACEBACK_LEN).await {
                Ok(traceback) => {
                    self.broken = Some(format!("the function failed in batch {batch_id} and the worker exited"));
                    tracing::warn!(query = %self.label, batch_id, "foreachBatch function failed:\n{traceback}");
                    Err(user_function_error(traceback.trim_end()))
                }
                Err(e) => Err(self.crashed(batch_id, e).await),
            },
            Ok(other) => {
                self.broken = Some(format!("the worker answered {other} in batch {batch_id}"));
                Err(ConnectError::new(
                    ExceptionClass::Spark,
                    format!(
                        "The foreachBatch worker of {} answered {other} for batch {batch_id}, neither 0 (done) nor -2 (failed).",
                        self.label
                    ),
                ))
            }
            Err(e) => Err(self.crashed(batch_id, e).await),
        }
    }

    /// Ends the worker: closes its socket (its loop ends on the EOF), gives it a moment to exit,
    /// then kills it. For when the query stops.
    pub async fn stop(self) {
        let Self { stream, mut process, label, .. } = self;
        drop(stream);
        let exit = process.finish(STOP_GRACE).await;
        tracing::info!(query = %label, "foreachBatch Python worker stopped ({})", exit.map_or("killed".into(), |s| s.to_string()));
    }

    /// The error for a worker that went away mid-batch, with its exit status and last words.
    async fn crashed(&mut self, batch_id: i64, e: io::Error) -> ConnectError {
        self.broken = Some(format!("the worker crashed in batch {batch_id}"));
        let exit = self.process.finish(EXIT_WAIT).await;
        let error = ConnectError::new(
            ExceptionClass::Spark,
            format!(
                "The foreachBatch Python worker of {} exited unexpectedly (crashed) in batch {batch_id}: {e}.{}",
                self.label,
                post_mortem(exit, &self.process.tail)
            ),
        );
        tracing::warn!(query = %self.label, batch_id, "{}", error.message);
        error
    }
}

/// Runs the worker module with `env`, its output piped so that it is logged.
fn spawn_python(python: &str, env: &[(&'static str, String)]) -> io::Result<Option<Child>> {
    let mut command = Command::new(python);
    command
        .arg("-m")
        .arg(WORKER_MODULE)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn().map(Some)
}

/// The worker's environment on top of ours (`PYTHONPATH` and the rest are inherited), as Spark's
/// `PythonWorkerFactory` and `StreamingPythonRunner` set it.
fn worker_env(spec: &WorkerSpec, port: u16, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PYTHON_WORKER_FACTORY_PORT", port.to_string()),
        ("PYTHON_WORKER_FACTORY_SECRET", secret.to_string()),
        // The worker appends `;session_id=…`. No `token=`: it would make the client insist on TLS.
        ("SPARK_CONNECT_LOCAL_URL", format!("sc://localhost:{}/;user_id={}", spec.connect_port, url_param(&spec.user_id))),
        // Print lines reach the log as they are written (Spark sets this as `-u` would).
        ("PYTHONUNBUFFERED", "YES".into()),
        ("SPARK_AUTH_SOCKET_TIMEOUT", "15".into()),
        ("SPARK_BUFFER_SIZE", "65536".into()),
        ("SPARK_PYTHON_RUNTIME", "PYTHON_WORKER".into()),
        // We listen on 127.0.0.1, so an inherited `SPARK_PREFER_IPV6=true` must not send it to ::1.
        ("SPARK_PREFER_IPV6", "false".into()),
    ]
}

/// Percent-encodes a connection-string parameter (PySpark unquotes them), so that a user id with
/// `;`, `=` or `/` cannot break the worker's URL.
fn url_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Why a worker did not start.
#[derive(Debug)]
enum StartFailure {
    /// The worker reported an error (unpickling the function, a Python version mismatch).
    Python(String),
    /// The worker answered something other than 0 or -2 (or a negative pid).
    Unexpected(&'static str, i32),
    /// Nothing came in time.
    Timeout(&'static str),
    /// The process ended before the step.
    Exited(&'static str),
    /// The socket failed during the step.
    Io(&'static str, io::Error),
}

/// The steps of starting, named as what was awaited.
const CONNECT: &str = "the worker to connect back";
const PID: &str = "the worker's process id";
const SEND: &str = "the worker to read the function";
const LOAD: &str = "the worker to load the function";

impl StartFailure {
    fn into_error(self, who: &str, limit: Duration, post_mortem: &str) -> ConnectError {
        match self {
            Self::Python(traceback) => init_failure(PYTHON_EXCEPTION_THROWN, traceback.trim_end()),
            Self::Unexpected(step, n) => init_failure(n, format!("{who} sent {n} while we waited for {step}.{post_mortem}")),
            Self::Timeout(step) => {
                init_failure("nothing", format!("{who} timed out after {limit:?} waiting for {step}.{post_mortem}"))
            }
            Self::Exited(step) => init_failure("nothing", format!("{who} exited while we waited for {step}.{post_mortem}")),
            Self::Io(step, e) => init_failure("nothing", format!("{who} failed while we waited for {step}: {e}.{post_mortem}")),
        }
    }
}

/// Spark's `StreamingPythonRunnerInitializationException`.
fn init_failure(returned: impl Display, cause: impl Display) -> ConnectError {
    ConnectError::new(
        ExceptionClass::Spark,
        format!("[{INIT_FAILURE}] Streaming Runner initialization failed, returned {returned}. Cause: {cause}"),
    )
    .with_error_class(INIT_FAILURE, "XXKST")
}

/// Spark's `ForeachBatchUserFuncException`, the reason being the Python traceback.
fn user_function_error(reason: impl Display) -> ConnectError {
    ConnectError::new(
        ExceptionClass::Spark,
        format!(
            "[{USER_FUNCTION_ERROR}] An error occurred in the user provided function in foreach batch sink. Reason: {reason}"
        ),
    )
    .with_error_class(USER_FUNCTION_ERROR, "39000")
}

/// Waits for the worker to connect with the right secret. A connection with a wrong secret is
/// answered "err" and closed, and the wait goes on (it was not our worker); the worker's process
/// ending ends the wait at once.
async fn accept_worker(
    listener: &TcpListener,
    secret: &[u8],
    mut child: Option<&mut Child>,
    deadline: Instant,
    label: &str,
) -> Result<BufStream<TcpStream>, StartFailure> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = exit_of(child.as_deref_mut()) => return Err(StartFailure::Exited(CONNECT)),
            () = tokio::time::sleep_until(deadline) => return Err(StartFailure::Timeout(CONNECT)),
        };
        let (stream, peer) = accepted.map_err(|e| StartFailure::Io(CONNECT, e))?;
        let mut stream = BufStream::new(stream);
        let auth_deadline = deadline.min(Instant::now() + AUTH_TIMEOUT);
        match timeout_at(auth_deadline, authenticate(&mut stream, secret)).await {
            Ok(Ok(true)) => return Ok(stream),
            Ok(Ok(false)) => tracing::warn!(query = %label, %peer, "refused a foreachBatch worker connection: wrong secret"),
            Ok(Err(e)) => tracing::warn!(query = %label, %peer, "refused a foreachBatch worker connection: {e}"),
            Err(_) => tracing::warn!(query = %label, %peer, "refused a foreachBatch worker connection: no secret in time"),
        }
    }
}

/// Resolves when the process exits; never without a process (an in-process test worker).
async fn exit_of(child: Option<&mut Child>) {
    if let Some(child) = child {
        if child.wait().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Reads the secret a connecting process offers and answers "ok" or "err" (PySpark's
/// `_do_server_auth`), comparing in constant time. True when it matched.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, secret: &[u8]) -> io::Result<bool> {
    let offered = read_bytes(stream, MAX_SECRET_LEN).await?;
    let matched = bool::from(offered.as_slice().ct_eq(secret));
    write_utf(stream, if matched { "ok" } else { "err" }).await?;
    stream.flush().await?;
    Ok(matched)
}

/// After authentication: reads the worker's pid, sends the Python version, the session and the
/// function, and reads whether it loaded them. The pid on success.
async fn init<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    spec: &WorkerSpec,
    deadline: Instant,
) -> Result<i32, StartFailure> {
    let pid = step(deadline, PID, stream.read_i32()).await?;
    if pid < 0 {
        return Err(StartFailure::Unexpected(PID, pid));
    }
    let send = async {
        write_utf(stream, &spec.python_ver).await?;
        write_utf(stream, &spec.session_id).await?;
        write_bytes(stream, &spec.command).await?;
        stream.flush().await
    };
    step(deadline, SEND, send).await?;
    match step(deadline, LOAD, stream.read_i32()).await? {
        0 => Ok(pid),
        PYTHON_EXCEPTION_THROWN => Err(StartFailure::Python(step(deadline, LOAD, read_utf(stream, MAX_TRACEBACK_LEN)).await?)),
        other => Err(StartFailure::Unexpected(LOAD, other)),
    }
}

/// One step of starting, bounded by the start's deadline.
async fn step<T>(
    deadline: Instant,
    name: &'static str,
    io: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, StartFailure> {
    match timeout_at(deadline, io).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StartFailure::Io(name, e)),
        Err(_) => Err(StartFailure::Timeout(name)),
    }
}

/// Reads an `i32` length and that many bytes, refusing negative lengths and ones over `max` (a
/// stray connection must not make us allocate gigabytes).
async fn read_bytes<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let len = reader.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| invalid(format!("negative length {len}")))?;
    if len > max {
        return Err(invalid(format!("length {len} over the limit of {max}")));
    }
    let mut bytes = vec![0; len];
    reader.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// Reads a UTF frame (invalid UTF-8 replaced: a traceback is worth showing regardless).
async fn read_utf<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> io::Result<String> {
    Ok(String::from_utf8_lossy(&read_bytes(reader, max).await?).into_owned())
}

/// Writes an `i32` length and the bytes (not flushed).
async fn write_bytes<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    let len = i32::try_from(bytes.len()).map_err(|_| invalid(format!("{} bytes do not fit a frame", bytes.len())))?;
    writer.write_i32(len).await?;
    writer.write_all(bytes).await
}

/// Writes a UTF frame (not flushed).
async fn write_utf<W: AsyncWrite + Unpin>(writer: &mut W, text: &str) -> io::Result<()> {
    write_bytes(writer, text.as_bytes()).await
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The worker's process, its output forwarded to the log (so that it never blocks on a full
/// pipe) and its last stderr lines kept for errors. Without a child for in-process test workers.
struct Process {
    child: Option<Child>,
    drains: Vec<JoinHandle<()>>,
    tail: Tail,
}

impl Process {
    fn watch(mut child: Option<Child>, label: &str) -> Self {
        let tail = Tail::default();
        let mut drains = Vec::new();
        if let Some(child) = child.as_mut() {
            if let Some(stdout) = child.stdout.take() {
                drains.push(forward(stdout, label.to_string(), None));
            }
            if let Some(stderr) = child.stderr.take() {
                drains.push(forward(stderr, label.to_string(), Some(tail.clone())));
            }
        }
        Self { child, drains, tail }
    }

    /// Waits up to `grace` for the process to exit, kills it if it did not, and lets its output
    /// drain. The exit status when it exited by itself.
    async fn finish(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut exit = None;
        if let Some(child) = self.child.as_mut() {
            match timeout(grace, child.wait()).await {
                Ok(Ok(status)) => exit = Some(status),
                _ => {
                    if let Err(e) = child.kill().await {
                        tracing::warn!("could not kill a foreachBatch Python worker: {e}");
                    }
                }
            }
        }
        for drain in std::mem::take(&mut self.drains) {
            let _ = timeout(EXIT_WAIT, drain).await;
        }
        exit
    }
}

/// The exit status and last stderr lines of a failed worker, for its error (empty if unknown).
fn post_mortem(exit: Option<ExitStatus>, tail: &Tail) -> String {
    let mut text = String::new();
    if let Some(status) = exit {
        let _ = write!(text, " The worker exited with {status}.");
    }
    let lines = tail.lines();
    if !lines.is_empty() {
        let _ = write!(text, " Its stderr ended with:\n{lines}");
    }
    text
}

/// Logs each line of the worker's stdout (info) or stderr (warn, and kept in `tail`).
fn forward(pipe: impl AsyncRead + Unpin + Send + 'static, label: String, tail: Option<Tail>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end();
                    match &tail {
                        Some(tail) => {
                            tracing::warn!(query = %label, "foreachBatch worker: {line}");
                            tail.push(line);
                        }
                        None => tracing::info!(query = %label, "foreachBatch worker: {line}"),
                    }
                }
            }
        }
    })
}

/// The last lines a worker wrote to stderr: why it died, usually (a missing module, a crash).
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.chars().take(MAX_TAIL_LINE_CHARS).collect());
    }

    fn lines(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkerSpec {
        WorkerSpec {
            python: "python3".into(),
            python_ver: "3.11".into(),
            command: b"\x80\x05pickled".to_vec(),
            session_id: "9b2f0c4e-0000-4000-8000-000000000001".into(),
            user_id: "ann;x=1".into(),
            connect_port: 15002,
            query_label: "query q1".into(),
        }
    }

    fn env_value(env: &[(&'static str, String)], key: &str) -> String {
        env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap()
    }

    #[tokio::test]
    async fn frames_round_trip_big_endian() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_utf(&mut a, "ok ✓").await.unwrap();
        write_bytes(&mut a, &[1, 2, 3]).await.unwrap();
        a.write_i64(-7).await.unwrap();
        a.flush().await.unwrap();
        assert_eq!(read_utf(&mut b, 100).await.unwrap(), "ok ✓");
        assert_eq!(read_bytes(&mut b, 100).await.unwrap(), vec![1, 2, 3]);
        assert_eq!(b.read_i64().await.unwrap(), -7);

        let mut raw = Vec::new();
        write_utf(&mut raw, "ab").await.unwrap();
        raw.write_i64(1).await.unwrap();
        assert_eq!(raw, [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[tokio::test]
    async fn bad_frames_are_refused() {
        let negative = (-2i32).to_be_bytes();
        assert_eq!(read_bytes(&mut &negative[..], 10).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let long = [0, 0, 0, 11];
        assert_eq!(read_bytes(&mut &long[..], 10).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let short = [0, 0, 0, 3, b'a'];
        assert_eq!(read_utf(&mut &short[..], 10).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn the_workers_url_carries_the_user_encoded_and_no_token() {
        let env = worker_env(&spec(), 40000, "s3cret");
        assert_eq!(env_value(&env, "SPARK_CONNECT_LOCAL_URL"), "sc://localhost:15002/;user_id=ann%3Bx%3D1");
        assert_eq!(env_value(&env, "PYTHON_WORKER_FACTORY_PORT"), "40000");
        assert_eq!(env_value(&env, "PYTHON_WORKER_FACTORY_SECRET"), "s3cret");
    }

    /// How the fake worker answers.
    #[derive(Clone, Copy)]
    enum Answer {
        Done,
        Raise(&'static str),
        Crash,
    }

    /// What the fake worker was told.
    #[derive(Debug, Default)]
    struct Seen {
        auth_replies: Vec<String>,
        python_ver: String,
        session_id: String,
        command: Vec<u8>,
        batches: Vec<(String, i64)>,
    }

    async fn connect(port: u16, secret: &str) -> BufStream<TcpStream> {
        let mut stream = BufStream::new(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.unwrap());
        write_utf(&mut stream, secret).await.unwrap();
        stream.flush().await.unwrap();
        stream
    }

    /// Plays `foreach_batch_worker.py` over a real loopback socket.
    async fn fake_worker(port: u16, secret: String, wrong_secret_first: bool, load: Answer, batches: Vec<Answer>) -> Seen {
        let mut seen = Seen::default();
        if wrong_secret_first {
            let mut stranger = connect(port, "guess").await;
            seen.auth_replies.push(read_utf(&mut stranger, 100).await.unwrap());
            assert_eq!(stranger.read_u8().await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof, "refused and closed");
        }
        let mut s = connect(port, &secret).await;
        seen.auth_replies.push(read_utf(&mut s, 100).await.unwrap());
        s.write_i32(4242).await.unwrap();
        s.flush().await.unwrap();
        seen.python_ver = read_utf(&mut s, 100).await.unwrap();
        seen.session_id = read_utf(&mut s, 100).await.unwrap();
        seen.command = read_bytes(&mut s, 100).await.unwrap();
        for (i, answer) in std::iter::once(load).chain(batches).enumerate() {
            if i > 0 {
                let df_id = read_utf(&mut s, 100).await.unwrap();
                seen.batches.push((df_id, s.read_i64().await.unwrap()));
            }
            match answer {
                Answer::Done => s.write_i32(0).await.unwrap(),
                Answer::Raise(traceback) => {
                    s.write_i32(-2).await.unwrap();
                    write_utf(&mut s, traceback).await.unwrap();
                    s.flush().await.unwrap();
                    return seen;
                }
                Answer::Crash => return seen,
            }
            s.flush().await.unwrap();
        }
        assert_eq!(s.read_u8().await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof, "the server closes at stop");
        seen
    }

    /// Starts a worker against the fake; the fake's task handle for its report.
    async fn start_fake(
        wrong_secret_first: bool,
        load: Answer,
        batches: Vec<Answer>,
    ) -> (Result<ForeachBatchWorker>, JoinHandle<Seen>) {
        let mut fake = None;
        let worker = ForeachBatchWorker::start_with(spec(), Duration::from_secs(10), |_, env| {
            let port = env_value(env, "PYTHON_WORKER_FACTORY_PORT").parse().unwrap();
            let secret = env_value(env, "PYTHON_WORKER_FACTORY_SECRET");
            fake = Some(tokio::spawn(fake_worker(port, secret, wrong_secret_first, load, batches)));
            Ok(None)
        })
        .await;
        (worker, fake.unwrap())
    }

    #[tokio::test]
    async fn a_worker_starts_and_runs_batches() {
        let (worker, fake) = start_fake(false, Answer::Done, vec![Answer::Done, Answer::Done]).await;
        let mut worker = worker.unwrap();
        worker.call("df-1", 0).await.unwrap();
        worker.call("df-2", 1).await.unwrap();
        worker.stop().await;
        let seen = fake.await.unwrap();
        assert_eq!(seen.auth_replies, ["ok"]);
        assert_eq!((seen.python_ver.as_str(), seen.session_id.as_str()), ("3.11", "9b2f0c4e-0000-4000-8000-000000000001"));
        assert_eq!(seen.command, b"\x80\x05pickled");
        assert_eq!(seen.batches, [("df-1".to_string(), 0), ("df-2".to_string(), 1)]);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_and_the_real_worker_still_gets_in() {
        let (worker, fake) = start_fake(true, Answer::Done, vec![Answer::Done]).await;
        let mut worker = worker.unwrap();
        worker.call("df-1", 5).await.unwrap();
        worker.stop().await;
        assert_eq!(fake.await.unwrap().auth_replies, ["err", "ok"]);
    }

    #[tokio::test]
    async fn a_worker_that_cannot_load_the_function_fails_start_with_its_traceback() {
        let traceback = "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'mylib'\n";
        let (worker, fake) = start_fake(false, Answer::Raise(traceback), vec![]).await;
        let error = worker.err().unwrap();
        assert_eq!(error.error_class, Some(INIT_FAILURE));
        assert_eq!(error.sql_state, Some("XXKST"));
        assert!(error.message.starts_with(
            "[STREAMING_PYTHON_RUNNER_INITIALIZATION_FAILURE] Streaming Runner initialization failed, returned -2. Cause: Traceback"
        ));
        assert!(error.message.ends_with("No module named 'mylib'"), "{}", error.message);
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn a_function_that_raises_fails_the_batch_with_its_traceback_and_the_worker_takes_no_more() {
        let traceback = "Traceback (most recent call last):\n  File \"<stdin>\", line 2, in f\nValueError: bad row\n";
        let (worker, fake) = start_fake(false, Answer::Done, vec![Answer::Done, Answer::Raise(traceback)]).await;
        let mut worker = worker.unwrap();
        worker.call("df-1", 0).await.unwrap();
        let error = worker.call("df-2", 1).await.unwrap_err();
        assert_eq!(error.error_class, Some(USER_FUNCTION_ERROR));
        assert_eq!(error.sql_state, Some("39000"));
        assert_eq!(
            error.message,
            format!("[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach batch sink. Reason: {}", traceback.trim_end())
        );
        let again = worker.call("df-3", 2).await.unwrap_err();
        assert!(again.message.contains("cannot run batch 2"), "{}", again.message);
        assert_eq!(fake.await.unwrap().batches.len(), 2);
        worker.stop().await;
    }

    #[tokio::test]
    async fn a_worker_that_vanishes_mid_batch_is_reported_as_crashed() {
        let (worker, fake) = start_fake(false, Answer::Done, vec![Answer::Crash]).await;
        let mut worker = worker.unwrap();
        let error = worker.call("df-1", 3).await.unwrap_err();
        assert!(error.message.contains("exited unexpectedly (crashed) in batch 3"), "{}", error.message);
        assert_eq!(error.error_class, None);
        fake.await.unwrap();
        worker.stop().await;
    }

    #[tokio::test]
    async fn start_times_out_naming_what_it_waited_for() {
        let error = ForeachBatchWorker::start_with(spec(), Duration::from_millis(200), |_, _| Ok(None)).await.err().unwrap();
        assert_eq!(error.error_class, Some(INIT_FAILURE));
        assert!(error.message.contains("timed out after 200ms waiting for the worker to connect back"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_worker_process_that_exits_early_fails_start_at_once_with_its_stderr() {
        // `sh -m <module>` stands in for a Python without pyspark: it complains and exits.
        let began = std::time::Instant::now();
        let spec = WorkerSpec { python: "sh".into(), ..spec() };
        let error = ForeachBatchWorker::start_with(spec, Duration::from_secs(30), spawn_python).await.err().unwrap();
        assert!(began.elapsed() < Duration::from_secs(10));
        assert_eq!(error.error_class, Some(INIT_FAILURE));
        assert!(error.message.contains("exited while we waited for the worker to connect back"), "{}", error.message);
        assert!(error.message.contains("The worker exited with exit status"), "{}", error.message);
        assert!(error.message.contains("Its stderr ended with:\n"), "{}", error.message);
        assert!(error.message.contains("No such file"), "the shell's complaint: {}", error.message);
    }

    #[tokio::test]
    async fn a_missing_python_fails_start() {
        let spec = WorkerSpec { python: "/nonexistent/python".into(), ..spec() };
        let error = ForeachBatchWorker::start(spec).await.err().unwrap();
        assert_eq!(error.error_class, Some(INIT_FAILURE));
        assert!(error.message.contains("could not run"), "{}", error.message);
    }
}
