//! The deployment scenario: validate, build the image, check that it refuses plain text beyond
//! loopback, run the dev overlay — TLS between every member and etcd, token authentication for
//! users, as deployed — disturb it, check the output exactly.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_tests::binary::{sluice_bin, wait_until};

use crate::compose::{repo_root, require, run_ok, venv_python, Project};

/// Prints a line of the report as it happens, so that a later failure keeps what came before.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("deploy: {}", format!($($arg)*))
    };
}

/// The image the manifests name (`deploy/k8s/base`), built from this test build's binary.
const IMAGE: &str = "sluice:0.1.0";
/// The job of the jobs ConfigMap the test submits, and the query it starts.
const JOB: &str = "/etc/sluice/jobs/dedup.sql";
const QUERY: &str = "dedup";
/// Where the job writes, under the data volume.
const OUTPUT: &str = "out/clicks-dedup";
/// Readiness may take this long after a container starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// `docker stop` grace: the pods' terminationGracePeriodSeconds.
const GRACE: &str = "60";
/// The user's credentials inside a driver pod: the Secrets `sluice-tls` (the CA) and
/// `sluice-tokens` as mounted there (deploy/k8s/base/driver.yaml).
const POD_USER: [&str; 6] =
    ["--driver", "https://localhost:7077", "--tls-ca", "/etc/sluice/tls/ca.crt", "--token-file", "/etc/sluice/tokens/tokens"];

/// Runs every step and returns the report.
pub fn run() {
    let root = repo_root();
    require("docker", &["info", "--format", "{{.ServerVersion}}"], "Docker Engine (a running daemon)");
    require("docker-compose", &["version"], "docker-compose");
    require("kubectl", &["version", "--client"], "kubectl (for `kubectl kustomize`)");
    require(venv_python().to_str().unwrap_or("python"), &["-c", "import yaml"], "the test venv with PyYAML (tests/venv.sh)");

    let t = Instant::now();
    run_ok(Command::new(root.join("deploy/k8s/validate.sh")).current_dir(&root));
    say!("manifests rendered, validated (Kubernetes 1.30–1.34, strict) and policy-checked in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    run_ok(Command::new(root.join("deploy/image/build.sh")).arg("--binary").arg(sluice_bin()).args(["--tag", IMAGE]));
    run_ok(Command::new(root.join("deploy/image/build.sh")).arg("--etcd"));
    let size = image_size(IMAGE);
    say!(
        "image {IMAGE} built in {:.1} s: {:.1} MB (the debug binary of this test build)",
        t.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    refuses_plain_text_beyond_loopback();

    let rendered = run_ok(Command::new("kubectl").args(["kustomize", "deploy/k8s/overlays/dev"]).current_dir(&root)).stdout;
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    for d in ["in", "staging"] {
        std::fs::create_dir_all(data.join(d)).expect("data dirs");
    }
    // The pods run as uid 65532 and write checkpoints and output under /data.
    chmod_world_writable(&data);
    let secrets = work.path().join("secrets");
    let name = format!("sluicedeploy{}", std::process::id());
    let subnet = format!("172.30.{}.0/24", std::process::id() % 200 + 20);
    // The dev overlay scaled to two drivers (`kubectl scale statefulset/sluice-driver --replicas=2`),
    // so that a leader hand-over can be checked too.
    let project = Project::generate(&name, &rendered, &work.path().join("v2"), &data, &secrets, &subnet, &["sluice-driver=2"]);
    // The Secrets sluice-tls and sluice-tokens, from a development CA (`sluice certs`) naming
    // every Service alias and address of the project.
    let t = Instant::now();
    project.make_dev_secrets(&sluice_bin());
    say!(
        "development CA, member certificate and token made (sluice certs, dev-secrets.sh) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    scenario(&project, &rendered, work.path(), &subnet);
}

fn scenario(p: &Project, rendered: &[u8], work: &Path, subnet: &str) {
    p.compose(&["up", "--no-start"]);
    let t = Instant::now();
    p.compose(&["start"]);
    let mut ready = BTreeMap::new();
    for pod in ["sluice-etcd-0", "sluice-driver-0", "sluice-driver-1", "sluice-executor-0", "sluice-executor-1"] {
        if p.pods.iter().any(|x| x.service == pod) {
            p.wait_ready(pod, READY_TIMEOUT);
            ready.insert(pod, t.elapsed());
        }
    }
    say!("from `docker start` of all pods to each ready (probes polled in turn): {}", fmt_times(&ready));

    let q = Queries { project: p };
    // Token authentication is on: the CA alone (TLS, but no token) is refused.
    let unauthenticated = q
        .cli(false)
        .args(["queries", "--driver", &format!("https://{}:7077", p.pod("sluice-driver-0").ip)])
        .output()
        .expect("sluice queries runs");
    let refusal = String::from_utf8_lossy(&unauthenticated.stderr).into_owned();
    assert!(
        !unauthenticated.status.success() && refusal.contains("token"),
        "a user without a token was not refused ({}): {refusal}",
        unauthenticated.status
    );
    say!("a user without a token is refused: {}", refusal.trim());

    let writer = InputWriter::start(&p.data);
    let mut submit = vec!["exec", "-T", "sluice-driver-0", "/usr/local/bin/sluice", "submit", JOB];
    submit.extend(POD_USER);
    let out = p.compose(&submit);
    assert!(String::from_utf8_lossy(&out.stdout).contains(QUERY), "submit output: {}", String::from_utf8_lossy(&out.stdout));
    q.wait_batches(3, "the first batches");

    // A rolling restart of the executors (`kubectl rollout restart statefulset/sluice-executor`:
    // highest ordinal first, each ready before the next): SIGTERM, no failed batch.
    let retried = q.retried();
    let mut restart_ready = Vec::new();
    for pod in ["sluice-executor-1", "sluice-executor-0"] {
        let drained = graceful_stop(p, pod);
        let t = Instant::now();
        p.compose(&["start", pod]);
        restart_ready.push(p.wait_ready(pod, READY_TIMEOUT).max(t.elapsed()));
        say!("rolling restart: {pod} drained and exited in {:.2} s", drained.as_secs_f64());
        q.wait_batches(2, "batches after restarting an executor");
    }
    assert_eq!(q.retried(), retried, "a rolling restart (SIGTERM) retried batches");
    say!("rolling restart of 2 executors: 0 batches retried; restarted executors ready in {}", fmt_durations(&restart_ready));

    // Scale up to 3 (`kubectl scale statefulset/sluice-executor --replicas=3`): the new
    // executor takes a fair share of the state partitions.
    let p3 = Project::generate(
        &p.name,
        rendered,
        &work.join("v3"),
        &p.data,
        &p.secrets,
        subnet,
        &["sluice-driver=2", "sluice-executor=3"],
    );
    p3.compose(&["up", "-d", "--no-deps", "sluice-executor-2"]);
    p3.wait_ready("sluice-executor-2", READY_TIMEOUT);
    assert!(
        wait_until(Duration::from_secs(30), || q.placement().contains_key("sluice-executor-2")),
        "no state partition moved to the new executor: {:?}",
        q.placement()
    );
    let after_up = q.placement();
    // Scale back down to 2: the StatefulSet stops the highest ordinal with SIGTERM.
    graceful_stop(&p3, "sluice-executor-2");
    p3.compose(&["rm", "-f", "sluice-executor-2"]);
    q.wait_batches(2, "batches after scaling down");
    assert!(!q.placement().contains_key("sluice-executor-2"), "partitions stayed on the removed executor");
    assert_eq!(q.retried(), retried, "scaling executors up and down retried batches");
    say!("scaled executors 2 → 3 (partitions {after_up:?}) → 2 (partitions {:?}): 0 batches retried", q.placement());

    // The leader driver stops (SIGTERM): it finishes its batch and hands over to the standby.
    // The standby is paused meanwhile, so that the checkpoint the leader left can be read
    // before anyone else writes to it: every batch it planned must be committed.
    let leader = q.leader();
    let standby = if leader == "sluice-driver-0" { "sluice-driver-1" } else { "sluice-driver-0" };
    p.compose(&["pause", standby]);
    let stopped_in = graceful_stop(p, &leader);
    let (offsets, commits) = checkpoint_logs(&p.data);
    p.compose(&["unpause", standby]);
    assert_eq!(offsets, commits, "the stopping leader left a batch planned but not committed: it failed mid-batch");
    q.wait_batches(3, "batches under the new leader");
    assert_eq!(q.leader(), standby, "the standby did not take over");
    assert_eq!(q.retried(), 0, "the new leader's run retried batches");
    p.compose(&["start", &leader]);
    p.wait_ready(&leader, READY_TIMEOUT);
    say!(
        "leader {leader} stopped (SIGTERM) in {:.2} s after committing batch {}; {standby} took over with 0 batches retried",
        stopped_in.as_secs_f64(),
        commits.unwrap_or(0)
    );

    // Failures: an executor and then the leader are SIGKILLed (Kubernetes restarts them).
    p.compose(&["kill", "-s", "SIGKILL", "sluice-executor-1"]);
    p.compose(&["start", "sluice-executor-1"]);
    p.wait_ready("sluice-executor-1", READY_TIMEOUT);
    q.wait_batches(2, "batches after an executor was killed");
    let leader = q.leader();
    p.compose(&["kill", "-s", "SIGKILL", &leader]);
    p.compose(&["start", &leader]);
    p.wait_ready(&leader, READY_TIMEOUT);
    q.wait_batches(2, "batches after the leader was killed");
    say!("executor sluice-executor-1 and leader {leader} SIGKILLed and restarted");

    let expected = writer.stop();
    let read = || committed_ids(&p.data.join(OUTPUT));
    let complete = wait_until(Duration::from_secs(120), || read().len() >= expected.len());
    let got = read();
    assert!(complete, "only {} of {} distinct events were committed:\n{}", got.len(), expected.len(), p.logs(&q.leader()));
    let mut want: Vec<String> = expected.into_iter().collect();
    want.sort();
    assert_eq!(got, want, "the committed output is not every distinct event exactly once");
    say!(
        "output exact: {} distinct events, each committed once, out of {} delivered",
        got.len(),
        InputWriter::delivered(&p.data)
    );
}

/// Sends SIGTERM (`docker stop`, the pod's grace period) and checks the process exited cleanly
/// — for an executor, that the driver dismissed it rather than its drain timeout passing.
fn graceful_stop(p: &Project, pod: &str) -> Duration {
    let t = Instant::now();
    p.compose(&["stop", "-t", GRACE, pod]);
    let took = t.elapsed();
    let container = String::from_utf8_lossy(&p.compose(&["ps", "-q", pod]).stdout).trim().to_string();
    let code = run_ok(Command::new("docker").args(["inspect", "-f", "{{.State.ExitCode}}", &container])).stdout;
    assert_eq!(String::from_utf8_lossy(&code).trim(), "0", "{pod} did not exit cleanly on SIGTERM:\n{}", p.logs(pod));
    took
}

/// The running query, seen through the drivers' Service (any ready driver answers).
struct Queries<'a> {
    project: &'a Project,
}

impl Queries<'_> {
    /// The host's CLI as a user: the project's CA, and its token when `token`.
    fn cli(&self, token: bool) -> Command {
        let mut cmd = Command::new(sluice_bin());
        cmd.env("RUST_LOG", "off")
            .env_remove("SLUICE_TOKEN")
            .env_remove("SLUICE_TOKEN_FILE")
            .env_remove("SLUICE_ETCD")
            .env("SLUICE_TLS_CA", self.project.ca());
        if token {
            cmd.env("SLUICE_TOKEN_FILE", self.project.token_file());
        }
        cmd
    }

    /// The query's status from `sluice queries --json`, asked of whichever driver answers.
    fn status(&self) -> Option<serde_json::Value> {
        for pod in self.project.pods.iter().filter(|p| p.service.starts_with("sluice-driver")) {
            let out =
                self.cli(true).args(["queries", "--json", "--driver", &format!("https://{}:7077", pod.ip)]).output().ok()?;
            if !out.status.success() {
                continue;
            }
            let found = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .rfind(|q| q["name"] == QUERY && q["state"] == "active");
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn batch(&self) -> Option<i64> {
        self.status().and_then(|q| q["lastProgress"]["batchId"].as_i64())
    }

    /// Waits until `n` more batches ran.
    fn wait_batches(&self, n: i64, what: &str) {
        let start = wait_for(Duration::from_secs(60), || self.batch()).unwrap_or_else(|| panic!("no progress before {what}"));
        assert!(
            wait_until(Duration::from_secs(90), || self.batch().is_some_and(|b| b >= start + n)),
            "{what}: stuck at batch {start}:\n{}",
            self.project.logs(&self.leader())
        );
    }

    fn retried(&self) -> u64 {
        self.status().and_then(|q| q["batchesRetried"].as_u64()).unwrap_or_else(|| panic!("no query status"))
    }

    fn placement(&self) -> BTreeMap<String, u64> {
        self.status()
            .and_then(|q| q["statePartitions"].as_object().cloned())
            .map(|m| m.into_iter().filter_map(|(k, v)| v.as_u64().map(|n| (k, n))).collect())
            .unwrap_or_default()
    }

    /// The pod of the leading driver (the one that answers, through either driver), which
    /// advertises `https://<pod>.sluice-driver-pods.<namespace>.svc:7077`.
    fn leader(&self) -> String {
        let url = wait_for(Duration::from_secs(30), || self.status()?["leader"].as_str().map(str::to_string))
            .expect("a leader answers");
        self.project
            .pods
            .iter()
            .find(|p| url.contains(&format!("//{}.", p.service)) || url.contains(&format!("//{}:", p.ip)))
            .map(|p| p.service.clone())
            .unwrap_or_else(|| panic!("leader {url} is no pod of the project"))
    }
}

/// Secure by default: the image's driver and executor, listening on every address without TLS
/// and without `--insecure`, refuse to start — exit non-zero, naming `--insecure`.
fn refuses_plain_text_beyond_loopback() {
    for (role, port) in [("driver", "7077"), ("executor", "7078")] {
        let name = format!("sluicedeploy{}-{role}-plain", std::process::id());
        let mut child = Command::new("docker")
            .args(["run", "--rm", "--name", &name, "--network", "none", "--read-only", IMAGE, role, "--listen"])
            .arg(format!("0.0.0.0:{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker run starts");
        let exited = wait_for(Duration::from_secs(30), || child.try_wait().expect("docker run is waited on"));
        if exited.is_none() {
            let _ = Command::new("docker").args(["rm", "-f", &name]).output();
            let _ = child.wait();
            panic!("the {role} kept running on 0.0.0.0 without TLS or --insecure");
        }
        let out = child.wait_with_output().expect("docker run output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("--insecure") && stderr.contains("without TLS"),
            "the {role} on 0.0.0.0 without TLS did not refuse to start naming --insecure ({}): {stderr}",
            out.status
        );
        let line = stderr.lines().find(|l| l.contains("--insecure")).unwrap_or_default().trim().to_string();
        say!("the {role} image on 0.0.0.0 without TLS refuses to start ({}): {line}", out.status);
    }
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The highest batch id in the query's `offsets/` and `commits/` logs.
fn checkpoint_logs(data: &Path) -> (Option<u64>, Option<u64>) {
    let max = |dir: &str| {
        std::fs::read_dir(data.join("checkpoints").join(QUERY).join(dir))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
    };
    (max("offsets"), max("commits"))
}

/// The `event_id`s the file sink committed, sorted (duplicates kept, so they show).
fn committed_ids(out: &Path) -> Vec<String> {
    let o = Command::new(sluice_bin()).arg("cat").arg(out).env("RUST_LOG", "off").output().expect("sluice cat runs");
    assert!(o.status.success(), "sluice cat {}: {}", out.display(), String::from_utf8_lossy(&o.stderr));
    let mut ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r["event_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Writes an input file every 1.2 s (the job reads one per 1-second trigger) while the scenario runs: 10 new events and 3 re-deliveries
/// of earlier ones (same id and time), all within a few minutes of event time so that the
/// 10-minute watermark drops none as late. The distinct events are what the output must hold.
struct InputWriter {
    stop: Arc<AtomicBool>,
    expected: Arc<Mutex<std::collections::BTreeSet<String>>>,
    thread: std::thread::JoinHandle<()>,
}

impl InputWriter {
    fn start(data: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let expected = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let (dir, s, e) = (data.to_path_buf(), Arc::clone(&stop), Arc::clone(&expected));
        let thread = std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(15);
            let mut events: Vec<String> = Vec::new();
            let mut file = 0;
            while !s.load(Ordering::SeqCst) {
                let mut lines = String::new();
                for _ in 0..10 {
                    let n = events.len();
                    let line = format!(
                        "{{\"event_time\":\"2024-05-01T10:{:02}:{:02}Z\",\"user_id\":\"u{}\",\"action\":\"click\",\"amount\":{},\"event_id\":\"e{n:05}\"}}",
                        (n / 60) % 5,
                        n % 60,
                        n % 7,
                        n % 100
                    );
                    events.push(line.clone());
                    e.lock().expect("expected ids").insert(format!("e{n:05}"));
                    lines.push_str(&line);
                    lines.push('\n');
                }
                for _ in 0..3 {
                    lines.push_str(&events[rng.usize(..events.len())]);
                    lines.push('\n');
                }
                write_input(&dir, file, &lines);
                file += 1;
                std::thread::sleep(Duration::from_millis(1200));
            }
        });
        InputWriter { stop, expected, thread }
    }

    /// Stops writing; returns the distinct event ids written.
    fn stop(self) -> std::collections::BTreeSet<String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        let ids = self.expected.lock().expect("expected ids").clone();
        ids
    }

    /// Lines delivered, re-deliveries included.
    fn delivered(data: &Path) -> usize {
        std::fs::read_dir(data.join("in"))
            .map(|d| d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).map(|t| t.lines().count()).sum())
            .unwrap_or(0)
    }
}

/// Writes input file `n` atomically (staged, then renamed), readable by the pods' user.
fn write_input(data: &Path, n: usize, text: &str) {
    let staged = data.join("staging").join(format!("events-{n:05}.json"));
    std::fs::write(&staged, text).expect("stage an input file");
    std::fs::rename(&staged, data.join("in").join(format!("events-{n:05}.json"))).expect("publish an input file");
}

fn chmod_world_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for d in [dir.to_path_buf(), dir.join("in"), dir.join("staging")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod data dir");
    }
}

fn image_size(image: &str) -> u64 {
    let out = run_ok(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", image]));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("image size")
}

fn fmt_times(times: &BTreeMap<&str, Duration>) -> String {
    times.iter().map(|(k, v)| format!("{k} {:.2} s", v.as_secs_f64())).collect::<Vec<_>>().join(", ")
}

fn fmt_durations(ds: &[Duration]) -> String {
    ds.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
}
