//! Soak: drives a real `facerec serve` at about twice its measured capacity with a hostile mix, for
//! a configurable time, and says whether it stayed bounded. Run it with `make soak`
//! (`SOAK_MINUTES=10` by default), or:
//!
//!   cargo run --release --example soak -p facerec-cli -- target/release/facerec 10
//!
//! The mix, per arrival: 55% recognitions of a valid photo, 10% registrations, 10% corrupt uploads,
//! 5% oversized uploads (11 MB: over the image limit, under the body limit), 5% slow uploads (a
//! valid photo trickled over ~4 s), 15% stream clients that connect, send 5–20 frames and vanish
//! without closing. Every 30 s it prints throughput, p50/p99 of the recognitions answered, the
//! share of 503, any other 5xx, the server's RSS and open file descriptors; at the end a verdict.
//! The per-key rate limit is off (`--rate-limit-per-minute 0`): this measures the server, not
//! the limiter.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/support/video.rs"]
mod video;

use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "soak-test-key-00001";
const WINDOW: Duration = Duration::from_secs(30);
/// Arrivals beyond this many in flight are not sent (counted): the client must not be what breaks.
const MAX_IN_FLIGHT: u64 = 2_000;

#[derive(Default)]
struct Window {
    completed: u64,
    status_503: u64,
    other_5xx: u64,
    client_errors: u64,
    recognize_ms: Vec<f64>,
}

struct Stats {
    window: Mutex<Window>,
    in_flight: AtomicU64,
    not_sent: AtomicU64,
    other_5xx_total: AtomicU64,
}

impl Stats {
    fn record(&self, status: Option<u16>, recognize_latency: Option<Duration>) {
        let mut w = self.window.lock().unwrap();
        w.completed += 1;
        match status {
            Some(503) => w.status_503 += 1,
            Some(s) if s >= 500 => {
                w.other_5xx += 1;
                self.other_5xx_total.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak: unexpected {s}");
            }
            Some(_) => {}
            None => w.client_errors += 1,
        }
        if let (Some(200), Some(latency)) = (status, recognize_latency) {
            w.recognize_ms.push(latency.as_secs_f64() * 1e3);
        }
    }
}

struct Inputs {
    photo: Vec<u8>,
    corrupt: Vec<u8>,
    oversized: Vec<u8>,
    frame: Vec<u8>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args.next().unwrap_or("target/release/facerec".into());
    let minutes: f64 = args.next().map_or(10.0, |m| m.parse().expect("minutes"));
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start(&binary, dir.path());
    let pid = child.id();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let photo = std::fs::read("vendor/fixtures/registry/vectron/yaoming.jpg")
        .expect("vendor/fixtures (run `make setup-test`)");
    let inputs = Arc::new(Inputs {
        corrupt: photo[..photo.len() / 2].to_vec(),
        oversized: {
            let mut big = photo.clone();
            big.resize(11_000_000, 0);
            big
        },
        frame: video::frame_from(&photo),
        photo,
    });
    let stats = Arc::new(Stats {
        window: Mutex::new(Window::default()),
        in_flight: AtomicU64::new(0),
        not_sent: AtomicU64::new(0),
        other_5xx_total: AtomicU64::new(0),
    });

    let capacity = calibrate(&client, &url, &inputs.photo).await;
    let rate = 2.0 * capacity;
    println!(
        "capacity {capacity:.1} recognitions/s (closed loop, 20 s); driving {rate:.1} arrivals/s for {minutes} min"
    );
    println!(
        "{:>6} {:>9} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8} {:>5}",
        "t (s)",
        "answers/s",
        "p50 ms",
        "p99 ms",
        "503 %",
        "5xx",
        "cli err",
        "not sent",
        "RSS MiB",
        "fds"
    );

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(minutes * 60.0);
    let mut next_report = started + WINDOW;
    let mut samples: Vec<(f64, u64, u64)> = Vec::new(); // (t, rss, fds) every second
    let mut next_sample = started;
    let mut arrival = 0u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut next_arrival = started;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            samples.push((
                started.elapsed().as_secs_f64(),
                rss_bytes(pid),
                open_fds(pid),
            ));
            next_sample += Duration::from_secs(1);
        }
        if now >= next_report {
            report(&stats, started, &samples);
            next_report += WINDOW;
        }
        while Instant::now() >= next_arrival {
            arrival += 1;
            next_arrival += gap;
            if stats.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                stats.not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, url, inputs, stats) =
                (client.clone(), url.clone(), inputs.clone(), stats.clone());
            tokio::spawn(async move {
                one_arrival(arrival, &client, &url, &inputs, &stats).await;
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report(&stats, started, &samples);

    // The verdict.
    let mean = |from: f64, to: f64, pick: fn(&(f64, u64, u64)) -> u64| {
        let v: Vec<u64> = samples
            .iter()
            .filter(|s| s.0 >= from && s.0 < to)
            .map(pick)
            .collect();
        v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
    };
    let total = minutes * 60.0;
    let rss_second = mean(60.0, 120.0, |s| s.1);
    let rss_last = mean(total - 60.0, total, |s| s.1);
    let fds_second = mean(60.0, 120.0, |s| s.2);
    let fds_last = mean(total - 60.0, total, |s| s.2);
    let rss_flat = rss_last <= rss_second * 1.10;
    let fds_flat = fds_last <= fds_second * 1.10 + 4.0;
    let no_5xx = stats.other_5xx_total.load(Ordering::Relaxed) == 0;
    // Let the last arrivals finish, then the server must still say it is ready.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ready = client
        .get(format!("{url}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200);
    let mib = |b: f64| b / (1 << 20) as f64;
    println!(
        "verdict: RSS {} (second minute {:.0} MiB, last minute {:.0} MiB); fds {} ({fds_second:.0} -> {fds_last:.0}); \
         5xx other than 503: {}; /ready after: {}",
        if rss_flat { "flat" } else { "GREW" },
        mib(rss_second),
        mib(rss_last),
        if fds_flat { "flat" } else { "GREW" },
        stats.other_5xx_total.load(Ordering::Relaxed),
        if ready { "200" } else { "NOT READY" },
    );
    child.kill().ok();
    child.wait().ok();
    let passed = rss_flat && fds_flat && no_5xx && ready;
    println!("soak {}", if passed { "PASSED" } else { "FAILED" });
    std::process::exit(if passed { 0 } else { 1 });
}

fn start(binary: &str, dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
        ])
        .args(["--api-keys", KEY])
        .arg("--database-url")
        .arg(format!("sqlite://{}/facerec.db", dir.display()))
        .env("FACEREC_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the facerec binary");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the server starts").unwrap();
        if let Some(url) = line.strip_prefix("facerec listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// Recognitions per second with a closed loop of four clients for 20 s.
async fn calibrate(client: &reqwest::Client, url: &str, photo: &[u8]) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(20);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, photo, done) =
                (client.clone(), url.to_owned(), photo.to_vec(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    if recognize(&client, &url, photo.clone()).await == Some(200) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / 20.0
}

async fn one_arrival(n: u64, client: &reqwest::Client, url: &str, inputs: &Inputs, stats: &Stats) {
    let started = Instant::now();
    match n % 20 {
        // 11 of 20: valid recognitions.
        0..=10 => {
            let status = recognize(client, url, inputs.photo.clone()).await;
            stats.record(status, Some(started.elapsed()));
        }
        11 | 12 => {
            let form = reqwest::multipart::Form::new()
                .part("image", part(inputs.photo.clone()))
                .text("name", format!("Soak person {n}"))
                .text("consent", "true");
            stats.record(post(client, url, "/v1/register", form).await, None);
        }
        13 | 14 => {
            let form = reqwest::multipart::Form::new().part("image", part(inputs.corrupt.clone()));
            stats.record(post(client, url, "/v1/recognize", form).await, None);
        }
        15 => {
            let form =
                reqwest::multipart::Form::new().part("image", part(inputs.oversized.clone()));
            stats.record(post(client, url, "/v1/recognize", form).await, None);
        }
        16 => stats.record(slow_upload(url, &inputs.photo).await, None),
        _ => stats.record(vanishing_stream(url, &inputs.frame, n).await, None),
    }
}

fn part(bytes: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name("photo.jpg")
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    form: reqwest::multipart::Form,
) -> Option<u16> {
    let response = client
        .post(format!("{url}{path}"))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    response.bytes().await.ok()?;
    Some(status)
}

async fn recognize(client: &reqwest::Client, url: &str, photo: Vec<u8>) -> Option<u16> {
    let form = reqwest::multipart::Form::new().part("image", part(photo));
    post(client, url, "/v1/recognize", form).await
}

/// A valid recognition whose body arrives in 20 pieces over ~4 s.
async fn slow_upload(url: &str, photo: &[u8]) -> Option<u16> {
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(photo);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let host = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let head = format!(
        "POST /v1/recognize HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    for piece in body.chunks(body.len().div_ceil(20)) {
        stream.write_all(piece).await.ok()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let line = String::from_utf8_lossy(&answer);
    line.split(' ').nth(1)?.parse().ok()
}

/// A stream client: connects, sends 5–20 frames at ~10 per second, and goes away without closing.
/// Counted as answered (200) when the server accepted it, by its HTTP status otherwise.
async fn vanishing_stream(url: &str, frame: &[u8], n: u64) -> Option<u16> {
    let mut request = format!("{}/v1/stream", url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            return Some(response.status().as_u16())
        }
        Err(_) => return None,
    };
    for _ in 0..(5 + n % 16) {
        if socket.send(Message::binary(frame.to_vec())).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Vanish: the TCP connection is dropped with no close frame.
    drop(socket);
    Some(200)
}

fn report(stats: &Stats, started: Instant, samples: &[(f64, u64, u64)]) {
    let mut w = std::mem::take(&mut *stats.window.lock().unwrap());
    w.recognize_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        w.recognize_ms
            .get(((w.recognize_ms.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let (_, rss, fds) = samples.last().copied().unwrap_or_default();
    println!(
        "{:>6.0} {:>9.1} {:>8.0} {:>8.0} {:>7.1} {:>7} {:>9} {:>9} {:>8.0} {:>5}",
        started.elapsed().as_secs_f64(),
        w.completed as f64 / WINDOW.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        100.0 * w.status_503 as f64 / w.completed.max(1) as f64,
        w.other_5xx,
        w.client_errors,
        stats.not_sent.swap(0, Ordering::Relaxed),
        rss as f64 / (1 << 20) as f64,
        fds,
    );
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}
