//! Events (#29) from a running server: webhooks received by a real HTTP listener that checks each
//! signature with its own Standard Webhooks code, in order and at least once through an endpoint
//! that is down for a while and a `kill -9`; once each with two replicas on one PostgreSQL;
//! server-side request forgery refused; MQTT read back from Debian's mosquitto with its own
//! client (`mosquitto_sub`), through a broker restart, with Home Assistant discovery and a deleted
//! person's retained topics cleared; a broker that refuses the login changes no answer.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::mqtt::{Broker, Subscriber};
use support::receiver::{verify, Receiver};
use support::*;

const KEY: &str = "events-operator-key-0123456789ab";

async fn recognize(server: &Server, image: Vec<u8>, source: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(image, "photo.jpg"))
        .text("source", source.to_owned());
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Yao Ming's photo recognized with `key` (200 asserted), as seen by `source`.
async fn recognize_as(server: &Server, key: &str, source: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("source", source.to_owned());
    let (status, body) = server.post_form_as("/v1/recognize", key, form).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// What the broker retains under the collection `name` (its topics, and the entities whose
/// configuration names them), once `done` holds for it (within 10 s; then as it is).
async fn retained_under(
    broker: &Broker,
    name: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let prefix = format!("facerec/{name}/");
    retained_when(
        broker,
        |(t, p)| t.starts_with(&prefix) || p.contains(&prefix),
        done,
    )
    .await
}

/// The retained (topic, payload) pairs `about` keeps, once `done` holds for them (within 10 s;
/// then as they are).
async fn retained_when(
    broker: &Broker,
    about: impl Fn(&(String, String)) -> bool,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut held = Vec::new();
    for _ in 0..40 {
        held = broker
            .retained(&["facerec/#", "homeassistant/#"])
            .into_iter()
            .filter(&about)
            .collect();
        if done(&held) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    held
}

async fn register_yao(server: &Server) -> String {
    register_person(server, "vectron/yaoming.jpg", "Yao Ming").await
}

async fn create_webhook(server: &Server, url: &str, events: Option<&[&str]>) -> (u16, Value) {
    let mut body = json!({ "url": url });
    if let Some(events) = events {
        body["events"] = json!(events);
    }
    call(server, Method::POST, "/v1/webhooks", KEY, Some(body)).await
}

/// Why a webhook's last delivery failed, once one has (within 10 s).
async fn last_error(server: &Server, hook: &str) -> String {
    for _ in 0..100 {
        let path = format!("/v1/webhooks/{hook}");
        let (_, webhook) = call(server, Method::GET, &path, KEY, None).await;
        if let Some(error) = webhook["last_error"].as_str() {
            return error.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("webhook {hook} never failed");
}

fn server_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--api-keys".to_owned(), KEY.to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn start(db: Db, extra: &[&str]) -> Server {
    let args = server_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(db, &args).await
}

#[tokio::test]
async fn webhooks_are_signed_in_order_and_survive_an_endpoint_down_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    let receiver = Receiver::start().await;
    let server = start(Db::Url(url.clone()), &["--webhook-allow-private-networks"]).await;
    let yao = register_yao(&server).await;
    let (status, created) = create_webhook(&server, &receiver.url, None).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let hook = created["id"].as_str().unwrap().to_owned();
    // The secret is shown once.
    let (_, listed) = call(&server, Method::GET, "/v1/webhooks", KEY, None).await;
    assert_eq!(listed["items"][0]["id"], hook.as_str(), "{listed}");
    assert!(listed["items"][0].get("secret").is_none(), "{listed}");
    // Wait until the server hears of its webhook (it reads the destinations every 2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // One event per face: recognized, unknown (a group photo's strangers; Yao Ming among them),
    // none.
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "front-door").await;
    let group = recognize(&server, registry_photo("vectron/players.jpg"), "garage").await;
    let faces = group["faces"].as_array().unwrap();
    assert!(faces.len() >= 3, "{group}");
    recognize(&server, grey_png(), "porch").await;
    let expected = 1 + faces.len() + 1;
    let received = receiver.wait_for(20, |r| r.len() >= expected).await;
    for delivery in &received {
        verify(&secret, delivery).unwrap_or_else(|e| panic!("{e}: {delivery:?}"));
        assert_eq!(delivery.body["data"]["id"], delivery.id.as_str());
    }
    let types: Vec<&str> = received
        .iter()
        .map(|d| d.body["type"].as_str().unwrap())
        .collect();
    // In the order they happened, the group's in the answer's order.
    assert_eq!(types[0], "face.recognized", "{types:?}");
    for (face, delivery) in faces.iter().zip(&received[1..]) {
        let kind = match face["match"].is_null() {
            true => "face.unknown",
            false => "face.recognized",
        };
        assert_eq!(delivery.body["type"], kind, "{types:?}");
        assert_eq!(delivery.body["data"]["source"], "garage");
        let x1 = delivery.body["data"]["box"]["x1"].as_f64().unwrap();
        assert!(
            (x1 - face["bbox"][0].as_f64().unwrap()).abs() < 1e-3,
            "{face}"
        );
    }
    assert_eq!(types[faces.len() + 1], "face.none", "{types:?}");
    let first = &received[0].body["data"];
    assert_eq!(first["person"]["id"], yao.as_str(), "{first}");
    assert_eq!(first["person"]["name"], "Yao Ming");
    assert_eq!(first["source"], "front-door");
    assert_eq!(first["collection"]["name"], "default");
    assert!(first["similarity"].as_f64().unwrap() > first["threshold"].as_f64().unwrap());
    assert!(first.get("estimated_fpir").is_some(), "{first}");
    assert!(first["box"]["x2"].as_f64().unwrap() > 0.0, "{first}");
    assert!(first.get("embedding").is_none(), "{first}");
    assert_eq!(received[faces.len() + 1].body["data"]["source"], "porch");
    let (_, deliveries) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{hook}/deliveries"),
        KEY,
        None,
    )
    .await;
    assert!(
        deliveries["items"].as_array().unwrap().len() >= expected,
        "{deliveries}"
    );
    assert_eq!(
        deliveries["items"][0]["status"], "delivered",
        "{deliveries}"
    );

    // Where the collection captures, an event names the capture its answer named.
    let (status, body) = call(
        &server,
        Method::PATCH,
        "/v1/collections/default",
        KEY,
        Some(json!({ "settings": { "capture": "all" } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = receiver.received().len();
    let answer = recognize(&server, registry_photo("vectron/yaoming.jpg"), "kept").await;
    let kept = answer["faces"][0]["capture_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = receiver.wait_for(20, |r| r.len() > before).await;
    assert_eq!(received[before].body["data"]["capture_id"], kept.as_str());

    // The endpoint down for a while: every event arrives afterwards, in order.
    receiver.answer(503, "");
    let before = receiver.received().len();
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "down-1").await;
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "down-2").await;
    receiver.wait_for(20, |r| r.len() >= before + 2).await;
    let (_, failing) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{hook}"),
        KEY,
        None,
    )
    .await;
    assert!(
        failing["failing_attempts"].as_u64().unwrap() >= 1,
        "{failing}"
    );
    assert!(
        failing["last_error"].as_str().unwrap().contains("503"),
        "{failing}"
    );
    receiver.answer(200, "");
    let received = receiver
        .wait_for(30, |r| {
            let ok: Vec<_> = r
                .iter()
                .filter(|d| d.body["data"]["source"] == "down-2")
                .collect();
            !ok.is_empty()
        })
        .await;
    let sources: Vec<&str> = received[before..]
        .iter()
        .map(|d| d.body["data"]["source"].as_str().unwrap())
        .collect();
    let first_down2 = sources.iter().position(|s| *s == "down-2").unwrap();
    assert!(
        sources[..first_down2].contains(&"down-1"),
        "down-1 before down-2: {sources:?}"
    );

    // `kill -9` with undelivered events: delivered after the restart, with the same ids.
    receiver.answer(503, "");
    let before = receiver.received().len();
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "killed").await;
    let attempted = receiver.wait_for(20, |r| r.len() > before).await;
    let pending = attempted[before].id.clone();
    assert!(std::process::Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    drop(server);
    receiver.answer(200, "");
    let server = start(Db::Url(url), &["--webhook-allow-private-networks"]).await;
    let received = receiver
        // The killed server's lease on the webhook (30 s) has to lapse first.
        .wait_for(75, |r| r.iter().filter(|d| d.id == pending).count() >= 2)
        .await;
    let last = received.iter().rev().find(|d| d.id == pending).unwrap();
    verify(&secret, last).unwrap();
    assert_eq!(last.body["data"]["source"], "killed");

    // Deleted: nothing more is sent.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v1/webhooks/{hook}"),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 204);
    expect(
        call(
            &server,
            Method::GET,
            &format!("/v1/webhooks/{hook}"),
            KEY,
            None,
        )
        .await,
        404,
        "webhook_not_found",
    );
}

#[tokio::test]
async fn webhooks_refuse_forged_destinations_and_bad_input() {
    let receiver = Receiver::start().await;
    let strict = start(Db::Sqlite, &[]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.0.0.1/hook",
        // Written as URL parsers read them: still loopback and metadata.
        "http://2130706433/hook",
        "http://0:9/",
        "http://0x7f.1/",
        "http://2852039166/latest",
        "http://[::ffff:127.0.0.1]/",
    ] {
        expect(
            create_webhook(&strict, url, None).await,
            422,
            "webhook_address_refused",
        );
    }
    for url in [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "example.com",
        "https://u:p@example.com/",
    ] {
        expect(
            create_webhook(&strict, url, None).await,
            422,
            "invalid_webhook",
        );
    }
    expect(
        create_webhook(&strict, "https://example.com/x", Some(&["face.seen"])).await,
        422,
        "invalid_webhook",
    );
    expect(
        call(
            &strict,
            Method::POST,
            "/v1/webhooks",
            KEY,
            Some(json!({"uri": "x"})),
        )
        .await,
        400,
        "invalid_request",
    );
    // A name that resolves to a private address: created, but never connected to.
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let by_name = format!("http://localhost:{port}/hook");
    let (status, created) = create_webhook(&strict, &by_name, None).await;
    assert_eq!(status, 201, "{created}");
    let hook = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    recognize(&strict, registry_photo("vectron/yaoming.jpg"), "cam").await;
    let reason = last_error(&strict, &hook).await;
    assert!(reason.contains("refused"), "{reason}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the listener"
    );

    // A redirect to the metadata address is not followed (private networks allowed, so that the
    // listener itself is reachable).
    let open = start(Db::Sqlite, &["--webhook-allow-private-networks"]).await;
    receiver.answer(302, "http://169.254.169.254/latest/meta-data");
    let (status, created) = create_webhook(&open, &receiver.url, None).await;
    assert_eq!(status, 201, "{created}");
    let hook = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    recognize(&open, registry_photo("vectron/yaoming.jpg"), "cam").await;
    receiver.wait_for(20, |r| !r.is_empty()).await;
    let reason = last_error(&open, &hook).await;
    assert!(reason.contains("redirects are not followed"), "{reason}");
    // Webhooks need `admin`.
    let collection = "default";
    let manager = new_key(&open, KEY, collection, &["manage", "recognize"]).await;
    expect(
        call(&open, Method::GET, "/v1/webhooks", &manager, None).await,
        403,
        "insufficient_scope",
    );
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    let receiver = Receiver::start().await;
    let url = new_postgres_database().await;
    let a = start(Db::Url(url.clone()), &["--webhook-allow-private-networks"]).await;
    let b = start(Db::Url(url), &["--webhook-allow-private-networks"]).await;
    register_yao(&a).await;
    let (status, created) = create_webhook(&a, &receiver.url, None).await;
    assert_eq!(status, 201, "{created}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        recognize(
            server,
            registry_photo("vectron/yaoming.jpg"),
            &format!("cam{i}"),
        )
        .await;
    }
    receiver.wait_for(30, |r| r.len() >= 10).await;
    // Give a duplicate time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 10, "{received:#?}");
    assert_eq!(received.len(), 10, "each event once: {received:#?}");
}

#[tokio::test]
async fn mqtt_tells_home_assistant_and_forgets_a_deleted_person() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/facerec.db", dir.path().display());
    let server = start(Db::Url(database.clone()), &["--mqtt-url", &broker.url()]).await;
    let subscriber = Subscriber::start(&broker, &["facerec/#", "homeassistant/#"]);
    let yao = register_yao(&server).await;
    // The server publishes once it has registered its MQTT destination (read every 2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "front-door").await;
    let events = subscriber
        .wait_for("facerec/default/events", |m| !m.is_empty())
        .await;
    let event: Value = serde_json::from_str(&events[0].payload).unwrap();
    assert_eq!(event["type"], "face.recognized", "{event}");
    assert_eq!(event["person"]["name"], "Yao Ming");
    assert!(!events[0].retained);
    let entity = subscriber
        .wait_for("facerec/default/sources/front-door/event", |m| {
            !m.is_empty()
        })
        .await;
    let fired: Value = serde_json::from_str(&entity[0].payload).unwrap();
    assert_eq!(fired["event_type"], "recognized", "{fired}");
    assert_eq!(fired["person"], "Yao Ming");
    // Retained: availability, the last sighting, the discovery of both entities.
    let retained = broker.retained(&["facerec/#", "homeassistant/#"]);
    let find = |topic: &str| {
        retained
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("{topic} is not retained: {retained:#?}"))
    };
    assert_eq!(find("facerec/available"), "online");
    let seen: Value =
        serde_json::from_str(&find(&format!("facerec/default/persons/{yao}/last_seen"))).unwrap();
    let time = seen["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{seen}");
    let sensor: Value = serde_json::from_str(&find(&format!(
        "homeassistant/sensor/facerec_default_{yao}_last_seen/config"
    )))
    .unwrap();
    assert_eq!(sensor["device_class"], "timestamp", "{sensor}");
    assert_eq!(
        sensor["state_topic"],
        format!("facerec/default/persons/{yao}/last_seen")
    );
    let door: Value = serde_json::from_str(&find(
        "homeassistant/event/facerec_default_front-door_faces/config",
    ))
    .unwrap();
    assert_eq!(
        door["event_types"],
        json!(["recognized", "unknown", "none"]),
        "{door}"
    );
    assert_eq!(
        door["state_topic"],
        "facerec/default/sources/front-door/event"
    );

    // The broker restarted mid-run: what happened while it was down arrives afterwards.
    broker.stop();
    recognize(&server, registry_photo("vectron/yaoming.jpg"), "garage").await;
    recognize(&server, grey_png(), "garage").await;
    broker.restart();
    let subscriber = Subscriber::start(&broker, &["facerec/#"]);
    let garage = subscriber
        .wait_for("facerec/default/events", |m| {
            m.iter()
                .filter(|x| x.payload.contains("\"garage\""))
                .count()
                >= 2
        })
        .await;
    let kinds: Vec<String> = garage
        .iter()
        .filter(|x| x.payload.contains("\"garage\""))
        .map(|x| {
            serde_json::from_str::<Value>(&x.payload).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds[..2], ["face.recognized", "face.none"], "{kinds:?}");

    // A deleted person leaves nothing on the broker, also what an earlier run of facerec published
    // (it reads back what the broker retains).
    let retained = broker.retained(&["facerec/#", "homeassistant/#"]);
    let about_yao = |(t, p): &(String, String)| t.contains(&yao) || p.contains(&yao);
    assert!(retained.iter().any(about_yao), "{retained:#?}");
    drop(server);
    let server = start(Db::Url(database), &["--mqtt-url", &broker.url()]).await;
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v1/persons/{yao}"),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let about_him = |m: &(String, String)| about_yao(m) || m.1.contains("Yao Ming");
    let left = retained_when(&broker, about_him, <[_]>::is_empty).await;
    assert!(
        left.is_empty(),
        "still retained about the deleted person: {left:#?}"
    );

    // A collection's retained topics go when it is renamed or deleted.
    new_collection(&server, KEY, "garden").await;
    let gardener = new_key(&server, KEY, "garden", &["enroll", "recognize"]).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("name", "Gardener")
        .text("consent", "true");
    let registered = server
        .client
        .post(format!("{}/v1/register", server.url))
        .bearer_auth(&gardener)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    recognize_as(&server, &gardener, "shed").await;
    let held = retained_under(&broker, "garden", |h| h.len() >= 3).await;
    assert!(
        held.len() >= 3,
        "the garden's last decision, last seen and entities: {held:#?}"
    );

    // Renamed, it leaves nothing under its old name; its next decisions come under the new one.
    let rename = json!({ "name": "orchard" });
    let (status, renamed) = call(
        &server,
        Method::PATCH,
        "/v1/collections/garden",
        KEY,
        Some(rename),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    let held = retained_under(&broker, "garden", <[_]>::is_empty).await;
    assert!(
        held.is_empty(),
        "still retained under the old name: {held:#?}"
    );
    let renamed = subscriber
        .wait_for("facerec/orchard/events", |m| !m.is_empty())
        .await;
    let told: Value = serde_json::from_str(&renamed[0].payload).unwrap();
    assert_eq!(
        (&told["type"], &told["renamed_from"]),
        (&json!("collection.renamed"), &json!("garden"))
    );
    recognize_as(&server, &gardener, "shed").await;
    let held = retained_under(&broker, "orchard", |h| h.len() >= 3).await;
    assert!(held.len() >= 3, "the orchard's retained topics: {held:#?}");

    // A deleted collection leaves nothing on the broker either.
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/v1/collections/orchard",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let held = retained_under(&broker, "orchard", <[_]>::is_empty).await;
    assert!(
        held.is_empty(),
        "still retained about the deleted collection: {held:#?}"
    );
}

#[tokio::test]
async fn a_broker_that_refuses_the_login_changes_no_answer() {
    let broker = Broker::with_login("facerec", "right-password");
    let wrong = format!("mqtt://facerec:wrong@127.0.0.1:{}", broker.port);
    let server = start(Db::Sqlite, &["--mqtt-url", &wrong]).await;
    register_yao(&server).await;
    let answer = recognize(&server, registry_photo("vectron/yaoming.jpg"), "cam").await;
    assert_eq!(answer["faces"][0]["match"]["name"], "Yao Ming", "{answer}");
    let mut errors = 0.0;
    for _ in 0..100 {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        errors = metrics
            .lines()
            .find(|l| l.starts_with("facerec_mqtt_connection_errors_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if errors > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(errors > 0.0, "the refused login is counted");
    // A URL that is not one is refused at start, naming the flag.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--mqtt-url",
            "http://broker",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--mqtt-url"), "{stderr}");
}

#[tokio::test]
async fn a_stream_tells_once_per_track_when_its_name_settles() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let receiver = Receiver::start().await;
    let server = start(Db::Sqlite, &["--webhook-allow-private-networks"]).await;
    let yao = register_yao(&server).await;
    let (status, created) = create_webhook(&server, &receiver.url, None).await;
    assert_eq!(status, 201, "{created}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut socket = open_stream(&server, "?source=hall", Some(KEY))
        .await
        .unwrap();
    let frame = support::video::frame_from(&registry_photo("vectron/yaoming.jpg"));
    for _ in 0..15 {
        socket
            .send(Message::Binary(frame.clone().into()))
            .await
            .unwrap();
        reply(&mut socket).await;
    }
    receiver.wait_for(20, |r| !r.is_empty()).await;
    // Fifteen frames of one face: one track, one event.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|d| d.body["data"]["source"] == "hall")
        .collect();
    assert_eq!(received.len(), 1, "{received:#?}");
    let event = &received[0].body["data"];
    assert_eq!(event["type"], "face.recognized", "{event}");
    assert_eq!(event["person"]["id"], yao.as_str());
    drop(socket);
}
