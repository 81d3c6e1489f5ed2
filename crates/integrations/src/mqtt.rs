//! The MQTT destination: every event on `<prefix>/<collection>/events`, the last decision per
//! source and the last sighting per person retained, `<prefix>/available` retained (`online`;
//! `offline` as the last will), and Home Assistant discovery — per source an `event` entity, per
//! person a "last seen" timestamp sensor. QoS 1 throughout; a batch counts as delivered when the
//! broker acknowledged each of its messages.
//!
//! What the broker retains about collections and persons is read back from it (facerec subscribes
//! to its own retained topics and to the discovery configurations), so that `person.deleted`,
//! `collection.deleted` and `collection.renamed` (the old name's topics) clear all of it — also what
//! an earlier run published — and nothing about a deleted person stays on the broker.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facerec_core::events::{Event, EventData, EventType};
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Packet, QoS, Transport};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Messages the client may hold before `publish` waits (one batch of events at a time).
const CLIENT_CAPACITY: usize = 256;
/// How long a batch may take, from its first message queued to its last acknowledgement.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection backoff: from 1 s, doubling, at most 30 s.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// After subscribing, the broker sends its retained messages: the connection is used for events
/// once they had this long to arrive.
const RETAINED_SETTLE: Duration = Duration::from_secs(1);
/// Discovery configurations this process remembers having published (per entity), at most;
/// beyond it they are published again, which is harmless.
const ANNOUNCED_MAX: usize = 10_000;
/// Retained topics about collections and persons followed, at most; beyond it a deletion cannot
/// clear those it does not know (counted: `facerec_mqtt_retained_untracked_total`).
pub const RETAINED_MAX: usize = 100_000;

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

impl MqttConfig {
    /// Refuses a setting that cannot work (not an MQTT URL, an unreadable CA file, a wildcard in a
    /// prefix) before anything starts.
    pub fn check(&self) -> Result<(), String> {
        let prefixes = [Some(&self.prefix), self.discovery_prefix.as_ref()];
        for prefix in prefixes.into_iter().flatten() {
            if prefix.is_empty() || prefix.contains(['+', '#', '\0']) || prefix.starts_with('/') {
                return Err(format!(
                    "MQTT topic prefix '{prefix}' must be a topic without wildcards ('+', '#')"
                ));
            }
        }
        options(self).map(|_| ())
    }
}

/// What a retained topic is about: a collection, and a person when it names one.
#[derive(Debug, Clone, PartialEq)]
struct About {
    collection: String,
    person: Option<String>,
}

/// The retained topics about collections and persons, as the broker holds them.
#[derive(Default)]
struct Retained(HashMap<String, About>);

impl Retained {
    fn set(&mut self, topic: &str, about: Option<About>) {
        match about {
            Some(about) if self.0.len() < RETAINED_MAX || self.0.contains_key(topic) => {
                self.0.insert(topic.to_owned(), about);
            }
            Some(_) => metrics::counter!("facerec_mqtt_retained_untracked_total").increment(1),
            None => {
                self.0.remove(topic);
            }
        }
    }

    fn about_person(&self, person: &str) -> Vec<String> {
        self.matching(|a| a.person.as_deref() == Some(person))
    }

    fn about_collection(&self, collection: &str) -> Vec<String> {
        self.matching(|a| a.collection == collection)
    }

    fn matching(&self, keep: impl Fn(&About) -> bool) -> Vec<String> {
        let mut topics: Vec<String> = self
            .0
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|(t, _)| t.clone())
            .collect();
        topics.sort();
        topics
    }
}

/// A connection to the broker, kept up by its own task (stopped with it).
struct Link {
    client: AsyncClient,
    ready: watch::Receiver<bool>,
    acks: mpsc::UnboundedReceiver<u16>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The MQTT destination.
pub struct Mqtt {
    config: MqttConfig,
    frigate: Option<mpsc::Sender<bytes::Bytes>>,
    /// The connection; after a batch that failed half-way it is replaced, so that nothing of that
    /// batch (its messages still queued, its late acknowledgements) mixes with the next.
    link: tokio::sync::Mutex<Link>,
    /// Discovery configurations published since the last (re)connection: a broker that restarted
    /// without persistence, or Home Assistant starting (`<discovery>/status` `online`), hears them
    /// again with the next event of each entity.
    announced: Arc<Mutex<HashSet<String>>>,
    retained: Arc<Mutex<Retained>>,
}

/// One message to publish.
struct Message {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    /// A retained message's subject (`None` clears the topic).
    about: Option<About>,
}

impl Message {
    fn json(topic: String, payload: serde_json::Value, retain: bool) -> Self {
        Self {
            topic,
            payload: payload.to_string().into_bytes(),
            retain,
            about: None,
        }
    }

    fn about(mut self, collection: &str, person: Option<String>) -> Self {
        self.about = Some(About {
            collection: collection.to_owned(),
            person,
        });
        self
    }

    /// An empty retained message: the broker forgets the topic's retained message (and Home
    /// Assistant the entity, on a discovery topic).
    fn clear(topic: String) -> Self {
        Self {
            topic,
            payload: Vec::new(),
            retain: true,
            about: None,
        }
    }
}

impl Mqtt {
    /// Connects (in the background: a broker that is down is retried with backoff, never waited
    /// for). `frigate` receives the messages of Frigate's event topic, when the bridge listens.
    pub fn connect(
        config: MqttConfig,
        frigate: Option<mpsc::Sender<bytes::Bytes>>,
    ) -> Result<Arc<Self>, String> {
        let announced = Arc::new(Mutex::new(HashSet::new()));
        let retained = Arc::new(Mutex::new(Retained::default()));
        let link = open(&config, &frigate, &announced, &retained)?;
        Ok(Arc::new(Self {
            config,
            frigate,
            link: tokio::sync::Mutex::new(link),
            announced,
            retained,
        }))
    }

    /// Publishes what some events say, in order, as one batch (the broker acknowledges each
    /// message; the batch waits once): `Err` says why they were not all delivered (to be retried,
    /// all of them).
    pub async fn send(&self, events: &[&Event]) -> Result<(), String> {
        let messages: Vec<Message> = events.iter().flat_map(|e| self.messages(&e.data)).collect();
        let kept: Vec<(String, Option<About>)> = messages
            .iter()
            .filter(|m| m.retain)
            .map(|m| (m.topic.clone(), m.about.clone()))
            .collect();
        self.publish_all(messages).await?;
        let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, about) in kept {
            retained.set(&topic, about);
        }
        Ok(())
    }

    fn messages(&self, event: &EventData) -> Vec<Message> {
        let prefix = &self.config.prefix;
        let collection = &event.collection.name;
        let base = format!("{prefix}/{collection}");
        let mut messages = vec![Message::json(format!("{base}/events"), json!(event), false)];
        let retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        match event.kind {
            EventType::PersonDeleted => {
                let Some(person) = &event.person else {
                    return messages;
                };
                let id = person.id.to_string();
                let mut topics: Vec<String> = vec![format!("{base}/persons/{id}/last_seen")];
                if let Some(discovery) = &self.config.discovery_prefix {
                    topics.push(format!(
                        "{discovery}/sensor/{}/config",
                        person_object(collection, &id)
                    ));
                }
                topics.extend(retained.about_person(&id));
                topics.sort();
                topics.dedup();
                messages.extend(topics.into_iter().map(Message::clear));
                let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
                announced.retain(|key| !key.contains(&id));
                return messages;
            }
            EventType::CollectionDeleted => {
                messages.extend(
                    retained
                        .about_collection(collection)
                        .into_iter()
                        .map(Message::clear),
                );
                return messages;
            }
            // What was published under the old name goes; the new name's topics come with the
            // next events.
            EventType::CollectionRenamed => {
                if let Some(old) = &event.renamed_from {
                    messages.extend(
                        retained
                            .about_collection(old)
                            .into_iter()
                            .map(Message::clear),
                    );
                }
                return messages;
            }
            _ => {}
        }
        drop(retained);
        let Some(source) = &event.source else {
            return messages;
        };
        let source_base = format!("{base}/sources/{source}");
        let person_name = event.person.as_ref().and_then(|p| p.name.clone());
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
        let person_id = event.person.as_ref().map(|p| p.id.to_string());
        messages.push(
            Message::json(format!("{source_base}/last"), json!(event), true)
                .about(collection, person_id.clone()),
        );
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
            let topic = format!("{discovery}/event/{object}/config");
            self.announce(&mut messages, topic, config, collection, None);
        }
        if let (Some(person), Some(id)) = (&event.person, person_id) {
            let name = person.name.clone().unwrap_or_default();
            let state_topic = format!("{base}/persons/{id}/last_seen");
            messages.push(
                Message::json(
                    state_topic.clone(),
                    json!({
                        "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                        "name": name,
                        "source": source,
                        "similarity": event.similarity,
                        "event_id": event.id,
                    }),
                    true,
                )
                .about(collection, Some(id.clone())),
            );
            if let Some(discovery) = &self.config.discovery_prefix {
                let object = person_object(collection, &id);
                let config = json!({
                    "name": format!("{name} last seen"),
                    "unique_id": object,
                    "device_class": "timestamp",
                    "state_topic": state_topic,
                    "value_template": "{{ value_json.time }}",
                    "json_attributes_topic": state_topic,
                    "availability_topic": format!("{prefix}/available"),
                    "device": device(collection),
                });
                let topic = format!("{discovery}/sensor/{object}/config");
                self.announce(&mut messages, topic, config, collection, Some(id));
            }
        }
        messages
    }

    /// A discovery configuration, unless this process published the same one since it connected.
    fn announce(
        &self,
        messages: &mut Vec<Message>,
        topic: String,
        config: serde_json::Value,
        collection: &str,
        person: Option<String>,
    ) {
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
        messages.push(Message::json(topic, config, true).about(collection, person));
    }

    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), String> {
        let mut link = self.link.lock().await;
        if !*link.ready.borrow() {
            return Err("not connected to the MQTT broker".into());
        }
        while link.acks.try_recv().is_ok() {}
        let count = messages.len();
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        let batch = async {
            for m in messages {
                link.client
                    .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                    .await
                    .map_err(|e| format!("cannot publish: {e}"))?;
            }
            for _ in 0..count {
                if link.acks.recv().await.is_none() {
                    return Err("the MQTT connection closed".to_owned());
                }
            }
            Ok(())
        };
        let outcome = match tokio::time::timeout_at(deadline, batch).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the MQTT broker did not take the batch within {} s",
                BATCH_TIMEOUT.as_secs()
            )),
        };
        if outcome.is_err() {
            // A new connection: what is left of this batch goes with the old one.
            *link = open(&self.config, &self.frigate, &self.announced, &self.retained)?;
        }
        outcome
    }
}

/// Opens a connection and starts the task that keeps it: it subscribes to what it follows, says
/// `online`, and is ready for events once the retained messages had time to arrive.
fn open(
    config: &MqttConfig,
    frigate: &Option<mpsc::Sender<bytes::Bytes>>,
    announced: &Arc<Mutex<HashSet<String>>>,
    retained: &Arc<Mutex<Retained>>,
) -> Result<Link, String> {
    let options = options(config)?;
    let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
    // Each batch waits for its acknowledgements: without TCP_NODELAY, Nagle's algorithm and
    // delayed ACKs cost ~40 ms a batch (12 events a second measured, docs/BENCHMARKS.md).
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let (ready_tx, ready) = watch::channel(false);
    let ready_tx = Arc::new(ready_tx);
    let follows = Follows::new(config);
    let frigate = frigate.clone();
    let announced = Arc::clone(announced);
    let retained = Arc::clone(retained);
    let subscriber = client.clone();
    // Which connection a delayed "ready" belongs to.
    let epoch = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    wait = Duration::from_secs(1);
                    tracing::info!("connected to the MQTT broker");
                    metrics::gauge!("facerec_mqtt_connected").set(1.0);
                    announced.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    let mine = epoch.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::spawn(settle(
                        subscriber.clone(),
                        follows.clone(),
                        Arc::clone(&ready_tx),
                        Arc::clone(&epoch),
                        mine,
                    ));
                }
                Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                    let _ = ack_tx.send(ack.pkid);
                }
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                    follows.heard(
                        &publish.topic,
                        &publish.payload,
                        &frigate,
                        &announced,
                        &retained,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    epoch.fetch_add(1, Ordering::SeqCst);
                    let _ = ready_tx.send(false);
                    metrics::gauge!("facerec_mqtt_connected").set(0.0);
                    metrics::counter!("facerec_mqtt_connection_errors_total").increment(1);
                    tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "the MQTT broker cannot be reached");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECONNECT_MAX);
                }
            }
        }
    });
    Ok(Link {
        client,
        ready,
        acks,
        task,
    })
}

/// After a connection: subscribe, say `online`, let the retained messages arrive, then be ready
/// (unless the connection was lost or renewed meanwhile).
async fn settle(
    client: AsyncClient,
    follows: Follows,
    ready: Arc<watch::Sender<bool>>,
    epoch: Arc<AtomicU64>,
    mine: u64,
) {
    let filters = follows
        .filters()
        .into_iter()
        .map(|path| rumqttc::SubscribeFilter::new(path, QoS::AtLeastOnce));
    if let Err(e) = client.subscribe_many(filters).await {
        tracing::warn!(error = %e, "cannot subscribe on the MQTT broker");
        return;
    }
    if let Err(e) = client
        .publish(follows.availability(), QoS::AtMostOnce, true, "online")
        .await
    {
        tracing::warn!(error = %e, "cannot say online on the MQTT broker");
        return;
    }
    tokio::time::sleep(RETAINED_SETTLE).await;
    if epoch.load(Ordering::SeqCst) == mine {
        let _ = ready.send(true);
    }
}

/// The topics a connection follows, and what it does with what it hears there.
#[derive(Clone)]
struct Follows {
    prefix: String,
    discovery: Option<String>,
    frigate_events: Option<String>,
}

impl Follows {
    fn new(config: &MqttConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            discovery: config.discovery_prefix.clone(),
            frigate_events: config.frigate_topic.as_ref().map(|t| format!("{t}/events")),
        }
    }

    fn availability(&self) -> String {
        format!("{}/available", self.prefix)
    }

    fn filters(&self) -> Vec<String> {
        let p = &self.prefix;
        let mut filters = vec![
            format!("{p}/+/persons/+/last_seen"),
            format!("{p}/+/sources/+/last"),
        ];
        if let Some(d) = &self.discovery {
            filters.extend([
                format!("{d}/sensor/+/config"),
                format!("{d}/event/+/config"),
                format!("{d}/status"),
            ]);
        }
        filters.extend(self.frigate_events.clone());
        filters
    }

    fn heard(
        &self,
        topic: &str,
        payload: &[u8],
        frigate: &Option<mpsc::Sender<bytes::Bytes>>,
        announced: &Mutex<HashSet<String>>,
        retained: &Mutex<Retained>,
    ) {
        if self.frigate_events.as_deref() == Some(topic) {
            if let Some(bridge) = frigate {
                if bridge
                    .try_send(bytes::Bytes::copy_from_slice(payload))
                    .is_err()
                {
                    metrics::counter!("facerec_frigate_messages_total", "outcome" => "dropped")
                        .increment(1);
                }
            }
            return;
        }
        if let Some(d) = &self.discovery {
            if topic == format!("{d}/status") {
                if payload == b"online" {
                    announced.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                return;
            }
        }
        if let Some(about) = self.about(topic, payload) {
            let about = (!payload.is_empty()).then_some(about);
            retained
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set(topic, about);
        }
    }

    /// What a retained topic of facerec's is about (`None`: not one of facerec's).
    fn about(&self, topic: &str, payload: &[u8]) -> Option<About> {
        let ours = |state_topic: &str| -> Option<(String, Vec<String>)> {
            let rest = state_topic.strip_prefix(&format!("{}/", self.prefix))?;
            let parts: Vec<String> = rest.split('/').map(str::to_owned).collect();
            Some((parts.first()?.clone(), parts))
        };
        if let Some(d) = &self.discovery {
            if topic.starts_with(&format!("{d}/")) && topic.ends_with("/config") {
                if payload.is_empty() {
                    // A cleared configuration: forgotten whatever it was.
                    return Some(About {
                        collection: String::new(),
                        person: None,
                    });
                }
                let config: serde_json::Value = serde_json::from_slice(payload).ok()?;
                let (collection, rest) = ours(config.get("state_topic")?.as_str()?)?;
                let person = match rest.as_slice() {
                    [_, kind, id, _] if kind == "persons" => Some(id.clone()),
                    _ => None,
                };
                return Some(About { collection, person });
            }
        }
        let (collection, rest) = ours(topic)?;
        let person = match rest.as_slice() {
            [_, kind, id, last] if kind == "persons" && last == "last_seen" => Some(id.clone()),
            [_, kind, _, last] if kind == "sources" && last == "last" => {
                serde_json::from_slice::<EventData>(payload)
                    .ok()
                    .and_then(|e| e.person)
                    .map(|p| p.id.to_string())
            }
            _ => return None,
        };
        Some(About { collection, person })
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
