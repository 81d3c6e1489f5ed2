//! Recognition (1:N), verification (1:1) and detection.

use std::sync::Arc;

use bytes::Bytes;
use facerec_core::calibration::Calibration;
use facerec_core::capture::{
    CaptureMode, CapturePolicy, ChipJpeg, Decision, NewCapture, SeenCluster,
};
use facerec_core::{
    Caller, CaptureId, FaceId, Matcher, NewAuditEvent, PersonId, Recognition, Threshold,
};
use facerec_vision::{Analysis, AnalyzedFace, NormalizedEmbedding, Similarity};

use crate::app::App;
use crate::captures::CaptureContext;
use crate::error::{AppError, AppResult};
use crate::selection::{FacePick, Selection};

/// One face of a recognized image.
#[derive(Debug, Clone)]
pub struct RecognizedFace {
    pub face: AnalyzedFace,
    pub recognition: Recognition,
    /// With capture on, an unknown face's cluster: the stable id of a stranger seen again.
    pub unknown: Option<SeenCluster>,
    /// With capture on, the id of the capture kept of this face (written off the answer's path; a
    /// sighting merged into an earlier capture is found under it too).
    pub capture: Option<CaptureId>,
}

/// A recognized photo: its upright size, the threshold used, and every face with its verdict.
#[derive(Debug, Clone)]
pub struct RecognizedImage {
    pub width: u32,
    pub height: u32,
    pub threshold: Threshold,
    pub faces: Vec<RecognizedFace>,
    /// The calibration the faces were decided under (its estimates go with the answer).
    pub calibration: Arc<Calibration>,
}

/// How a photo is recognized; `top_k` and `max_faces` within [`crate::ranges`].
#[derive(Debug, Clone)]
pub struct RecognizeOptions {
    /// The request's own threshold; `None` is the matcher's.
    pub threshold: Option<Threshold>,
    pub top_k: usize,
    pub max_faces: usize,
    /// Where the photo came from, for the captures of a collection that keeps them.
    pub capture: CaptureContext,
    /// Whether each face becomes an event (the Frigate bridge tells once per Frigate event
    /// instead, when its attempts end).
    pub tell: bool,
}

impl Default for RecognizeOptions {
    fn default() -> Self {
        Self {
            threshold: None,
            top_k: crate::ranges::TOP_K.default as usize,
            max_faces: crate::ranges::MAX_FACES.default as usize,
            capture: CaptureContext::route("/v1/recognize"),
            tell: true,
        }
    }
}

/// One photo's strongest face against every face of another.
#[derive(Debug, Clone)]
pub struct FaceComparison {
    pub source: AnalyzedFace,
    pub targets: Vec<(AnalyzedFace, Similarity)>,
}

/// The verdict of a 1:1 comparison.
#[derive(Debug, Clone)]
pub struct Verification {
    pub similarity: Similarity,
    pub threshold: Threshold,
    pub same_person: bool,
    /// Against a registered person: the share of strangers who would score at least this
    /// similarity against them (the pairwise false-match rate over their faces); `None` for two
    /// photos, which no gallery speaks for.
    pub estimated_fmr: Option<f64>,
    /// The calibration it was decided under.
    pub calibration: Arc<Calibration>,
}

impl App {
    /// Every face of a photo (at most `max_faces`, strongest first), each with its ranked
    /// candidates and verdict.
    pub async fn recognize(
        &self,
        caller: &Caller,
        image: Bytes,
        options: &RecognizeOptions,
    ) -> AppResult<RecognizedImage> {
        let policy = CapturePolicy::of(&caller.collection.settings);
        let capturing = policy.mode != CaptureMode::Off;
        let analysis = self
            .analyze_keeping(
                caller,
                image,
                Selection::Strongest(options.max_faces),
                capturing,
            )
            .await?;
        let calibration = self.calibrator().calibration(&caller.collection);
        let matcher = Matcher::new(calibration.threshold()).with_threshold(options.threshold);
        let mut faces = Vec::with_capacity(analysis.faces.len());
        for mut face in analysis.faces {
            let recognition = self
                .identify(caller, &face.embedding, &matcher, options.top_k)
                .await?;
            let chip = face.chip.take();
            let (unknown, capture) = match capturing {
                true => {
                    let seen = Seen {
                        face: &face,
                        chip,
                        recognition: &recognition,
                        calibration: &calibration,
                    };
                    self.capture(caller, &policy, seen, &options.capture).await
                }
                false => (None, None),
            };
            faces.push(RecognizedFace {
                face,
                recognition,
                unknown,
                capture,
            });
        }
        let image = RecognizedImage {
            width: analysis.width,
            height: analysis.height,
            threshold: matcher.threshold(),
            faces,
            calibration,
        };
        if options.tell {
            let source = options.capture.source_for(caller);
            self.events().tell_recognized(caller, &source, &image, None);
        }
        Ok(image)
    }

    /// Searches one embedding and decides. The store answers candidates with their names. A
    /// candidate the face is closer to a capture rejected for ("not this person") than to their
    /// own faces is passed over.
    pub(crate) async fn identify(
        &self,
        caller: &Caller,
        embedding: &NormalizedEmbedding,
        matcher: &Matcher,
        top_k: usize,
    ) -> AppResult<Recognition> {
        let candidates = self
            .store
            .search(
                caller.collection_id(),
                embedding,
                &caller.collection.model.recognizer,
                top_k.max(1),
            )
            .await?;
        let contenders: Vec<PersonId> = candidates
            .iter()
            .filter(|c| matcher.accepts(c.similarity))
            .map(|c| c.person_id)
            .collect();
        if contenders.is_empty() {
            return Ok(matcher.decide(candidates));
        }
        let rejections = self
            .store
            .rejections(
                caller.collection_id(),
                &contenders,
                &caller.collection.model.recognizer,
            )
            .await?;
        Ok(matcher.decide_heeding(candidates, |c| {
            rejections.iter().any(|r| {
                r.person == c.person_id
                    && r.embedding.similarity(embedding).value() > c.similarity.value()
            })
        }))
    }

    /// Keeps a face of a collection that captures (through the queue: never waited for) and
    /// answers an unknown face's cluster, and the id the capture will have (when it was queued).
    /// A failure here costs the capture, never the answer.
    pub(crate) async fn capture(
        &self,
        caller: &Caller,
        policy: &CapturePolicy,
        seen: Seen<'_>,
        context: &CaptureContext,
    ) -> (Option<SeenCluster>, Option<CaptureId>) {
        let recognition = seen.recognition;
        let threshold = recognition.threshold;
        // Strangers are grouped at the collection's threshold, not at one a request asked for.
        let join_at = seen.calibration.threshold();
        let now = chrono::Utc::now();
        let cluster = match recognition.matched {
            Some(_) => None,
            None => self
                .store
                .cluster_for(
                    caller.collection_id(),
                    &seen.face.embedding,
                    &caller.collection.model.recognizer,
                    join_at.value(),
                )
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "finding a capture's cluster failed"))
                .ok()
                .flatten(),
        };
        let kept = policy.mode.keeps(recognition.is_match());
        let (Some(chip), true) = (seen.chip, kept) else {
            return (cluster, None);
        };
        let proposed = cluster.map(|c| c.cluster_id).unwrap_or_default();
        let decision = match &recognition.matched {
            Some(m) => Decision::Known {
                person: m.person_id,
                similarity: m.similarity,
                estimated_fpir: (!seen.calibration.weak)
                    .then(|| seen.calibration.estimated_fpir(m.similarity.value())),
            },
            None => Decision::Unknown {
                best: recognition.best().map(|c| c.similarity),
            },
        };
        let face = seen.face;
        let id = CaptureId::new();
        let queued = self.review.keep(
            caller.collection_id(),
            NewCapture {
                embedding: face.embedding.clone(),
                model: caller.collection.model.recognizer.clone(),
                chip,
                det_score: face.detection.score,
                quality: face.quality,
                bbox: face.detection.bbox,
                decision,
                threshold,
                join_at,
                source: context.source_for(caller),
                route: context.route,
                seen_at: now,
                proposed_cluster: proposed,
                proposed_id: id,
                max: policy.max,
            },
        );
        let unknown = match recognition.matched {
            Some(_) => None,
            None => Some(cluster.unwrap_or(SeenCluster {
                cluster_id: proposed,
                seen: 1,
                first_seen: now,
            })),
        };
        (unknown, queued.then_some(id))
    }

    /// 1:N for an embedding a client computed earlier (e.g. from a detection's `embedding`): any
    /// length-512 vector of this model, normalized here.
    pub async fn recognize_embedding(
        &self,
        caller: &Caller,
        values: &[f32],
        top_k: usize,
    ) -> AppResult<Recognition> {
        let probe = client_embedding(values)?;
        self.identify(
            caller,
            &probe,
            &self.calibrator().matcher(&caller.collection),
            top_k,
        )
        .await
    }

    /// 1:N for each of several client embeddings, in order.
    pub async fn recognize_embeddings(
        &self,
        caller: &Caller,
        embeddings: &[Vec<f32>],
        top_k: usize,
    ) -> AppResult<Vec<Recognition>> {
        let mut recognitions = Vec::with_capacity(embeddings.len());
        for values in embeddings {
            recognitions.push(self.recognize_embedding(caller, values, top_k).await?);
        }
        Ok(recognitions)
    }

    /// The cosine similarity of a client embedding with each of others, each normalized here.
    pub fn compare_embeddings(
        &self,
        source: &[f32],
        targets: &[Vec<f32>],
    ) -> AppResult<Vec<Similarity>> {
        let source = client_embedding(source)?;
        targets
            .iter()
            .map(|target| Ok(source.similarity(&client_embedding(target)?)))
            .collect()
    }

    /// The cosine similarity of client embeddings with one stored face; audited, since answers
    /// about a stored face tell something of its template.
    pub async fn compare_embeddings_with_face(
        &self,
        face: FaceId,
        targets: &[Vec<f32>],
        caller: &Caller,
    ) -> AppResult<Vec<Similarity>> {
        let stored = self.store.get_face(caller.collection_id(), face).await?;
        self.consenting(caller, stored.person_id).await?;
        let similarities = targets
            .iter()
            .map(|target| Ok(stored.embedding.similarity(&client_embedding(target)?)))
            .collect::<AppResult<Vec<_>>>()?;
        let event = NewAuditEvent::face_compared(stored.person_id, face, targets.len());
        self.store
            .record(caller.collection_id(), event, &caller.actor)
            .await?;
        Ok(similarities)
    }

    /// The strongest face of `source` compared with every face of `target` (at most `max_faces`,
    /// strongest first); both photos at once.
    pub async fn verify_faces(
        &self,
        caller: &Caller,
        source: Bytes,
        target: Bytes,
        max_faces: usize,
    ) -> AppResult<FaceComparison> {
        let (source, target) = tokio::try_join!(
            self.detect(caller, source, 1),
            self.detect(caller, target, max_faces)
        )?;
        let source = source.faces.into_iter().next().ok_or(AppError::NoFace)?;
        let targets = target
            .faces
            .into_iter()
            .map(|face| {
                let similarity = source.embedding.similarity(&face.embedding);
                (face, similarity)
            })
            .collect();
        Ok(FaceComparison { source, targets })
    }

    /// The faces of a photo (at most `max_faces`, strongest first), embedded, without matching.
    pub async fn detect(
        &self,
        caller: &Caller,
        image: Bytes,
        max_faces: usize,
    ) -> AppResult<Analysis> {
        self.analyze_selecting(caller, image, Selection::Strongest(max_faces))
            .await
    }

    /// 1:1 — two photos (largest face of each).
    pub async fn verify_images(
        &self,
        caller: &Caller,
        first: Bytes,
        second: Bytes,
        threshold: Option<Threshold>,
    ) -> AppResult<Verification> {
        // Both photos at once: the pool has a worker for each.
        let (a, b) = tokio::try_join!(
            self.largest_face(caller, first),
            self.largest_face(caller, second)
        )?;
        let similarity = a.embedding.similarity(&b.embedding);
        Ok(self.verdict(caller, similarity, threshold, |_| None))
    }

    /// 1:1 — a photo against a registered person (their most similar face).
    pub async fn verify_person(
        &self,
        caller: &Caller,
        image: Bytes,
        person: PersonId,
        threshold: Option<Threshold>,
    ) -> AppResult<Verification> {
        self.consenting(caller, person).await?;
        let faces = self
            .store
            .list_faces(caller.collection_id(), person)
            .await?;
        let probe = self.largest_face(caller, image).await?;
        let model = &caller.collection.model.recognizer;
        let theirs: Vec<_> = faces.iter().filter(|f| f.model == *model).collect();
        let best = theirs
            .iter()
            .map(|f| probe.embedding.similarity(&f.embedding))
            .max_by(|a, b| a.value().total_cmp(&b.value()))
            .ok_or(AppError::OtherModel(format!(
                "person {person} has no face from this collection's recognizer"
            )))?;
        // The best of their faces: a stranger has as many chances as they have faces.
        let chances = theirs.len() as f64;
        Ok(self.verdict(caller, best, threshold, |calibration| {
            let fmr = calibration.estimated_fmr(best.value())?;
            Some(1.0 - (1.0 - fmr).powf(chances))
        }))
    }

    /// The faces of a photo (at most `max_faces`, strongest first), each compared with one stored
    /// face.
    pub async fn compare_with_face(
        &self,
        image: Bytes,
        face: FaceId,
        max_faces: usize,
        caller: &Caller,
    ) -> AppResult<Vec<(AnalyzedFace, Similarity)>> {
        let stored = self.store.get_face(caller.collection_id(), face).await?;
        self.consenting(caller, stored.person_id).await?;
        if stored.model != caller.collection.model.recognizer {
            return Err(AppError::OtherModel(format!(
                "face {face} was embedded by another model ({})",
                stored.model.name
            )));
        }
        let analysis = self.detect(caller, image, max_faces).await?;
        let event = NewAuditEvent::face_compared(stored.person_id, face, analysis.faces.len());
        self.store
            .record(caller.collection_id(), event, &caller.actor)
            .await?;
        Ok(analysis
            .faces
            .into_iter()
            .map(|f| {
                let similarity = f.embedding.similarity(&stored.embedding);
                (f, similarity)
            })
            .collect())
    }

    /// The person, unless their consent has expired ([`AppError::ConsentExpired`]): a search
    /// leaves them out, and so does every comparison with a face of theirs.
    async fn consenting(&self, caller: &Caller, person: PersonId) -> AppResult<()> {
        let person = self
            .store
            .get_person(caller.collection_id(), person)
            .await?;
        if person.consent.has_expired(chrono::Utc::now()) {
            return Err(AppError::ConsentExpired(person.id));
        }
        Ok(())
    }

    fn verdict(
        &self,
        caller: &Caller,
        similarity: Similarity,
        threshold: Option<Threshold>,
        estimated_fmr: impl FnOnce(&Calibration) -> Option<f64>,
    ) -> Verification {
        let calibration = self.calibrator().calibration(&caller.collection);
        let matcher = Matcher::new(calibration.threshold()).with_threshold(threshold);
        Verification {
            estimated_fmr: estimated_fmr(&calibration),
            calibration,
            similarity,
            threshold: matcher.threshold(),
            same_person: matcher.accepts(similarity),
        }
    }

    async fn largest_face(&self, caller: &Caller, image: Bytes) -> AppResult<AnalyzedFace> {
        let analysis = self
            .analyze_selecting(caller, image, Selection::Pick(FacePick::Largest))
            .await?;
        analysis.faces.into_iter().next().ok_or(AppError::NoFace)
    }
}

/// A face as a recognition saw it, for its capture.
pub(crate) struct Seen<'a> {
    pub(crate) face: &'a AnalyzedFace,
    pub(crate) chip: Option<ChipJpeg>,
    pub(crate) recognition: &'a Recognition,
    pub(crate) calibration: &'a Calibration,
}

/// An embedding sent by a client, normalized once here, of the model's length.
fn client_embedding(values: &[f32]) -> AppResult<NormalizedEmbedding> {
    let invalid = |e: &dyn std::fmt::Display| AppError::InvalidEmbedding(e.to_string());
    let (embedding, _) = NormalizedEmbedding::normalize(values).map_err(|e| invalid(&e))?;
    facerec_core::person::check_dimension(&embedding).map_err(|e| invalid(&e))?;
    Ok(embedding)
}
