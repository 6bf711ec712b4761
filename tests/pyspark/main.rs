//! The PySpark suite (`tests/pyspark/*.py`, pytest): real PySpark 4.0.1 clients
//! (`pyspark-client`, from the test venv) against `sluice connect` processes started from the
//! binary this test build made. A plain main: pytest prints its own report.
//!
//! pytest runs in a process group of its own under a deadline (`PYSPARK_SUITE_TIMEOUT_SECS`,
//! 600 by default): a client thread that never ends keeps Python from exiting after its report,
//! and without the deadline that hang would last until CI's own timeout, with nothing naming it.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

const DEFAULT_TIMEOUT_SECS: u64 = 600;

fn main() -> ExitCode {
    let root = sluice_tests::repo_root();
    let python = sluice_tests::venv_python();
    let sluice = sluice_tests::binary::sluice_bin();
    let timeout = std::env::var("PYSPARK_SUITE_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(DEFAULT_TIMEOUT_SECS), Duration::from_secs);
    let mut args: Vec<String> =
        vec!["-m".into(), "pytest".into(), "tests/pyspark".into(), "-q".into(), "-p".into(), "no:cacheprovider".into()];
    // `cargo test --test pyspark -- -k windowed` passes the filter on to pytest.
    args.extend(std::env::args().skip(1).filter(|a| !a.starts_with("--") || a == "--exitfirst"));
    println!("pyspark suite: {} {}", python.display(), args.join(" "));
    let spawned = Command::new(&python)
        .args(&args)
        .current_dir(&root)
        .env("SLUICE_BIN", &sluice)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "pyspark suite: cannot run {} (tests/venv.sh installs the test venv with pyspark-client): {e}",
                python.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return ExitCode::SUCCESS,
            Ok(Some(status)) => {
                eprintln!("pyspark suite failed ({status})");
                return ExitCode::FAILURE;
            }
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                // The group holds pytest and the `sluice connect` servers it started.
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                eprintln!(
                    "pyspark suite: pytest had not exited after {} s (PYSPARK_SUITE_TIMEOUT_SECS); killed it and \
                     its servers. A hang after pytest's report is a client thread that never ended.",
                    timeout.as_secs()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("pyspark suite: cannot wait for pytest: {e}");
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                return ExitCode::FAILURE;
            }
        }
    }
}
