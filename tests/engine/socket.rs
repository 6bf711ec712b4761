//! The `socket` source reading lines from a real TCP server.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use sluice_tests::rows::{multiset, sorted_rows};
use sluice_tests::{settle, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_from_a_tcp_server_become_rows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"hello world\nsecond line\n").await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM lines WITH ('connector'='socket','host'='127.0.0.1','port'='{port}','includeTimestamp'='true');
             CREATE SINK out WITH ('connector'='memory');
             INSERT INTO out SELECT value, timestamp IS NOT NULL AS stamped FROM lines;"
        ))
        .await
        .remove(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        settle(&q).await;
        let n = h.session.memory_table("out").map(|t| t.all_rows().iter().map(|b| b.num_rows()).sum::<usize>()).unwrap_or(0);
        if n >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sorted_rows(&h.session.memory_table("out").unwrap().all_rows()),
        multiset(&["(hello world, true)", "(second line, true)"])
    );
    q.stop().await.unwrap();
    server.abort();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_the_query_with_the_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM lines WITH ('connector'='socket','host'='127.0.0.1','port'='{port}');
             CREATE SINK out WITH ('connector'='memory');
             INSERT INTO out SELECT value FROM lines;"
        ))
        .await
        .remove(0);
    let e = q.await_termination().await.unwrap_err().one_line();
    assert!(e.contains(&format!("cannot connect to 127.0.0.1:{port}")), "{e}");
    h.shutdown().await;
}
