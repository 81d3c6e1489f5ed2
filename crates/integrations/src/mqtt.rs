//! The MQTT destination: every event on `<prefix>/<collection>/events`, the last decision per
//! source and the last sighting per person retained, `<prefix>/available` retained (`online`;
//! `offline` as the last will), and Home Assistant discovery — per source an `event` entity, per
//! person a "last seen" timestamp sensor. A `person.deleted` event clears everything retained
//! about that person (their topics, their entity, a source's last decision that names them).
//! QoS 1 throughout; a batch counts as delivered when the broker acknowledged each message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facerec_core::events::{Event, EventData, EventType};
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Packet, QoS, Transport};
use serde_json::json;
use tokio::sync::{mpsc, watch};

/// Messages the client may hold before `publish` waits (one batch of events at a time).
const CLIENT_CAPACITY: usize = 256;
/// How long the broker has to acknowledge a batch.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection backoff: from 1 s, doubling, at most 30 s.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Discovery configurations this process remembers having published (per entity), at most;
/// beyond it they are published again, which is harmless.
const ANNOUNCED_MAX: usize = 10_000;
/// Sources whose retained last decision this process remembers the person of, at most.
const LAST_BY_SOURCE_MAX: usize = 10_000;

/// How to reach the broker and name the topics.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `mqtt://user:pass@host:1883` or `mqtts://…:8883`.
    pub url: String,
    /// Topics start with this (default `facerec`).
    pub prefix: String,
    /// Home Assistant's discovery prefix (default `homeassistant`); `None`: no discovery.
    pub discovery_prefix: Option<String>,
    /// A PEM file of the certificate authorities an `mqtts` broker is checked against (default:
    /// the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// Frigate's topic prefix, when the Frigate bridge listens on this broker.
    pub frigate_topic: Option<String>,
}

/// A connection to the broker, kept up by its own task.
pub struct Mqtt {
    client: AsyncClient,
    config: MqttConfig,
    connected: watch::Receiver<bool>,
    acks: tokio::sync::Mutex<mpsc::UnboundedReceiver<u16>>,
    /// Discovery configurations published since the last (re)connection: a broker that restarted
    /// without persistence, or Home Assistant starting (`<discovery>/status` `online`), hears them
    /// again with the next event of each entity.
    announced: Arc<Mutex<HashSet<String>>>,
    /// `<prefix>/<collection>/sources/<source>/last` → the person its retained message names.
    last_by_source: Arc<Mutex<HashMap<String, String>>>,
}

/// One message to publish.
struct Message {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

impl Message {
    fn json(topic: String, payload: serde_json::Value, retain: bool) -> Self {
        Self {
            topic,
            payload: payload.to_string().into_bytes(),
            retain,
        }
    }

    /// An empty retained message: the broker forgets the topic's retained message (and Home
    /// Assistant the entity, on a discovery topic).
    fn clear(topic: String) -> Self {
        Self {
            topic,
            payload: Vec::new(),
            retain: true,
        }
    }
}

impl MqttConfig {
    /// Refuses a setting that cannot work (not an MQTT URL, an unreadable CA file) before anything
    /// starts.
    pub fn check(&self) -> Result<(), String> {
        options(self).map(|_| ())
    }
}

impl Mqtt {
    /// Connects (in the background: a broker that is down is retried with backoff, never waited
    /// for). `frigate` receives the messages of Frigate's event topic, when the bridge listens.
    pub fn connect(
        config: MqttConfig,
        frigate: Option<mpsc::Sender<bytes::Bytes>>,
    ) -> Result<Arc<Self>, String> {
        let options = options(&config)?;
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
        // Each batch waits for its acknowledgements: without TCP_NODELAY, Nagle's algorithm and
        // delayed ACKs cost ~40 ms a batch (12 events a second measured, docs/BENCHMARKS.md).
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(10);
        eventloop.set_network_options(network);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let last_by_source = Arc::new(Mutex::new(HashMap::new()));
        let availability = format!("{}/available", config.prefix);
        let last_topics = format!("{}/+/sources/+/last", config.prefix);
        let frigate_events = config.frigate_topic.as_ref().map(|t| format!("{t}/events"));
        let subscriber = client.clone();
        let remembered = Arc::clone(&last_by_source);
        let announced = Arc::new(Mutex::new(HashSet::new()));
        let forget = Arc::clone(&announced);
        let ha_status = config
            .discovery_prefix
            .as_ref()
            .map(|d| format!("{d}/status"));
        let prefix = config.prefix.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        wait = Duration::from_secs(1);
                        tracing::info!("connected to the MQTT broker");
                        metrics::gauge!("facerec_mqtt_connected").set(1.0);
                        // Never awaited here: the event loop must keep polling for them to go.
                        let _ =
                            subscriber.try_publish(&availability, QoS::AtMostOnce, true, "online");
                        // Retained last decisions tell which person each names (to clear them
                        // when that person is deleted), also those of earlier runs.
                        let _ = subscriber.try_subscribe(&last_topics, QoS::AtLeastOnce);
                        if let Some(topic) = &frigate_events {
                            let _ = subscriber.try_subscribe(topic, QoS::AtLeastOnce);
                        }
                        if let Some(topic) = &ha_status {
                            let _ = subscriber.try_subscribe(topic, QoS::AtLeastOnce);
                        }
                        forget.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        let _ = connected_tx.send(true);
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                        let _ = ack_tx.send(ack.pkid);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                        if frigate_events.as_deref() == Some(publish.topic.as_str()) {
                            if let Some(bridge) = &frigate {
                                if bridge.try_send(publish.payload.clone()).is_err() {
                                    metrics::counter!("facerec_frigate_messages_total", "outcome" => "dropped").increment(1);
                                }
                            }
                        } else if ha_status.as_deref() == Some(publish.topic.as_str()) {
                            if publish.payload.as_ref() == b"online" {
                                forget.lock().unwrap_or_else(|e| e.into_inner()).clear();
                            }
                        } else if publish.topic.starts_with(&prefix) {
                            remember_last(&remembered, &publish.topic, &publish.payload);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = connected_tx.send(false);
                        metrics::gauge!("facerec_mqtt_connected").set(0.0);
                        metrics::counter!("facerec_mqtt_connection_errors_total").increment(1);
                        tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "the MQTT broker cannot be reached");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RECONNECT_MAX);
                    }
                }
            }
        });
        Ok(Arc::new(Self {
            client,
            config,
            connected,
            acks: tokio::sync::Mutex::new(ack_rx),
            announced,
            last_by_source,
        }))
    }

    /// Publishes what some events say, in order, as one batch (the broker acknowledges each
    /// message; the batch waits once): `Err` says why they were not all delivered (to be retried,
    /// all of them).
    pub async fn send(&self, events: &[&Event]) -> Result<(), String> {
        let messages = events.iter().flat_map(|e| self.messages(&e.data)).collect();
        self.publish_all(messages).await?;
        for event in events {
            if let (EventType::PersonDeleted, Some(person)) = (event.data.kind, &event.data.person)
            {
                let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
                announced.retain(|key| !key.contains(&person.id.to_string()));
            }
        }
        Ok(())
    }

    fn messages(&self, event: &EventData) -> Vec<Message> {
        let prefix = &self.config.prefix;
        let collection = &event.collection.name;
        let base = format!("{prefix}/{collection}");
        let mut messages = vec![Message::json(format!("{base}/events"), json!(event), false)];
        if event.kind == EventType::PersonDeleted {
            let Some(person) = &event.person else {
                return messages;
            };
            let id = person.id.to_string();
            messages.push(Message::clear(format!("{base}/persons/{id}/last_seen")));
            if let Some(discovery) = &self.config.discovery_prefix {
                messages.push(Message::clear(format!(
                    "{discovery}/sensor/{}/config",
                    person_object(collection, &id)
                )));
            }
            let mut last = self
                .last_by_source
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let naming: Vec<String> = last
                .iter()
                .filter(|(_, p)| **p == id)
                .map(|(topic, _)| topic.clone())
                .collect();
            for topic in naming {
                last.remove(&topic);
                messages.push(Message::clear(topic));
            }
            return messages;
        }
        let Some(source) = &event.source else {
            return messages;
        };
        let source_base = format!("{base}/sources/{source}");
        let person_name = event.person.as_ref().map(|p| p.name.clone());
        // Home Assistant's event entity: `event_type` and attributes, never retained (a retained
        // event would fire again on every restart; Home Assistant ignores them).
        messages.push(Message::json(
            format!("{source_base}/event"),
            json!({
                "event_type": event.kind.short(),
                "person": person_name,
                "person_id": event.person.as_ref().map(|p| p.id),
                "similarity": event.similarity,
                "estimated_fpir": event.estimated_fpir,
                "cluster_id": event.cluster_id,
                "seen": event.seen,
                "source": source,
                "collection": collection,
                "event_id": event.id,
                "time": event.time,
            }),
            false,
        ));
        let last_topic = format!("{source_base}/last");
        {
            let mut last = self
                .last_by_source
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match &event.person {
                Some(p) if last.len() < LAST_BY_SOURCE_MAX || last.contains_key(&last_topic) => {
                    last.insert(last_topic.clone(), p.id.to_string());
                }
                _ => {
                    last.remove(&last_topic);
                }
            }
        }
        messages.push(Message::json(last_topic, json!(event), true));
        if let Some(discovery) = &self.config.discovery_prefix {
            let object = source_object(collection, source);
            let config = json!({
                "name": format!("Faces at {source}"),
                "unique_id": object,
                "state_topic": format!("{source_base}/event"),
                "event_types": ["recognized", "unknown", "none"],
                "availability_topic": format!("{prefix}/available"),
                "device": device(collection),
            });
            self.announce(
                &mut messages,
                format!("{discovery}/event/{object}/config"),
                config,
            );
        }
        if let Some(person) = &event.person {
            let id = person.id.to_string();
            let state_topic = format!("{base}/persons/{id}/last_seen");
            messages.push(Message::json(
                state_topic.clone(),
                json!({
                    "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                    "name": person.name,
                    "source": source,
                    "similarity": event.similarity,
                    "event_id": event.id,
                }),
                true,
            ));
            if let Some(discovery) = &self.config.discovery_prefix {
                let object = person_object(collection, &id);
                let config = json!({
                    "name": format!("{} last seen", person.name),
                    "unique_id": object,
                    "device_class": "timestamp",
                    "state_topic": state_topic,
                    "value_template": "{{ value_json.time }}",
                    "json_attributes_topic": state_topic,
                    "availability_topic": format!("{prefix}/available"),
                    "device": device(collection),
                });
                self.announce(
                    &mut messages,
                    format!("{discovery}/sensor/{object}/config"),
                    config,
                );
            }
        }
        messages
    }

    /// A discovery configuration, unless this process published the same one already.
    fn announce(&self, messages: &mut Vec<Message>, topic: String, config: serde_json::Value) {
        let key = format!("{topic} {config}");
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        if announced.contains(&key) {
            return;
        }
        if announced.len() >= ANNOUNCED_MAX {
            announced.clear();
        }
        announced.retain(|k| !k.starts_with(&format!("{topic} ")));
        announced.insert(key);
        messages.push(Message::json(topic, config, true));
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), String> {
        if !*self.connected.borrow() {
            return Err("not connected to the MQTT broker".into());
        }
        // One batch at a time: the acknowledgements counted are this batch's.
        let mut acks = self.acks.lock().await;
        while acks.try_recv().is_ok() {}
        let count = messages.len();
        for m in messages {
            self.client
                .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                .await
                .map_err(|e| format!("cannot publish: {e}"))?;
        }
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        for _ in 0..count {
            match tokio::time::timeout_at(deadline, acks.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) => return Err("the MQTT connection closed".into()),
                Err(_) => {
                    return Err(format!(
                        "the MQTT broker did not acknowledge within {} s",
                        ACK_TIMEOUT.as_secs()
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Home Assistant's object ids allow `[a-zA-Z0-9_-]`: collection names and sources may also hold
/// `.`.
fn object_id(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn source_object(collection: &str, source: &str) -> String {
    object_id(&["facerec", collection, source, "faces"])
}

fn person_object(collection: &str, person: &str) -> String {
    object_id(&["facerec", collection, person, "last_seen"])
}

fn device(collection: &str) -> serde_json::Value {
    json!({
        "identifiers": [object_id(&["facerec", collection])],
        "name": format!("facerec {collection}"),
        "manufacturer": "facerec",
        "model": "face recognition",
        "sw_version": env!("CARGO_PKG_VERSION"),
    })
}

fn remember_last(into: &Mutex<HashMap<String, String>>, topic: &str, payload: &[u8]) {
    let mut last = into.lock().unwrap_or_else(|e| e.into_inner());
    let person = serde_json::from_slice::<EventData>(payload)
        .ok()
        .and_then(|e| e.person)
        .map(|p| p.id.to_string());
    match person {
        Some(p) if last.len() < LAST_BY_SOURCE_MAX || last.contains_key(topic) => {
            last.insert(topic.to_owned(), p);
        }
        _ => {
            last.remove(topic);
        }
    }
}

fn options(config: &MqttConfig) -> Result<MqttOptions, String> {
    let url = url::Url::parse(&config.url)
        .map_err(|e| format!("--mqtt-url '{}': {e}", redact(&config.url)))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(format!(
                "--mqtt-url: scheme '{other}' is not mqtt:// or mqtts://"
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or("--mqtt-url names no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = format!(
        "facerec-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_last_will(LastWill::new(
        format!("{}/available", config.prefix),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if !url.username().is_empty() {
        let user = percent_decode(url.username());
        let password = percent_decode(url.password().unwrap_or(""));
        options.set_credentials(user, password);
    }
    if tls {
        options.set_transport(Transport::tls_with_config(tls_config(config)?));
    }
    Ok(options)
}

fn tls_config(config: &MqttConfig) -> Result<rumqttc::TlsConfiguration, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--mqtt-ca-file {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("--mqtt-ca-file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--mqtt-ca-file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "mqtts: no certificate authority found on this system: give --mqtt-ca-file"
                        .into(),
                );
            }
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_refused_clearly() {
        let config = |url: &str| MqttConfig {
            url: url.into(),
            prefix: "facerec".into(),
            discovery_prefix: Some("homeassistant".into()),
            ca_file: None,
            frigate_topic: None,
        };
        let read = options(&config("mqtt://user:p%2Bs%40s@broker.lan:1884")).unwrap();
        assert_eq!(read.broker_address(), ("broker.lan".to_owned(), 1884));
        let login = read.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("user", "p+s@s")
        );
        assert!(options(&config("http://broker.lan")).is_err());
        assert!(options(&config("not a url")).is_err());
        assert_eq!(
            redact("mqtt://user:secret@broker:1883"),
            "mqtt://user:***@broker:1883"
        );
        assert_eq!(
            object_id(&["facerec", "default", "cam.1"]),
            "facerec_default_cam_1"
        );
    }
}
