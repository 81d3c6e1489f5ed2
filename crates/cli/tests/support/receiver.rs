//! A real HTTP listener that receives webhooks, checks each signature with the Standard Webhooks
//! algorithm written here (independently of facerec's), and answers what the test sets.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    /// When it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Delivery>>,
    /// What to answer: 200, 503, 302…
    status: AtomicU16,
    /// Where a 302 points.
    location: Mutex<String>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    /// Answers `status` from now (`location` for a redirect).
    pub fn answer(&self, status: u16, location: &str) {
        *self.shared.location.lock().unwrap() = location.to_owned();
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The deliveries once `done` holds for them (within `secs`).
    pub async fn wait_for(&self, secs: u64, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        for _ in 0..secs * 20 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never received what was expected: {:#?}", self.received());
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivery = Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        raw: body.to_vec(),
        at: chrono::Utc::now(),
    };
    shared.received.lock().unwrap().push(delivery);
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap();
    let location = shared.location.lock().unwrap().clone();
    (status, [("location", location)]).into_response()
}

/// Standard Webhooks' verification (spec/standard-webhooks.md, "Verifying webhook authenticity"):
/// the key is the base64 after `whsec_`; the signed content `{id}.{timestamp}.{body}`; the header
/// a space-separated list of `v1,<base64>`, one of which must match; the timestamp within five
/// minutes of now.
pub fn verify(secret: &str, delivery: &Delivery) -> Result<(), String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(
            secret
                .strip_prefix("whsec_")
                .ok_or("secret without whsec_")?,
        )
        .map_err(|e| e.to_string())?;
    let timestamp: i64 = delivery.timestamp.parse().map_err(|_| "no timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - timestamp).abs() > 300 {
        return Err(format!(
            "timestamp {timestamp} is not within 5 minutes of {now}"
        ));
    }
    let mut signed = format!("{}.{}.", delivery.id, delivery.timestamp).into_bytes();
    signed.extend_from_slice(&delivery.raw);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(&signed);
    let expected = engine.encode(mac.finalize().into_bytes());
    let matches = delivery
        .signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected);
    matches
        .then_some(())
        .ok_or_else(|| format!("no signature in '{}' matches", delivery.signature))
}
