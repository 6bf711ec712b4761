//! The Kubernetes deployment, proven offline and in real containers.
//!
//! 1. **Offline validation**: `deploy/k8s/validate.sh` renders every overlay with `kubectl
//!    kustomize`, validates it against the Kubernetes schemas and runs the policy check.
//! 2. **The dev overlay in containers**: the rendered overlay becomes a docker-compose project
//!    (`deploy/compose/generate.py`) — same image, command, arguments, environment, mounted
//!    ConfigMaps, Service names as network aliases — built from the `sluice` binary this test
//!    build made, secure as deployed: TLS between every member and etcd with a development CA
//!    (`sluice certs`, through `deploy/compose/dev-secrets.sh`), users authenticated by token.
//!    First the image's driver and executor must refuse to listen on 0.0.0.0 without TLS (naming
//!    `--insecure`). The test waits on the readiness probes as kubelet would, checks that a user
//!    without a token is refused, submits the job from the jobs ConfigMap, and, while input keeps
//!    arriving, restarts executors one by one with SIGTERM (a rolling restart), scales executors
//!    up and down, SIGKILLs an executor, and stops and kills drivers. The committed output must
//!    hold every distinct input id exactly once.
//!
//! A plain `main` (no libtest harness) so the report — image size, time to ready, retries —
//! is printed. Docker, docker-compose, kubectl and the test venv (`tests/venv.sh`) are required:
//! without one the test fails naming it.

mod compose;
mod scenario;

fn main() {
    let started = std::time::Instant::now();
    scenario::run();
    println!("deploy: all checks passed in {:.0} s", started.elapsed().as_secs_f64());
}
