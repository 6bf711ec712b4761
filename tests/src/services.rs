//! Real services for tests, started on 127.0.0.1 on free ports and stopped on drop.
//!
//! `tests/run.sh` installs them; a test that needs one whose binary is missing fails loudly
//! rather than skipping, so a green run always means the real service was exercised.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::binary::dies_with_test;
use crate::netns::Host;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Finds an installed binary on PATH or in `~/.cargo/bin`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Waits (up to 20 s) until `host` accepts connections on `port`.
fn wait_for_port(host: &Host, port: u16) -> bool {
    crate::binary::wait_until(Duration::from_secs(20), || host.accepts(port))
}

/// An S3-compatible server (`s3s-fs`) serving a temporary directory.
pub struct S3Server {
    child: Child,
    /// The directory behind the server: bucket `b` is `root/b`, object `b/k` is the file `root/b/k`.
    pub root: tempfile::TempDir,
    /// The server's port on 127.0.0.1.
    pub port: u16,
    access_key: String,
    secret_key: String,
}

/// Access key the test server accepts.
pub const S3_ACCESS_KEY: &str = "sluice-test";
/// Secret key the test server accepts.
pub const S3_SECRET_KEY: &str = "sluice-test-secret";

impl S3Server {
    /// Starts `s3s-fs` with one bucket, `bucket`.
    pub fn start(bucket: &str) -> Self {
        Self::start_with_keys(bucket, S3_ACCESS_KEY, S3_SECRET_KEY)
    }

    /// Starts `s3s-fs` with one bucket, accepting only these credentials.
    pub fn start_with_keys(bucket: &str, access_key: &str, secret_key: &str) -> Self {
        let bin = find_binary("s3s-fs")
            .expect("s3s-fs is not installed; tests/run.sh installs it (cargo install s3s-fs@0.14.1 --locked --features binary)");
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join(bucket)).expect("bucket dir");
        let port = free_port();
        let child = dies_with_test(&mut Command::new(bin))
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", access_key, "--secret-key", secret_key])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        assert!(wait_for_port(&Host::loopback(), port), "s3s-fs did not listen on 127.0.0.1:{port}");
        Self { child, root, port, access_key: access_key.to_string(), secret_key: secret_key.to_string() }
    }

    /// Environment that points AWS clients (and sluice) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A single-node etcd on free ports with a temporary data directory, on 127.0.0.1 or on a node
/// of a test network.
pub struct EtcdServer {
    child: Child,
    _data: tempfile::TempDir,
    /// The client port.
    pub port: u16,
    host: Host,
    scheme: &'static str,
}

impl EtcdServer {
    /// Starts etcd on 127.0.0.1 (installed by `tests/run.sh`: `apt-get install etcd-server`).
    pub fn start() -> Self {
        Self::start_on(&Host::loopback())
    }

    /// Starts etcd on `host`.
    pub fn start_on(host: &Host) -> Self {
        Self::launch(host, None)
    }

    /// Starts etcd on `host` serving TLS with the member certificate of `certs` (a `sluice certs`
    /// directory) and requiring client certificates from its CA (`--client-cert-auth`).
    pub fn start_tls_on(host: &Host, certs: &Path) -> Self {
        Self::launch(host, Some(certs))
    }

    fn launch(host: &Host, certs: Option<&Path>) -> Self {
        let bin = find_binary("etcd").expect("etcd is not installed; tests/run.sh installs it (apt-get install etcd-server)");
        let data = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let peer = free_port();
        let scheme = if certs.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://{}:{port}", host.ip);
        let peer_url = format!("http://{}:{peer}", host.ip);
        let mut command = host.command(bin);
        if let Some(dir) = certs {
            command
                .arg("--cert-file")
                .arg(dir.join("member.pem"))
                .arg("--key-file")
                .arg(dir.join("member-key.pem"))
                .arg("--trusted-ca-file")
                .arg(dir.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        let child = dies_with_test(&mut command)
            .args(["--name", "sluice-test", "--data-dir"])
            .arg(data.path())
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("sluice-test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        assert!(wait_for_port(host, port), "etcd did not listen on {}:{port}", host.ip);
        Self { child, _data: data, port, host: host.clone(), scheme }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host.ip, self.port)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
