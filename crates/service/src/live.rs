//! Live recognition of a video stream: faces are tracked from frame to frame, embedded when they
//! appear and then only now and then (or while their match is uncertain), and named by a vote over
//! their recent matches. One [`LiveSession`] per stream; the transport (a WebSocket) lives elsewhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use facerec_core::calibration::Calibration;
use facerec_core::capture::{CaptureMode, CapturePolicy, SeenCluster, Source};
use facerec_core::tracking::{TrackIdentity, Tracker, TrackerConfig};
use facerec_core::{Caller, CaptureId, Matcher, PersonId, Threshold};
use facerec_vision::{decode_image, Detection};

use crate::app::App;
use crate::captures::CaptureContext;
use crate::error::{AppError, AppResult};
use crate::events::Decided;
use crate::recognition::Seen;

/// One stream's state: its tracks, and the calibration and threshold it decides under (both fixed
/// when it opens, so every frame's estimate belongs to the threshold that decided it).
pub struct LiveSession<'a> {
    app: &'a App,
    tracker: Tracker,
    calibration: Arc<Calibration>,
    matcher: Matcher,
    caller: Caller,
    /// What the collection keeps of the stream's faces, and as coming from where.
    capture: CapturePolicy,
    context: CaptureContext,
    /// The detection score of the best face captured for each track seen in the last frame: a
    /// track is captured when it is first embedded and again only for a better face (the store
    /// merges them into one capture), not once per frame.
    captured: HashMap<u64, f32>,
    /// What each track of the last frame was announced as (an event per track when its name
    /// settles, not per frame): a person, or `None` for unknown.
    announced: HashMap<u64, Option<PersonId>>,
    /// The cluster each unknown track followed was captured into.
    clusters: HashMap<u64, SeenCluster>,
    /// The capture kept of each track followed.
    captures: HashMap<u64, CaptureId>,
}

/// An unknown track is announced once it rests on this many recognitions (a known one as soon as
/// a majority of its votes names someone).
const UNKNOWN_SETTLES_AFTER: usize = 2;

/// What one frame showed.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub took: Duration,
    /// Faces embedded for this frame (the others kept their track's identity).
    pub embedded: usize,
    pub faces: Vec<LiveFace>,
}

#[derive(Debug, Clone)]
pub struct LiveFace {
    pub detection: Detection,
    pub track_id: u64,
    /// The identity the track shows; `None` is unknown.
    pub identity: Option<TrackIdentity>,
}

impl App {
    /// A session for one stream; `threshold` overrides the configured one for this stream.
    pub fn live_session(
        &self,
        caller: &Caller,
        tracker: TrackerConfig,
        threshold: Option<Threshold>,
    ) -> LiveSession<'_> {
        let calibration = self.calibrator().calibration(&caller.collection);
        LiveSession {
            app: self,
            tracker: Tracker::new(tracker),
            matcher: Matcher::new(calibration.threshold()).with_threshold(threshold),
            calibration,
            capture: CapturePolicy::of(&caller.collection.settings),
            context: CaptureContext::route("stream"),
            captured: HashMap::new(),
            announced: HashMap::new(),
            clusters: HashMap::new(),
            captures: HashMap::new(),
            caller: caller.clone(),
        }
    }
}

/// Faces followed in one frame (the most confident, as the detector orders them): a webcam shows a
/// handful. It bounds a frame's work and a stream's tracks (at most this many per frame, each kept
/// for `max_missed` frames after it was last seen).
pub const MAX_FACES_PER_FRAME: usize = 20;

impl<'a> LiveSession<'a> {
    pub fn app(&self) -> &'a App {
        self.app
    }

    /// The source the stream's captures carry (default: the key's label).
    pub fn captured_as(mut self, source: Option<Source>) -> Self {
        self.context.source = source;
        self
    }

    /// Whom the stream serves.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The threshold this stream decides at (fixed when it opened).
    pub fn threshold(&self) -> Threshold {
        self.matcher.threshold()
    }

    /// The calibration this stream decides under (fixed when it opened).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Decodes and detects on the pool, updates the tracks, embeds and identifies the faces the
    /// tracker asks for (a second pool job, so a frame without such faces costs one detection).
    pub async fn process(&mut self, frame: Bytes) -> AppResult<LiveFrame> {
        let started = Instant::now();
        let app = self.app;
        let limits = app.limits;
        let models = app.models(&self.caller)?;
        let (image, detections) = app
            .engine
            .run(move |analyzers| -> AppResult<_> {
                let image = decode_image(&frame, &limits)?;
                let detections = analyzers.detect(models, &image)?;
                Ok((image, detections))
            })
            .await??;
        let mut detections = detections;
        detections.truncate(MAX_FACES_PER_FRAME);
        let boxes: Vec<_> = detections.iter().map(|d| d.bbox).collect();
        let assignments = self.tracker.update(&boxes);
        let (tracks, chosen): (Vec<u64>, Vec<Detection>) = assignments
            .iter()
            .zip(&detections)
            .filter(|(a, _)| a.needs_embedding)
            .map(|(a, d)| (a.track_id, d.clone()))
            .unzip();
        let embedded = chosen.len();
        let capturing = self.capture.mode != CaptureMode::Off;
        if !chosen.is_empty() {
            let faces = app
                .engine
                .run(move |analyzers| analyzers.embed(models, &image, chosen, capturing))
                .await?
                .map_err(AppError::from)?;
            for (track, mut face) in tracks.into_iter().zip(faces) {
                let recognition = app
                    .identify(&self.caller, &face.embedding, &self.matcher, 1)
                    .await?;
                self.tracker.record(track, &recognition);
                let best = self.captured.get(&track).copied();
                if capturing && best.is_none_or(|b| face.detection.score > b) {
                    let seen = Seen {
                        chip: face.chip.take(),
                        face: &face,
                        recognition: &recognition,
                        calibration: &self.calibration,
                    };
                    let (unknown, capture) = app
                        .capture(&self.caller, &self.capture, seen, &self.context)
                        .await;
                    if let Some(cluster) = unknown {
                        self.clusters.insert(track, cluster);
                    }
                    if let Some(capture) = capture {
                        self.captures.insert(track, capture);
                    }
                    self.captured.insert(track, face.detection.score);
                }
            }
        }
        // Each track's identity, once for the answer and the events alike.
        let faces: Vec<LiveFace> = detections
            .into_iter()
            .zip(&assignments)
            .map(|(detection, a)| LiveFace {
                detection,
                track_id: a.track_id,
                identity: self.tracker.identity(a.track_id),
            })
            .collect();
        if app.events().wanted(self.caller.collection_id()) {
            self.announce(&faces);
        }
        // Only the tracks of this frame are remembered: bounded by the faces of a frame.
        let current = |track: &u64| assignments.iter().any(|a| a.track_id == *track);
        self.captured.retain(|track, _| current(track));
        // What was told of a track is kept while the tracker follows it (a face missed for a
        // frame is not announced again when it is back): bounded by the tracker's tracks.
        let tracker = &self.tracker;
        self.announced.retain(|track, _| tracker.is_tracked(*track));
        self.clusters.retain(|track, _| tracker.is_tracked(*track));
        self.captures.retain(|track, _| tracker.is_tracked(*track));
        Ok(LiveFrame {
            took: started.elapsed(),
            embedded,
            faces,
        })
    }

    /// Tells the house about the tracks whose name settled since they were last announced: a
    /// track named someone (again, if it changed), an unknown track once.
    fn announce(&mut self, faces: &[LiveFace]) {
        let source = self.context.source_for(&self.caller);
        for face in faces {
            let track = face.track_id;
            let now = face.identity.as_ref().map(|i| i.person_id);
            let settled = match (&face.identity, self.announced.get(&track)) {
                (Some(_), announced) => announced != Some(&now),
                (None, None) => self.tracker.votes(track) >= UNKNOWN_SETTLES_AFTER,
                (None, Some(_)) => false,
            };
            if !settled {
                continue;
            }
            let decided = Decided {
                detection: &face.detection,
                person: face
                    .identity
                    .as_ref()
                    .map(|i| (i.person_id, i.name.clone(), i.similarity)),
                best: None,
                threshold: self.matcher.threshold(),
                calibration: &self.calibration,
                unknown: self.clusters.get(&track),
                capture: self.captures.get(&track).copied(),
            };
            self.app.events().emit(decided.event(&self.caller, &source));
            self.announced.insert(track, now);
        }
    }
}
