//! The HTTP port of a secured cluster's processes (`--http-listen`): HTTPS with the member
//! certificate; probes and metrics open to anyone who can connect (the kubelet, Prometheus);
//! the driver's API only for users with a bearer token or a client certificate — checked with
//! curl, as an operator would. And `sluice queries --watch` following the listener events.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::binary::{dies_with_test, sigkill, sluice_bin, stderr};
use sluice_tests::cluster::ClusterProcs;
use sluice_tests::services::free_port;

use super::counts_job;

/// `curl` of `url` trusting the cluster CA, with `extra` arguments; (status, body).
fn curl(c: &ClusterProcs, url: &str, extra: &[&str]) -> (u16, String) {
    let out: Output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", &c.cert_file("ca.pem"), "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn the_http_port_serves_https_with_open_probes_and_metrics_and_an_api_for_users_only() {
    let (driver_http, executor_http) = (free_port(), free_port());
    let driver_listen = format!("127.0.0.1:{driver_http}");
    let mut c = ClusterProcs::start_with_driver_args(1, 0, &["--http-listen", &driver_listen]);
    let executor_listen = format!("127.0.0.1:{executor_http}");
    c.start_executor_with(0, &["--http-listen", &executor_listen]);
    let base = format!("https://127.0.0.1:{driver_http}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(&c, &format!("{base}/readyz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the driver's HTTP port never became ready\n{}", c.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    // `sluice queries --watch`, as a token user, before the job starts.
    let mut watch = Command::new(sluice_bin());
    dies_with_test(&mut watch)
        .args(["queries", "--watch", "--driver", &c.driver_url(0)])
        .env("SLUICE_TLS_CA", c.cert_file("ca.pem"))
        .env("SLUICE_TOKEN_FILE", c.cert_file("token"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut watch = watch.spawn().expect("sluice queries --watch starts");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let out = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(1));

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("job.sql"), counts_job(dir.path(), 2)).expect("job");
    let submitted = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(submitted.status.success(), "submit: {}", stderr(&submitted));

    // Open to anyone who can connect: probes and metrics.
    assert_eq!(curl(&c, &format!("{base}/healthz"), &[]), (200, "ok\n".to_string()));
    let (status, metrics) = curl(&c, &format!("{base}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(metrics.contains("sluice_executors_registered 1"), "{metrics}");
    let (status, page) = curl(&c, &format!("{base}/ui/"), &[]);
    assert!(status == 200 && page.contains("app.js"), "{status} {page}");
    let (status, executor_metrics) = curl(&c, &format!("https://127.0.0.1:{executor_http}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(executor_metrics.contains("sluice_executor_task_slots{executor_id=\"executor-0\"} 2"), "{executor_metrics}");

    // The API: refused without credentials or with a wrong token, served with either credential.
    let api = format!("{base}/api/v1/queries");
    let (status, body) = curl(&c, &api, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("needs a client certificate or a bearer token"), "{body}");
    let (status, body) = curl(&c, &api, &["-H", "Authorization: Bearer not-the-token-at-all"]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not one the driver accepts"), "{body}");
    let token = std::fs::read_to_string(c.cert_file("token")).expect("token");
    let (status, body) = curl(&c, &api, &["-H", &format!("Authorization: Bearer {}", token.trim())]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"counts\""), "{body}");
    let (status, body) = curl(&c, &api, &["--cert", &c.cert_file("user.pem"), "--key", &c.cert_file("user-key.pem")]);
    assert_eq!(status, 200, "{body}");
    // Plain HTTP is not spoken at all.
    let (status, _) = curl(&c, &format!("http://127.0.0.1:{driver_http}/healthz"), &[]);
    assert_ne!(status, 200);

    // The watcher saw the query start and make progress, then stop.
    let mut seen = Vec::new();
    let mut stopped = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.starts_with("terminated ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the watcher missed events: {seen:#?}\n{}", c.dump_logs());
        if let Ok(line) = lines.recv_timeout(left.min(Duration::from_secs(1))) {
            seen.push(line);
        }
        if !stopped && seen.iter().any(|l| l.contains(" progress ") && l.contains("counts batch 1 ")) {
            let out = c.sluice(dir.path(), &["stop", "counts"]);
            assert!(out.status.success(), "stop: {}", stderr(&out));
            stopped = true;
        }
    }
    let started = seen.iter().position(|l| l.contains(" started ") && l.contains(" counts ")).expect("a started line");
    let progressed = seen.iter().position(|l| l.contains(" progress ") && l.contains("counts batch 0 ")).expect("batch 0");
    let ended = seen.iter().position(|l| l.starts_with("terminated ")).expect("terminated");
    assert!(started < progressed && progressed < ended, "{seen:#?}");
    sigkill(&mut watch);
}
