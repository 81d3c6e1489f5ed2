//! # facerec-service
//!
//! The use cases of facerec — register, recognize, verify, detect, manage persons and faces, follow a
//! live stream — on top of the inference pool ([`engine`]), the [`Store`](facerec_core::Store) trait
//! and the [`Matcher`](facerec_core::Matcher). The HTTP server and the command-line tools both drive
//! facerec through [`App`] and nothing else: no HTTP here, no SQL, and no caller reaches past it to
//! the store or the models.

pub mod access;
mod app;
mod calibration;
pub mod captures;
mod config;
pub mod engine;
mod error;
pub mod events;
mod live;
mod named;
mod persons;
pub mod ranges;
mod recognition;
mod registration;
mod retention;
mod selection;
pub mod tickets;

pub use access::Access;
pub use app::{App, Load, Readiness};
pub use calibration::{CalibrationConfig, Calibrator};
pub use captures::{CaptureContext, NameTarget, Named, Review};
pub use config::{default_workers, AppConfig, EngineConfig, StartError};
pub use engine::{Engine, EngineError, LoadedPack, ModelPacks, Models, PackSet, Unavailable};
pub use error::{AppError, AppResult};
pub use events::{CreatedWebhook, Events};
pub use live::{LiveFace, LiveFrame, LiveSession};
pub use named::{NamedRegistration, RegisteredNamed};
pub use persons::{PersonExport, Persons};
pub use recognition::{
    FaceComparison, RecognizeOptions, RecognizedFace, RecognizedImage, Verification,
};
pub use registration::{
    FacePick, Registered, Registration, RegistrationTarget, DEFAULT_CONSENT_BASIS,
};
pub use retention::Retention;
