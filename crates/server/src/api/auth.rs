//! API keys: kept only as sha256 hashes, compared in constant time, required on every `/v1` route
//! (`Authorization: Bearer <key>` or `X-API-Key: <key>`), with a per-key rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_core::Actor;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use facerec_core::ErrorCode;

/// The shortest key accepted, in characters: a key is all that stands between the network and the
/// biometric data, and a short one is guessed.
pub const MIN_KEY_CHARS: usize = 16;

/// Refuses a key too short to resist guessing, saying how to make a good one.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_KEY_CHARS {
        return Err(format!(
            "an API key of {} characters is too short: use at least {MIN_KEY_CHARS} random ones, \
             e.g. `facerec keys generate` (32 random bytes, base64url)",
            key.chars().count()
        ));
    }
    Ok(())
}

/// A new random key: 32 bytes from the operating system, base64url without padding (43 characters).
pub fn generate_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The configured keys, as hashes.
#[derive(Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.hashes.len())
    }
}

impl ApiKeys {
    /// From plain keys (comma-separated in FACEREC_API_KEYS); blank entries are ignored, short ones
    /// refused ([`check_key`]).
    pub fn from_plain<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut hashes = Vec::new();
        for key in keys.into_iter().map(str::trim).filter(|k| !k.is_empty()) {
            check_key(key)?;
            hashes.push(hash(key));
        }
        Ok(Self { hashes })
    }

    /// Adds the keys of a file: one per line, plain or as `sha256:<hex>` (so the file need not hold
    /// secrets); `#` starts a comment.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let digest = match line.strip_prefix("sha256:") {
                Some(hexed) => hex::decode(hexed)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        format!("{}:{}: not a sha256 hex digest", path.display(), n + 1)
                    })?,
                None => {
                    check_key(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
                    hash(line)
                }
            };
            self.hashes.push(digest);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The key's id (for logs and the audit trail) when it is one of ours. Every configured hash is
    /// compared, so timing tells nothing about which or how much matched.
    pub fn verify(&self, presented: &str) -> Option<Actor> {
        let digest = hash(presented);
        let mut found: Option<[u8; 32]> = None;
        for candidate in &self.hashes {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(*candidate);
            }
        }
        found.map(|h| key_id(&h))
    }
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A key's public name: the start of its hash (never the key).
fn key_id(hash: &[u8; 32]) -> Actor {
    Actor(format!("key:{}", hex::encode(&hash[..6])))
}

/// A budget per key (requests per minute, or stream frames per second). Memory: one entry per key
/// seen, and keys are the configured ones (or `local`), so the map is bounded.
pub struct RateLimit(DefaultKeyedRateLimiter<String>);

impl RateLimit {
    pub fn per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self(RateLimiter::keyed(Quota::per_minute(n))))
    }

    pub fn per_second(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self(RateLimiter::keyed(Quota::per_second(n))))
    }

    /// `Err(wait)` when the key has spent its budget: how long until the next unit is available.
    pub fn check(&self, actor: &Actor) -> Result<(), Duration> {
        self.0
            .check_key(&actor.0)
            .map_err(|not_until| not_until.wait_time_from(self.0.clock().now()))
    }
}

/// Requests per minute per API key, by default.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// The 429 for a spent budget, with the limiter's own wait in `Retry-After` (whole seconds, at
/// least one).
pub fn rate_limited(wait: Duration, message: &str) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, message)
        .retry_after(wait.as_secs_f64().ceil().max(1.0) as u32)
}

/// The key as sent: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        return Some(bearer.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Whether a request can only be authenticated from its body: keys are configured and none came in
/// a header (DeepStack's clients send theirs as a form field).
pub fn key_only_in_body(state: &AppState, headers: &HeaderMap) -> bool {
    !state.keys.is_empty() && presented_key(headers).is_none()
}

/// Who is calling, or the 401 that says why not.
pub fn authenticate(keys: &ApiKeys, headers: &HeaderMap) -> Result<Actor, ApiError> {
    if keys.is_empty() {
        // Without keys the server only listens on loopback (enforced at start).
        return Ok(Actor::local_operator());
    }
    match presented_key(headers) {
        None => Err(ApiError::new(
            ErrorCode::MissingApiKey,
            "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        )),
        Some(key) => keys
            .verify(key)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidApiKey, "the API key is not valid")),
    }
}

/// Who is calling, within their request budget: [`authenticate`] (refused for a while for an
/// address whose keys keep failing, [`FailedKeys`]), then the per-key rate limit.
pub fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Actor, ApiError> {
    if let Some(ip) = client.filter(|_| !state.keys.is_empty()) {
        if let Some(wait) = state.failed_keys.blocked(ip) {
            return Err(rate_limited(
                wait,
                "too many invalid API keys from this address",
            ));
        }
    }
    let actor = match authenticate(&state.keys, headers) {
        Err(e) if e.code == ErrorCode::InvalidApiKey => {
            if let Some(ip) = client {
                state.failed_keys.failed(ip);
            }
            return Err(e);
        }
        other => other?,
    };
    if let Some(limit) = &state.rate_limit {
        limit
            .check(&actor)
            .map_err(|wait| rate_limited(wait, "too many requests for this key"))?;
    }
    Ok(actor)
}

/// The client's address, as the server accepted its connection.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Addresses whose API keys keep failing: after [`MAX_KEY_FAILURES`] invalid keys within
/// [`KEY_FAILURE_WINDOW`], every request with a key from that address answers 429 until the window
/// ends (a guesser got ~5,500 tries a second per connection before). At most
/// [`MAX_TRACKED_ADDRESSES`] addresses are followed; past that the oldest window is forgotten.
#[derive(Debug, Default)]
pub struct FailedKeys {
    addresses: std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Invalid keys an address may send within [`KEY_FAILURE_WINDOW`].
pub const MAX_KEY_FAILURES: u32 = 10;
pub const KEY_FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

impl FailedKeys {
    /// How long `ip` is still refused, if it is.
    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let addresses = self.addresses.lock().expect("failed keys lock");
        let (failures, since) = addresses.get(&ip)?;
        let left = KEY_FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*failures >= MAX_KEY_FAILURES).then_some(left)
    }

    fn failed(&self, ip: IpAddr) {
        let mut addresses = self.addresses.lock().expect("failed keys lock");
        if addresses.len() >= MAX_TRACKED_ADDRESSES && !addresses.contains_key(&ip) {
            addresses.retain(|_, (_, since)| since.elapsed() < KEY_FAILURE_WINDOW);
            if addresses.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = addresses
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    addresses.remove(&oldest);
                }
            }
        }
        let entry = addresses.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= KEY_FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// Middleware for `/v1`: authenticates, rate-limits per key, and hands the [`Actor`] to handlers.
pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authorize(&state, request.headers(), client_ip(request.extensions())) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_by_hash() {
        let keys =
            ApiKeys::from_plain("alpha-key-0123456789, beta-key-0123456789,".split(',')).unwrap();
        assert!(ApiKeys::from_plain(["short"])
            .unwrap_err()
            .contains("facerec keys generate"));
        assert_eq!(generate_key().len(), 43);
        assert!(check_key(&generate_key()).is_ok());
        assert!(keys.verify("alpha-key-0123456789").is_some());
        assert!(keys.verify("beta-key-0123456789").is_some());
        assert!(keys.verify("gamma-key-0123456789").is_none());
        assert!(keys.verify("").is_none());
        assert_ne!(
            keys.verify("alpha-key-0123456789"),
            keys.verify("beta-key-0123456789"),
            "each key has its own id"
        );
        assert!(!format!("{:?}", keys).contains("alpha-key-0123456789"));
    }

    #[test]
    fn key_files_take_plain_and_hashed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let hashed = hex::encode(hash("second-key-0123456789"));
        std::fs::write(
            &path,
            format!("# ops\nfirst-key-0123456789\nsha256:{hashed}  # ci\n"),
        )
        .unwrap();
        let mut keys = ApiKeys::default();
        keys.add_file(&path).unwrap();
        assert!(
            keys.verify("first-key-0123456789").is_some()
                && keys.verify("second-key-0123456789").is_some()
        );
        std::fs::write(&path, "sha256:abc\n").unwrap();
        assert!(ApiKeys::default().add_file(&path).is_err());
        std::fs::write(&path, "short\n").unwrap();
        assert!(ApiKeys::default().add_file(&path).is_err());
    }
}
