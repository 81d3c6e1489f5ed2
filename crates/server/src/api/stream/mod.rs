//! Real-time recognition over a WebSocket: the client sends JPEG frames, the server answers each frame
//! it processed with boxes, track ids and names. The newest frame always wins: frames arriving while one
//! is processed replace the waiting one, so latency stays bounded however fast the client sends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use facerec_core::calibration::Calibration;
use facerec_core::tracking::TrackerConfig;
use facerec_core::{Actor, ApiKey, Caller, Scope, Scopes};
use facerec_service::access::Lapse;
use facerec_service::{LiveFrame, LiveSession};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use utoipa::{IntoParams, ToSchema};

use super::auth::{authorize, RouteScope};

pub mod slots;
use super::error::ApiError;
use super::state::AppState;
use facerec_core::ErrorCode;
use facerec_service::tickets::TICKET_TTL;
pub use slots::{StreamLimits, StreamSlot, StreamSlots};

/// Answers waiting to be written to a slow client before the processing loop waits for it.
const OUTBOX: usize = 32;

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    /// Opens one stream, once: `GET /v1/stream?ticket=<ticket>`.
    pub ticket: String,
    /// Seconds the ticket stays valid (60).
    pub expires_in_secs: u64,
}

/// A one-time ticket that opens a stream (for browsers, which cannot send headers).
#[utoipa::path(post, path = "/v1/stream/ticket", tag = "stream",
    responses((status = 200, description = "A one-time ticket for GET /v1/stream?ticket=…", body = TicketResponse)),
    security(("bearer" = [])))]
pub async fn ticket(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<TicketResponse>, ApiError> {
    let ticket = state
        .app
        .access()
        .issue_stream_ticket(&caller)
        .await?
        .ok_or_else(ApiError::busy)?;
    Ok(Json(TicketResponse {
        ticket,
        expires_in_secs: TICKET_TTL.as_secs(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// A ticket from POST /v1/stream/ticket (browsers); other clients send their API key header.
    ticket: Option<String>,
    /// `off` embeds every face on every frame (for comparison); default on.
    tracking: Option<String>,
    /// Overrides the match threshold for this stream.
    threshold: Option<f32>,
    /// The camera or client, kept with the stream's captures where the collection captures: 1–64
    /// letters, digits, `-`, `_` and `.` (default: the key's label).
    source: Option<String>,
}

/// Live recognition of video frames over a WebSocket.
#[utoipa::path(get, path = "/v1/stream", tag = "stream", params(StreamQuery),
    description = "WebSocket. Send binary JPEG frames; each processed frame is answered with \
        `{frame, skipped, took_ms, embedded, faces: [{bbox, landmarks, det_score, track_id, match}]}`; \
        a bad frame with `{frame, error: {code, message}}` (the connection stays open).",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(RouteScope(scope)): Extension<RouteScope>,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let invalid_ticket = || {
        ApiError::new(
            ErrorCode::InvalidTicket,
            "the ticket is unknown, used or expired",
        )
    };
    let caller = match &query.ticket {
        Some(ticket) => match ticket_holder(&state, ticket).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return invalid_ticket().into_response(),
            Err(e) => return e.into_response(),
        },
        // A key in a header: the same check and request budget as every other keyed request.
        None => match authorize(&state, &headers, connect.map(|c| c.0 .0.ip()), scope).await {
            Ok(caller) => caller,
            Err(e) => return e.into_response(),
        },
    };
    let threshold = match query
        .threshold
        .map(facerec_core::Threshold::new)
        .transpose()
    {
        Ok(t) => t,
        Err(message) => return ApiError::bad_request(message).into_response(),
    };
    let source = match query
        .source
        .as_deref()
        .map(facerec_core::capture::Source::new)
    {
        None => None,
        Some(Ok(source)) => Some(source),
        Some(Err(message)) => return ApiError::bad_request(message).into_response(),
    };
    if let Err(e) = state.app.check_models(&caller) {
        return ApiError::from(e).into_response();
    }
    let slot = match state.stream_slots.acquire(&caller) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    // A ticket is spent only once a slot is granted: a refused client may retry with it.
    if let Some(ticket) = &query.ticket {
        match state.app.access().redeem_stream_ticket(ticket).await {
            Ok(true) => {}
            Ok(false) => return invalid_ticket().into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let mut tracker = state.stream_limits.tracker;
    tracker.enabled = query.tracking.as_deref() != Some("off");
    tracing::info!(tracking = tracker.enabled, "stream opened");
    // The hard cap of the transport sits above our own limit, so an oversized frame gets an error
    // message instead of a dropped connection.
    upgrade
        .max_message_size(state.stream_limits.max_frame_bytes.saturating_mul(4))
        .on_upgrade(move |socket| run(socket, state, caller, tracker, (threshold, source), slot))
}

/// A received frame: its number among the binary messages, and among the frames accepted (so the
/// processing side can tell how many were replaced before it took this one).
#[derive(Clone)]
struct Frame {
    number: u64,
    accepted: u64,
    bytes: Bytes,
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
    /// The threshold it was decided at, and the estimated share of strangers scoring this high
    /// (with its 95% upper bound), from the calibration that threshold is of.
    threshold: f32,
    /// Null where the calibration is weak (as `/v1/recognize` says).
    estimated_fpir: Option<f64>,
    estimated_fpir_upper: f64,
}

impl FrameResult {
    fn new(
        frame: &Frame,
        skipped: u64,
        live: LiveFrame,
        threshold: f32,
        calibration: &Calibration,
    ) -> Self {
        Self {
            frame: frame.number,
            skipped,
            took_ms: live.took.as_secs_f64() * 1e3,
            embedded: live.embedded,
            faces: live
                .faces
                .into_iter()
                .map(|face| StreamFace {
                    bbox: face.detection.bbox.to_array(),
                    landmarks: face.detection.landmarks,
                    det_score: face.detection.score,
                    track_id: face.track_id,
                    matched: face.identity.map(|id| StreamMatch {
                        person_id: id.person_id.0,
                        name: id.name,
                        similarity: id.similarity,
                        threshold,
                        estimated_fpir: (!calibration.weak)
                            .then(|| calibration.estimated_fpir(id.similarity)),
                        estimated_fpir_upper: calibration.estimated_fpir_upper(id.similarity),
                    }),
                })
                .collect(),
        }
    }
}

fn error_message(frame: Option<u64>, code: ErrorCode, message: &str) -> Message {
    let body = serde_json::json!({ "frame": frame, "error": { "code": code, "message": message } });
    Message::Text(body.to_string().into())
}

/// One connection: a reader task puts frames into a `watch` channel (the newest replaces one still
/// waiting), the processing loop takes the newest at the paced rate, and a writer task sends the
/// answers. The stream slot is held until all three are done.
async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    caller: Caller,
    tracker: TrackerConfig,
    (threshold, captured_as): (
        Option<facerec_core::Threshold>,
        Option<facerec_core::capture::Source>,
    ),
    _slot: StreamSlot,
) {
    let (sink, source) = socket.split();
    let (outgoing, outbox) = mpsc::channel::<Message>(OUTBOX);
    let limits = state.stream_limits.clone();
    let writer = tokio::spawn(write_answers(sink, outbox, limits.send_timeout));
    let (latest, frames) = watch::channel(None);
    let reader = tokio::spawn(read_frames(
        source,
        latest,
        outgoing.clone(),
        Arc::clone(&state),
        caller.actor.clone(),
    ));
    let session = state
        .app
        .live_session(&caller, tracker, threshold)
        .captured_as(captured_as);
    let min_interval = Duration::from_secs_f32(1.0 / limits.max_fps.max(0.1));
    tokio::select! {
        () = process_frames(session, frames, &outgoing, min_interval) => {}
        lapse = until_lapsed(&state, &caller) => {
            let _ = outgoing.send(lapsed_close(lapse)).await;
        }
    }
    reader.abort();
    drop(outgoing);
    let _ = writer.await;
    tracing::info!("stream closed");
}

/// Reads the client's messages until it closes or sends no frame for the idle timeout: binary
/// frames within the key's frame budget go to `latest`; anything else is answered with an error and
/// the connection stays open.
async fn read_frames(
    mut source: SplitStream<WebSocket>,
    latest: watch::Sender<Option<Frame>>,
    outgoing: mpsc::Sender<Message>,
    state: Arc<AppState>,
    actor: Actor,
) {
    let limits = &state.stream_limits;
    let (mut number, mut accepted) = (0u64, 0u64);
    let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
    loop {
        let message = match tokio::time::timeout_at(idle_deadline, source.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => break,
            Err(_) => {
                let _ = outgoing.send(idle_close(limits)).await;
                break;
            }
        };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(_) => {
                let reply = error_message(
                    None,
                    ErrorCode::InvalidMessage,
                    "send frames as binary JPEG messages",
                );
                let _ = outgoing.send(reply).await;
                continue;
            }
        };
        number += 1;
        idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
        if let Some(refusal) = refusal(&state, &actor, number, bytes.len()) {
            let _ = outgoing.send(refusal).await;
            continue;
        }
        accepted += 1;
        latest.send_replace(Some(Frame {
            number,
            accepted,
            bytes,
        }));
    }
    // Dropping `latest` tells the processing loop that no frame will come.
}

/// Why frame `number` (of `len` bytes) is refused, as the message that says so: beyond the key's
/// frame budget, or larger than the frame limit.
fn refusal(state: &AppState, actor: &Actor, number: u64, len: usize) -> Option<Message> {
    let limits = &state.stream_limits;
    if let Some(Err(wait)) = state.frame_limit.as_ref().map(|l| l.check(actor)) {
        let text = format!(
            "this key sends more than {} frames a second; retry in {} ms",
            limits.max_frames_per_sec_per_key,
            wait.as_millis()
        );
        return Some(error_message(Some(number), ErrorCode::RateLimited, &text));
    }
    if len > limits.max_frame_bytes {
        let text = format!("frames are limited to {} bytes", limits.max_frame_bytes);
        return Some(error_message(Some(number), ErrorCode::FrameTooLarge, &text));
    }
    None
}

/// How often an open stream asks whether its key or collection has ended (mostly from the access
/// cache: the database is read at most once per [`facerec_service::access::CACHE_TTL`]). A
/// revocation, an expiry or a deletion then ends the stream within this plus that.
const LAPSE_CHECK: Duration = Duration::from_millis(250);

/// Returns once the caller's key has ended or its collection is gone. A failed look (the database
/// unreachable) is not an end: the stream goes on and the next look asks again.
async fn until_lapsed(state: &AppState, caller: &Caller) -> Lapse {
    let mut tick = tokio::time::interval(LAPSE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.app.access().lapse(caller).await {
            Ok(Some(lapse)) => return lapse,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not check a stream's key; retrying"),
        }
    }
}

/// The close frame of a stream whose key or collection ended.
fn lapsed_close(lapse: Lapse) -> Message {
    tracing::info!(reason = lapse.reason(), "closing a stream");
    Message::Close(Some(CloseFrame {
        code: close_code::POLICY,
        reason: lapse.reason().into(),
    }))
}

/// The close frame of a stream that sent nothing for the idle timeout.
fn idle_close(limits: &StreamLimits) -> Message {
    let reason = format!(
        "no frame for {} s: closing the idle stream",
        limits.idle_timeout.as_secs()
    );
    Message::Close(Some(CloseFrame {
        code: close_code::POLICY,
        reason: reason.into(),
    }))
}

/// Processes the newest frame, at most `max_fps` a second, until the reader is done.
async fn process_frames(
    mut session: LiveSession<'_>,
    mut frames: watch::Receiver<Option<Frame>>,
    outgoing: &mpsc::Sender<Message>,
    min_interval: Duration,
) {
    let mut last_accepted = 0;
    let mut last_start: Option<tokio::time::Instant> = None;
    loop {
        if let Some(start) = last_start {
            tokio::time::sleep_until(start + min_interval).await;
        }
        if frames.changed().await.is_err() {
            break;
        }
        let Some(frame) = frames.borrow_and_update().clone() else {
            continue;
        };
        let skipped = frame.accepted - last_accepted - 1;
        last_accepted = frame.accepted;
        last_start = Some(tokio::time::Instant::now());
        let reply = match session.process(frame.bytes.clone()).await {
            Ok(live) => {
                let calibration = session.calibration();
                let threshold = session.threshold().value();
                let result = FrameResult::new(&frame, skipped, live, threshold, calibration);
                Message::Text(serde_json::to_string(&result).expect("plain data").into())
            }
            Err(e) => {
                let e = ApiError::from(e);
                error_message(Some(frame.number), e.code, &e.message)
            }
        };
        if outgoing.send(reply).await.is_err() {
            break;
        }
    }
}

/// Sends the answers in order; ends when every sender is gone, or the client stops reading (an
/// answer not taken within `send_timeout`).
async fn write_answers(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Message>,
    send_timeout: Duration,
) {
    while let Some(message) = outbox.recv().await {
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(send_timeout, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            _ => break,
        }
    }
    let _ = tokio::time::timeout(send_timeout, sink.close()).await;
}

/// Who holds a ticket: its key's collection, with only the scope to stream.
async fn ticket_holder(state: &AppState, ticket: &str) -> Result<Option<Caller>, ApiError> {
    let Some((actor, collection)) = state.app.access().stream_ticket_holder(ticket).await? else {
        return Ok(None);
    };
    let caller = Caller {
        key: ApiKey::id_of(&actor),
        actor,
        collection: state.app.access().collection(&collection.into()).await?,
        scopes: Scopes::NONE.with(Scope::Recognize),
        label: None,
    };
    // A ticket dies with its key and its collection.
    if state.app.access().lapse(&caller).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(caller))
}
