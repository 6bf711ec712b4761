//! A rendered overlay running as a docker-compose project: the kubelet's part, played by
//! docker-compose and this module (start and stop pods, wait on their probes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use sluice_tests::{repo_root, venv_python};

/// Fails the test naming what is missing, unless `program --version`-like `args` run.
pub fn require(program: &str, args: &[&str], what: &str) {
    let ok = Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "deploy test: {what} is required but `{program} {}` failed: install it (tests/run.sh does)", args.join(" "));
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One pod of the project, as `probes.json` describes it.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The compose service (= the pod name, e.g. `sluice-executor-0`).
    pub service: String,
    /// Its static address on the project's network (the pod IP).
    pub ip: String,
    /// Port of its HTTP probes.
    pub health_port: u16,
    /// Readiness path, e.g. `/readyz`.
    pub readiness: String,
    /// `http` or `https` (sluice's HTTP port speaks TLS when the cluster does).
    pub scheme: String,
}

/// A docker-compose project generated from a rendered overlay.
pub struct Project {
    /// Project name (prefix of containers, networks and volumes).
    pub name: String,
    /// The directory holding `docker-compose.yml`, `probes.json` and the ConfigMap files.
    pub dir: PathBuf,
    /// The bind-mounted PersistentVolumeClaim directory (`/data` in the pods).
    pub data: PathBuf,
    /// The directory of the Secrets' stand-ins (`<secrets>/<secret name>/<key>`), and the
    /// development CA that made them (`dev-secrets.sh`: `<secrets>/dev-ca/`).
    pub secrets: PathBuf,
    /// The pods, by service name.
    pub pods: Vec<Pod>,
}

impl Project {
    /// Generates the project from `rendered` Kubernetes YAML into `dir` with `replicas`
    /// overrides (`name=N`); the pods mount the Secrets from `secrets`.
    pub fn generate(
        name: &str,
        rendered: &[u8],
        dir: &Path,
        data: &Path,
        secrets: &Path,
        subnet: &str,
        replicas: &[&str],
    ) -> Project {
        let mut cmd = Command::new(venv_python());
        cmd.arg(repo_root().join("deploy/compose/generate.py"))
            .args(["--project", name, "--subnet", subnet, "--out"])
            .arg(dir)
            .arg("--data-dir")
            .arg(data)
            .arg("--secrets-dir")
            .arg(secrets);
        for r in replicas {
            cmd.args(["--replicas", r]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("generate.py starts");
        child.stdin.take().expect("stdin").write_all(rendered).expect("rendered YAML reaches generate.py");
        let out = child.wait_with_output().expect("generate.py ends");
        assert!(out.status.success(), "generate.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let probes: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("probes.json")).expect("probes.json written"))
                .expect("probes.json is JSON");
        let pods = probes
            .as_array()
            .expect("probes.json is a list")
            .iter()
            .filter(|p| p["readiness"].is_string())
            .map(|p| Pod {
                service: p["service"].as_str().expect("service").to_string(),
                ip: p["ip"].as_str().expect("ip").to_string(),
                health_port: p["port"].as_u64().expect("port") as u16,
                readiness: p["readiness"].as_str().expect("readiness path").to_string(),
                scheme: p["probes"]["readiness"]["scheme"].as_str().unwrap_or("HTTP").to_ascii_lowercase(),
            })
            .collect();
        Project { name: name.to_string(), dir: dir.to_path_buf(), data: data.to_path_buf(), secrets: secrets.to_path_buf(), pods }
    }

    /// Makes the Secrets' stand-ins with `deploy/compose/dev-secrets.sh`: a development CA from
    /// `sluice certs` (this build's binary) for the hosts generate.py listed, the member
    /// certificate as `sluice-tls`, the token as `sluice-tokens`.
    pub fn make_dev_secrets(&self, sluice: &Path) {
        run_ok(
            Command::new(repo_root().join("deploy/compose/dev-secrets.sh"))
                .arg("--compose")
                .arg(&self.dir)
                .arg("--secrets")
                .arg(&self.secrets)
                .env("SLUICE_BIN", sluice),
        );
    }

    /// The cluster CA the host's CLI trusts.
    pub fn ca(&self) -> PathBuf {
        self.secrets.join("dev-ca/ca.pem")
    }

    /// The token file the host's CLI authenticates with.
    pub fn token_file(&self) -> PathBuf {
        self.secrets.join("dev-ca/token")
    }

    /// `docker-compose -p <name> -f <dir>/docker-compose.yml args…`.
    pub fn compose(&self, args: &[&str]) -> Output {
        run_ok(
            Command::new("docker-compose")
                .arg("-p")
                .arg(&self.name)
                .arg("-f")
                .arg(self.dir.join("docker-compose.yml"))
                .args(args),
        )
    }

    /// The pod named `service`.
    pub fn pod(&self, service: &str) -> &Pod {
        self.pods.iter().find(|p| p.service == service).unwrap_or_else(|| panic!("no pod {service} in {:?}", self.pods))
    }

    /// Waits until `service` answers 200 on its readiness path, as kubelet polls it; returns how
    /// long that took.
    pub fn wait_ready(&self, service: &str, timeout: Duration) -> Duration {
        let pod = self.pod(service);
        let started = Instant::now();
        while started.elapsed() < timeout {
            if probe(pod) == Some(200) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{service} not ready after {timeout:?}:\n{}", self.logs(service));
    }

    /// The last lines a pod logged.
    pub fn logs(&self, service: &str) -> String {
        let out = Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(self.dir.join("docker-compose.yml"))
            .args(["logs", "--no-color", "--tail", "40", service])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// Tears the project down (containers, network, volumes).
    pub fn down(&self) {
        let _ = Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(self.dir.join("docker-compose.yml"))
            .args(["down", "-v", "--remove-orphans", "-t", "1"])
            .output();
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.down();
    }
}

/// `GET <readiness>` on a pod's health port, as the kubelet does (HTTPS without verifying the
/// certificate): the status code, or `None` if nothing answers.
fn probe(pod: &Pod) -> Option<u16> {
    let url = format!("{}://{}:{}{}", pod.scheme, pod.ip, pod.health_port, pod.readiness);
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "0.3", "--max-time", "1.5", &url])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|c| *c != 0)
}
