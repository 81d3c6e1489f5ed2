//! Holes a security review found, each closed and held closed: bounded metric labels, bounded
//! metadata on every write, headers that keep the page from being framed, private SQLite files,
//! the WebSocket handshake inside the key's request budget, and DeepStack forms with freely named
//! file fields.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const KEY: &str = "hardening-test-key-0123456789";

fn register_form(name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("name", name.to_owned())
        .text("consent", "true")
}

/// Made-up methods all count under one label: 60,000 of them grew `/metrics` by 18 MB before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() {
    let server = Server::start(Db::Sqlite, &[]).await;
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        server
            .client
            .request(method, format!("{}/v1/persons", server.url))
            .send()
            .await
            .unwrap();
    }
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("MADEUP"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// A person's metadata is bounded however it is written: at registration (the form's text limit)
/// and by PATCH (11.5 MB was accepted before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_bounded_on_every_write() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let (status, body) = json(server.post_form("/v1/register", register_form("Ann")).await).await;
    assert_eq!(status, 201, "{body}");
    let id = body["person"]["id"].as_str().unwrap().to_owned();
    let large = serde_json::json!({ "notes": "x".repeat(100 * 1024) });
    let body = expect(
        json(
            server
                .patch(
                    &format!("/v1/persons/{id}"),
                    serde_json::json!({ "metadata": large }),
                )
                .await,
        )
        .await,
        422,
        "invalid_person",
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("65536"),
        "{body}"
    );
    let small = serde_json::json!({ "metadata": { "team": "blue" } });
    let (status, body) = json(server.patch(&format!("/v1/persons/{id}"), small).await).await;
    assert_eq!(
        (status, &body["metadata"]["team"]),
        (200, &serde_json::json!("blue")),
        "{body}"
    );
}

/// The page cannot be framed by another site, and no answer is sniffed or leaks a referrer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cannot_be_framed() {
    let server = Server::start(Db::Sqlite, &[]).await;
    for path in ["/", "/app.js", "/v1/persons", "/health"] {
        let response = server.get(path).await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
    }
    let page = server.get("/").await;
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("default-src 'self'"), "{policy}");
}

/// The SQLite folder facerec creates is its user's alone, and so is every file in it, whatever the
/// umask (0755 and 0644 before).
#[test]
fn sqlite_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("data");
    let url = format!("sqlite://{}/facerec.db", folder.display());
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o700, "the folder");
    let mut files = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "the database and its lock file");
}

/// A WebSocket handshake with a key in a header spends the key's request budget like any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_handshakes_spend_the_request_budget() {
    let server = Server::start(
        Db::Sqlite,
        &["--api-keys", KEY, "--rate-limit-per-minute", "1"],
    )
    .await;
    let handshake = || {
        let mut request = format!("{}/v1/stream", server.url.replacen("http://", "ws://", 1))
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("x-api-key", KEY.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let (first, _) = handshake()
        .await
        .expect("the first handshake is within budget");
    drop(first);
    match handshake().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!(
            "the second handshake must be refused: {:?}",
            other.map(|_| ())
        ),
    }
}

/// DeepStack's own server takes every file of the form: a client that names its field `image<uuid>`
/// registers (it got `400 No valid image file` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepstack_takes_freely_named_file_fields() {
    let server = Server::start(
        Db::Sqlite,
        &["--compat-consent-basis", "signed form at the desk"],
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .part(
            "image3f2c9a",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("userid", "Yao");
    let (status, body) = json(server.post_form("/v1/vision/face/register", form).await).await;
    assert_eq!(
        (status, &body["success"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(persons["items"][0]["name"], "Yao", "{persons}");
}

/// Opens a request that declares a large body of `content_type` (none: no header) to `path` and
/// sends only its first bytes.
async fn stalled(server: &Server, path: &str, content_type: Option<&str>) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let content_type = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{content_type}Content-Length: 8000000\r\n\r\n--XyZ\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// What a stalled request was answered, without its body having been sent.
async fn answer_of(mut stream: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains('}') {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered before its body")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

/// Every body on an upload route goes through admission whatever its media type claims (an
/// upper-case multipart type skipped it before), and a type the route does not take is refused
/// before its body is read (a `text/plain` body was read up to the body limit before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_goes_through_admission_and_foreign_types_are_refused_unread() {
    let server = Server::start(Db::Sqlite, &["--workers", "1", "--queue", "0"]).await;
    for content_type in [Some("text/plain"), None] {
        for path in ["/v1/vision/face/recognize", "/api/v1/recognition/recognize"] {
            let text = answer_of(stalled(&server, path, content_type).await).await;
            assert!(
                text.contains("unsupported_media_type"),
                "{path} {content_type:?}: {text}"
            );
        }
        let text = answer_of(stalled(&server, "/v1/detect", content_type).await).await;
        assert!(text.starts_with("http/1.1 415"), "{text}");
    }
    // The one permit (one worker, no queue) held by an upload whose type is written in capitals.
    let held = stalled(
        &server,
        "/v1/recognize",
        Some("MULTIPART/FORM-DATA; boundary=XyZ"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = answer_of(
        stalled(
            &server,
            "/v1/detect",
            Some("multipart/form-data; boundary=XyZ"),
        )
        .await,
    )
    .await;
    assert!(
        text.starts_with("http/1.1 503") && text.contains("overloaded"),
        "{text}"
    );
    drop(held);
}

/// Sends a CompreFace request and expects raw embeddings to be refused, in CompreFace's format.
async fn embeddings_refused(request: reqwest::RequestBuilder) {
    let (status, body) = json(request.send().await.unwrap()).await;
    assert_eq!(
        (status, &body["facerec_code"]),
        (403, &serde_json::json!("insufficient_scope")),
        "{body}"
    );
}

/// Raw embeddings are off unless the operator turns them on: with them and a similarity answer
/// against a stored face, 600 requests rebuilt a stored template exactly. Comparisons against a
/// stored face are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_embeddings_are_off_unless_allowed_and_comparisons_are_audited() {
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;
    let photo = || image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg");
    let form = reqwest::multipart::Form::new()
        .part("image", photo())
        .text("embeddings", "true");
    expect(
        json(server.post_form("/v1/detect", form).await).await,
        403,
        "insufficient_scope",
    );
    let compreface = |path: &str| {
        server
            .client
            .post(format!("{}{path}", server.url))
            .header("x-api-key", KEY)
    };
    for path in [
        "/api/v1/recognition/embeddings/recognize",
        "/api/v1/verification/embeddings/verify",
        "/api/v1/recognition/embeddings/faces/00000000-0000-0000-0000-000000000000/verify",
    ] {
        embeddings_refused(compreface(path).json(&serde_json::json!({}))).await;
    }
    let form = reqwest::multipart::Form::new().part("file", photo());
    embeddings_refused(
        compreface("/api/v1/detection/detect?face_plugins=calculator").multipart(form),
    )
    .await;
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    let server = Server::start(Db::Url(url.clone()), &["--allow-embeddings"]).await;
    let (status, registered) =
        json(server.post_form("/v1/register", register_form("Yao")).await).await;
    assert_eq!(status, 201, "{registered}");
    let face = registered["face"]["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new()
        .part("image", photo())
        .text("embeddings", "true");
    let (_, detected) = json(server.post_form("/v1/detect", form).await).await;
    let embedding = detected["faces"][0]["embedding"].clone();
    let (status, body) = json(
        server
            .client
            .post(format!(
                "{}/api/v1/recognition/embeddings/faces/{face}/verify",
                server.url
            ))
            .json(&serde_json::json!({ "embeddings": [embedding] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    drop(server);
    let store = facerec_store::testing::open(&url, &Default::default())
        .await
        .unwrap();
    let events = store
        .audit_events(None, &facerec_core::AuditFilter::newest(None, 100))
        .await
        .unwrap();
    let compared: Vec<_> = events
        .iter()
        .filter(|e| e.action == facerec_core::AuditAction::FaceCompared)
        .collect();
    assert_eq!(compared.len(), 1, "{events:?}");
    assert_eq!(compared[0].face_id.map(|f| f.to_string()), Some(face));
}

/// An address that keeps sending invalid keys is refused for a while, whatever key it sends next
/// (failed keys were never throttled: ~5,500 guesses a second per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_keys_is_throttled() {
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;
    let with_key = |key: &str| {
        server
            .client
            .get(format!("{}/v1/persons", server.url))
            .header("x-api-key", key)
            .send()
    };
    for i in 0..10 {
        let response = with_key(&format!("guess-{i}")).await.unwrap();
        assert_eq!(response.status(), 401, "guess {i}");
    }
    let response = with_key("guess-10").await.unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Even the right key waits: a guesser must not learn which guess was right.
    expect(
        json(with_key(KEY).await.unwrap()).await,
        429,
        "rate_limited",
    );
}

/// Whether the server has closed `stream` (it reads end-of-file or an error, not a timeout).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn connect(server: &Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Half-sent headers and idle connections are closed after the header timeout (50 such
/// connections were still open after 65 s before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(Db::Sqlite, &["--header-timeout-secs", "1"]).await;
    let mut connections = Vec::new();
    for i in 0..20 {
        let mut stream = connect(&server).await;
        if i % 2 == 0 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        connections.push(stream);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for (i, stream) in connections.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream).await,
            "connection {i} is still open"
        );
    }
    assert_eq!(server.get("/health").await.status(), 200);
}

/// Beyond the connection cap a new connection is told 503 and closed, and the server serves again
/// once connections go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_cleanly() {
    let server = Server::start(Db::Sqlite, &["--max-connections", "4"]).await;
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| connect(&server))).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let text = answer_of(connect(&server).await).await;
    assert!(
        text.starts_with("http/1.1 503") && text.contains("overloaded"),
        "{text}"
    );
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.get("/health").await.status(), 200);
}

/// A low soft open-file limit is raised at start: 200 idle sockets under `ulimit -S -n 128` made
/// accept fail and /health time out for everyone before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_at_start() {
    let wrapper = ["sh", "-c", "ulimit -S -n 128 && exec \"$@\"", "sh"];
    let server = Server::start_in(&wrapper, Db::Sqlite, &[]).await;
    let idle: Vec<_> = futures_util::future::join_all((0..200).map(|_| connect(&server))).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let health = tokio::time::timeout(std::time::Duration::from_secs(5), server.get("/health"))
        .await
        .expect("/health answers beside 200 idle connections");
    assert_eq!(health.status(), 200);
    drop(idle);
}

/// Opens a DeepStack upload without a key header (its key would be in the form) and sends only its
/// first bytes.
async fn stalled_anonymous_deepstack(server: &Server) -> tokio::net::TcpStream {
    stalled(
        server,
        "/v1/vision/face/recognize",
        Some("multipart/form-data; boundary=XyZ"),
    )
    .await
}

/// Uploads whose key can only come from the body wait in a few slots of their own: slow anonymous
/// clients made a keyed `/v1/detect` answer 503 before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_uploads_cannot_take_the_keyed_clients_slots() {
    let server = Server::start(
        Db::Sqlite,
        &["--api-keys", KEY, "--workers", "1", "--queue", "1"],
    )
    .await;
    let mut anonymous = Vec::new();
    for _ in 0..4 {
        anonymous.push(stalled_anonymous_deepstack(&server).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = answer_of(stalled_anonymous_deepstack(&server).await).await;
    assert!(text.starts_with("http/1.1 503"), "{text}");
    let form = reqwest::multipart::Form::new().part(
        "image",
        image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
    );
    let (status, body) = json(server.post_form("/v1/detect", form).await).await;
    assert_eq!(status, 200, "a keyed upload is still admitted: {body}");
    drop(anonymous);
}

/// Detection probabilities on the scale CompreFace's clients filter on: a clear face whose raw
/// SCRFD score is 0.54 (`nsface/test_crop.jpg`) was dropped by Double Take's 0.8 before ("no face").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faces_facerec_uses_clear_the_clients_detection_cut_offs() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let photo = || image_part(registry_photo("nsface/test_crop.jpg"), "c.jpg");
    for query in ["?det_prob_threshold=0.8", ""] {
        let form = reqwest::multipart::Form::new().part("file", photo());
        let (status, body) = json(
            server
                .post_form(&format!("/api/v1/detection/detect{query}"), form)
                .await,
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
        let probability = body["result"][0]["box"]["probability"].as_f64().unwrap();
        assert!(probability >= 0.9, "{query}: {body}");
    }
    let form = reqwest::multipart::Form::new()
        .part("image", photo())
        .text("min_confidence", "0.8");
    let (status, body) = json(server.post_form("/v1/vision/face", form).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["predictions"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
}

/// A short key is refused at start, saying how to make a good one (`--api-keys a` started before).
#[test]
fn short_keys_are_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(["serve", "--bind", "127.0.0.1:0", "--api-keys", "a"])
        .env_remove("FACEREC_API_KEYS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("facerec keys generate"), "{stderr}");
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(["keys", "generate"])
        .output()
        .unwrap();
    let key = String::from_utf8(generated.stdout).unwrap();
    assert_eq!(key.trim().len(), 43, "{key}");
}

/// A wrong key sent as a header is refused before any byte of the body is read, on the route that
/// otherwise reads its key from the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_key_is_checked_before_the_body() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /v1/vision/face/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: wrong-key-0123456789\r\n\
              Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n{\"x\":[0,",
        )
        .await
        .unwrap();
    let text = answer_of(stream).await;
    assert!(text.starts_with("http/1.1 401"), "{text}");
}
