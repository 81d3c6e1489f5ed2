//! A server that starts on a gallery with a recorded calibration serves it at once, and keeps
//! serving it while it recalibrates a gallery that has changed since: never its bare floor, which
//! would name strangers the recorded threshold keeps out.

mod support;

use std::time::{Duration, Instant};

use support::*;

const KEY: &str = "startup-key-0123456789";

async fn calibration(server: &Server) -> serde_json::Value {
    let (status, body) = call(server, reqwest::Method::GET, "/v1/calibration", KEY, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_calibration_serves_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    fill(&url, "default", 6_000, 1).await;
    let recorded = {
        let server = Server::start(Db::Url(url.clone()), &["--api-keys", KEY]).await;
        let (status, body) =
            call(&server, reqwest::Method::POST, "/v1/calibration", KEY, None).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    assert!(recorded["persons"].as_u64() == Some(6_000), "{recorded}");
    // A fifth more: the next start recalibrates.
    fill(&url, "default", 1_500, 1).await;
    let server = Server::start(Db::Url(url), &["--api-keys", KEY]).await;
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let now = calibration(&server).await;
        let fresh = now["computed_at"] != recorded["computed_at"] && now["persons"] == 7_500;
        seen.push((
            started.elapsed(),
            now["persons"].clone(),
            now["computed_at"] == recorded["computed_at"],
        ));
        if fresh {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never recalibrated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("after the start (elapsed, persons, the recorded one): {seen:?}");
    // Apart from the first moments before the first look (the recorded one is read from the
    // database), what served until the new calibration was the recorded one, never the floor.
    let served: Vec<_> = seen
        .iter()
        .skip_while(|(_, persons, _)| persons.as_u64() == Some(0))
        .collect();
    assert!(
        served.len() > 1,
        "the recorded calibration served while the new one was computed: {seen:?}"
    );
    for (_, persons, is_recorded) in &served[..served.len() - 1] {
        assert!(*is_recorded && persons.as_u64() == Some(6_000), "{seen:?}");
    }
}
