//! The PySpark suite (`tests/pyspark/*.py`, pytest): real PySpark 4.0.1 clients
//! (`pyspark-client`, from the test venv) against `sluice connect` processes started from the
//! binary this test build made. A plain main: pytest prints its own report.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let root = sluice_tests::repo_root();
    let python = sluice_tests::venv_python();
    let sluice = sluice_tests::binary::sluice_bin();
    let mut args: Vec<String> =
        vec!["-m".into(), "pytest".into(), "tests/pyspark".into(), "-q".into(), "-p".into(), "no:cacheprovider".into()];
    // `cargo test --test pyspark -- -k windowed` passes the filter on to pytest.
    args.extend(std::env::args().skip(1).filter(|a| !a.starts_with("--") || a == "--exitfirst"));
    println!("pyspark suite: {} {}", python.display(), args.join(" "));
    let status = Command::new(&python)
        .args(&args)
        .current_dir(&root)
        .env("SLUICE_BIN", &sluice)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("pyspark suite failed ({s})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "pyspark suite: cannot run {} (tests/venv.sh installs the test venv with pyspark-client): {e}",
                python.display()
            );
            ExitCode::FAILURE
        }
    }
}
