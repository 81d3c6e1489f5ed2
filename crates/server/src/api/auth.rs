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
use facerec_core::{Actor, Caller, Collection, CollectionId, Scope, Scopes};
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

pub use facerec_service::access::generate_secret as generate_key;

/// A key given in the configuration: the operator's (every scope on every collection but
/// `embeddings`), or bound by the key file to a collection and scopes.
#[derive(Clone)]
struct ConfiguredKey {
    hash: [u8; 32],
    /// `None`: any collection (the one a request names, else `default`).
    collection: Option<String>,
    /// `None`: the operator's scopes.
    scopes: Option<Scopes>,
}

/// The configured keys, as hashes.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ConfiguredKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.keys.len())
    }
}

/// What a configured key may do, once verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredGrant {
    pub actor: Actor,
    pub collection: Option<String>,
    pub scopes: Option<Scopes>,
}

impl ApiKeys {
    /// From plain keys (comma-separated in FACEREC_API_KEYS): operator keys. Blank entries are
    /// ignored, short ones refused ([`check_key`]).
    pub fn from_plain<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut configured = Vec::new();
        for key in keys.into_iter().map(str::trim).filter(|k| !k.is_empty()) {
            check_key(key)?;
            configured.push(ConfiguredKey {
                hash: hash(key),
                collection: None,
                scopes: None,
            });
        }
        Ok(Self { keys: configured })
    }

    /// Adds the keys of a file, one per line: the key, plain or as `sha256:<hex>` (so the file
    /// need not hold secrets), then optionally `collection=<name>` and `scopes=<a,b,...>`; `#`
    /// starts a comment. A key without `scopes=` is an operator key.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("{}:{}: {e}", path.display(), n + 1);
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else {
                continue;
            };
            let digest = match key.strip_prefix("sha256:") {
                Some(hexed) => hex::decode(hexed)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| at("not a sha256 hex digest".into()))?,
                None => {
                    check_key(key).map_err(at)?;
                    hash(key)
                }
            };
            let mut configured = ConfiguredKey {
                hash: digest,
                collection: None,
                scopes: None,
            };
            for word in words {
                match word.split_once('=') {
                    Some(("collection", name)) => {
                        facerec_core::collection::check_collection_name(name)
                            .map_err(|e| at(e.to_string()))?;
                        configured.collection = Some(name.to_owned());
                    }
                    Some(("scopes", list)) => {
                        configured.scopes = Some(Scopes::parse_list(list).map_err(at)?);
                    }
                    _ => {
                        return Err(at(format!(
                            "'{word}' is neither collection=<name> nor scopes=<a,b>"
                        )))
                    }
                }
            }
            self.keys.push(configured);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What the key may do when it is one of ours. Every configured hash is compared, so timing
    /// tells nothing about which or how much matched.
    pub fn verify(&self, presented: &str) -> Option<ConfiguredGrant> {
        let digest = hash(presented);
        let mut found: Option<&ConfiguredKey> = None;
        for candidate in &self.keys {
            if bool::from(candidate.hash.ct_eq(&digest)) {
                found = Some(candidate);
            }
        }
        found.map(|key| ConfiguredGrant {
            actor: key_id(&key.hash),
            collection: key.collection.clone(),
            scopes: key.scopes,
        })
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

/// The header that names the collection a request acts in, for keys that reach several (the
/// operator's and `admin` keys); others act in their own.
pub const COLLECTION_HEADER: &str = "x-facerec-collection";

/// Who presented what, before the collection is settled.
struct Grant {
    actor: Actor,
    /// Its collection, by name or id; `None`: any collection.
    collection: Option<String>,
    scopes: Scopes,
    key: Option<facerec_core::KeyId>,
}

fn missing_key() -> ApiError {
    ApiError::new(
        ErrorCode::MissingApiKey,
        "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    )
}

fn invalid_key() -> ApiError {
    ApiError::new(ErrorCode::InvalidApiKey, "the API key is not valid")
}

/// The presented key's grant: a configured key, else one kept in the database (live), else 401.
/// No key at all is the local operator on a server without configured keys.
async fn grant(state: &AppState, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let operator = Scopes::operator(state.allow_embeddings);
    let Some(presented) = presented_key(headers) else {
        if state.keys.is_empty() {
            // Without keys the server only listens on loopback (enforced at start).
            return Ok(Grant {
                actor: Actor::local_operator(),
                collection: None,
                scopes: operator,
                key: None,
            });
        }
        return Err(missing_key());
    };
    if let Some(configured) = state.keys.verify(presented) {
        return Ok(Grant {
            actor: configured.actor,
            collection: configured.collection,
            scopes: configured.scopes.unwrap_or(operator),
            key: None,
        });
    }
    match state.app.key_for_secret(presented).await? {
        Some(key) => Ok(Grant {
            actor: key.actor(),
            collection: Some(key.collection_id.to_string()),
            scopes: key.scopes,
            key: Some(key.id),
        }),
        None => Err(invalid_key()),
    }
}

/// The collection the request acts in: the key's own, or (for keys that reach several) the one
/// named by [`COLLECTION_HEADER`], else `default`. A key naming a collection it cannot reach is
/// told it does not exist.
async fn collection_of(
    state: &AppState,
    grant: &Grant,
    headers: &HeaderMap,
) -> Result<Arc<Collection>, ApiError> {
    let named = headers
        .get(COLLECTION_HEADER)
        .map(|v| {
            v.to_str().map(str::trim).map_err(|_| {
                ApiError::bad_request(format!("the {COLLECTION_HEADER} header is not text"))
            })
        })
        .transpose()?
        .filter(|n| !n.is_empty());
    let own = match &grant.collection {
        Some(own) => Some(state.app.collection(own).await?),
        None => None,
    };
    let reaches_all = grant.collection.is_none() || grant.scopes.has(Scope::Admin);
    match (named, own) {
        (Some(named), _) if reaches_all => Ok(state.app.collection(named).await?),
        (Some(named), Some(own)) if named == own.name || named == own.id.to_string() => Ok(own),
        (Some(named), _) => Err(facerec_service::AppError::Store(
            facerec_core::StoreError::CollectionNotFound(named.to_owned()),
        )
        .into()),
        (None, Some(own)) => Ok(own),
        (None, None) => Ok(state.app.collection_by_id(CollectionId::DEFAULT).await?),
    }
}

/// Who is calling, in which collection, allowed `scope`, within their request budget: the key
/// (refused for a while for an address whose keys keep failing, [`FailedKeys`]), the scope, the
/// collection, then the per-key rate limit.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    scope: Scope,
) -> Result<Caller, ApiError> {
    if let Some(ip) = client.filter(|_| !state.keys.is_empty()) {
        if let Some(wait) = state.failed_keys.blocked(ip) {
            return Err(rate_limited(
                wait,
                "too many invalid API keys from this address",
            ));
        }
    }
    let grant = match grant(state, headers).await {
        Err(e) if e.code == ErrorCode::InvalidApiKey => {
            if let Some(ip) = client {
                state.failed_keys.failed(ip);
            }
            return Err(e);
        }
        other => other?,
    };
    if !grant.scopes.has(scope) {
        return Err(insufficient_scope(scope));
    }
    let collection = collection_of(state, &grant, headers).await?;
    if let Some(limit) = &state.rate_limit {
        limit
            .check(&grant.actor)
            .map_err(|wait| rate_limited(wait, "too many requests for this key"))?;
    }
    Ok(Caller {
        actor: grant.actor,
        collection,
        scopes: grant.scopes,
        key: grant.key,
    })
}

/// The 403 of a key without the scope a route needs, naming it.
pub fn insufficient_scope(scope: Scope) -> ApiError {
    ApiError::from(facerec_service::AppError::InsufficientScope(scope))
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

/// The scope a route needs, as its row of the route table declares it (for handlers that
/// authenticate themselves: DeepStack's form key, the stream's ticket).
#[derive(Debug, Clone, Copy)]
pub struct RouteScope(pub Scope);

/// Middleware of a keyed route: authenticates for the route's scope, rate-limits per key, and
/// hands the [`Caller`] to the handler.
pub async fn require_scope(
    State((state, scope)): State<(Arc<AppState>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = client_ip(request.extensions());
    match authorize(&state, request.headers(), client, scope).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware of a route whose handler authenticates itself: tells it the route's scope.
pub async fn declare_scope(
    State(scope): State<Scope>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(RouteScope(scope));
    next.run(request).await
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
