//! Bounded under load and faults: uploads beyond what the pool can hold are refused before their body
//! is read, work whose caller has gone is skipped, a panicking worker is replaced, detection is capped.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A metric's value from /metrics (0 when it was never recorded).
async fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Opens an upload that declares a large multipart body and sends only its first bytes.
async fn stalled_upload(server: &Server) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 8000000\r\n\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0xFF, 0xD8, 0xFF]).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_pool_are_refused_before_their_body_is_read() {
    let server = Server::start(Db::Sqlite, &["--workers", "1", "--queue", "1"]).await;
    // Two uploads hold the two permits (one worker + one queue place) while their bodies trickle.
    let held = [stalled_upload(&server).await, stalled_upload(&server).await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut third = stalled_upload(&server).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .expect("answered without its body")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(
        text.contains("retry-after") && text.contains("\"overloaded\""),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(held);
    // The stalled uploads are gone; normal traffic is served again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let form = reqwest::multipart::Form::new().part(
        "image",
        image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
    );
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(metric(&server, "facerec_uploads_shed_total").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_whose_caller_has_gone_is_skipped() {
    let server = Server::start(Db::Sqlite, &["--workers", "1", "--queue", "8"]).await;
    let photo = registry_photo("vectron/gdp.jpg");
    // Impatient clients: each gives up long before one worker reaches the last of them.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let requests = (0..6).map(|_| {
        let form =
            reqwest::multipart::Form::new().part("image", image_part(photo.clone(), "g.jpg"));
        impatient
            .post(format!("{}/v1/recognize", server.url))
            .multipart(form)
            .send()
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().any(|a| a.is_err()), "some clients gave up");
    let mut skipped = 0.0;
    for _ in 0..50 {
        skipped = metric(&server, "facerec_inference_abandoned_total").await;
        if skipped >= 1.0
            && server
                .get("/metrics")
                .await
                .text()
                .await
                .unwrap()
                .contains("facerec_inference_in_flight 0")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skipped >= 1.0, "abandoned jobs are counted, not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_fails_its_request_and_is_replaced() {
    let server = Server::start(Db::Sqlite, &["--workers", "1"]).await;
    let fault = b"facerec:test:panic".to_vec();
    let form = reqwest::multipart::Form::new().part("image", image_part(fault, "p.jpg"));
    let (status, body) = json(server.post_form("/v1/detect", form).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("inference_failed")),
        "{body}"
    );
    let (status, ready) = json(server.get("/ready").await).await;
    assert_eq!(
        (status, ready["workers"].as_u64()),
        (200, Some(1)),
        "{ready}"
    );
    let form = reqwest::multipart::Form::new().part(
        "image",
        image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
    );
    let (status, body) = json(server.post_form("/v1/detect", form).await).await;
    assert_eq!(status, 200, "the replaced worker serves: {body}");
    assert_eq!(body["faces"].as_array().unwrap().len(), 1);
    assert_eq!(
        metric(&server, "facerec_inference_worker_restarts_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_honours_max_faces() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let group = registry_photo("vectron/gdp.jpg");
    let all = reqwest::multipart::Form::new().part("image", image_part(group.clone(), "g.jpg"));
    let (_, body) = json(server.post_form("/v1/detect", all).await).await;
    assert!(body["faces"].as_array().unwrap().len() > 2, "{body}");
    let capped = reqwest::multipart::Form::new()
        .part("image", image_part(group, "g.jpg"))
        .text("max_faces", "2");
    let (status, body) = json(server.post_form("/v1/detect", capped).await).await;
    assert_eq!((status, body["faces"].as_array().unwrap().len()), (200, 2));
}

/// A PostgreSQL server of this test's own (so that stopping it disturbs no other test), stopped with
/// the test.
struct OwnPostgres {
    env: [(&'static str, String); 2],
}

impl OwnPostgres {
    fn command(&self, action: &str) -> String {
        let output = std::process::Command::new(workspace().join("scripts/pg-test.sh"))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg-test.sh {action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.command("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_fails_fast_and_recovery_needs_no_restart() {
    let postgres = OwnPostgres {
        env: [
            ("FACEREC_TEST_PG_PORT", "54397".to_owned()),
            (
                "FACEREC_TEST_PG_DIR",
                format!("/tmp/facerec-pg-outage-{}", std::process::id()),
            ),
        ],
    };
    let url = postgres.command("start");
    let server = Server::start(Db::Url(url), &[]).await;
    assert_eq!(server.get("/v1/persons").await.status(), 200);

    postgres.command("pause");
    let started = Instant::now();
    let response = server.get("/v1/persons").await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed in {:?}",
        started.elapsed()
    );
    let (status, body) = json(server.get("/ready").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );

    postgres.command("resume");
    let mut recovered = false;
    for _ in 0..50 {
        if server.get("/v1/persons").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "served again without a restart");
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("name", "After The Outage")
        .text("consent", "true");
    assert_eq!(server.post_form("/v1/register", form).await.status(), 201);
    assert_eq!(server.get("/ready").await.status(), 200);
}

/// `unshare` arguments that give the server a private tmpfs of `size` over `dir`, in a user and mount
/// namespace of its own: a real small disk without privileges, gone with the process.
fn on_private_tmpfs<'a>(dir: &'a str, size: &'a str) -> Vec<String> {
    [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        &format!("mount -t tmpfs -o size={size} tmpfs \"$0\" && exec \"$@\""),
        dir,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs a shell command in the server's namespaces, where its private tmpfs is mounted.
fn in_namespaces_of(server: &Server, command: &str) {
    let status = std::process::Command::new("nsenter")
        .args([
            "-t",
            &server.pid().to_string(),
            "--user",
            "--mount",
            "--preserve-credentials",
        ])
        .args(["sh", "-c", command])
        .status()
        .unwrap();
    assert!(status.success(), "{command}");
}

async fn register(server: &Server, name: &str, photo: Vec<u8>) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo, "photo.jpg"))
        .text("name", name.to_owned())
        .text("consent", "true");
    json(server.post_form("/v1/register", form).await).await
}

async fn person_names(server: &Server) -> Vec<String> {
    let (status, body) = json(server.get("/v1/persons?limit=100").await).await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_registrations_whole_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().display().to_string();
    let wrapper = on_private_tmpfs(&mount, "16m");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let database = Db::Url(format!("sqlite://{mount}/facerec.db"));
    let server = Server::start_in(&wrapper, database, &[]).await;
    let photo = registry_photo("vectron/yaoming.jpg");
    let (status, body) = register(&server, "Before", photo.clone()).await;
    assert_eq!(status, 201, "{body}");

    // dd writes until the disk is full (and then fails, which is the point).
    in_namespaces_of(
        &server,
        &format!("dd if=/dev/zero of={mount}/filler bs=64k 2>/dev/null; true"),
    );
    for attempt in ["During 1", "During 2"] {
        let body = expect(
            register(&server, attempt, photo.clone()).await,
            507,
            "storage_full",
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written"));
    }
    assert_eq!(person_names(&server).await, ["Before"], "no partial person");
    let form = reqwest::multipart::Form::new().part("image", image_part(photo.clone(), "p.jpg"));
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["faces"][0]["match"]["name"], "Before",
        "reads still work: {body}"
    );
    assert_eq!(server.get("/ready").await.status(), 200);

    in_namespaces_of(&server, &format!("rm {mount}/filler"));
    // Every 201 is stored: the writer connection is not left in a transaction SQLite had ended.
    for name in ["After 1", "After 2"] {
        let (status, body) = register(&server, name, photo.clone()).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        person_names(&server).await,
        ["After 1", "After 2", "Before"]
    );
}

#[test]
fn a_read_only_database_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().display().to_string();
    let url = format!("sqlite://{folder}/facerec.db");
    let binary = env!("CARGO_BIN_EXE_facerec");
    let migrated = std::process::Command::new(binary)
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(migrated.status.success());
    // The same folder, bound read-only in a namespace of the server's own.
    let output = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\"")
        .args([
            &folder,
            binary,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &url,
        ])
        .env_remove("FACEREC_API_KEYS")
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("read-only") && stderr.contains("facerec writes to its database"),
        "{stderr}"
    );
}
