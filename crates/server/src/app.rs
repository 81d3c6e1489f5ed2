//! The application's use cases — register, recognize, verify, detect, manage — on top of the
//! inference pool, the store and the matcher. No HTTP here: handlers translate to and from it.

use std::collections::HashMap;
use std::sync::Arc;

use facerec_core::*;
use facerec_vision::{
    Analysis, AnalyzedFace, Detection, IngestError, IngestLimits, NormalizedEmbedding,
    RuntimeError, VisionError,
};
use sha2::{Digest, Sha256};

use crate::engine::{Engine, EngineError};

/// Failures of a use case. Mapped to HTTP once, in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no face was found in the image")]
    NoFace,
    #[error("the image shows {0} faces; send a photo of one person, or ask for face=largest")]
    MultipleFaces(usize),
    #[error("the face is not good enough to enroll: {0}")]
    PoorQuality(#[from] PoorQuality),
    #[error("registration requires explicit consent (consent=true)")]
    ConsentRequired,
}

impl AppError {
    /// Stable code for clients (HTTP and CLI alike); `api::error` adds only the status.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ingest(e) => e.code(),
            Self::Runtime(e) => e.code(),
            Self::Engine(EngineError::Busy) => "overloaded",
            Self::Engine(EngineError::Stopped) => "unavailable",
            Self::Store(e) => e.code(),
            Self::NoFace => "no_face",
            Self::MultipleFaces(_) => "multiple_faces",
            Self::PoorQuality(_) => "poor_quality",
            Self::ConsentRequired => "consent_required",
        }
    }
}

impl From<VisionError> for AppError {
    fn from(err: VisionError) -> Self {
        match err {
            VisionError::Ingest(e) => Self::Ingest(e),
            VisionError::Runtime(e) => Self::Runtime(e),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Which face of a multi-face photo to enroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacePick {
    /// Refuse photos with more than one face.
    #[default]
    Only,
    /// Take the largest face.
    Largest,
}

/// A registration request, as the HTTP layer or the CLI parsed it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub image: Vec<u8>,
    pub target: RegistrationTarget,
    /// The caller's explicit statement that the person consented.
    pub consent: bool,
    pub consent_basis: Option<String>,
    pub pick: FacePick,
}

#[derive(Debug, Clone)]
pub enum RegistrationTarget {
    NewPerson {
        name: String,
        external_id: Option<String>,
        metadata: serde_json::Value,
    },
    Existing(PersonId),
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub person: Person,
    pub face: Face,
    pub added: Added,
}

/// One face of a recognized image.
#[derive(Debug, Clone)]
pub struct RecognizedFace {
    pub face: AnalyzedFace,
    pub recognition: Recognition,
}

/// A recognized photo: its upright size, the threshold used, and every face with its verdict.
#[derive(Debug, Clone)]
pub struct RecognizedImage {
    pub width: u32,
    pub height: u32,
    pub threshold: Threshold,
    pub faces: Vec<RecognizedFace>,
}

#[derive(Debug, Clone)]
pub struct RecognizeOptions {
    pub threshold: Option<Threshold>,
    pub top_k: usize,
    pub max_faces: usize,
}

/// The verdict of a 1:1 comparison.
#[derive(Debug, Clone)]
pub struct Verification {
    pub similarity: facerec_vision::Similarity,
    pub threshold: Threshold,
    pub same_person: bool,
}

/// What consent basis is recorded when the caller gives none beyond `consent=true`.
pub const DEFAULT_CONSENT_BASIS: &str =
    "explicit consent confirmed by the registering client (consent=true)";

pub struct App {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub matcher: Matcher,
    pub quality: QualityPolicy,
    pub limits: IngestLimits,
    model: ModelRef,
}

impl App {
    pub fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        matcher: Matcher,
        quality: QualityPolicy,
        limits: IngestLimits,
    ) -> Self {
        let model = ModelRef::from(engine.model());
        Self {
            engine,
            store,
            matcher,
            quality,
            limits,
            model,
        }
    }

    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    /// Decodes and analyzes an image on the inference pool: every face.
    pub async fn analyze(&self, image: Vec<u8>) -> AppResult<Analysis> {
        self.analyze_selecting(image, Selection::Strongest(usize::MAX))
            .await
    }

    /// Decodes and analyzes an image on the inference pool, embedding only the selected faces.
    async fn analyze_selecting(&self, image: Vec<u8>, selection: Selection) -> AppResult<Analysis> {
        let limits = self.limits;
        self.engine
            .run(move |analyzer| {
                analyzer.analyze_bytes_selecting(&image, &limits, |d| selection.apply(d))
            })
            .await?
    }

    /// Registers a person from a photo, or adds the photo's face to an existing person.
    pub async fn register(&self, request: Registration, actor: &Actor) -> AppResult<Registered> {
        if !request.consent {
            return Err(AppError::ConsentRequired);
        }
        let image_sha256 = hex::encode(Sha256::digest(&request.image));
        let analysis = self
            .analyze_selecting(request.image, Selection::Pick(request.pick))
            .await?;
        let face = analysis.faces.into_iter().next().ok_or(AppError::NoFace)?;
        self.quality.check(face.detection.score, &face.quality)?;
        let new_face = NewFace {
            embedding: face.embedding,
            det_score: face.detection.score,
            bbox: face.detection.bbox.to_array(),
            quality: face.quality,
            model: self.model.clone(),
            image_sha256,
        };
        match request.target {
            RegistrationTarget::Existing(person_id) => {
                let person = self.store.get_person(person_id).await?;
                let (face, added) = self.store.add_face(person_id, new_face, actor).await?;
                Ok(Registered {
                    person,
                    face,
                    added,
                })
            }
            RegistrationTarget::NewPerson {
                name,
                external_id,
                metadata,
            } => {
                let basis = request.consent_basis.filter(|b| !b.trim().is_empty());
                let consent =
                    Consent::given_now(basis.unwrap_or_else(|| DEFAULT_CONSENT_BASIS.to_owned()))?;
                let new_person = NewPerson {
                    name,
                    external_id,
                    metadata,
                    consent,
                };
                let (person, face) = self.store.register(new_person, new_face, actor).await?;
                Ok(Registered {
                    person,
                    face,
                    added: Added::Created,
                })
            }
        }
    }

    /// Every face of a photo, each with its ranked candidates and verdict.
    pub async fn recognize(
        &self,
        image: Vec<u8>,
        options: &RecognizeOptions,
    ) -> AppResult<RecognizedImage> {
        let analysis = self
            .analyze_selecting(image, Selection::Strongest(options.max_faces))
            .await?;
        let matcher = self.matcher.with_threshold(options.threshold);
        let mut names = NameCache::default();
        let mut faces = Vec::with_capacity(analysis.faces.len());
        for face in analysis.faces {
            let recognition = self
                .identify(&face.embedding, &matcher, options.top_k, &mut names)
                .await?;
            faces.push(RecognizedFace { face, recognition });
        }
        Ok(RecognizedImage {
            width: analysis.width,
            height: analysis.height,
            threshold: matcher.threshold(),
            faces,
        })
    }

    /// Searches one embedding and decides.
    pub async fn identify(
        &self,
        embedding: &NormalizedEmbedding,
        matcher: &Matcher,
        top_k: usize,
        names: &mut NameCache,
    ) -> AppResult<Recognition> {
        let hits = self
            .store
            .search(embedding, &self.model, top_k.max(1))
            .await?;
        let mut candidates = Vec::with_capacity(hits.len());
        for hit in hits {
            // A person deleted between search and lookup is simply no candidate.
            let Some(name) = names.name(self.store.as_ref(), hit.person_id).await? else {
                continue;
            };
            candidates.push(Candidate {
                person_id: hit.person_id,
                face_id: hit.face_id,
                name,
                similarity: hit.similarity,
            });
        }
        Ok(matcher.decide(candidates))
    }

    /// 1:1 — two photos (largest face of each).
    pub async fn verify_images(
        &self,
        first: Vec<u8>,
        second: Vec<u8>,
        threshold: Option<Threshold>,
    ) -> AppResult<Verification> {
        // Both photos at once: the pool has a worker for each.
        let (a, b) = tokio::try_join!(self.largest_face(first), self.largest_face(second))?;
        Ok(self.verdict(a.embedding.similarity(&b.embedding), threshold))
    }

    /// 1:1 — a photo against a registered person (their most similar face).
    pub async fn verify_person(
        &self,
        image: Vec<u8>,
        person: PersonId,
        threshold: Option<Threshold>,
    ) -> AppResult<Verification> {
        let faces = self.store.list_faces(person).await?;
        let probe = self.largest_face(image).await?;
        let best = faces
            .iter()
            .filter(|f| f.model == self.model)
            .map(|f| probe.embedding.similarity(&f.embedding))
            .max_by(|a, b| a.value().total_cmp(&b.value()))
            .ok_or(AppError::Store(StoreError::InvalidPerson(format!(
                "person {person} has no face from the current model"
            ))))?;
        Ok(self.verdict(best, threshold))
    }

    fn verdict(
        &self,
        similarity: facerec_vision::Similarity,
        threshold: Option<Threshold>,
    ) -> Verification {
        let matcher = self.matcher.with_threshold(threshold);
        Verification {
            similarity,
            threshold: matcher.threshold(),
            same_person: matcher.accepts(similarity),
        }
    }

    async fn largest_face(&self, image: Vec<u8>) -> AppResult<AnalyzedFace> {
        let analysis = self
            .analyze_selecting(image, Selection::Pick(FacePick::Largest))
            .await?;
        analysis.faces.into_iter().next().ok_or(AppError::NoFace)
    }
}

/// Which detected faces a use case embeds. The choice is made on detections, before the embedder
/// runs, so faces a use case would discard cost nothing.
#[derive(Debug, Clone, Copy)]
enum Selection {
    /// At most this many faces, strongest detections first.
    Strongest(usize),
    /// The face to enroll or verify.
    Pick(FacePick),
}

impl Selection {
    fn apply(self, mut detections: Vec<Detection>) -> AppResult<Vec<Detection>> {
        match self {
            Self::Strongest(max) => {
                detections.truncate(max);
                Ok(detections)
            }
            Self::Pick(FacePick::Only) if detections.len() > 1 => {
                Err(AppError::MultipleFaces(detections.len()))
            }
            Self::Pick(FacePick::Only) => Ok(detections),
            Self::Pick(FacePick::Largest) => Ok(largest(detections).into_iter().collect()),
        }
    }
}

/// The face with the largest box: the subject of a portrait, the one to enroll from a group photo.
fn largest(detections: Vec<Detection>) -> Option<Detection> {
    let area = |d: &Detection| d.bbox.width() * d.bbox.height();
    detections
        .into_iter()
        .max_by(|a, b| area(a).total_cmp(&area(b)))
}

/// Person names looked up once per request (or per video stream).
#[derive(Debug, Default)]
pub struct NameCache(HashMap<PersonId, Option<String>>);

impl NameCache {
    pub async fn name(&mut self, store: &dyn Store, id: PersonId) -> StoreResult<Option<String>> {
        if let Some(name) = self.0.get(&id) {
            return Ok(name.clone());
        }
        let name = match store.get_person(id).await {
            Ok(p) => Some(p.name),
            Err(StoreError::PersonNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        self.0.insert(id, name.clone());
        Ok(name)
    }

    pub fn forget(&mut self) {
        self.0.clear();
    }
}
