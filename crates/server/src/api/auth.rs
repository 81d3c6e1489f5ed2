//! Who is calling: the key a request presents (`Authorization: Bearer <key>` or
//! `X-API-Key: <key>`, required on every keyed route once keys exist) becomes a grant — a
//! configured key ([`super::keys`]) or one kept in the database — then the collection the request
//! acts in, then the [`Caller`] every use case acts for, within the key's budget
//! ([`super::limits`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_core::{Actor, Caller, Collection, CollectionId, CollectionRef, Scope, Scopes};

use super::error::ApiError;
use super::limits::rate_limited;
use super::state::AppState;
use facerec_core::ErrorCode;

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
pub async fn key_only_in_body(state: &AppState, headers: &HeaderMap) -> bool {
    // A database that cannot say whether keys are in force is taken to hold some.
    presented_key(headers).is_none() && keys_required(state).await.unwrap_or(true)
}

/// Whether a request must bring a key: keys are configured, or kept in the database (from the
/// first live one on, on loopback too), or the server listens beyond loopback.
async fn keys_required(state: &AppState) -> Result<bool, ApiError> {
    if !state.keys.is_empty() || !state.loopback {
        return Ok(true);
    }
    Ok(state.app.access().keys_in_force().await?.any)
}

/// The header that names the collection a request acts in, for keys that reach several (the
/// operator's and `admin` keys); others act in their own.
pub const COLLECTION_HEADER: &str = "x-facerec-collection";

/// Who presented what, before the collection is settled.
struct Grant {
    actor: Actor,
    /// Its collection; `None`: any collection.
    collection: Option<CollectionRef>,
    scopes: Scopes,
    key: Option<facerec_core::KeyId>,
    label: Option<String>,
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
        if !keys_required(state).await? {
            // No key anywhere, on loopback: the local operator.
            return Ok(Grant {
                actor: Actor::local_operator(),
                collection: None,
                scopes: operator,
                key: None,
                label: None,
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
            label: None,
        });
    }
    match state.app.access().key_for_secret(presented).await? {
        Some(key) => Ok(Grant {
            actor: key.actor(),
            collection: Some(key.collection_id.into()),
            scopes: key.scopes,
            key: Some(key.id),
            label: Some(key.label),
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
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<CollectionRef>()
                .unwrap_or_else(|never| match never {})
        });
    let access = state.app.access();
    let own = match &grant.collection {
        Some(own) => Some(access.collection(own).await?),
        None => None,
    };
    let reaches_all = grant.collection.is_none() || grant.scopes.has(Scope::Admin);
    match (named, own) {
        (Some(named), _) if reaches_all => Ok(access.collection(&named).await?),
        (Some(named), Some(own)) if named.is(&own) => Ok(own),
        (Some(named), _) => Err(facerec_service::AppError::Store(
            facerec_core::StoreError::CollectionNotFound(named.to_string()),
        )
        .into()),
        (None, Some(own)) => Ok(own),
        (None, None) => Ok(access.collection(&CollectionId::DEFAULT.into()).await?),
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
    if let Some(ip) = client {
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
        label: grant.label,
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
