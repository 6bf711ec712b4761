//! A real multi-process cluster for tests: etcd, driver processes and executor processes of the
//! `sluice` binary, each killable with SIGKILL, all stopped on drop (also when a test fails).
//! They run on 127.0.0.1, or — when a test cuts nodes off the network — each on its own node of
//! a private [`Network`] of network namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::binary::{dies_with_test, sigkill, sluice_bin, wait_until};
use crate::netns::{Host, Network};
use crate::services::{free_port, EtcdServer};

/// A process of the cluster, as a target for network partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The cluster's etcd.
    Etcd,
    /// Driver `i`.
    Driver(usize),
    /// Executor `i`.
    Executor(usize),
}

impl Node {
    fn name(self) -> String {
        match self {
            Node::Etcd => "etcd".into(),
            Node::Driver(i) => format!("driver-{i}"),
            Node::Executor(i) => format!("executor-{i}"),
        }
    }
}

/// One `sluice` process.
struct Proc {
    child: Child,
}

/// etcd + drivers + executors, secured as a production cluster is: TLS everywhere (etcd
/// included, with client certificates), members authenticated by certificates from the cluster
/// CA, and the CLI authenticating as a user with a bearer token.
pub struct ClusterProcs {
    /// The development CA and certificates (`sluice certs`) every process uses.
    pub certs: tempfile::TempDir,
    /// The cluster's etcd.
    pub etcd: EtcdServer,
    /// Logs of every process, kept for failure reports.
    pub logs: tempfile::TempDir,
    drivers: Vec<Option<Proc>>,
    driver_ports: Vec<u16>,
    executors: Vec<Option<Proc>>,
    /// etcd lease TTL of the processes (seconds).
    pub lease_ttl: u64,
    /// Extra environment of every driver process, restarts included.
    driver_env: Vec<(String, String)>,
    /// Extra command-line arguments of every driver process, restarts included.
    driver_args: Vec<String>,
    /// Extra environment of every driver and executor process, restarts included.
    process_env: Vec<(String, String)>,
    launches: usize,
    /// The private network the processes run on, when the test cuts nodes off.
    network: Option<Network>,
}

impl ClusterProcs {
    /// Starts etcd, `drivers` driver processes (the first leads) and `executors` executors.
    pub fn start(drivers: usize, executors: usize) -> Self {
        Self::start_with_driver_env(drivers, executors, &[])
    }

    /// As [`Self::start`], with extra environment for every driver process (e.g. a
    /// `SLUICE_FAULT_PAUSE` that paces batches).
    pub fn start_with_driver_env(drivers: usize, executors: usize, driver_env: &[(&str, &str)]) -> Self {
        Self::start_with_env(drivers, executors, driver_env, &[])
    }

    /// As [`Self::start`], with extra command-line arguments for every driver process (e.g. a
    /// job policy: `--allow-location DIR` replaces the default of [`Self::start_driver`]).
    pub fn start_with_driver_args(drivers: usize, executors: usize, driver_args: &[&str]) -> Self {
        Self::launch(drivers, executors, &[], &[], driver_args, None)
    }

    /// As [`Self::start_with_driver_env`], with extra environment for every process, drivers and
    /// executors alike (e.g. `SLUICE_STORE_FAULTS`).
    pub fn start_with_env(drivers: usize, executors: usize, driver_env: &[(&str, &str)], process_env: &[(&str, &str)]) -> Self {
        Self::launch(drivers, executors, driver_env, process_env, &[], None)
    }

    /// As [`Self::start_with_env`], with every process (etcd, each driver, each executor, the
    /// CLI) on its own node of a private network, so that [`Self::cut`] can partition any of them.
    pub fn start_partitionable(
        drivers: usize,
        executors: usize,
        driver_env: &[(&str, &str)],
        process_env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut network = Network::create()?;
        network.add_node("client")?;
        network.add_node(&Node::Etcd.name())?;
        for i in 0..drivers {
            network.add_node(&Node::Driver(i).name())?;
        }
        for i in 0..executors {
            network.add_node(&Node::Executor(i).name())?;
        }
        Ok(Self::launch(drivers, executors, driver_env, process_env, &[], Some(network)))
    }

    fn launch(
        drivers: usize,
        executors: usize,
        driver_env: &[(&str, &str)],
        process_env: &[(&str, &str)],
        driver_args: &[&str],
        network: Option<Network>,
    ) -> Self {
        let etcd_host = network.as_ref().map(|n| n.host(&Node::Etcd.name())).unwrap_or_else(Host::loopback);
        let mut hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        if let Some(n) = &network {
            hosts.extend(n.hosts().map(|h| h.ip.to_string()));
        }
        let certs = make_certs(&hosts);
        let mut c = Self {
            etcd: EtcdServer::start_tls_on(&etcd_host, certs.path()),
            certs,
            logs: log_dir(),
            drivers: Vec::new(),
            driver_ports: Vec::new(),
            executors: Vec::new(),
            lease_ttl: 2,
            driver_env: driver_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            driver_args: driver_args.iter().map(|a| a.to_string()).collect(),
            process_env: process_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            launches: 0,
            network,
        };
        for i in 0..drivers {
            c.driver_ports.push(free_port());
            c.drivers.push(None);
            c.start_driver(i);
            if i == 0 {
                // Let the first driver win the election.
                assert!(wait_until(Duration::from_secs(20), || c.has_leader()), "no driver became leader");
            }
        }
        for i in 0..executors {
            c.executors.push(None);
            c.start_executor(i);
        }
        c
    }

    /// Where `node` runs.
    fn host(&self, node: Node) -> Host {
        self.network.as_ref().map(|n| n.host(&node.name())).unwrap_or_else(Host::loopback)
    }

    /// Cuts `node` off the network (a partition: silence, no errors). Needs
    /// [`Self::start_partitionable`].
    pub fn cut(&self, node: Node) {
        self.network.as_ref().expect("a partitionable cluster").cut(&node.name());
    }

    /// Reconnects `node`.
    pub fn heal(&self, node: Node) {
        self.network.as_ref().expect("a partitionable cluster").heal(&node.name());
    }

    /// The endpoint executor `i` (its latest launch) announced on start, once it has.
    pub fn executor_endpoint(&self, i: usize) -> Option<String> {
        let prefix = format!("{}-", Node::Executor(i).name());
        let mut logs: Vec<(usize, PathBuf)> = std::fs::read_dir(self.logs.path())
            .ok()?
            .filter_map(|e| {
                let path = e.ok()?.path();
                let name = path.file_name()?.to_str()?.to_string();
                let launch = name.strip_prefix(&prefix)?.strip_suffix(".log")?.parse().ok()?;
                Some((launch, path))
            })
            .collect();
        logs.sort();
        let text = std::fs::read_to_string(&logs.last()?.1).ok()?;
        let line = text.lines().find(|l| l.starts_with("sluice executor ") && l.contains(" listening at "))?;
        line.rsplit(' ').next().map(String::from)
    }

    /// The process id of executor `i`, while it runs.
    pub fn executor_pid(&self, i: usize) -> Option<u32> {
        self.executors.get(i)?.as_ref().map(|p| p.child.id())
    }

    fn spawn(&mut self, node: Node, args: &[String], env: &[(String, String)]) -> Proc {
        self.launches += 1;
        let log = self.logs.path().join(format!("{}-{}.log", node.name(), self.launches));
        let file = std::fs::File::create(&log).expect("log file");
        let child = dies_with_test(&mut self.host(node).command(sluice_bin()))
            .args(args)
            .envs(self.process_env.iter().chain(env).map(|(k, v)| (k, v)))
            // CHAOS_RUST_LOG (e.g. `info,sluice_driver=debug`) traces a failing run closer.
            .env("RUST_LOG", std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.member_env())
            .env("SLUICE_ETCD", self.etcd.url())
            .env("SLUICE_LEASE_TTL", self.lease_ttl.to_string())
            .env("SLUICE_CLUSTER", "chaos")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("sluice starts");
        Proc { child }
    }

    /// A file of the `sluice certs` directory.
    pub fn cert_file(&self, name: &str) -> String {
        self.certs.path().join(name).display().to_string()
    }

    /// The environment that makes a process a member: its certificate from the cluster CA, for
    /// gRPC and for etcd; drivers also accept users' client certificates and tokens.
    fn member_env(&self) -> Vec<(String, String)> {
        let mut env = self.etcd_env();
        env.extend([
            ("SLUICE_TLS_CA".to_string(), self.cert_file("ca.pem")),
            ("SLUICE_TLS_CERT".to_string(), self.cert_file("member.pem")),
            ("SLUICE_TLS_KEY".to_string(), self.cert_file("member-key.pem")),
            ("SLUICE_CLIENT_CA".to_string(), self.cert_file("client-ca.pem")),
            ("SLUICE_AUTH_TOKEN_FILE".to_string(), self.cert_file("token")),
        ]);
        env
    }

    /// How the CLI reaches etcd (to find the leader): TLS with a client certificate.
    fn etcd_env(&self) -> Vec<(String, String)> {
        vec![
            ("SLUICE_ETCD_CA".to_string(), self.cert_file("ca.pem")),
            ("SLUICE_ETCD_CERT".to_string(), self.cert_file("member.pem")),
            ("SLUICE_ETCD_KEY".to_string(), self.cert_file("member-key.pem")),
        ]
    }

    /// (Re)starts driver `i`; its progress reports go to `<logs>/<launch>-driver-<i>.progress`.
    /// Cluster mode allows jobs no location by default; tests keep their data under the system
    /// temp dir, so drivers allow that (`SLUICE_ALLOW_LOCATIONS`) unless the test's driver
    /// arguments or environment say otherwise.
    pub fn start_driver(&mut self, i: usize) {
        let progress = self.logs.path().join(format!("{:04}-driver-{i}.progress", self.launches + 1));
        let mut args = vec![
            "driver".into(),
            "--listen".into(),
            format!("{}:{}", self.host(Node::Driver(i)).ip, self.driver_ports[i]),
            "--progress-json".into(),
            progress.display().to_string(),
        ];
        args.extend(self.driver_args.iter().cloned());
        let mut env = vec![("SLUICE_ALLOW_LOCATIONS".to_string(), std::env::temp_dir().display().to_string())];
        env.extend(self.driver_env.iter().cloned());
        let p = self.spawn(Node::Driver(i), &args, &env);
        self.drivers[i] = Some(p);
    }

    /// SIGKILLs driver `i`.
    pub fn kill_driver(&mut self, i: usize) {
        if let Some(mut p) = self.drivers[i].take() {
            sigkill(&mut p.child);
        }
    }

    /// Sends driver `i` SIGTERM and waits (up to `timeout`) for it to exit; its exit status.
    pub fn terminate_driver(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let p = self.drivers[i].take()?;
        terminate(p, timeout)
    }

    /// Sends executor `i` SIGTERM and waits (up to `timeout`) for it to exit; its exit status.
    pub fn terminate_executor(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let p = self.executors.get_mut(i)?.take()?;
        terminate(p, timeout)
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) driver `i`.
    pub fn signal_driver(&mut self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(p) = &self.drivers[i] {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.child.id() as i32), signal);
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) executor `i`.
    pub fn signal_executor(&mut self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(Some(p)) = self.executors.get(i) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.child.id() as i32), signal);
        }
    }

    /// True while driver `i`'s process runs.
    pub fn driver_running(&mut self, i: usize) -> bool {
        match &mut self.drivers[i] {
            Some(p) => matches!(p.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// (Re)starts executor `i` (same id, so a restart is the same executor coming back).
    pub fn start_executor(&mut self, i: usize) {
        self.start_executor_with(i, &[]);
    }

    /// (Re)starts executor `i` with extra command-line arguments.
    pub fn start_executor_with(&mut self, i: usize, extra: &[&str]) {
        let listen = format!("{}:0", self.host(Node::Executor(i)).ip);
        let mut args: Vec<String> = vec![
            "executor".into(),
            "--id".into(),
            format!("executor-{i}"),
            "--slots".into(),
            "2".into(),
            "--listen".into(),
            listen,
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let p = self.spawn(Node::Executor(i), &args, &[]);
        if i >= self.executors.len() {
            self.executors.resize_with(i + 1, || None);
        }
        self.executors[i] = Some(p);
    }

    /// Driver `i`'s URL.
    pub fn driver_url(&self, i: usize) -> String {
        format!("https://{}:{}", self.host(Node::Driver(i)).ip, self.driver_ports[i])
    }

    /// SIGKILLs executor `i`.
    pub fn kill_executor(&mut self, i: usize) {
        if let Some(mut p) = self.executors[i].take() {
            sigkill(&mut p.child);
        }
    }

    /// Executors currently running.
    pub fn running_executors(&self) -> Vec<usize> {
        self.executors.iter().enumerate().filter(|(_, p)| p.is_some()).map(|(i, _)| i).collect()
    }

    /// Runs a `sluice` command against the cluster (leader found through etcd) as a user
    /// authenticated with the bearer token.
    pub fn sluice(&self, cwd: &Path, args: &[&str]) -> Output {
        self.sluice_as(cwd, args, &[("SLUICE_TOKEN_FILE".to_string(), self.cert_file("token"))])
    }

    /// Runs a `sluice` command against the driver its `--driver` names (not the one etcd
    /// elected), as a user authenticated with the bearer token.
    pub fn sluice_at(&self, cwd: &Path, args: &[&str]) -> Output {
        std::process::Command::new(sluice_bin())
            .args(args)
            .current_dir(cwd)
            .env("SLUICE_TLS_CA", self.cert_file("ca.pem"))
            .env("SLUICE_TOKEN_FILE", self.cert_file("token"))
            .env("RUST_LOG", "warn")
            .output()
            .expect("sluice runs")
    }

    /// Runs a `sluice` command with the cluster CA trusted and `credentials` in its environment
    /// (none: an unauthenticated user).
    pub fn sluice_as(&self, cwd: &Path, args: &[&str], credentials: &[(String, String)]) -> Output {
        let client = self.network.as_ref().map(|n| n.host("client")).unwrap_or_else(Host::loopback);
        client
            .command(sluice_bin())
            .args(args)
            .current_dir(cwd)
            .envs(self.etcd_env())
            .env("SLUICE_TLS_CA", self.cert_file("ca.pem"))
            .envs(credentials.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .env("SLUICE_ETCD", self.etcd.url())
            .env("SLUICE_CLUSTER", "chaos")
            .output()
            .expect("sluice runs")
    }

    /// True when some driver leads (the CLI can reach it through etcd).
    pub fn has_leader(&self) -> bool {
        self.sluice(Path::new("."), &["queries"]).status.success()
    }

    /// `sluice queries --json` from the leader (empty when there is none).
    pub fn queries(&self) -> Vec<serde_json::Value> {
        let out = self.sluice(Path::new("."), &["queries", "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Every progress report any driver wrote, in launch order.
    pub fn progress_reports(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.logs.path())
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|x| x == "progress")).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The driver that wrote the most recent progress report: the one leading now (or last).
    pub fn latest_progress_writer(&self) -> Option<usize> {
        let newest = std::fs::read_dir(self.logs.path())
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().to_str()?.to_string();
                let driver = name.strip_suffix(".progress")?.rsplit_once("-driver-")?.1.parse::<usize>().ok()?;
                let meta = e.metadata().ok()?;
                // A driver that never led has an empty file.
                (meta.len() > 0).then_some(())?;
                Some((meta.modified().ok()?, driver))
            })
            .max()?;
        Some(newest.1)
    }

    /// `durationMs.recovery` of every progress report that has one (ms).
    pub fn reported_recoveries(&self) -> Vec<u64> {
        self.progress_reports().iter().filter_map(|p| p.pointer("/durationMs/recovery").and_then(|v| v.as_u64())).collect()
    }

    /// Every process log, for a failure report.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(self.logs.path()).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {}\n", f.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// The directory of the processes' logs: removed with the cluster, or kept (and named) with
/// `CHAOS_KEEP_LOGS=1`, to read a failing run's whole logs instead of their tails.
fn log_dir() -> tempfile::TempDir {
    let keep = std::env::var("CHAOS_KEEP_LOGS").is_ok_and(|v| v == "1");
    let dir = tempfile::Builder::new().prefix("sluice-cluster-logs-").disable_cleanup(keep).tempdir().expect("temp dir");
    if keep {
        println!("cluster logs kept in {}", dir.path().display());
    }
    dir
}

/// A development CA and certificates for `hosts`, made by the binary under test (`sluice certs`).
fn make_certs(hosts: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(sluice_bin())
        .args(["certs", "--out"])
        .arg(dir.path())
        .arg("--host")
        .arg(hosts.join(","))
        .output()
        .expect("sluice certs runs");
    assert!(out.status.success(), "sluice certs failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

impl Drop for ClusterProcs {
    fn drop(&mut self) {
        for p in self.drivers.iter_mut().chain(self.executors.iter_mut()).flatten() {
            sigkill(&mut p.child);
        }
    }
}

/// SIGTERM, then waits for the exit; SIGKILLs a process still running after `timeout` (and
/// returns `None`).
fn terminate(mut p: Proc, timeout: Duration) -> Option<std::process::ExitStatus> {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sigkill(&mut p.child);
    None
}
