//! Issue 16's attacks on a secured cluster, each refused with a clear error: the cluster of
//! these tests runs as production does (TLS everywhere, members authenticated by the cluster
//! CA, users by a client certificate or a bearer token).

use std::path::Path;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::Ticket;
use sluice_proto::v1::driver_service_client::DriverServiceClient;
use sluice_proto::v1::executor_service_client::ExecutorServiceClient;
use sluice_proto::v1::{task_response, BatchContext, RegisterExecutorRequest, TaskPart, TaskRequest};
use sluice_security::tls::TlsSettings;
use sluice_security::{ClusterTls, Transport};
use sluice_tests::binary::{stderr, wait_until};
use sluice_tests::cluster::ClusterProcs;

use super::{counts_job, status};

/// A transport with the cluster CA trusted and `cert`/`key` (files of the certs dir) presented.
fn transport(c: &ClusterProcs, identity: Option<(&str, &str)>) -> Transport {
    let settings = TlsSettings {
        ca: c.cert_file("ca.pem").into(),
        cert: identity.map(|(cert, _)| c.cert_file(cert).into()),
        key: identity.map(|(_, key)| c.cert_file(key).into()),
        client_ca: None,
    };
    Transport::Tls(ClusterTls::load(settings).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Starts the counts query and waits until it has run a few batches.
fn running_counts(c: &ClusterProcs, dir: &Path) {
    std::fs::write(dir.join("job.sql"), counts_job(dir, 4)).unwrap();
    let out = c.sluice(dir, &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    assert!(
        wait_until(Duration::from_secs(30), || status(c, "counts")
            .and_then(|q| q.pointer("/lastProgress/batchId").and_then(|b| b.as_i64()))
            .is_some_and(|b| b >= 2)),
        "the query did not run: {:?}\n{}",
        status(c, "counts"),
        c.dump_logs()
    );
}

#[test]
fn users_without_credentials_cannot_submit_and_users_with_them_can() {
    let c = ClusterProcs::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), counts_job(dir.path(), 2)).unwrap();

    let anonymous = c.sluice_as(dir.path(), &["submit", "job.sql"], &[]);
    assert!(!anonymous.status.success(), "an unauthenticated submit was accepted");
    let err = stderr(&anonymous);
    assert!(
        err.contains("the driver refused the call") && err.contains("SubmitJob needs a client certificate or a bearer token"),
        "{err}"
    );

    let bad_token = dir.path().join("bad-token");
    std::fs::write(&bad_token, "not-the-token-0123456789\n").unwrap();
    let forged =
        c.sluice_as(dir.path(), &["submit", "job.sql"], &[("SLUICE_TOKEN_FILE".into(), bad_token.display().to_string())]);
    assert!(!forged.status.success(), "a wrong token was accepted");
    assert!(stderr(&forged).contains("the bearer token is not one the driver accepts"), "{}", stderr(&forged));
    assert!(!dir.path().join("chk").exists(), "a refused job must not start (it created its checkpoint)");

    // A user's client certificate (from the client CA) is enough to submit.
    let user = c.sluice_as(
        dir.path(),
        &["submit", "job.sql"],
        &[("SLUICE_TLS_CERT".into(), c.cert_file("user.pem")), ("SLUICE_TLS_KEY".into(), c.cert_file("user-key.pem"))],
    );
    assert!(user.status.success(), "a user with a client certificate could not submit: {}", stderr(&user));
    assert!(wait_until(Duration::from_secs(30), || status(&c, "counts").is_some()), "{}", c.dump_logs());
}

#[test]
fn only_members_can_register_executors() {
    let c = ClusterProcs::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    running_counts(&c, dir.path());
    let driver = c.driver_url(0);
    let token = std::fs::read_to_string(c.cert_file("token")).unwrap().trim().to_string();
    // The attacker takes the real executor's id, to have its tasks (and its credentials) sent to them.
    let forged = RegisterExecutorRequest {
        protocol_version: sluice_proto::PROTOCOL_VERSION,
        endpoint: "https://127.0.0.1:1".into(),
        task_slots: 8,
        executor_id: "executor-0".into(),
    };
    let rt = runtime();
    // A user (token, or client certificate) is not a member.
    let as_user = rt.block_on(async {
        let t = transport(&c, None);
        let channel = t.connect(t.endpoint(&driver).unwrap()).await.unwrap();
        let token = sluice_security::token::AttachToken::new(Some(&token)).unwrap();
        DriverServiceClient::with_interceptor(channel, token).register_executor(forged.clone()).await
    });
    let refusal = as_user.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    assert!(refusal.message().contains("RegisterExecutor is for cluster members"), "{}", refusal.message());
    let as_user_cert = rt.block_on(async {
        let t = transport(&c, Some(("user.pem", "user-key.pem")));
        let channel = t.connect(t.endpoint(&driver).unwrap()).await.unwrap();
        DriverServiceClient::new(channel).register_executor(forged.clone()).await
    });
    assert_eq!(as_user_cert.unwrap_err().code(), tonic::Code::PermissionDenied);
    // Anonymous.
    let anonymous = rt.block_on(async {
        let t = transport(&c, None);
        let channel = t.connect(t.endpoint(&driver).unwrap()).await.unwrap();
        DriverServiceClient::new(channel).register_executor(forged.clone()).await
    });
    let refusal = anonymous.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::Unauthenticated, "{refusal:?}");
    assert!(refusal.message().contains("neither a certificate nor a token"), "{}", refusal.message());
    // A certificate from another CA (the attacker's own "cluster") fails the handshake.
    let other = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(sluice_tests::binary::sluice_bin())
        .args(["certs", "--out"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let foreign = rt.block_on(async {
        let settings = TlsSettings {
            ca: c.cert_file("ca.pem").into(),
            cert: Some(other.path().join("member.pem")),
            key: Some(other.path().join("member-key.pem")),
            client_ca: None,
        };
        let t = Transport::Tls(ClusterTls::load(settings).unwrap());
        match t.connect(t.endpoint(&driver).unwrap()).await {
            Ok(channel) => DriverServiceClient::new(channel).register_executor(forged.clone()).await.map(|_| ()),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        }
    });
    assert!(foreign.is_err(), "a member certificate from another CA registered an executor");

    // The real executor-0 still runs the query.
    let batch = |c: &ClusterProcs| status(c, "counts").and_then(|q| q.pointer("/lastProgress/batchId").and_then(|b| b.as_i64()));
    let before = batch(&c).unwrap_or(-1);
    assert!(
        wait_until(Duration::from_secs(20), || batch(&c).is_some_and(|b| b >= before + 3)),
        "the query stopped after the forged registrations: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );
}

fn task(term: u64) -> TaskRequest {
    TaskRequest {
        task_id: "forged".into(),
        query_spec_json: b"{}".to_vec(),
        spec_hash: 1,
        query_run_id: "forged-run".into(),
        batch: Some(BatchContext::default()),
        parts: vec![TaskPart { partition_index: 0, task_kind_json: b"{}".to_vec(), inline_rows: Vec::new() }],
        leader_term: term,
        shuffle_key: String::new(),
    }
}

#[test]
fn executors_take_tasks_only_from_members_of_the_current_term_and_shuffle_only_with_the_run_key() {
    let c = ClusterProcs::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let member = transport(&c, Some(("member.pem", "member-key.pem")));
    assert!(wait_until(Duration::from_secs(10), || c.executor_endpoint(0).is_some()), "{}", c.dump_logs());
    let executor = c.executor_endpoint(0).expect("executor-0 announced its endpoint");
    // Before any task: the executor reads the leader's term in etcd, so a task of an older term
    // (a deposed leader's) is refused even before the current leader's first task arrives.
    let refused_before_any_task = || {
        rt.block_on(async {
            let channel = member.connect(member.endpoint(&executor).unwrap()).await.unwrap();
            ExecutorServiceClient::new(channel).run_task(task(1)).await.unwrap().into_inner()
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            refused_before_any_task().outcome,
            Some(task_response::Outcome::Error(ref e)) if e.message.contains("deposed leader (term 1)")
        )),
        "a stale term's task was not refused before the leader's first task: {:?}",
        refused_before_any_task()
    );
    running_counts(&c, dir.path());
    assert!(executor.starts_with("https://"), "{executor}");

    // Without a member certificate the TLS handshake itself fails: no call reaches the service.
    for identity in [None, Some(("user.pem", "user-key.pem"))] {
        let refused = rt.block_on(async {
            let t = transport(&c, identity);
            match t.connect(t.endpoint(&executor).unwrap()).await {
                Ok(channel) => ExecutorServiceClient::new(channel).run_task(task(u64::MAX)).await.map(|_| ()),
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            }
        });
        assert!(refused.is_err(), "a task from {identity:?} reached the executor");
    }
    let plain = rt.block_on(async {
        let t = Transport::Plain;
        let http = executor.replacen("https://", "http://", 1);
        match t.connect(t.endpoint(&http).unwrap()).await {
            Ok(channel) => ExecutorServiceClient::new(channel).run_task(task(u64::MAX)).await.map(|_| ()),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        }
    });
    assert!(plain.is_err(), "a plain-text task reached the executor");
    assert!(
        wait_until(Duration::from_secs(5), || c.dump_logs().contains("refused a connection: TLS handshake failed")),
        "the executor did not log the refused handshakes:\n{}",
        c.dump_logs()
    );

    // A member sending a task of an older term than the leader's: a deposed leader.
    let stale = rt.block_on(async {
        let channel = member.connect(member.endpoint(&executor).unwrap()).await.unwrap();
        ExecutorServiceClient::new(channel).run_task(task(1)).await.unwrap().into_inner()
    });
    let Some(task_response::Outcome::Error(e)) = stale.outcome else { panic!("a deposed leader's task ran: {stale:?}") };
    assert!(e.message.contains("deposed leader (term 1)"), "{}", e.message);

    // A shuffle ticket naming the running query's run, without its key.
    let run_id = status(&c, "counts").and_then(|q| q.pointer("/lastProgress/runId").and_then(|r| r.as_str()).map(String::from));
    let run_id = run_id.expect("progress names the run");
    let ticket = serde_json::json!({
        "block": {"run_id": run_id, "batch": 0, "attempt": 0, "stage": 0, "producer": 0, "partition": 0},
        "key": "0".repeat(64),
    });
    let fetched = rt.block_on(async {
        let channel = member.connect(member.endpoint(&executor).unwrap()).await.unwrap();
        FlightServiceClient::new(channel).do_get(Ticket { ticket: serde_json::to_vec(&ticket).unwrap().into() }).await.map(|_| ())
    });
    let refusal = fetched.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    assert!(refusal.message().contains(&format!("does not carry the shuffle key of run {run_id}")), "{}", refusal.message());
}

/// Turns etcd's authentication on with a `root` user and a `sluice` user (password `password`)
/// that may use only the keys under `/sluice/`.
async fn enable_etcd_auth(url: &str, password: &str) {
    use etcd_client::{Client, Permission, PermissionType};
    let c = Client::connect([url], None).await.unwrap();
    let mut auth = c.auth_client();
    auth.role_add("root").await.unwrap();
    auth.user_add("root", "root-password-0123", None).await.unwrap();
    auth.user_grant_role("root", "root").await.unwrap();
    auth.role_add("sluice").await.unwrap();
    let keys = Permission::new(PermissionType::Readwrite, "/sluice/").with_prefix();
    auth.role_grant_permission("sluice", keys).await.unwrap();
    auth.user_add("sluice", password, None).await.unwrap();
    auth.user_grant_role("sluice", "sluice").await.unwrap();
    auth.auth_enable().await.unwrap();
}

#[test]
fn drivers_use_etcd_with_its_authentication_on_and_a_wrong_password_never_leads() {
    let etcd = sluice_tests::services::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let password = "sluice-etcd-password-42";
    runtime().block_on(enable_etcd_auth(&etcd.url(), password));
    std::fs::write(dir.path().join("good"), format!("{password}\n")).unwrap();
    std::fs::write(dir.path().join("bad"), "not-the-password\n").unwrap();
    let etcd_args = |file: &str| {
        vec![
            "--etcd".to_string(),
            etcd.url(),
            "--cluster".into(),
            "auth".into(),
            "--etcd-user".into(),
            "sluice".into(),
            "--etcd-password-file".into(),
            dir.path().join(file).display().to_string(),
        ]
    };
    let port = sluice_tests::services::free_port();
    let listen = format!("127.0.0.1:{port}");
    let driver = |file: &str, listen: &str| {
        let mut args = vec!["driver".to_string(), "--listen".into(), listen.to_string()];
        args.extend(etcd_args(file));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice_tests::binary::spawn_sluice(dir.path(), &args, &[("RUST_LOG", "info")])
    };
    let leads = |file: &str| {
        let mut args = vec!["queries".to_string()];
        args.extend(etcd_args(file));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice_tests::binary::run_sluice(dir.path(), &args)
    };
    // A driver with the wrong password cannot even stand by, let alone lead.
    let mut wrong = driver("bad", &listen);
    std::thread::sleep(Duration::from_secs(3));
    let refused = leads("good");
    assert!(!refused.status.success(), "a driver with a wrong etcd password leads");
    sluice_tests::binary::sigkill(&mut wrong);
    let out = wrong.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("authentication failed") || log.contains("invalid auth"), "{log}");

    // The right password: it is elected, and the CLI finds it through the same authenticated etcd.
    let mut right = driver("good", &listen);
    let found = wait_until(Duration::from_secs(20), || leads("good").status.success());
    sluice_tests::binary::sigkill(&mut right);
    assert!(found, "the driver with the right etcd password did not lead: {}", stderr(&leads("good")));
    let bad_cli = leads("bad");
    assert!(!bad_cli.status.success() && stderr(&bad_cli).contains("etcd"), "{}", stderr(&bad_cli));
}
