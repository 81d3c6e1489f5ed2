//! A stream ends with its grant: revoking its key, the key expiring, or deleting its collection
//! closes an open stream (close code 1008, with the reason) within the revocation delay, on the
//! replica that made the change and on another; a ticket issued before a revocation opens nothing.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::video::frame_from;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const OPERATOR: &str = "operator-key-0123456789";

/// How late a stream may end after the change: the documented revocation delay (1 s), the
/// stream's look every 250 ms, and room for a loaded machine.
const LATEST: Duration = Duration::from_secs(4);

/// A request with the operator's key.
async fn operate(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    call(server, method, path, OPERATOR, body).await
}

/// A collection with a key that may stream: the key's id and secret.
async fn streaming_key(
    server: &Server,
    collection: &str,
    expires_in: Option<i64>,
) -> (String, String) {
    let (status, _) = operate(
        server,
        reqwest::Method::POST,
        "/v1/collections",
        Some(serde_json::json!({ "name": collection })),
    )
    .await;
    assert!(status == 201 || status == 409, "{status}");
    let mut body =
        serde_json::json!({"collection": collection, "scopes": ["recognize"], "label": "camera"});
    if let Some(seconds) = expires_in {
        body["expires_at"] =
            serde_json::json!(chrono::Utc::now() + chrono::Duration::seconds(seconds));
    }
    let (status, body) = operate(server, reqwest::Method::POST, "/v1/keys", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

/// Sends frames and reads answers until the server closes the stream: how long after `since` it
/// closed, with the close frame's code and reason.
async fn until_closed(socket: &mut Socket, since: Instant) -> (Duration, CloseCode, String) {
    let frame = frame_from(&registry_photo("vectron/yaoming.jpg"));
    let deadline = since + Duration::from_secs(30);
    loop {
        let _ = socket.send(Message::Binary(frame.clone().into())).await;
        let next = tokio::time::timeout(Duration::from_millis(500), socket.next()).await;
        match next {
            Ok(Some(Ok(Message::Close(Some(close))))) => {
                return (since.elapsed(), close.code, close.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) => {
                panic!("closed without saying why")
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(e))) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "the stream was never closed");
    }
}

/// The first answer shows the stream runs.
async fn runs(socket: &mut Socket) {
    let frame = frame_from(&registry_photo("vectron/yaoming.jpg"));
    socket.send(Message::Binary(frame.into())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => return,
            Ok(Some(Ok(_))) => {}
            other => panic!("no answer: {other:?}"),
        }
    }
}

async fn revocation_ends_a_stream(revoker: &Server, streamer: &Server) {
    let (id, secret) = streaming_key(revoker, "door", None).await;
    let mut socket = open_stream(streamer, "", Some(&secret)).await.unwrap();
    runs(&mut socket).await;
    // A ticket taken before the revocation.
    let ticket = streamer
        .client
        .post(format!("{}/v1/stream/ticket", streamer.url))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    let (status, ticket) = json(ticket).await;
    assert_eq!(status, 200, "{ticket}");
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let (status, body) = operate(
        revoker,
        reqwest::Method::DELETE,
        &format!("/v1/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (took, code, reason) = until_closed(&mut socket, Instant::now()).await;
    println!("the stream closed {took:?} after its key was revoked: {reason}");
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("revoked"), "{reason}");
    assert!(took < LATEST, "{took:?}");
    let refused = open_stream(streamer, &format!("?ticket={ticket}"), None).await;
    assert!(refused.is_err(), "a ticket of a revoked key opens nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_its_key_ends_a_stream_on_sqlite() {
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR]).await;
    revocation_ends_a_stream(&server, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_its_key_on_one_replica_ends_a_stream_on_another() {
    let url = new_postgres_database().await;
    let a = Server::start(Db::Url(url.clone()), &["--api-keys", OPERATOR]).await;
    let b = Server::start(Db::Url(url), &["--api-keys", OPERATOR]).await;
    revocation_ends_a_stream(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_key_ends_its_stream() {
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR]).await;
    let (_, secret) = streaming_key(&server, "door", Some(3)).await;
    let mut socket = open_stream(&server, "", Some(&secret)).await.unwrap();
    runs(&mut socket).await;
    let (took, code, reason) = until_closed(&mut socket, Instant::now()).await;
    println!("the stream closed {took:?} after it opened, its key expiring 3 s after creation");
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("expired"), "{reason}");
    assert!(took < Duration::from_secs(3) + LATEST, "{took:?}");
}

async fn deleting_its_collection_ends_a_stream(db: Db) {
    let server = Server::start(db, &["--api-keys", OPERATOR]).await;
    let (_, secret) = streaming_key(&server, "door", None).await;
    let mut socket = open_stream(&server, "", Some(&secret)).await.unwrap();
    runs(&mut socket).await;
    let (status, body) = operate(
        &server,
        reqwest::Method::DELETE,
        "/v1/collections/door",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (took, code, reason) = until_closed(&mut socket, Instant::now()).await;
    println!("the stream closed {took:?} after its collection was deleted: {reason}");
    assert_eq!(code, CloseCode::Policy);
    // The collection's keys go with it: either reason is the truth.
    assert!(
        reason.contains("deleted") || reason.contains("revoked"),
        "{reason}"
    );
    assert!(took < LATEST, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_its_collection_ends_a_stream_on_sqlite() {
    deleting_its_collection_ends_a_stream(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_its_collection_ends_a_stream_on_postgres() {
    deleting_its_collection_ends_a_stream(Db::Postgres).await;
}
