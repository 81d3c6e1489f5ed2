//! How many streams may be open, per key and per collection, and the settings that bound each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facerec_core::tracking::TrackerConfig;
use facerec_core::{Caller, CollectionId, ErrorCode};

use crate::api::error::ApiError;

/// Limits of the stream endpoint.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub max_frame_bytes: usize,
    /// Frames processed per second per connection; frames arriving faster replace the waiting one.
    pub max_fps: f32,
    /// Streams open at once, over all keys.
    pub max_streams: usize,
    /// Streams one API key may hold at once, so that one client cannot take every slot.
    pub max_streams_per_key: usize,
    /// Frames one API key may send per second over all its streams; more are refused on the socket.
    pub max_frames_per_sec_per_key: u32,
    /// A stream that sends no frame for this long is closed, and its slot freed.
    pub idle_timeout: Duration,
    /// An answer the client does not take within this long ends the stream.
    pub send_timeout: Duration,
    pub tracker: TrackerConfig,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 2 * 1024 * 1024,
            max_fps: 30.0,
            max_streams: 8,
            max_streams_per_key: 4,
            max_frames_per_sec_per_key: 60,
            idle_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(10),
            tracker: TrackerConfig::default(),
        }
    }
}

/// The stream slots: a total, and a share per key.
pub struct StreamSlots {
    total: usize,
    per_key: usize,
    /// Streams held per key, and per collection (each map: at most `total` entries).
    held: Mutex<(HashMap<String, usize>, HashMap<CollectionId, usize>)>,
}

/// One held slot; dropping it frees the slot.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: String,
    collection: CollectionId,
}

impl StreamSlots {
    pub fn new(total: usize, per_key: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_key: per_key.max(1),
            held: Mutex::default(),
        })
    }

    /// A slot for the caller: within the server's total, its key's share and its collection's
    /// cap (`max_streams`, when the collection sets one).
    pub(super) fn acquire(self: &Arc<Self>, caller: &Caller) -> Result<StreamSlot, ApiError> {
        let actor = &caller.actor;
        let mut guard = self.held.lock().expect("stream slots lock");
        let (held, collections) = &mut *guard;
        if held.values().sum::<usize>() >= self.total {
            return Err(
                ApiError::new(ErrorCode::TooManyStreams, "all stream slots are in use")
                    .retry_after(5),
            );
        }
        let mine = held.entry(actor.0.clone()).or_default();
        if *mine >= self.per_key {
            return Err(ApiError::new(
                ErrorCode::TooManyStreamsForKey,
                format!("this key already holds {} streams", self.per_key),
            )
            .retry_after(5));
        }
        let cap = caller.collection.settings.max_streams.map(|n| n as usize);
        let in_collection = collections.get(&caller.collection.id).copied().unwrap_or(0);
        if cap.is_some_and(|cap| in_collection >= cap) {
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "this collection's {} stream slots are in use",
                    cap.unwrap_or_default()
                ),
            )
            .retry_after(5));
        }
        *mine += 1;
        *collections.entry(caller.collection.id).or_default() += 1;
        Ok(StreamSlot {
            slots: Arc::clone(self),
            key: actor.0.clone(),
            collection: caller.collection.id,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut guard = self.slots.held.lock().expect("stream slots lock");
        let (held, collections) = &mut *guard;
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
        if let Some(n) = collections.get_mut(&self.collection) {
            *n -= 1;
            if *n == 0 {
                collections.remove(&self.collection);
            }
        }
    }
}
