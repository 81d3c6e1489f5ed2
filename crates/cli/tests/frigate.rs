//! The Frigate bridge (#29) on a running server. Frigate itself cannot run here: the bridge talks
//! to a STAND-IN of Frigate's HTTP API (below), which serves the routes the bridge uses with the
//! shapes Frigate documents — `GET /api/events/{id}/snapshot.jpg`, `GET /api/{camera}/latest.jpg`,
//! `POST /api/events/{id}/sub_label` taking `{"subLabel" (≤ 100 characters), "subLabelScore" (in
//! (0, 1]), "camera"}` and answering `{"success", "message"}` (frigate/api/event.py,
//! `EventsSubLabelBody`) — and records the sub labels it is given. Frigate's event messages are
//! published in Frigate's format (`docs/docs/integrations/mqtt.md`, `frigate/events`) on a real
//! broker, Debian's mosquitto, where facerec's own events are read back.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};
use support::mqtt::{Broker, Subscriber};
use support::*;

const KEY: &str = "frigate-operator-key-0123456789ab";

/// The stand-in for Frigate's API: snapshots by event id, the latest frame by camera, and the sub
/// labels set (event id, body).
#[derive(Default)]
struct StandIn {
    snapshots: HashMap<String, Vec<u8>>,
    latest: Vec<u8>,
    sub_labels: Mutex<Vec<(String, Value)>>,
    latest_served: Mutex<u32>,
}

async fn snapshot(State(frigate): State<Arc<StandIn>>, Path(id): Path<String>) -> Response {
    match frigate.snapshots.get(&id) {
        Some(bytes) => ([("content-type", "image/jpeg")], bytes.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "message": "Event not found"})),
        )
            .into_response(),
    }
}

async fn latest(
    State(frigate): State<Arc<StandIn>>,
    Path(file): Path<(String, String)>,
) -> Response {
    if file.1 != "latest.jpg" {
        return StatusCode::NOT_FOUND.into_response();
    }
    *frigate.latest_served.lock().unwrap() += 1;
    ([("content-type", "image/jpeg")], frigate.latest.clone()).into_response()
}

async fn sub_label(
    State(frigate): State<Arc<StandIn>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    // As Frigate's pydantic model: subLabel ≤ 100 characters, subLabelScore in (0, 1].
    let label_ok = body["subLabel"]
        .as_str()
        .is_some_and(|l| l.chars().count() <= 100);
    let score_ok = body["subLabelScore"]
        .as_f64()
        .is_none_or(|s| s > 0.0 && s <= 1.0);
    if !label_ok || !score_ok {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": "invalid"})),
        )
            .into_response();
    }
    let message = format!(
        "Event {id} sub label set to {}",
        body["subLabel"].as_str().unwrap()
    );
    frigate.sub_labels.lock().unwrap().push((id, body));
    Json(json!({"success": true, "message": message})).into_response()
}

async fn start_stand_in(frigate: Arc<StandIn>) -> String {
    let app = axum::Router::new()
        .route("/api/events/{id}/snapshot.jpg", get(snapshot))
        .route("/api/events/{id}/sub_label", post(sub_label))
        .route("/api/{camera}/{file}", get(latest))
        .with_state(frigate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A `frigate/events` message as Frigate publishes it (the fields the docs list; the bridge
/// reads only some).
/// Publishes a Frigate event message on Frigate's topic.
fn publish_event(
    broker: &Broker,
    kind: &str,
    id: &str,
    camera: &str,
    label: &str,
    has_snapshot: bool,
) {
    broker.publish(
        "frigate/events",
        &frigate_event(kind, id, camera, label, has_snapshot),
    );
}

fn frigate_event(kind: &str, id: &str, camera: &str, label: &str, has_snapshot: bool) -> String {
    let object = json!({
        "id": id, "camera": camera, "frame_time": 1_700_000_000.5, "snapshot": null,
        "label": label, "sub_label": null, "top_score": 0.82, "false_positive": false,
        "start_time": 1_700_000_000.0, "end_time": if kind == "end" { json!(1_700_000_009.0) } else { Value::Null },
        "score": 0.8, "box": [10, 10, 200, 400], "area": 74_000, "ratio": 0.5,
        "region": [0, 0, 320, 320], "current_zones": [], "entered_zones": [],
        "has_clip": false, "has_snapshot": has_snapshot, "attributes": {"face": 0.86},
        "current_attributes": [], "active": true, "stationary": false
    });
    json!({"type": kind, "before": object, "after": object}).to_string()
}

/// facerec's events about Frigate event `id`, once `n` arrived.
async fn events_of(subscriber: &Subscriber, collection: &str, id: &str, n: usize) -> Vec<Value> {
    let needle = format!("\"frigate_event_id\":\"{id}\"");
    subscriber
        .wait_for(&format!("facerec/{collection}/events"), |m| {
            m.iter().filter(|x| x.payload.contains(&needle)).count() >= n
        })
        .await
        .into_iter()
        .filter(|x| x.payload.contains(&needle))
        .map(|x| serde_json::from_str(&x.payload).unwrap())
        .collect()
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_bridge_names_frigate_s_people_and_tells_the_house_once_per_event() {
    let frigate = Arc::new(StandIn {
        snapshots: HashMap::from([
            (
                "1700000000.1-yao".to_owned(),
                registry_photo("vectron/yaoming.jpg"),
            ),
            (
                "1700000000.2-strangers".to_owned(),
                registry_photo("insightface/t1.jpg"),
            ),
            ("1700000000.3-noface".to_owned(), grey_png()),
            (
                "1700000000.4-broken".to_owned(),
                b"<html>not an image</html>".to_vec(),
            ),
            (
                "1700000000.5-garage".to_owned(),
                registry_photo("vectron/yaoming.jpg"),
            ),
        ]),
        latest: registry_photo("vectron/yaoming.jpg"),
        ..StandIn::default()
    });
    let frigate_url = start_stand_in(Arc::clone(&frigate)).await;
    let broker = Broker::start();
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            KEY,
            "--mqtt-url",
            &broker.url(),
            "--frigate-url",
            &frigate_url,
            "--frigate-attempts",
            "2",
            "--frigate-cameras",
            "garage=staff",
        ],
    )
    .await;
    new_collection(&server, KEY, "staff").await;
    let subscriber = Subscriber::start(&broker, &["facerec/#"]);
    let yao = register_person(&server, "vectron/yaoming.jpg", "Yao Ming").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // Someone Frigate tracks is named in Frigate and told once, however many updates follow.
    let id = "1700000000.1-yao";
    publish_event(&broker, "new", id, "front_door", "person", true);
    let told = events_of(&subscriber, "default", id, 1).await;
    assert_eq!(told[0]["type"], "face.recognized", "{told:?}");
    assert_eq!(told[0]["person"]["id"], yao.as_str());
    assert_eq!(told[0]["source"], "front_door");
    for _ in 0..100 {
        if !frigate.sub_labels.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let labels = frigate.sub_labels.lock().unwrap();
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert_eq!(labels[0].0, id);
        assert_eq!(labels[0].1["subLabel"], "Yao Ming");
        let score = labels[0].1["subLabelScore"].as_f64().unwrap();
        assert!(score > 0.0 && score <= 1.0, "{score}");
    }
    publish_event(&broker, "update", id, "front_door", "person", true);
    publish_event(&broker, "end", id, "front_door", "person", true);

    // Strangers: told as unknown once the attempts (2) are spent, nobody named in Frigate.
    let id = "1700000000.2-strangers";
    publish_event(&broker, "new", id, "front_door", "person", true);
    publish_event(&broker, "update", id, "front_door", "person", true);
    let told = events_of(&subscriber, "default", id, 1).await;
    assert!(told.iter().all(|e| e["type"] == "face.unknown"), "{told:?}");

    // A person without a usable face: face.none when the event ends.
    let id = "1700000000.3-noface";
    publish_event(&broker, "new", id, "porch", "person", true);
    publish_event(&broker, "end", id, "porch", "person", true);
    let told = events_of(&subscriber, "default", id, 1).await;
    assert_eq!(told[0]["type"], "face.none", "{told:?}");
    assert_eq!(told[0]["source"], "porch");

    // No snapshot yet: the camera's latest frame.
    let id = "1700000000.6-latest";
    publish_event(&broker, "new", id, "front_door", "person", false);
    let told = events_of(&subscriber, "default", id, 1).await;
    assert_eq!(told[0]["type"], "face.recognized", "{told:?}");
    assert!(*frigate.latest_served.lock().unwrap() >= 1);

    // Bad input is counted and changes nothing: not JSON, not an event, another label, a snapshot
    // that is not an image.
    broker.publish("frigate/events", "garbage");
    broker.publish("frigate/events", r#"{"type":"new"}"#);
    broker.publish(
        "frigate/events",
        r#"{"type":"new","after":{"id":"../../api/config","camera":"x","label":"person"}}"#,
    );
    publish_event(&broker, "new", "1700000000.7-car", "drive", "car", true);
    publish_event(
        &broker,
        "new",
        "1700000000.4-broken",
        "front_door",
        "person",
        true,
    );

    // A mapped camera recognizes in its collection (staff has nobody: unknown there).
    let id = "1700000000.5-garage";
    publish_event(&broker, "new", id, "garage", "person", true);
    publish_event(&broker, "end", id, "garage", "person", true);
    let told = events_of(&subscriber, "staff", id, 1).await;
    assert_eq!(told[0]["type"], "face.unknown", "{told:?}");
    assert_eq!(told[0]["collection"]["name"], "staff");

    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metric(
            &metrics,
            "facerec_frigate_messages_total{outcome=\"malformed\"}"
        ) >= 3.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "facerec_frigate_messages_total{outcome=\"ignored\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &metrics,
            "facerec_frigate_snapshots_total{outcome=\"invalid\"}"
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "facerec_frigate_sub_labels_total{outcome=\"set\"}"
        ),
        2.0
    );
    assert_eq!(
        frigate.sub_labels.lock().unwrap().len(),
        2,
        "one per named event"
    );
    // The bridge still answers, and so does the server.
    let (status, _) = call(&server, Method::GET, "/v1/persons", KEY, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_bridge_without_a_broker_is_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--frigate-url",
            "http://frigate:5000",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--mqtt-url"), "{stderr}");
}
