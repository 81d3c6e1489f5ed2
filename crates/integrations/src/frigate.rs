//! The Frigate bridge, in Double Take's place: it listens to Frigate's `frigate/events` on the
//! broker facerec publishes to, and for a tracked object of the configured labels takes its
//! snapshot from Frigate's HTTP API (`/api/events/{id}/snapshot.jpg`, or the camera's
//! `/api/{camera}/latest.jpg` while there is none) a bounded number of times per event, until a
//! face is named. It recognizes in the collection mapped from the camera, with the camera as the
//! source; writes the name back (`POST /api/events/{id}/sub_label`); and tells the house once per
//! Frigate event: the recognition that named someone, or, when the attempts end, the last that
//! showed faces (unknown) or none.
//!
//! Shapes from Frigate's own docs and source: `docs/docs/integrations/mqtt.md` (`frigate/events`:
//! `{type: new|update|end, before, after: {id, camera, label, sub_label, has_snapshot, …}}`) and
//! `frigate/api/event.py` (`EventsSubLabelBody`: `subLabel` ≤ 100 characters, `subLabelScore` in
//! (0, 1]). Messages that are not these are logged and counted, never fatal.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use facerec_core::capture::Source;
use facerec_core::events::EventData;
use facerec_core::{Actor, CollectionRef};
use facerec_service::{App, CaptureContext, RecognizeOptions};
use serde_json::Value;
use tokio::sync::mpsc;

/// Frigate events followed at once, at most; beyond it the oldest are forgotten.
pub const TRACKED_MAX: usize = 1_000;
/// Messages from the broker waiting for the bridge, at most; beyond it they are dropped and
/// counted (`facerec_frigate_messages_total{outcome="dropped"}`).
pub const QUEUE: usize = 256;
/// How long a call to Frigate's API may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Frigate's limit on a sub label's length (`EventsSubLabelBody.subLabel`).
const SUB_LABEL_MAX: usize = 100;

/// How the bridge reaches Frigate and where it recognizes.
#[derive(Debug, Clone)]
pub struct FrigateConfig {
    /// Frigate's API, e.g. `http://frigate:5000`.
    pub url: String,
    /// Frigate's MQTT topic prefix (`frigate`).
    pub topic: String,
    /// The labels of the tracked objects looked at (`person`).
    pub labels: Vec<String>,
    /// Snapshots taken per Frigate event, at most.
    pub attempts: u32,
    /// Camera → collection; a camera not named here recognizes in `collection`.
    pub cameras: HashMap<String, String>,
    pub collection: String,
}

/// The part of a `frigate/events` message the bridge reads.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    kind: Kind,
    id: String,
    camera: String,
    label: String,
    has_snapshot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Update,
    End,
}

/// Reads a `frigate/events` message, tolerating every field it does not need.
fn parse(payload: &[u8]) -> Result<Message, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let kind = match value.get("type").and_then(Value::as_str) {
        Some("new") => Kind::New,
        Some("update") => Kind::Update,
        Some("end") => Kind::End,
        other => return Err(format!("type {other:?} is not new, update or end")),
    };
    let after = value
        .get("after")
        .filter(|a| a.is_object())
        .ok_or("no 'after' object")?;
    let text = |field: &str| {
        after
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_owned)
            .ok_or_else(|| format!("after.{field} is missing or not a short string"))
    };
    let id = text("id")?;
    // An id goes into a URL path: Frigate's are `<seconds>.<fraction>-<random>`.
    let shaped = id.split_once('-').is_some_and(|(time, random)| {
        time.split_once('.').is_some_and(|(s, f)| {
            !s.is_empty()
                && !f.is_empty()
                && s.chars().all(|c| c.is_ascii_digit())
                && f.chars().all(|c| c.is_ascii_digit())
        }) && !random.is_empty()
            && random.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if !shaped {
        return Err(format!("after.id '{id}' is not a Frigate event id"));
    }
    let camera = text("camera")?;
    if !camera
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(format!(
            "after.camera '{camera}' is not a Frigate camera name"
        ));
    }
    Ok(Message {
        kind,
        id,
        camera,
        label: text("label")?,
        has_snapshot: after
            .get("has_snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// What the bridge knows of one Frigate event.
#[derive(Default)]
struct Tracked {
    attempts: u32,
    /// The events were told (named, or the attempts ended).
    told: bool,
    /// What the last snapshot recognized would tell (preferring one that showed faces): its
    /// events, not the recognition (no embeddings held).
    last: Option<(bool, Vec<EventData>)>,
}

fn count(what: &'static str, outcome: &'static str) {
    metrics::counter!(what, "outcome" => outcome).increment(1);
}

/// Runs until the broker's messages end.
pub async fn run(app: Arc<App>, config: FrigateConfig, mut messages: mpsc::Receiver<Bytes>) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("facerec/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "the Frigate bridge cannot build its HTTP client");
            return;
        }
    };
    let bridge = Bridge {
        app,
        base: config.url.trim_end_matches('/').to_owned(),
        config,
        client,
    };
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut order: VecDeque<String> = VecDeque::new();
    while let Some(payload) = messages.recv().await {
        let message = match parse(&payload) {
            Ok(message) => message,
            Err(why) => {
                tracing::warn!(%why, "a frigate/events message the bridge cannot read");
                count("facerec_frigate_messages_total", "malformed");
                continue;
            }
        };
        if !bridge.config.labels.contains(&message.label) {
            count("facerec_frigate_messages_total", "ignored");
            continue;
        }
        count("facerec_frigate_messages_total", "handled");
        if !tracked.contains_key(&message.id) {
            if tracked.len() >= TRACKED_MAX {
                if let Some(oldest) = order.pop_front() {
                    tracked.remove(&oldest);
                }
            }
            order.push_back(message.id.clone());
        }
        let state = tracked.entry(message.id.clone()).or_default();
        bridge.handle(&message, state).await;
        if message.kind == Kind::End {
            tracked.remove(&message.id);
            order.retain(|id| *id != message.id);
        }
    }
}

struct Bridge {
    app: Arc<App>,
    config: FrigateConfig,
    base: String,
    client: reqwest::Client,
}

impl Bridge {
    async fn handle(&self, message: &Message, state: &mut Tracked) {
        if state.told {
            return;
        }
        if message.kind != Kind::End && state.attempts < self.config.attempts {
            state.attempts += 1;
            self.attempt(message, state).await;
        }
        let ended = message.kind == Kind::End || state.attempts >= self.config.attempts;
        if !state.told && ended {
            state.told = true;
            if let Some((_, events)) = state.last.take() {
                self.app.events().tell(events);
            }
        }
    }

    /// One snapshot, recognized; a name found is written back to Frigate and told.
    async fn attempt(&self, message: &Message, state: &mut Tracked) {
        let Some(caller) = self.caller(&message.camera).await else {
            return;
        };
        let url = match message.has_snapshot {
            true => format!(
                "{}/api/events/{}/snapshot.jpg?crop=1&quality=95",
                self.base, message.id
            ),
            false => format!("{}/api/{}/latest.jpg?quality=95", self.base, message.camera),
        };
        let snapshot = match self.fetch(&url).await {
            Ok(bytes) => bytes,
            Err(why) => {
                tracing::warn!(%url, %why, "no snapshot from Frigate");
                count("facerec_frigate_snapshots_total", "unavailable");
                return;
            }
        };
        let source = Source::from_label(&message.camera);
        let options = RecognizeOptions {
            capture: CaptureContext {
                source: Some(source.clone()),
                route: "frigate",
            },
            tell: false,
            ..RecognizeOptions::default()
        };
        let image = match self.app.recognize(&caller, snapshot, &options).await {
            Ok(image) => image,
            // The camera's collection is bound to a model pack this server has not loaded: the
            // operator's to fix, not the snapshot's fault.
            Err(e) if e.code() == facerec_core::ErrorCode::ModelUnavailable => {
                tracing::warn!(camera = %message.camera, error = %e, "a Frigate camera's collection cannot be served");
                count("facerec_frigate_snapshots_total", "model_unavailable");
                return;
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, code = e.code().as_str(), "a Frigate snapshot facerec cannot read");
                count("facerec_frigate_snapshots_total", "invalid");
                return;
            }
        };
        count("facerec_frigate_snapshots_total", "recognized");
        let best = image
            .faces
            .iter()
            .filter_map(|f| f.recognition.matched.as_ref())
            .max_by(|a, b| a.similarity.value().total_cmp(&b.similarity.value()));
        if let Some(named) = best {
            self.set_sub_label(
                &message.id,
                &message.camera,
                &named.name,
                named.similarity.value(),
            )
            .await;
            state.told = true;
            self.app
                .events()
                .tell_recognized(&caller, &source, &image, Some(&message.id));
            return;
        }
        let showed_faces = !image.faces.is_empty();
        if showed_faces || state.last.as_ref().is_none_or(|(faces, _)| !faces) {
            let events = self
                .app
                .events()
                .events_of(&caller, &source, &image, Some(&message.id));
            state.last = Some((showed_faces, events));
        }
    }

    async fn caller(&self, camera: &str) -> Option<facerec_core::Caller> {
        let name = self
            .config
            .cameras
            .get(camera)
            .unwrap_or(&self.config.collection);
        match self
            .app
            .access()
            .local_operator(&CollectionRef::Name(name.clone()))
            .await
        {
            Ok(mut caller) => {
                caller.actor = Actor("frigate-bridge".into());
                Some(caller)
            }
            Err(e) => {
                tracing::warn!(camera, collection = %name, error = %e, "the Frigate bridge has no collection for this camera");
                count("facerec_frigate_messages_total", "no_collection");
                None
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Bytes, String> {
        let answer = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        answer.bytes().await.map_err(|e| e.to_string())
    }

    async fn set_sub_label(&self, id: &str, camera: &str, name: &str, similarity: f32) {
        let label: String = name.chars().take(SUB_LABEL_MAX).collect();
        // Frigate takes a score in (0, 1].
        let score = (f64::from(similarity) * 100.0).round() / 100.0;
        let body = serde_json::json!({
            "subLabel": label,
            "subLabelScore": score.clamp(0.01, 1.0),
            "camera": camera,
        });
        let url = format!("{}/api/events/{id}/sub_label", self.base);
        match self.client.post(&url).json(&body).send().await {
            Ok(answer) if answer.status().is_success() => {
                count("facerec_frigate_sub_labels_total", "set")
            }
            Ok(answer) => {
                tracing::warn!(%url, status = %answer.status(), "Frigate refused the sub label");
                count("facerec_frigate_sub_labels_total", "failed");
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "cannot reach Frigate to set the sub label");
                count("facerec_frigate_sub_labels_total", "failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frigate_events_and_refuses_what_is_not_one() {
        let new = br#"{"type":"new","before":{},"after":{"id":"1607123955.475377-mxklsc",
            "camera":"front_door","label":"person","sub_label":null,"has_snapshot":true,
            "score":0.7,"current_zones":[],"attributes":{"face":0.86}}}"#;
        assert_eq!(
            parse(new).unwrap(),
            Message {
                kind: Kind::New,
                id: "1607123955.475377-mxklsc".into(),
                camera: "front_door".into(),
                label: "person".into(),
                has_snapshot: true,
            }
        );
        // Frigate sets sub_label as [name, score] (or [null, null] once cleared): tolerated.
        let named = br#"{"type":"end","after":{"id":"1.2-x","camera":"c","label":"person","sub_label":["Alice",0.93]}}"#;
        assert!(
            parse(br#"{"type":"new","after":{"id":"..","camera":"c","label":"person"}}"#).is_err()
        );
        assert!(parse(
            br#"{"type":"new","after":{"id":"1.2-../x","camera":"c","label":"person"}}"#
        )
        .is_err());
        assert_eq!(parse(named).unwrap().kind, Kind::End);
        for bad in [
            &b"not json"[..],
            br#"{"type":"new"}"#,
            br#"{"type":"moved","after":{"id":"1","camera":"c","label":"person"}}"#,
            br#"{"type":"new","after":{"id":"../../api/config","camera":"c","label":"person"}}"#,
            br#"{"type":"new","after":{"id":"1","camera":"a/b","label":"person"}}"#,
            br#"{"type":"new","after":{"id":1,"camera":"c","label":"person"}}"#,
            br#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
