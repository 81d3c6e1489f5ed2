//! Collections and scoped keys on a running server, on SQLite and PostgreSQL: two collections with
//! a person of the same name in each, a key of each scope for each; every keyed route answers as
//! the route table says for every scope; nothing of one collection reaches a key of the other.
//! And on two replicas, a key revoked on one is refused by the other within the documented delay;
//! keys made by `facerec keys create` work against a server on that database.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use facerec_core::Scope;
use facerec_server::api::{keyed_routes, Credential};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const OPERATOR: &str = "operator-key-0123456789";

async fn create_collection(server: &Server, name: &str) -> String {
    let (status, body) = call(
        server,
        reqwest::Method::POST,
        "/v1/collections",
        OPERATOR,
        Some(serde_json::json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], name);
    body["id"].as_str().unwrap().to_owned()
}

/// A key of the collection with one scope: its secret.
async fn create_key(server: &Server, admin: &str, collection: &str, scope: Scope) -> String {
    let (status, body) = call(
        server,
        reqwest::Method::POST,
        "/v1/keys",
        admin,
        Some(serde_json::json!({ "collection": collection, "scopes": [scope.as_str()], "label": format!("{collection} {scope}") })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["collection"], collection);
    assert_eq!(body["scopes"], serde_json::json!([scope.as_str()]));
    body["key"].as_str().unwrap().to_owned()
}

async fn register(server: &Server, key: &str, photo: &[u8]) -> String {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo.to_vec(), "yao.jpg"))
        .text("name", "Yao Ming")
        .text("external_id", "player-11")
        .text("consent", "true");
    let (status, body) = server.post_form_as("/v1/register", key, form).await;
    assert_eq!(status, 201, "{body}");
    body["person"]["id"].as_str().unwrap().to_owned()
}

/// The route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190a5c2-7f3b-7c1e-9d4a-3b2c1d0e9f8a")
        .replace("{image_id}", "0190a5c2-7f3b-7c1e-9d4a-3b2c1d0e9f8a")
        .replace("{subject}", "Nobody")
}

/// Whether a key was refused for its scope on this route.
async fn refused_for_scope(
    server: &Server,
    method: &reqwest::Method,
    path: &str,
    key: &str,
    credential: Credential,
) -> bool {
    if credential == Credential::HeaderOrTicket {
        let url = format!("{}{path}", server.url.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        return match tokio_tungstenite::connect_async(request).await {
            Ok(_) => false,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                response.status() == 403 && body["error"]["code"] == "insufficient_scope"
            }
            Err(e) => panic!("{e}"),
        };
    }
    let (status, body) = call(server, method.clone(), path, key, None).await;
    // facerec's envelope, or a compatible API's format with facerec's code beside it.
    let code = body["error"]["code"]
        .as_str()
        .or(body["facerec_code"].as_str());
    let refused = status == 403 && code == Some("insufficient_scope");
    if refused && body["error"].is_object() {
        assert!(body["error"]["details"]["scope"].is_string(), "{body}");
    }
    refused
}

async fn isolation(db: Db) {
    let server = Server::start(db, &["--api-keys", OPERATOR]).await;
    let yao = registry_photo("vectron/yaoming.jpg");
    let mut keys: HashMap<(&str, Scope), String> = HashMap::new();
    for collection in ["alpha", "beta"] {
        create_collection(&server, collection).await;
        for scope in Scope::ALL {
            keys.insert(
                (collection, *scope),
                create_key(&server, OPERATOR, collection, *scope).await,
            );
        }
    }
    let key = |c: &'static str, s: Scope| keys[&(c, s)].clone();

    // Every keyed route, with a key of every scope: refused for its scope exactly when the table
    // gives the route another one.
    let routes = keyed_routes();
    assert!(
        routes.len() > 40,
        "the table holds /v1 and both compatible APIs"
    );
    for route in &routes {
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let path = concrete(route.path);
        for scope in Scope::ALL {
            let refused = refused_for_scope(
                &server,
                &method,
                &path,
                &key("alpha", *scope),
                route.credential,
            )
            .await;
            assert_eq!(
                refused,
                *scope != route.scope,
                "{} {} with a `{scope}` key (the table says `{}`)",
                route.method,
                route.path,
                route.scope
            );
        }
    }

    // (The walk ran on empty collections: it deletes whatever its routes delete.)
    // One person of the same name and external id in each collection.
    let alpha_yao = register(&server, &key("alpha", Scope::Enroll), &yao).await;
    let beta_yao = register(&server, &key("beta", Scope::Enroll), &yao).await;
    assert_ne!(alpha_yao, beta_yao);
    let manage = key("alpha", Scope::Manage);
    let recognize = key("alpha", Scope::Recognize);
    // Listings and totals: only alpha's person.
    let (status, page) = call(&server, reqwest::Method::GET, "/v1/persons", &manage, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], alpha_yao.as_str());
    // Beta's person does not exist for alpha's keys, whatever the route.
    for path in [
        format!("/v1/persons/{beta_yao}"),
        format!("/v1/persons/{beta_yao}/faces"),
        format!("/v1/persons/{beta_yao}/export"),
    ] {
        let answer = call(&server, reqwest::Method::GET, &path, &manage, None).await;
        expect(answer, 404, "person_not_found");
    }
    let answer = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/v1/persons/{beta_yao}"),
        &manage,
        None,
    )
    .await;
    expect(answer, 404, "person_not_found");
    let answer = call(
        &server,
        reqwest::Method::PATCH,
        &format!("/v1/persons/{beta_yao}"),
        &manage,
        Some(serde_json::json!({ "name": "Renamed" })),
    )
    .await;
    expect(answer, 404, "person_not_found");
    // Recognition names alpha's person; verification against beta's is not found.
    let form = reqwest::multipart::Form::new().part("image", image_part(yao.clone(), "p.jpg"));
    let (status, body) = server.post_form_as("/v1/recognize", &recognize, form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["faces"][0]["match"]["person_id"], alpha_yao.as_str());
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao.clone(), "p.jpg"))
        .text("person_id", beta_yao.clone());
    expect(
        server.post_form_as("/v1/verify", &recognize, form).await,
        404,
        "person_not_found",
    );
    // The audit log of alpha names alpha's person and never beta's.
    let (status, audit) = call(
        &server,
        reqwest::Method::GET,
        "/v1/audit?limit=1000",
        &manage,
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let events = audit["items"].as_array().unwrap();
    assert!(events.iter().any(|e| e["person_id"] == alpha_yao.as_str()));
    assert!(
        events.iter().all(|e| e["person_id"] != beta_yao.as_str()),
        "{audit}"
    );
    let (_, alpha) = call(&server, reqwest::Method::GET, "/v1/me", &recognize, None).await;
    let alpha_id = alpha["collection"]["id"].clone();
    assert!(events.iter().all(|e| e["collection_id"] == alpha_id));
    assert_eq!(alpha["collection"]["name"], "alpha");
    assert_eq!(alpha["scopes"], serde_json::json!(["recognize"]));
    // A key cannot name another collection; the operator can.
    let answer = server
        .client
        .get(format!("{}/v1/me", server.url))
        .bearer_auth(&recognize)
        .header("x-facerec-collection", "beta")
        .send()
        .await
        .unwrap();
    expect(json(answer).await, 404, "collection_not_found");
    let answer = server
        .client
        .get(format!("{}/v1/persons", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", "beta")
        .send()
        .await
        .unwrap();
    let (status, page) = json(answer).await;
    assert_eq!(
        (status, page["items"][0]["id"].as_str()),
        (200, Some(beta_yao.as_str()))
    );
    // The compatible APIs: a key is its collection's subjects.
    let (status, subjects) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/recognition/subjects",
        &manage,
        None,
    )
    .await;
    assert_eq!(
        (status, subjects["subjects"].clone()),
        (200, serde_json::json!(["Yao Ming"]))
    );
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/recognition/subjects",
        &key("beta", Scope::Manage),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The stream: alpha's recognize key sees alpha's person.
    let frame = support::video::frame_from(&yao);
    let url = format!("{}/v1/stream", server.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {recognize}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            frame.into(),
        ))
        .await
        .unwrap();
    let answer = loop {
        match socket.next().await.unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(text) => break text,
            _ => continue,
        }
    };
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["faces"][0]["match"]["person_id"],
        alpha_yao.as_str(),
        "{answer}"
    );
    drop(socket);
    // Metrics are the operator's: a collection's key does not read them.
    let answer = call(&server, reqwest::Method::GET, "/metrics", &manage, None).await;
    expect(answer, 403, "insufficient_scope");
    // Nor do their labels name a person or an id (routes are labelled by their template).
    let (status, metrics) = call(&server, reqwest::Method::GET, "/metrics", OPERATOR, None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200);
    assert!(metrics.contains("facerec_"), "{metrics}");
    for secret in [alpha_yao.as_str(), beta_yao.as_str(), "Yao Ming"] {
        assert!(!metrics.contains(secret), "/metrics names {secret}");
    }
    // Deleting beta takes its person and its keys.
    let (status, deleted) = call(
        &server,
        reqwest::Method::DELETE,
        "/v1/collections/beta",
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (
            deleted["persons_deleted"].as_u64(),
            deleted["keys_deleted"].as_u64()
        ),
        (Some(1), Some(5))
    );
    let answer = call(
        &server,
        reqwest::Method::GET,
        "/v1/me",
        &key("beta", Scope::Recognize),
        None,
    )
    .await;
    expect(answer, 401, "invalid_api_key");
    // An unknown collection, by id or by name, is not found.
    for path in [
        "/v1/collections/0190a5c2-7f3b-7c1e-9d4a-3b2c1d0e9f8a",
        "/v1/collections/beta",
    ] {
        let answer = call(&server, reqwest::Method::GET, path, OPERATOR, None).await;
        expect(answer, 404, "collection_not_found");
    }
    let answer = call(
        &server,
        reqwest::Method::DELETE,
        "/v1/collections/default",
        OPERATOR,
        None,
    )
    .await;
    expect(answer, 422, "invalid_collection");
    let (_, page) = call(&server, reqwest::Method::GET, "/v1/persons", &manage, None).await;
    assert_eq!(page["total"], 1, "alpha is untouched");
}

#[tokio::test]
async fn collections_are_isolated_on_sqlite() {
    isolation(Db::Sqlite).await;
}

#[tokio::test]
async fn collections_are_isolated_on_postgres() {
    isolation(Db::Postgres).await;
}

/// Polls until the key is refused: how long it took.
async fn until_refused(server: &Server, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = call(server, reqwest::Method::GET, "/v1/me", key, None).await;
        if status == 401 {
            assert_eq!(body["error"]["code"], "invalid_api_key");
            return started.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_by_the_other() {
    let database = new_postgres_database().await;
    let a = Server::start(Db::Url(database.clone()), &["--api-keys", OPERATOR]).await;
    let b = Server::start(Db::Url(database), &["--api-keys", OPERATOR]).await;
    let secret = create_key(&a, OPERATOR, "default", Scope::Recognize).await;
    let (status, me) = call(&b, reqwest::Method::GET, "/v1/me", &secret, None).await;
    assert_eq!(status, 200, "{me}");
    let id = me["key_id"].as_str().unwrap().to_owned();
    let (status, revoked) = call(
        &a,
        reqwest::Method::DELETE,
        &format!("/v1/keys/{id}"),
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let on_a = until_refused(&a, &secret).await;
    let on_b = until_refused(&b, &secret).await;
    println!(
        "revocation took effect after {on_a:?} on the revoking replica, {on_b:?} on the other"
    );
    assert!(on_a < Duration::from_millis(500), "{on_a:?}");
    // The documented delay: the key cache's TTL (1 s), plus a request's time.
    assert!(
        on_b < facerec_service::access::CACHE_TTL + Duration::from_secs(1),
        "{on_b:?}"
    );
    let (status, keys) = call(&b, reqwest::Method::GET, "/v1/keys", OPERATOR, None).await;
    assert_eq!(status, 200);
    let listed = keys["items"].as_array().unwrap();
    assert!(
        listed.iter().all(|k| k.get("key").is_none()),
        "no secret in a listing"
    );
    assert!(listed
        .iter()
        .any(|k| k["id"] == id.as_str() && k["revoked_at"].is_string()));
}

#[tokio::test]
async fn keys_from_the_command_line_work_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    let facerec = |args: &[&str]| {
        let output = facerec_offline(&url, args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    facerec(&["collections", "create", "door"]);
    let created: serde_json::Value = serde_json::from_str(&facerec(&[
        "keys",
        "create",
        "--collection",
        "door",
        "--scopes",
        "recognize,enroll",
        "--label",
        "front door",
        "--json",
    ]))
    .unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let listed = facerec(&["keys", "list"]);
    assert!(
        listed.contains("front door") && listed.contains("door") && !listed.contains(&secret),
        "{listed}"
    );
    let server = Server::start(Db::Url(url.clone()), &["--api-keys", OPERATOR]).await;
    let (status, me) = call(&server, reqwest::Method::GET, "/v1/me", &secret, None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["collection"]["name"], "door");
    assert_eq!(me["scopes"], serde_json::json!(["recognize", "enroll"]));
    let id = created["id"].as_str().unwrap();
    // The server holds the SQLite file, so the revocation goes through its API.
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/v1/keys/{id}"),
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(status, 200);
    until_refused(&server, &secret).await;
}
