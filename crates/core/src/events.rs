//! Events: what a recognition decided, told to the house (webhooks, MQTT). A decision becomes an
//! [`Event`]; events wait in the database's outbox until every destination ([`Sink`]) has taken
//! them, in order per destination, at least once. The payload names a person and a place, never
//! an embedding and never pixels.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use facerec_types::BoundingBox;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::capture::Source;
use crate::domain::{CaptureId, ClusterId, CollectionId, PersonId};

/// Events waiting in the outbox, at most (all collections); beyond it the oldest are dropped and
/// counted (`facerec_events_dropped_total`).
pub const OUTBOX_MAX: u64 = 100_000;
/// An event is kept this long at most, delivered or not: a destination failing for longer has
/// given up on it (`RETRY_FOR`).
pub const OUTBOX_MAX_AGE: Duration = Duration::hours(24);
/// A failing destination is retried this long per event, then the event is marked failed.
pub const RETRY_FOR: Duration = Duration::hours(24);
/// The delivery log kept per destination (`GET /v1/webhooks/{id}/deliveries`): the newest.
pub const DELIVERY_LOG_MAX: u32 = 1_000;
/// Webhooks per collection, at most.
pub const MAX_WEBHOOKS: u64 = 16;
/// A webhook URL's length, at most.
pub const MAX_URL_LEN: usize = 2_048;

/// The kinds of event. `person.deleted` and `collection.deleted` tell the destinations to forget
/// (MQTT clears the retained topics and Home Assistant entities about them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "face.recognized")]
    Recognized,
    #[serde(rename = "face.unknown")]
    Unknown,
    #[serde(rename = "face.none")]
    NoFace,
    #[serde(rename = "person.deleted")]
    PersonDeleted,
    #[serde(rename = "collection.deleted")]
    CollectionDeleted,
    /// The collection's name changed (`renamed_from` says from what): what was published under
    /// the old name is forgotten.
    #[serde(rename = "collection.renamed")]
    CollectionRenamed,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        Self::Recognized,
        Self::Unknown,
        Self::NoFace,
        Self::PersonDeleted,
        Self::CollectionDeleted,
        Self::CollectionRenamed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recognized => "face.recognized",
            Self::Unknown => "face.unknown",
            Self::NoFace => "face.none",
            Self::PersonDeleted => "person.deleted",
            Self::CollectionDeleted => "collection.deleted",
            Self::CollectionRenamed => "collection.renamed",
        }
    }

    /// The name Home Assistant's event entity gives it (`recognized`, `unknown`, `none`).
    pub fn short(self) -> &'static str {
        match self {
            Self::Recognized => "recognized",
            Self::Unknown => "unknown",
            Self::NoFace => "none",
            Self::PersonDeleted => "person_deleted",
            Self::CollectionDeleted => "collection_deleted",
            Self::CollectionRenamed => "collection_renamed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// A deletion or a rename: destinations must hear of it to forget (never dropped while MQTT
    /// may need it).
    pub fn forgets(self) -> bool {
        matches!(
            self,
            Self::PersonDeleted | Self::CollectionDeleted | Self::CollectionRenamed
        )
    }
}

/// A person as an event names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPerson {
    pub id: PersonId,
    /// `None` in `person.deleted`: the name is not kept past the deletion.
    pub name: Option<String>,
}

/// The collection an event happened in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventCollection {
    pub id: CollectionId,
    pub name: String,
}

/// What an event says: the payload every destination receives (a webhook's `data`, an MQTT
/// message). Never an embedding, never pixels: a capture is named by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    /// Unique: receivers de-duplicate on it (delivery is at least once).
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub time: DateTime<Utc>,
    pub collection: EventCollection,
    /// The camera or client it came from; `None` for `person.deleted`.
    pub source: Option<String>,
    /// Who was recognized (or, for `person.deleted`, forgotten).
    pub person: Option<EventPerson>,
    pub similarity: Option<f32>,
    pub threshold: Option<f32>,
    /// The share of strangers who would be named someone at this similarity (the calibration's
    /// estimate; `None` where the gallery is too small to say).
    pub estimated_fpir: Option<f64>,
    #[serde(rename = "box")]
    pub bbox: Option<BoundingBox>,
    pub det_score: Option<f32>,
    /// The capture kept of this face, when the collection captures (`GET /v1/captures/{id}`,
    /// with `manage`).
    pub capture_id: Option<CaptureId>,
    /// An unknown face's cluster (capture on): the stable id of a stranger seen again.
    pub cluster_id: Option<ClusterId>,
    /// How often that stranger was seen.
    pub seen: Option<u64>,
    pub frigate_event_id: Option<String>,
    /// `collection.renamed`: the name the collection had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

impl EventData {
    /// An event of `kind` now, with nothing but where it happened.
    pub fn new(kind: EventType, collection: EventCollection, source: Option<&Source>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            time: Utc::now(),
            collection,
            source: source.map(|s| s.as_str().to_owned()),
            person: None,
            similarity: None,
            threshold: None,
            estimated_fpir: None,
            bbox: None,
            det_score: None,
            capture_id: None,
            cluster_id: None,
            seen: None,
            frigate_event_id: None,
            renamed_from: None,
        }
    }
}

/// An event as the outbox holds it: its place in the outbox's order (`seq`) and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub data: EventData,
}

/// Which events a destination takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    pub fn all() -> Self {
        Self(EventType::ALL.to_vec())
    }

    pub fn new(types: Vec<EventType>) -> Result<Self, String> {
        if types.is_empty() {
            return Err("events must name at least one event type".into());
        }
        let mut types = types;
        types.dedup();
        Ok(Self(types))
    }

    pub fn contains(&self, kind: EventType) -> bool {
        self.0.contains(&kind)
    }
}

impl TryFrom<Vec<String>> for EventTypes {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        let types = names
            .iter()
            .map(|n| {
                EventType::parse(n).ok_or_else(|| {
                    let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                    format!("unknown event type '{n}' (known: {})", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(types)
    }
}

impl From<EventTypes> for Vec<String> {
    fn from(types: EventTypes) -> Self {
        types.0.iter().map(|t| t.as_str().to_owned()).collect()
    }
}

crate::domain::id_type!(
    /// Identifies a webhook.
    WebhookId
);

/// Where events go. Webhooks are a collection's; the MQTT destination takes every collection's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkId {
    Webhook(WebhookId),
    Mqtt,
}

impl SinkId {
    /// As stored (`event_sinks.id`) and shown in metrics (`webhook` or `mqtt` there).
    pub fn key(&self) -> String {
        match self {
            Self::Webhook(id) => id.to_string(),
            Self::Mqtt => "mqtt".into(),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "mqtt" => Some(Self::Mqtt),
            _ => key.parse().ok().map(Self::Webhook),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Mqtt => "mqtt",
        }
    }
}

/// A webhook URL: http or https, with a host, no credentials in it, at most [`MAX_URL_LEN`]; kept
/// as the `url` crate writes it (the WHATWG parser reqwest connects with), so that the host checked
/// is the host connected to (`http://2130706433/` is `http://127.0.0.1/`, `\` a `/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn new(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() > MAX_URL_LEN {
            return Err(format!("url is longer than {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("url '{text}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url scheme '{}' is not allowed: webhooks are http or https",
                url.scheme()
            ));
        }
        if url.host().is_none() {
            return Err(format!("url '{text}' names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "url must not carry credentials: the signature authenticates facerec".into(),
            );
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, when it is an IP address (checked before any connection: such a host is
    /// connected to without resolving).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match url::Url::parse(&self.0).ok()?.host()? {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        }
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::new(&text)
    }
}

impl From<WebhookUrl> for String {
    fn from(url: WebhookUrl) -> Self {
        url.0
    }
}

/// Which addresses a webhook may be delivered to: public ones only, unless the operator allows
/// private networks (`--webhook-allow-private-networks`). Checked on the address actually
/// connected to, so a name that resolves to a private address is refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

impl AddressPolicy {
    /// `Err` names why an address is refused: loopback, private (RFC 1918, unique local),
    /// link-local (cloud metadata at 169.254.169.254 included), unspecified, multicast, shared
    /// (RFC 6598) or reserved.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        match refusal(ip) {
            Some(why) => Err(format!(
                "{ip} is {why}: refused (the operator may allow private networks with \
                 --webhook-allow-private-networks)"
            )),
            None => Ok(()),
        }
    }
}

/// Why an address is not a public one, if it is not.
fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address (cloud metadata lives there)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("not a unicast address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
                Some("a special-purpose address")
            } else if a == 0 || a >= 240 {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // An IPv4 address inside: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
            // (64:ff9b::/96, 64:ff9b:1::/48) and 6to4 (2002::/16) reach it.
            let embedded = if let Some(v4) = v6.to_ipv4_mapped() {
                Some(v4)
            } else if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                v6.to_ipv4()
            } else if (s[0] == 0x64 && s[1] == 0xff9b) || s[0] == 0x2002 {
                let [.., w, x, y, z] = v6.octets();
                let v4 = match s[0] {
                    0x2002 => {
                        let o = v6.octets();
                        std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5])
                    }
                    _ => std::net::Ipv4Addr::new(w, x, y, z),
                };
                Some(v4)
            } else {
                None
            };
            if let Some(v4) = embedded {
                return refusal(IpAddr::V4(v4));
            }
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Some("a link-local or site-local address")
            } else {
                None
            }
        }
    }
}

/// A webhook's signing secret, Standard Webhooks style: `whsec_` and the base64 of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// A webhook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub events: EventTypes,
    pub secret: WebhookSecret,
}

/// A webhook as stored; its secret only for the dispatcher (answers show it once, at creation).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: WebhookId,
    pub collection: CollectionId,
    pub url: WebhookUrl,
    pub events: EventTypes,
    pub secret: WebhookSecret,
    pub created_at: DateTime<Utc>,
    /// The destination's state (failures in a row, the last reason).
    pub state: SinkState,
}

/// Where a destination stands in the outbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkState {
    /// The last event taken (delivered or given up on).
    pub cursor: i64,
    /// The event the failures below are about; another one (that event deleted meanwhile) starts
    /// afresh.
    pub failing_seq: Option<i64>,
    /// Failed attempts at the event after the cursor.
    pub attempts: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A destination the dispatcher drives: which events it takes.
#[derive(Debug, Clone)]
pub struct Sink {
    pub id: SinkId,
    /// A webhook's collection; `None`: every collection (MQTT).
    pub collection: Option<CollectionId>,
    pub events: EventTypes,
    pub webhook: Option<Webhook>,
    pub state: SinkState,
}

/// How one event's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Delivered,
    /// Given up after [`RETRY_FOR`] of attempts.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one destination, as the log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's place in the outbox.
    pub seq: i64,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// What the dispatcher did with the events after a destination's cursor: they are taken up to
/// `cursor` (each with its log entry), and the destination's state is `state`.
#[derive(Debug, Clone)]
pub struct Progress {
    pub state: SinkState,
    pub log: Vec<Delivery>,
}

/// When to try a failing destination again: exponential from 1 s, at most 5 minutes, with up to
/// a quarter of jitter (`jitter` in 0..1) so that replicas and destinations do not retry in step.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let base = 1_000i64 << attempts.saturating_sub(1).min(9);
    let capped = base.min(300_000);
    let jittered = capped as f64 * (1.0 - 0.25 * jitter.clamp(0.0, 1.0));
    Duration::milliseconds(jittered as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(WebhookUrl::new("https://example.com/hook").is_ok());
        assert!(WebhookUrl::new("http://10.0.0.2:8123/api/webhook/x").is_ok());
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "example.com/hook",
            "http://",
            "https://user:pw@example.com/",
            "gopher://127.0.0.1:70/",
        ] {
            assert!(WebhookUrl::new(bad).is_err(), "{bad}");
        }
        let url = WebhookUrl::new("http://[::1]:8080/x").unwrap();
        assert_eq!(url.ip_literal(), Some("::1".parse().unwrap()));
        // Written the ways a URL parser reads as an address, they are that address.
        for (written, address) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0:6379/", "0.0.0.0"),
            ("http://127.1/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1\\hook", "127.0.0.1"),
            ("http://2852039166/latest", "169.254.169.254"),
        ] {
            let url = WebhookUrl::new(written).unwrap();
            assert_eq!(
                url.ip_literal(),
                Some(address.parse().unwrap()),
                "{written}"
            );
        }
        let url = WebhookUrl::new("http://169.254.169.254/latest").unwrap();
        assert_eq!(url.ip_literal(), Some("169.254.169.254".parse().unwrap()));
        assert_eq!(
            WebhookUrl::new("http://example.com:80/")
                .unwrap()
                .ip_literal(),
            None
        );
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "fec0::1",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(strict.check(refused.parse().unwrap()).is_err(), "{refused}");
        }
        for allowed in [
            "93.184.216.34",
            "2606:4700::1111",
            "1.1.1.1",
            "64:ff9b::5db8:d822",
        ] {
            assert!(strict.check(allowed.parse().unwrap()).is_ok(), "{allowed}");
        }
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(open.check("127.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn event_types_parse_and_backoff_grows_to_its_cap() {
        let types: EventTypes =
            serde_json::from_str(r#"["face.recognized","face.unknown"]"#).unwrap();
        assert!(types.contains(EventType::Recognized));
        assert!(!types.contains(EventType::NoFace));
        assert!(serde_json::from_str::<EventTypes>(r#"["face.seen"]"#).is_err());
        assert!(serde_json::from_str::<EventTypes>("[]").is_err());
        assert_eq!(backoff(1, 0.0), Duration::seconds(1));
        assert_eq!(backoff(3, 0.0), Duration::seconds(4));
        assert_eq!(backoff(30, 0.0), Duration::minutes(5));
        assert!(backoff(30, 1.0) >= Duration::seconds(225));
    }
}
