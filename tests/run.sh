#!/usr/bin/env bash
# Runs sluice's whole test suite (the README's test command).
#
# Installs what the tests need when it is missing, then runs every test of the workspace.
# Tests start their own services (S3 server, …) on 127.0.0.1 on free ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# S3-compatible server for the object-store tests.
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "tests/run.sh: installing s3s-fs (S3 server for tests)"
  cargo install s3s-fs@0.14.1 --locked --features binary
fi

# Always build and test the whole workspace in one command: cargo unifies features per build,
# and a narrower build (-p, --test) would recompile the dependency graph with other features.
cargo test --workspace "$@"
