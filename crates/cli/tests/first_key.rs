//! Keys that mean what they say (#32, 3): a server without configured keys, on loopback, serves the
//! local operator only until the first key is kept in the database; from then on every request
//! needs a key (on loopback too, DeepStack's key in its form included), until no live key is left.
//! Beyond loopback, an `admin` key in the database is what lets a server without configured keys
//! start at all.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

async fn keyless(server: &Server, path: &str) -> (u16, serde_json::Value) {
    json(server.get(path).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_key_ends_keyless_access() {
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &[]).await;
        let (status, body) = keyless(&server, "/v1/persons").await;
        assert_eq!(status, 200, "the local operator: {body}");

        // The operator makes the first key.
        let (status, created) = json(
            server
                .client
                .post(format!("{}/v1/keys", server.url))
                .json(&serde_json::json!({
                    "collection": "default",
                    "scopes": ["recognize", "enroll", "manage", "admin"],
                    "label": "first"
                }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let secret = created["key"].as_str().unwrap().to_owned();

        // From then on a key is needed, on this replica at once.
        expect(
            keyless(&server, "/v1/persons").await,
            401,
            "missing_api_key",
        );
        let (status, _) = call(&server, reqwest::Method::GET, "/v1/persons", &secret, None).await;
        assert_eq!(status, 200);
        // DeepStack's clients send their key in the form: read there, and needed there.
        let list = |key: Option<&str>| {
            // DeepStack's list call carries no other field; one keeps the form well-formed.
            let mut form = reqwest::multipart::Form::new().text("min_confidence", "0.5");
            if let Some(key) = key {
                form = form.text("api_key", key.to_owned());
            }
            server
                .client
                .post(format!("{}/v1/vision/face/list", server.url))
                .multipart(form)
                .send()
        };
        let (status, body) = json(list(Some(&secret)).await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = json(list(None).await.unwrap()).await;
        assert_eq!(status, 401, "{body}");

        // Revoking the last live key gives the local operator back (on loopback only).
        let id = created["id"].as_str().unwrap();
        let (status, body) = call(
            &server,
            reqwest::Method::DELETE,
            &format!("/v1/keys/{id}"),
            &secret,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = keyless(&server, "/v1/persons").await;
        assert_eq!(status, 200, "{body}");
    }
}

fn facerec() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_facerec"));
    command
        .current_dir(workspace())
        .env_remove("FACEREC_API_KEYS")
        .env("FACEREC_LOG", "warn");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_in_the_database_opens_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    let serve = ["serve", "--bind", "0.0.0.0:0", "--database-url", &url];

    // No key anywhere: refused.
    let refused = facerec().args(serve).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refusing to listen"), "{stderr}");

    // A key without `admin` does not open it either (nobody could manage the keys).
    let create = |scopes: &str| {
        let output = facerec()
            .args(["keys", "create", "--scopes", scopes, "--label", scopes])
            .args(["--json", "--database-url", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let key: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        key["key"].as_str().unwrap().to_owned()
    };
    let camera = create("recognize");
    let refused = facerec().args(serve).output().unwrap();
    assert!(!refused.status.success(), "{refused:?}");

    // An admin key made offline: it starts, and every request needs a key.
    let admin = create("admin,manage");
    let mut child = facerec()
        .args(serve)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("facerec listening on ") {
                let _ = tx.send(url.replace("0.0.0.0", "127.0.0.1"));
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("it starts");
    let client = reqwest::Client::new();
    let get = |key: Option<&str>| {
        let mut request = client.get(format!("{base}/v1/persons"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    expect(json(get(None).await.unwrap()).await, 401, "missing_api_key");
    let (status, body) = json(get(Some(&admin)).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = json(get(Some(&camera)).await.unwrap()).await;
    assert_eq!(status, 403, "a recognize key may not list persons");
    child.kill().unwrap();
    child.wait().unwrap();
}
