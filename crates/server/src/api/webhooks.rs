//! A collection's webhooks and their deliveries: thin handlers over `facerec_service::events`.
//! Which key may call them is the route table's (scope `admin`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use facerec_core::events::{Delivery, Webhook, WebhookId};
use facerec_core::Caller;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{body, ApiError, Body, ErrorBody};
use super::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn webhook_id(text: &str) -> ApiResult<WebhookId> {
    super::error::path_id("webhook", text)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookDto {
    /// Where events are POSTed: http or https. Loopback, private, link-local and other
    /// non-public addresses are refused unless the operator allows private networks.
    pub url: String,
    /// The event types it receives (default: all): `face.recognized`, `face.unknown`,
    /// `face.none`, `person.deleted`, `collection.deleted`, `collection.renamed`.
    pub events: Option<Vec<String>>,
}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDto {
    /// The webhook's id (UUID).
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// When it was created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// While deliveries fail: the attempts at the oldest event it has not received.
    pub failing_attempts: u32,
    /// Why the last attempt failed, while deliveries fail.
    pub last_error: Option<String>,
    /// When the next attempt is due, while deliveries fail (RFC 3339).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<Webhook> for WebhookDto {
    fn from(w: Webhook) -> Self {
        let failing = w.state.attempts > 0;
        Self {
            id: w.id.0,
            url: w.url.as_str().to_owned(),
            events: w.events.into(),
            created_at: w.created_at,
            failing_attempts: w.state.attempts,
            last_error: w.state.last_error.filter(|_| failing),
            next_attempt_at: w.state.next_attempt_at.filter(|_| failing),
        }
    }
}

/// A webhook just created, with its signing secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookDto {
    #[serde(flatten)]
    pub webhook: WebhookDto,
    /// The signing secret (`whsec_` and base64), as Standard Webhooks' libraries take it: every
    /// delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
    /// HMAC-SHA256 of "{id}.{timestamp}.{body}">`. Not shown again.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksList {
    /// The collection's webhooks, oldest first.
    pub items: Vec<WebhookDto>,
}

/// One event's delivery to a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    /// The event's id (its `webhook-id` header).
    pub event_id: Uuid,
    /// The event's type.
    #[schema(example = "face.recognized")]
    pub event_type: String,
    /// `delivered`, or `failed` (given up after a day of attempts).
    #[schema(example = "delivered")]
    pub status: String,
    /// Attempts it took (or that failed).
    pub attempts: u32,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// When it ended (RFC 3339).
    pub at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            event_id: d.event_id,
            event_type: d.event_type.as_str().to_owned(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            reason: d.reason,
            at: d.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesList {
    /// The newest first.
    pub items: Vec<DeliveryDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (1–1,000; default 100).
    pub limit: Option<u32>,
}

/// Create a webhook: this collection's events are POSTed to it, signed.
#[utoipa::path(post, path = "/v1/webhooks", tag = "events", request_body = NewWebhookDto,
    responses((status = 201, body = CreatedWebhookDto),
              (status = 422, description = "invalid_webhook, webhook_address_refused", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    new: Body<NewWebhookDto>,
) -> ApiResult<(StatusCode, Json<CreatedWebhookDto>)> {
    let NewWebhookDto { url, events } = body(new)?;
    let created = state
        .app
        .events()
        .create_webhook(&caller, &url, events)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhookDto {
            webhook: created.webhook.into(),
            secret: created.secret.0,
        }),
    ))
}

/// List this collection's webhooks.
#[utoipa::path(get, path = "/v1/webhooks", tag = "events",
    responses((status = 200, body = WebhooksList)), security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<WebhooksList>> {
    let webhooks = state.app.events().webhooks(&caller).await?;
    Ok(Json(WebhooksList {
        items: webhooks.into_iter().map(Into::into).collect(),
    }))
}

/// Read a webhook (and whether its deliveries fail).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookDto), (status = 404, description = "webhook_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookDto>> {
    let webhook = state
        .app
        .events()
        .webhook(&caller, webhook_id(&id)?)
        .await?;
    Ok(Json(webhook.into()))
}

/// Delete a webhook: nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "webhook_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .events()
        .delete_webhook(&caller, webhook_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first: delivered, or failed with the reason.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "events",
    params(("id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveriesList), (status = 404, description = "webhook_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<DeliveriesList>> {
    let limit =
        facerec_service::ranges::DELIVERIES_PAGE.check("limit", q.limit.map(u64::from))? as u32;
    let deliveries = state
        .app
        .events()
        .deliveries(&caller, webhook_id(&id)?, limit)
        .await?;
    Ok(Json(DeliveriesList {
        items: deliveries.into_iter().map(Into::into).collect(),
    }))
}
