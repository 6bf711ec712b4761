//! Driving the real `sluice` binary.
//!
//! Tests that must observe exit codes, stdout layout or survive a SIGKILL run the binary the
//! user runs. It is built on first use (same profile as the tests) if `SLUICE_BIN` is unset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `sluice` binary: `SLUICE_BIN`, or the one `cargo test --workspace` builds next to
/// the test executables (the `sluice` package's own integration test makes cargo build it with
/// the same features, so nothing is rebuilt).
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/cli-<hash> → target/<profile>/sluice
        let exe = std::env::current_exe().expect("test executable path");
        let bin = exe.parent().and_then(Path::parent).expect("target profile dir").join("sluice");
        assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace` (or set SLUICE_BIN)", bin.display());
        bin
    })
    .clone()
}

/// Makes a background process die with the test that started it: its Drop stops it normally,
/// and this covers the test process itself being killed (a CI timeout), so no etcd, S3 server or
/// `sluice` process outlives a test run.
pub fn dies_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from));
    }
    cmd
}

/// Runs `sluice args…` in `cwd` to completion.
pub fn run_sluice(cwd: &Path, args: &[&str]) -> Output {
    Command::new(sluice_bin()).args(args).current_dir(cwd).env("RUST_LOG", "warn").output().expect("sluice runs")
}

/// Starts `sluice args…` in `cwd` in the background with extra environment.
pub fn spawn_sluice(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(sluice_bin());
    dies_with_test(&mut cmd).args(args).current_dir(cwd).env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("sluice starts")
}

/// SIGKILLs a child process (no clean-up handlers run) and reaps it.
pub fn sigkill(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
