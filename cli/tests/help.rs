//! The `sluice` binary starts and documents its commands.
//!
//! (Being an integration test of this package also makes `cargo test --workspace` build the
//! binary with the test build's features, which the end-to-end tests in `tests/` then run.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("--help").output().expect("sluice runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "cat"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(cmd)), "--help lacks `{cmd}`:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["run", "--help"]).output().expect("sluice runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--executors") && text.contains("--progress-json"), "{text}");
}
