//! What the second red team and a new operator met, closed, on a running server: logs that a file,
//! `docker logs` or journald can take (no escape codes, JSON lines on request, no person named at
//! info), `all` reserved, key events only for `admin` keys, and a registration racing its
//! collection's deletion answered 404, never 503 (SQLite and PostgreSQL).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const OPERATOR: &str = "operator-key-0123456789";

/// The server with its standard error in a file (not a terminal), as a service manager runs it.
struct Logged {
    child: Child,
    url: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Logged {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("facerec.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_facerec"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--api-keys", OPERATOR])
            .arg("--database-url")
            .arg(format!("sqlite://{}/facerec.db", dir.path().display()))
            .args(args)
            .current_dir(workspace())
            .env_remove("FACEREC_LOG")
            .env_remove("RUST_LOG")
            .env_remove("FACEREC_LOG_FORMAT")
            .env_remove("FACEREC_LOG_LEVEL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("facerec listening on ").map(str::to_owned))
            .expect("the server says where it listens");
        Self {
            child,
            url,
            log,
            _dir: dir,
        }
    }

    /// Everything logged, once the server has stopped.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A person's life through `/v1` and CompreFace's API (whose paths name the subject): registered,
/// recognized, renamed, deleted. Answers the person's id.
async fn a_persons_life(url: &str, name: &str) -> String {
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| async move {
        json(request.bearer_auth(OPERATOR).send().await.unwrap()).await
    };
    let yao = registry_photo("vectron/yaoming.jpg");
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao.clone(), "yao.jpg"))
        .text("name", name.to_owned())
        .text("consent", "true");
    let (status, body) = send(client.post(format!("{url}/v1/register")).multipart(form)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["person"]["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part("image", image_part(yao, "yao.jpg"));
    let recognize = client.post(format!("{url}/v1/recognize")).multipart(form);
    assert_eq!(send(recognize).await.0, 200);
    assert_eq!(
        send(client.get(format!("{url}/v1/persons/{id}"))).await.0,
        200
    );
    // CompreFace's clients name the person in the path and the query.
    let faces = format!("{url}/api/v1/recognition/faces?subject={name}");
    assert_eq!(send(client.get(faces)).await.0, 200);
    let subject = format!("{url}/api/v1/recognition/subjects/{name}");
    let (status, body) = send(client.delete(subject)).await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn text_logs_in_a_file_carry_no_escape_codes_and_name_nobody() {
    let server = Logged::start(&[], &[]);
    let name = "Ximena Quarterfield";
    let id = a_persons_life(&server.url, name).await;
    let log = server.stop();
    assert!(log.contains("INFO"), "info lines by default:\n{log}");
    assert!(!log.contains('\u{1b}'), "no escape codes in a file:\n{log}");
    for secret in [name, id.as_str(), OPERATOR] {
        assert!(!log.contains(secret), "the log names {secret}:\n{log}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request() {
    // Debug shows every request's span: its id and route, and never a person's id or name.
    let server = Logged::start(&["--log-format", "json", "--log-level", "debug"], &[]);
    let name = "Yusuf Oyelaran";
    let id = a_persons_life(&server.url, name).await;
    let log = server.stop();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "{log}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let in_requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "request")
        .collect();
    assert!(
        !in_requests.is_empty(),
        "request lines carry their span:\n{log}"
    );
    assert!(in_requests.iter().all(|l| l["span"]["id"].is_string()));
    let paths: Vec<&str> = in_requests
        .iter()
        .filter_map(|l| l["span"]["path"].as_str())
        .collect();
    assert!(paths.contains(&"/v1/persons/{id}"), "{paths:?}");
    assert!(
        paths.contains(&"/api/v1/recognition/subjects/{subject}"),
        "{paths:?}"
    );
    assert!(!log.contains(&id), "a person's id in the log");
    assert!(!log.contains(OPERATOR), "a key in the log");
}

#[tokio::test]
async fn rust_log_wins_over_the_level_flag() {
    let server = Logged::start(&["--log-level", "debug"], &[("RUST_LOG", "error")]);
    let response = reqwest::get(format!("{}/health", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let log = server.stop();
    assert!(!log.contains("INFO") && !log.contains("DEBUG"), "{log}");
}

#[tokio::test]
async fn all_is_no_collections_name_and_key_events_are_for_admins() {
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR]).await;
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/v1/collections",
        OPERATOR,
        Some(serde_json::json!({"name": "all"})),
    )
    .await;
    expect((status, body), 422, "invalid_collection");
    new_collection(&server, OPERATOR, "door").await;
    let manage = new_key(&server, OPERATOR, "door", &["manage"]).await;
    let admin = new_key(&server, OPERATOR, "door", &["admin", "manage"]).await;
    let actions = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/audit", &manage, None).await;
    assert_eq!(status, 200, "{body}");
    let seen = actions(&body);
    assert!(seen.contains(&"collection_created".to_owned()), "{seen:?}");
    assert!(
        !seen.iter().any(|a| a.starts_with("key_")),
        "a manage key reads no key's id or scopes: {seen:?}"
    );
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/audit", &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(actions(&body).contains(&"key_created".to_owned()), "{body}");
}

/// Registrations into a collection while it is deleted: each answers 201 (before) or 404 (after),
/// none a database error.
async fn registering_while_the_collection_goes(db: Db) {
    let server = Server::start(db, &["--api-keys", OPERATOR]).await;
    new_collection(&server, OPERATOR, "door").await;
    let photo = registry_photo("vectron/yaoming.jpg");
    let register = |n: usize| {
        let (client, url, photo) = (server.client.clone(), server.url.clone(), photo.clone());
        async move {
            let form = reqwest::multipart::Form::new()
                .part("image", image_part(photo, "yao.jpg"))
                .text("name", format!("Person {n}"))
                .text("consent", "true");
            let response = client
                .post(format!("{url}/v1/register"))
                .bearer_auth(OPERATOR)
                .header("x-facerec-collection", "door")
                .multipart(form)
                .send()
                .await
                .unwrap();
            json(response).await
        }
    };
    let registrations: Vec<_> = (0..6).map(|n| tokio::spawn(register(n))).collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, body) = call(
        &server,
        reqwest::Method::DELETE,
        "/v1/collections/door",
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut after = Vec::new();
    for registration in registrations {
        let (status, body) = registration.await.unwrap();
        match status {
            201 => {}
            404 => assert_eq!(body["error"]["code"], "collection_not_found", "{body}"),
            other => panic!("{other}: {body}"),
        }
        after.push(status);
    }
    let (status, body) = register(99).await;
    expect((status, body), 404, "collection_not_found");
    println!("registrations racing the deletion answered {after:?}");
}

#[tokio::test]
async fn registering_while_the_collection_goes_on_sqlite() {
    registering_while_the_collection_goes(Db::Sqlite).await;
}

#[tokio::test]
async fn registering_while_the_collection_goes_on_postgres() {
    registering_while_the_collection_goes(Db::Postgres).await;
}

#[tokio::test]
async fn one_key_cannot_take_every_stream_ticket() {
    let server = Server::start(
        Db::Sqlite,
        &["--api-keys", OPERATOR, "--rate-limit-per-minute", "0"],
    )
    .await;
    for name in ["door", "lobby"] {
        new_collection(&server, OPERATOR, name).await;
    }
    let greedy = new_key(&server, OPERATOR, "door", &["recognize"]).await;
    let other = new_key(&server, OPERATOR, "lobby", &["recognize"]).await;
    let share = facerec_service::tickets::TICKETS.per_holder;
    let mut issued = 0;
    for _ in 0..share + 5 {
        let (status, _) = call(
            &server,
            reqwest::Method::POST,
            "/v1/stream/ticket",
            &greedy,
            None,
        )
        .await;
        if status == 200 {
            issued += 1;
        } else {
            assert_eq!(status, 503);
        }
    }
    assert_eq!(issued, share, "one key holds its share, no more");
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/v1/stream/ticket",
        &other,
        None,
    )
    .await;
    assert_eq!(
        status, 200,
        "another collection's key still gets a ticket: {body}"
    );
}

#[test]
fn keys_and_collections_commands_load_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    // Models and the runtime out of reach: a command that started the inference engine would fail.
    let facerec = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_facerec"))
            .args(args)
            .args(["--database-url", &url])
            .current_dir(dir.path())
            .env("FACEREC_MODELS_DIR", "/nonexistent/models")
            .env("FACEREC_ORT_LIB", "/nonexistent/libonnxruntime.so")
            .env("FACEREC_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    facerec(&["collections", "create", "door"]);
    let secret = facerec(&[
        "keys",
        "create",
        "--collection",
        "door",
        "--scopes",
        "recognize",
        "--label",
        "camera",
    ]);
    assert!(secret.trim().len() >= 43, "{secret}");
    assert!(facerec(&["keys", "list"]).contains("camera"));
    assert!(facerec(&["collections", "list"]).contains("door"));
}
