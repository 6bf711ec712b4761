//! The web UI in headless Chromium (Debian's `chromium` and `chromium-driver`), driven over
//! WebDriver: the query page of a running stateful query draws every chart Spark's streaming tab
//! has, with data points that grow as batches run; the executors page lists the executors; the
//! stop button stops the query. Screenshots are kept as test artifacts (and, with
//! `SLUICE_SCREENSHOTS=docs/images`, refresh the README's).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use sluice_tests::binary::{dies_with_test, sigkill};

use crate::UiRun;

/// A windowed count over the real-time rate source, a batch every 700 ms: event time is now, so
/// the watermark gap is seconds, as in a production stream.
const LIVE_COUNTS: &str = "
CREATE STREAM r (timestamp TIMESTAMP, value BIGINT, WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)
  WITH ('connector' = 'rate', 'rowsPerSecond' = '200', 'numPartitions' = '2');
CREATE SINK out WITH ('connector' = 'noop');
SET 'queryName' = 'counts';
SET 'trigger' = 'processingTime=700 milliseconds';
SET 'spark.sql.shuffle.partitions' = '4';
INSERT INTO out SELECT window(timestamp, '5 seconds') AS w, count(*) AS cnt FROM r GROUP BY window(timestamp, '5 seconds');
";

/// Charts with data for a windowed aggregation with a watermark.
const CHARTS: [&str; 11] = [
    "inputRate",
    "processRate",
    "inputRows",
    "batchDuration",
    "operationDuration",
    "watermarkGap",
    "stateRowsTotal",
    "stateRowsUpdated",
    "stateRowsRemoved",
    "stateMemory",
    "droppedByWatermark",
];

/// chromedriver on a free port, stopped with the test.
struct Driver(Child, u16);

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let mut cmd = Command::new("chromedriver");
        dies_with_test(&mut cmd).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("chromedriver is needed for the UI test (Debian: apt-get install chromium chromium-driver; tests/run.sh installs it): {e}")
        });
        Self(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        sigkill(&mut self.0);
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1800"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{}", driver.1)).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start headless Chromium through chromedriver: {e}"),
        }
    }
}

/// Where screenshots go: the test's artifact directory, and `SLUICE_SCREENSHOTS` if set.
fn save_screenshot(png: &[u8], name: &str) -> PathBuf {
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let path = artifacts.join(name);
    std::fs::write(&path, png).expect("screenshot written");
    if let Ok(dir) = std::env::var("SLUICE_SCREENSHOTS") {
        let dir = sluice_tests::repo_root().join(dir);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("screenshot copied");
    }
    eprintln!("screenshot: {}", path.display());
    path
}

/// The `data-points` of chart `key`, once the chart is on the page.
async fn points(c: &Client, key: &str) -> u64 {
    let chart = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Id(&format!("chart-{key}"))).await;
    let chart = chart.unwrap_or_else(|e| panic!("chart {key} is not on the page: {e}"));
    chart.attr("data-points").await.ok().flatten().and_then(|p| p.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_page_charts_live_data_and_its_stop_button_stops_the_query() {
    // A driver process, which outlives the query the page stops.
    let run = UiRun::cluster(LIVE_COUNTS).await;
    // Screenshots for the docs show a longer history.
    let batches = if std::env::var("SLUICE_SCREENSHOTS").is_ok() { 60 } else { 8 };
    let info = run.wait_for_batch("counts", batches).await;
    let id = info["id"].as_str().expect("id").to_string();
    let driver = Driver::start();
    let c = browser(&driver).await;

    c.goto(&run.url(&format!("/ui/#/query/{id}"))).await.expect("query page loads");
    let status = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Id("query-status")).await.expect("status shown");
    // The element is drawn a moment before the first answer fills it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut message = status.text().await.unwrap_or_default();
    while message.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        message = c.find(Locator::Id("query-status")).await.expect("status").text().await.unwrap_or_default();
    }
    assert!(!message.is_empty() && message != "Stopped", "{message}");
    // Every chart has points once a few batches ran…
    let deadline = Instant::now() + Duration::from_secs(30);
    for key in CHARTS {
        while points(&c, key).await < 2 {
            assert!(Instant::now() < deadline, "chart {key} has no data points");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // …and grows without a reload as new batches arrive.
    let before = points(&c, "batchDuration").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while points(&c, "batchDuration").await <= before {
        assert!(Instant::now() < deadline, "the charts did not update live (still {before} points)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    save_screenshot(&c.screenshot().await.expect("screenshot"), "ui-query.png");

    // The executors page: both executors, with the partitions they own.
    c.goto(&run.url("/ui/#/executors")).await.expect("executors page loads");
    for e in ["executor-0", "executor-1"] {
        let row = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(&format!("tr[data-executor='{e}']"))).await;
        let text = row.unwrap_or_else(|err| panic!("{e} is not listed: {err}")).text().await.unwrap_or_default();
        assert!(text.contains(e), "{text}");
    }
    save_screenshot(&c.screenshot().await.expect("screenshot"), "ui-executors.png");

    // Stop from the query page.
    c.goto(&run.url(&format!("/ui/#/query/{id}"))).await.expect("query page loads");
    let stop = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Id("stop-query")).await.expect("stop button");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stop.attr("disabled").await.ok().flatten().is_some() {
        assert!(Instant::now() < deadline, "the stop button of an active query stays disabled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.click().await.expect("stop clicked");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = c.find(Locator::Id("query-status")).await.expect("status").text().await.unwrap_or_default();
        if shown == "Stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never showed the query stopped (shows '{shown}')");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let q = run.get_json(&format!("/api/v1/queries/{id}"), 200).await;
    assert_eq!(q["isActive"], false, "{q:#}");
    let _ = c.close().await;
}
