//! Real-time recognition over a WebSocket: the client sends JPEG frames, the server answers each frame
//! it processed with boxes, track ids and names. The newest frame always wins: frames arriving while one
//! is processed replace the waiting one, so latency stays bounded however fast the client sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use facerec_core::tracking::{Tracker, TrackerConfig};
use facerec_core::Actor;
use facerec_vision::{decode_image, Detection};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use utoipa::{IntoParams, ToSchema};

use super::auth::authenticate;
use super::error::ApiError;
use super::AppState;
use crate::app::{AppError, NameCache};

/// Limits of the stream endpoint.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub max_frame_bytes: usize,
    /// Frames processed per second per connection; frames arriving faster replace the waiting one.
    pub max_fps: f32,
    pub max_streams: usize,
    pub tracker: TrackerConfig,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 2 * 1024 * 1024,
            max_fps: 30.0,
            max_streams: 8,
            tracker: TrackerConfig::default(),
        }
    }
}

const TICKET_TTL: Duration = Duration::from_secs(60);
const NAME_REFRESH_FRAMES: u64 = 300;

/// One-time tickets that let a browser open the stream without putting its API key in a URL.
#[derive(Default)]
pub struct Tickets(Mutex<HashMap<String, (Actor, Instant)>>);

impl Tickets {
    pub fn issue(&self, actor: Actor) -> String {
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut map = self.0.lock().expect("tickets lock");
        map.retain(|_, (_, issued)| issued.elapsed() < TICKET_TTL);
        map.insert(ticket.clone(), (actor, Instant::now()));
        ticket
    }

    /// The ticket's holder, once: a ticket is gone after its first use or after a minute.
    pub fn redeem(&self, ticket: &str) -> Option<Actor> {
        let (actor, issued) = self.0.lock().expect("tickets lock").remove(ticket)?;
        (issued.elapsed() < TICKET_TTL).then_some(actor)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_in_secs: u64,
}

#[utoipa::path(post, path = "/v1/stream/ticket", tag = "stream",
    responses((status = 200, description = "A one-time ticket for GET /v1/stream?ticket=…", body = TicketResponse)),
    security(("api_key" = [])))]
pub async fn ticket(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
) -> Json<TicketResponse> {
    Json(TicketResponse {
        ticket: state.tickets.issue(actor),
        expires_in_secs: TICKET_TTL.as_secs(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// A ticket from POST /v1/stream/ticket (browsers); other clients send their API key header.
    ticket: Option<String>,
    /// `off` embeds every face on every frame (for comparison); default on.
    tracking: Option<String>,
    /// Overrides the match threshold for this stream.
    threshold: Option<f32>,
}

#[utoipa::path(get, path = "/v1/stream", tag = "stream", params(StreamQuery),
    description = "WebSocket. Send binary JPEG frames; each processed frame is answered with \
        `{frame, skipped, took_ms, embedded, faces: [{bbox, landmarks, det_score, track_id, match}]}`; \
        a bad frame with `{frame, error: {code, message}}` (the connection stays open).",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let actor = match &query.ticket {
        Some(ticket) => match state.tickets.redeem(ticket) {
            Some(actor) => actor,
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_ticket",
                    "the ticket is unknown, used or expired",
                )
                .into_response()
            }
        },
        None => match authenticate(&state.keys, &headers) {
            Ok(actor) => actor,
            Err(e) => return e.into_response(),
        },
    };
    let Ok(permit) = Arc::clone(&state.stream_slots).try_acquire_owned() else {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "all stream slots are in use",
        );
        e.retry_after_secs = Some(5);
        return e.into_response();
    };
    let threshold = match query
        .threshold
        .map(facerec_core::Threshold::new)
        .transpose()
    {
        Ok(t) => t,
        Err(message) => return ApiError::bad_request(message).into_response(),
    };
    let mut tracker = state.stream_limits.tracker;
    tracker.enabled = query.tracking.as_deref() != Some("off");
    tracing::info!(actor = %actor.0, tracking = tracker.enabled, "stream opened");
    // The hard cap of the transport sits above our own limit, so an oversized frame gets an error
    // message instead of a dropped connection.
    upgrade
        .max_message_size(state.stream_limits.max_frame_bytes.saturating_mul(4))
        .on_upgrade(move |socket| run(socket, state, tracker, threshold, permit))
}

/// The frame waiting to be processed; newer frames replace it.
#[derive(Default)]
struct Pending {
    frame: Option<(u64, Bytes)>,
    skipped: u64,
    closed: bool,
}

#[derive(Serialize)]
struct FrameResult {
    frame: u64,
    skipped: u64,
    took_ms: f64,
    embedded: usize,
    faces: Vec<StreamFace>,
}

#[derive(Serialize)]
struct StreamFace {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    det_score: f32,
    track_id: u64,
    #[serde(rename = "match")]
    matched: Option<StreamMatch>,
}

#[derive(Serialize)]
struct StreamMatch {
    person_id: uuid::Uuid,
    name: String,
    similarity: f32,
}

fn error_message(frame: Option<u64>, code: &str, message: &str) -> Message {
    let body = serde_json::json!({ "frame": frame, "error": { "code": code, "message": message } });
    Message::Text(body.to_string().into())
}

async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    tracker: TrackerConfig,
    threshold: Option<facerec_core::Threshold>,
    _permit: OwnedSemaphorePermit,
) {
    let (mut sink, mut source) = socket.split();
    let (outgoing, mut outbox) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let pending = Arc::new(Mutex::new(Pending::default()));
    let wake = Arc::new(Notify::new());
    let limits = state.stream_limits.clone();
    let reader = {
        let (pending, wake, outgoing) = (Arc::clone(&pending), Arc::clone(&wake), outgoing.clone());
        tokio::spawn(async move {
            let mut number = 0u64;
            while let Some(Ok(message)) = source.next().await {
                let bytes = match message {
                    Message::Binary(bytes) => bytes,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Text(_) => {
                        let _ = outgoing
                            .send(error_message(
                                None,
                                "invalid_message",
                                "send frames as binary JPEG messages",
                            ))
                            .await;
                        continue;
                    }
                };
                number += 1;
                if bytes.len() > limits.max_frame_bytes {
                    let text = format!("frames are limited to {} bytes", limits.max_frame_bytes);
                    let _ = outgoing
                        .send(error_message(Some(number), "frame_too_large", &text))
                        .await;
                    continue;
                }
                let mut slot = pending.lock().expect("pending lock");
                if slot.frame.replace((number, bytes)).is_some() {
                    slot.skipped += 1;
                }
                drop(slot);
                wake.notify_one();
            }
            pending.lock().expect("pending lock").closed = true;
            wake.notify_one();
        })
    };

    let mut session = Session {
        state: &state,
        tracker: Tracker::new(tracker),
        matcher: state.app.matcher.with_threshold(threshold),
        names: NameCache::default(),
    };
    // The frame-rate limit paces processing; frames arriving meanwhile replace the waiting one.
    let min_interval = Duration::from_secs_f32(1.0 / state.stream_limits.max_fps.max(0.1));
    let mut last_start: Option<tokio::time::Instant> = None;
    loop {
        if let Some(start) = last_start {
            tokio::time::sleep_until(start + min_interval).await;
        }
        let next = {
            let mut slot = pending.lock().expect("pending lock");
            if slot.closed {
                break;
            }
            slot.frame
                .take()
                .map(|frame| (frame, std::mem::take(&mut slot.skipped)))
        };
        let Some(((number, bytes), skipped)) = next else {
            wake.notified().await;
            continue;
        };
        last_start = Some(tokio::time::Instant::now());
        // Names are cached per stream; refreshing now and then lets renames show on long streams.
        if number % NAME_REFRESH_FRAMES == 0 {
            session.names.forget();
        }
        let reply = match session.process(bytes).await {
            Ok(mut result) => {
                result.frame = number;
                result.skipped = skipped;
                Message::Text(serde_json::to_string(&result).expect("plain data").into())
            }
            Err(e) => {
                let e = ApiError::from(e);
                error_message(Some(number), e.code, &e.message)
            }
        };
        if outgoing.send(reply).await.is_err() {
            break;
        }
    }
    reader.abort();
    drop(outgoing);
    let _ = writer.await;
    tracing::info!("stream closed");
}

/// One connection's state: its tracks and the names it has looked up.
struct Session<'a> {
    state: &'a AppState,
    tracker: Tracker,
    matcher: facerec_core::Matcher,
    names: NameCache,
}

impl Session<'_> {
    async fn process(&mut self, bytes: Bytes) -> Result<FrameResult, AppError> {
        let started = Instant::now();
        let app = &self.state.app;
        let limits = app.limits;
        let (image, detections) = app
            .engine
            .run(move |analyzer| -> Result<_, AppError> {
                let image = decode_image(&bytes, &limits)?;
                let detections = analyzer.detect(&image)?;
                Ok((image, detections))
            })
            .await??;
        let boxes: Vec<_> = detections.iter().map(|d| d.bbox).collect();
        let assignments = self.tracker.update(&boxes);
        let to_embed: Vec<(u64, Detection)> = assignments
            .iter()
            .zip(&detections)
            .filter(|(a, _)| a.needs_embedding)
            .map(|(a, d)| (a.track_id, d.clone()))
            .collect();
        let embedded = to_embed.len();
        if !to_embed.is_empty() {
            let (tracks, chosen): (Vec<u64>, Vec<Detection>) = to_embed.into_iter().unzip();
            let faces = app
                .engine
                .run(move |analyzer| analyzer.embed_detections(&image, chosen))
                .await??;
            for (track, face) in tracks.into_iter().zip(faces) {
                let recognition = app
                    .identify(&face.embedding, &self.matcher, 1, &mut self.names)
                    .await?;
                self.tracker.record(track, &recognition);
            }
        }
        let faces = detections
            .iter()
            .zip(&assignments)
            .map(|(d, a)| StreamFace {
                bbox: d.bbox.to_array(),
                landmarks: d.landmarks,
                det_score: d.score,
                track_id: a.track_id,
                matched: self.tracker.identity(a.track_id).map(|id| StreamMatch {
                    person_id: id.person_id.0,
                    name: id.name,
                    similarity: id.similarity,
                }),
            })
            .collect();
        Ok(FrameResult {
            frame: 0,
            skipped: 0,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            embedded,
            faces,
        })
    }
}
