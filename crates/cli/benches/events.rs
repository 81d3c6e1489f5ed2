//! Events under load (numbers, not pass/fail): `cargo bench -p facerec-cli --bench events`.
//!
//! 1. Delivery: about 100 events a second for 20 s to a local webhook and to Debian's mosquitto (a
//!    22-face group photo recognized 4.5 times a second, the most two cores recognize of it; each
//!    face an event): the time from the decision (the event's `time`) to its arrival, p50 / p99 /
//!    max, per destination, and the server's own counts.
//! 2. No slower answers: `/v1/recognize` of a one-face photo on two servers side by side, in
//!    alternating rounds — one without destinations, one whose webhook never answers (a listener
//!    that accepts and stays silent) and whose broker is down — p50 of each and their ratio.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::mqtt::{Broker, Subscriber};
use support::receiver::Receiver;
use support::{registry_photo, Db, Server};

const KEY: &str = "bench-events-operator-key-0123456";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn recognize(server: &Server, image: &[u8]) -> f64 {
    let form = reqwest::multipart::Form::new()
        .part("image", support::image_part(image.to_vec(), "p.jpg"))
        .text("source", "bench");
    let started = Instant::now();
    let answer = server.post_form("/v1/recognize", form).await;
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

async fn add_webhook(server: &Server, url: &str) {
    let (status, body) = support::call(
        server,
        reqwest::Method::POST,
        "/v1/webhooks",
        KEY,
        Some(serde_json::json!({ "url": url })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

fn summary(mut latencies: Vec<f64>) -> String {
    latencies.sort_by(f64::total_cmp);
    format!(
        "{:>6} events  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    )
}

async fn delivery() {
    let broker = Broker::start();
    let receiver = Receiver::start().await;
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            KEY,
            "--rate-limit-per-minute",
            "0",
            "--webhook-allow-private-networks",
            "--mqtt-url",
            &broker.url(),
        ],
    )
    .await;
    let subscriber = Subscriber::start(&broker, &["facerec/default/events"]);
    add_webhook(&server, &receiver.url).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let group = registry_photo("vectron/players.jpg");
    let server = std::sync::Arc::new(server);
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(220));
    while started.elapsed() < Duration::from_secs(20) {
        tick.tick().await;
        let server = std::sync::Arc::clone(&server);
        let group = group.clone();
        sent.push(tokio::spawn(
            async move { recognize(&server, &group).await },
        ));
    }
    for request in sent {
        request.await.unwrap();
    }
    let produced_in = started.elapsed().as_secs_f64();
    // Everything delivered (or 30 s more).
    let until = Instant::now() + Duration::from_secs(30);
    let mut expected = 0;
    while Instant::now() < until {
        expected = receiver.received().len();
        let published = subscriber.messages.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if receiver.received().len() == expected
            && subscriber.messages.lock().unwrap().len() == published
        {
            break;
        }
    }
    let webhook: Vec<f64> = receiver
        .received()
        .iter()
        .map(|d| {
            let time: chrono::DateTime<chrono::Utc> =
                serde_json::from_value(d.body["data"]["time"].clone()).unwrap();
            (d.at - time).num_microseconds().unwrap() as f64 / 1e3
        })
        .collect();
    let mqtt: Vec<f64> = subscriber
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let event: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            let time: chrono::DateTime<chrono::Utc> =
                serde_json::from_value(event["time"].clone()).unwrap();
            (m.at - time).num_microseconds().unwrap() as f64 / 1e3
        })
        .collect();
    println!(
        "delivery: {expected} events in {produced_in:.1} s ({:.0} events/s)",
        expected as f64 / produced_in
    );
    println!("  webhook  {}", summary(webhook));
    println!("  mqtt     {}", summary(mqtt));
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for line in metrics.lines().filter(|l| {
        l.starts_with("facerec_events_delivered_total")
            || l.starts_with("facerec_event_delivery_seconds_sum")
            || l.starts_with("facerec_events_dropped_total")
    }) {
        println!("  {line}");
    }
}

async fn answers() {
    // A webhook that never answers: connections accepted and held, silent.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}/hook", hung.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    // A broker that is down: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("mqtt://{}", closed.local_addr().unwrap());
    drop(closed);
    let plain = Server::start(
        Db::Sqlite,
        &["--api-keys", KEY, "--rate-limit-per-minute", "0"],
    )
    .await;
    let telling = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            KEY,
            "--rate-limit-per-minute",
            "0",
            "--webhook-allow-private-networks",
            "--mqtt-url",
            &down,
        ],
    )
    .await;
    add_webhook(&telling, &hung_url).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let yao = registry_photo("vectron/yaoming.jpg");
    for server in [&plain, &telling] {
        for _ in 0..10 {
            recognize(server, &yao).await;
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        for _ in 0..10 {
            a.push(recognize(&plain, &yao).await);
        }
        for _ in 0..10 {
            b.push(recognize(&telling, &yao).await);
        }
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (pa, pb) = (percentile(&a, 0.5), percentile(&b, 0.5));
    println!("answers: /v1/recognize p50, 200 requests each, alternating rounds of 10");
    println!(
        "  no destinations                          p50 {pa:>6.1} ms  p99 {:>6.1} ms",
        percentile(&a, 0.99)
    );
    println!(
        "  webhook never answers, broker down       p50 {pb:>6.1} ms  p99 {:>6.1} ms",
        percentile(&b, 0.99)
    );
    println!("  ratio                                    {:.3}", pb / pa);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = std::env::var("FACEREC_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "delivery" {
        delivery().await;
    }
    if only.is_empty() || only == "answers" {
        answers().await;
    }
}
