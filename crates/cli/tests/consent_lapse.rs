//! From the moment a consent expires its person is matched, verified and streamed no more, before
//! any sweep: `/v1/recognize`, `/v1/verify`, the compatible APIs, the stream and `facerec identify`
//! leave them out, and reading them says it has expired (SQLite and PostgreSQL). The sweep is set
//! an hour away, so only the expiry itself can explain what changes.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use support::video::frame_from;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const OPERATOR: &str = "operator-key-0123456789";
/// How long after registering the consent runs out.
const LIFETIME: Duration = Duration::from_secs(4);

fn yao() -> Vec<u8> {
    registry_photo("vectron/yaoming.jpg")
}

async fn recognized_names(server: &Server) -> Vec<String> {
    let form = reqwest::multipart::Form::new().part("image", image_part(yao(), "yao.jpg"));
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    body["faces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["match"]["name"].as_str().map(str::to_owned))
        .collect()
}

async fn deepstack_userids(server: &Server) -> Vec<String> {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao(), "yao.jpg"))
        .text("api_key", OPERATOR);
    let response = server
        .client
        .post(format!("{}/v1/vision/face/recognize", server.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userid"].as_str().unwrap().to_owned())
        .collect()
}

async fn verify(server: &Server, person: &str) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao(), "yao.jpg"))
        .text("person_id", person.to_owned());
    json(server.post_form("/v1/verify", form).await).await
}

/// The name the stream gives the face of one frame, if any.
async fn streamed_name(server: &Server) -> Option<String> {
    let mut socket = open_stream(server, "", Some(OPERATOR)).await.unwrap();
    socket
        .send(Message::Binary(frame_from(&yao()).into()))
        .await
        .unwrap();
    reply(&mut socket).await["faces"][0]["match"]["name"]
        .as_str()
        .map(str::to_owned)
}

fn identify(database_url: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(["identify", "--database-url", database_url])
        .arg(workspace().join("vendor/fixtures/registry/vectron/yaoming.jpg"))
        .current_dir(workspace())
        .env("FACEREC_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn an_expired_consent_is_matched_no_more(db: Db) {
    let database_url = match db {
        Db::Postgres => Some(new_postgres_database().await),
        _ => None,
    };
    let server = Server::start(
        database_url.clone().map_or(Db::Sqlite, Db::Url),
        &[
            "--api-keys",
            OPERATOR,
            "--retention-sweep-secs",
            "3600",
            "--compat-consent-basis",
            "signed form",
        ],
    )
    .await;
    let expires_at = chrono::Utc::now() + chrono::Duration::from_std(LIFETIME).unwrap();
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao(), "yao.jpg"))
        .text("name", "Yao Ming")
        .text("consent", "true")
        .text("consent_expires_at", expires_at.to_rfc3339());
    let (status, body) = json(server.post_form("/v1/register", form).await).await;
    assert_eq!(status, 201, "{body}");
    let person = body["person"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["person"]["consent"]["expired"], false);
    // Before: named everywhere.
    assert_eq!(recognized_names(&server).await, ["Yao Ming"]);
    assert_eq!(verify(&server, &person).await.0, 200);
    if let Some(url) = &database_url {
        assert!(identify(url).contains("Yao Ming ("), "identify names him");
    }
    tokio::time::sleep_until(tokio::time::Instant::now() + LIFETIME + Duration::from_millis(500))
        .await;
    // After: the person is still stored (no sweep ran) and says so.
    let (status, body) = json(server.get(&format!("/v1/persons/{person}")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["consent"]["expired"], true, "{body}");
    assert!(
        recognized_names(&server).await.is_empty(),
        "/v1/recognize names nobody"
    );
    expect(verify(&server, &person).await, 410, "consent_expired");
    assert_eq!(deepstack_userids(&server).await, ["unknown"]);
    let response = server
        .client
        .post(format!("{}/api/v1/recognition/recognize", server.url))
        .header("x-api-key", OPERATOR)
        .multipart(reqwest::multipart::Form::new().part("file", image_part(yao(), "yao.jpg")))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    let subjects = &body["result"][0]["subjects"];
    assert!(
        subjects
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["subject"] != "Yao Ming"),
        "CompreFace's API names nobody: {body}"
    );
    assert_eq!(
        streamed_name(&server).await,
        None,
        "the stream names nobody"
    );
    if let Some(url) = &database_url {
        let out = identify(url);
        assert!(!out.contains("Yao Ming"), "identify names nobody: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_consent_is_matched_no_more_on_sqlite() {
    an_expired_consent_is_matched_no_more(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_consent_is_matched_no_more_on_postgres() {
    an_expired_consent_is_matched_no_more(Db::Postgres).await;
}
