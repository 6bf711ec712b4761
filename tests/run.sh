#!/usr/bin/env bash
# Runs sluice's whole test suite (the README's test command).
#
# Checks formatting and lints first (a warning fails the suite), installs what the tests need
# when it is missing, then runs every test of the workspace. Tests start their own services
# (S3 server, etcd, …) on 127.0.0.1 on free ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

echo "tests/run.sh: cargo fmt --check"
cargo fmt --all --check
echo "tests/run.sh: cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# S3-compatible server for the object-store tests.
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "tests/run.sh: installing s3s-fs (S3 server for tests)"
  cargo install s3s-fs@0.14.1 --locked --features binary
fi

# etcd for the cluster and chaos tests (Debian's etcd-server package).
if ! command -v etcd >/dev/null 2>&1; then
  echo "tests/run.sh: installing etcd (etcd-server)"
  sudo_if_needed=""
  if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
  $sudo_if_needed apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -q etcd-server
fi

# Headless Chromium and its WebDriver for the web UI test (tests/http/ui.rs).
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "tests/run.sh: installing chromium and chromium-driver (web UI test)"
  sudo_if_needed=""
  if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
  $sudo_if_needed apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -q chromium chromium-driver
fi

# Kafka-protocol broker for the Kafka connector tests (tansu, in-memory storage).
if ! command -v tansu >/dev/null 2>&1; then
  echo "tests/run.sh: installing tansu (Kafka-protocol broker for tests)"
  cargo install tansu@0.6.0 --locked --no-default-features --features dynostore
fi

# Python tools of the deployment checks (kubernetes-validate, checkov, PyYAML), schemathesis and
# Prometheus' OpenMetrics parser (the HTTP API tests) in a venv under
# ~/.cache/sluice, installed again only when tests/requirements.txt changes.
tests/venv.sh >/dev/null

# The deployment test (tests/deploy) renders the manifests with `kubectl kustomize` and runs them
# in Docker; it fails naming whichever of kubectl, docker and docker-compose is missing.

# Always build and test the whole workspace in one command: cargo unifies features per build,
# and a narrower build (-p, --test) would recompile the dependency graph with other features.
cargo test --workspace "$@"
