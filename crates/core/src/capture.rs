//! Captured faces: what the cameras saw, kept (only where the operator turned it on) so that a
//! person can review it, group strangers, name them or say "not this person".
//!
//! A capture is one face of one recognition: its aligned 112×112 chip (JPEG, the only pixels
//! facerec ever keeps), its embedding, and the decision taken on it. Unknown captures are grouped
//! into clusters: a capture joins the cluster of the unknown captures it matches at the threshold
//! in force, links (merges) the clusters it matches several of, or starts one. A merged cluster's
//! id stays valid: it resolves to the survivor.

use chrono::{DateTime, Utc};
pub use facerec_types::ChipJpeg;
use facerec_types::{BoundingBox, FaceQuality, NormalizedEmbedding, Similarity};
use serde::{Deserialize, Serialize};

use crate::domain::{CaptureId, ClusterId, ModelId, NewPerson, Person, PersonId};
use crate::error::{StoreError, StoreResult};
use crate::matching::Threshold;

/// What a collection keeps of its recognitions. Off unless the operator turns it on: the people
/// captured never consented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Nothing is kept.
    #[default]
    Off,
    /// Only the faces nobody was named for.
    Unknown,
    /// Every face, named or not.
    All,
}

impl CaptureMode {
    /// Whether a face with this decision is kept.
    pub fn keeps(self, known: bool) -> bool {
        match self {
            Self::Off => false,
            Self::Unknown => !known,
            Self::All => true,
        }
    }
}

/// Hours a capture is kept when the collection sets none.
pub const DEFAULT_RETENTION_HOURS: u32 = 72;
/// The longest a collection may keep captures: 90 days.
pub const MAX_RETENTION_HOURS: u32 = 90 * 24;
/// Captures a collection holds when it sets no bound; the oldest go first.
pub const DEFAULT_MAX_CAPTURES: u32 = 10_000;
/// The most a collection may hold: each is ~2 KiB of embedding and ~4 KiB of chip, and the SQLite
/// backend keeps the embeddings in memory for grouping (100,000 × 2 KiB = 200 MiB).
pub const MAX_MAX_CAPTURES: u32 = 100_000;
/// The same face from the same source within this window updates one capture instead of adding
/// another (Double Take asks Frigate again and again about one event; a stream sees a face in
/// every frame).
pub const SAME_SIGHTING_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The captures a new one is compared with to find its cluster (and the clusters it links): its
/// nearest neighbours at or above the threshold.
pub const NEIGHBOURS: usize = 32;
/// The captures an answer looks at to name an unknown face's cluster (the writer, with
/// [`NEIGHBOURS`], decides; a cluster the answer did not see is joined, its id an alias).
pub const CLUSTER_NEIGHBOURS: usize = 8;
/// The captures similar to a probe a search looks through at most, to find those that pass its
/// filters (`since`, `source`): PostgreSQL's HNSW search gives at most 1,000 (`hnsw.ef_search`).
pub const SEARCHED_AT_MOST: usize = 1_000;
/// The captures of a cluster that become faces when it is named: its best, by detection score.
pub const FACES_FROM_CLUSTER: usize = 5;
/// A cluster lists at most this many capture ids (its best first).
pub const CLUSTER_CAPTURE_IDS: usize = 12;

/// A collection's capture settings, with the server's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturePolicy {
    pub mode: CaptureMode,
    pub retention_hours: u32,
    pub max: u32,
}

impl CapturePolicy {
    /// The settings of a collection (`None`: the defaults).
    pub fn of(settings: &crate::CollectionSettings) -> Self {
        Self {
            mode: settings.capture.unwrap_or_default(),
            retention_hours: settings
                .capture_retention_hours
                .unwrap_or(DEFAULT_RETENTION_HOURS),
            max: settings.capture_max.unwrap_or(DEFAULT_MAX_CAPTURES),
        }
    }

    /// Captures seen before this are past their retention.
    pub fn expired_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::TimeDelta::hours(i64::from(self.retention_hours))
    }
}

/// Where a recognition came from: a camera or a client, named by the request (`source`) or by
/// its key's label. 1–64 letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Source(String);

impl Source {
    pub const MAX_LEN: usize = 64;

    pub fn new(text: &str) -> Result<Self, String> {
        let fits = (1..=Self::MAX_LEN).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !fits {
            return Err(format!(
                "source must be 1-{} letters, digits, '-', '_' or '.', not '{}'",
                Self::MAX_LEN,
                text.chars().take(80).collect::<String>()
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// A key's label as a source: what does not fit is replaced (`front door` → `front_door`).
    pub fn from_label(label: &str) -> Self {
        let text: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .take(Self::MAX_LEN)
            .collect();
        if text.is_empty() {
            Self("unnamed".into())
        } else {
            Self(text)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::new(&text)
    }
}

impl From<Source> for String {
    fn from(source: Source) -> Self {
        source.0
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a capture stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureStatus {
    /// Named for a person (by the matcher, or by a reviewer).
    Known,
    /// Nobody was named: it belongs to a cluster.
    Unknown,
    /// A reviewer said it is not the person it was named for: unknown again, in a cluster, and held
    /// against that person while it is kept.
    Rejected,
}

impl CaptureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Known => "known",
            Self::Unknown => "unknown",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Known, Self::Unknown, Self::Rejected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Unknown and rejected captures are grouped into clusters.
    pub fn is_clustered(self) -> bool {
        !matches!(self, Self::Known)
    }
}

/// What the matcher decided for a captured face.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Known {
        person: PersonId,
        similarity: Similarity,
        /// The share of strangers the calibration expects to be named at this similarity.
        estimated_fpir: Option<f64>,
    },
    Unknown {
        /// The best candidate's similarity, if there was one.
        best: Option<Similarity>,
    },
}

/// Ids an event gave sightings merged into one capture, kept per capture at most (a face seen again
/// and again from one source): beyond it, a sighting's event names an id that is not kept.
pub const ALIASES_PER_CAPTURE: i64 = 1_000;

/// A face to capture, as a recognition saw it.
#[derive(Debug, Clone)]
pub struct NewCapture {
    pub embedding: NormalizedEmbedding,
    pub model: ModelId,
    pub chip: ChipJpeg,
    pub det_score: f32,
    pub quality: FaceQuality,
    pub bbox: BoundingBox,
    pub decision: Decision,
    /// The threshold the decision was taken at (a request may name its own).
    pub threshold: Threshold,
    /// The collection's threshold in force: clusters are joined at it, whatever a request asked.
    pub join_at: Threshold,
    pub source: Source,
    /// The route that recognized it (`/v1/recognize`, `stream`, `compreface`, `deepstack`).
    pub route: &'static str,
    pub seen_at: DateTime<Utc>,
    /// The cluster the answer named for an unknown face that matched none (so the id the client
    /// was given becomes the cluster's, or an alias of the one it joined meanwhile).
    pub proposed_cluster: ClusterId,
    /// The id its event gave the capture: the new capture's, or an alias of the sighting it is
    /// merged into (at most [`ALIASES_PER_CAPTURE`] a capture).
    pub proposed_id: CaptureId,
    /// Bounds the collection's captures.
    pub max: u32,
}

/// A stored capture, without its embedding and chip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capture {
    pub id: CaptureId,
    pub status: CaptureStatus,
    pub person_id: Option<PersonId>,
    /// The person a reviewer said it is not (status `rejected`).
    pub rejected_person_id: Option<PersonId>,
    pub cluster_id: Option<ClusterId>,
    pub similarity: Option<f32>,
    pub threshold: f32,
    pub estimated_fpir: Option<f64>,
    pub source: Source,
    pub route: String,
    pub first_seen: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Sightings merged into this capture (the same face from the same source, within a minute).
    pub sightings: u32,
    pub det_score: f32,
    pub quality: FaceQuality,
    pub bbox: BoundingBox,
    /// Whether its chip is still held (a named cluster's captures keep none).
    pub has_chip: bool,
}

/// A capture near a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub capture: Capture,
    pub similarity: Similarity,
}

/// A group of unknown captures of (presumably) one stranger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub id: ClusterId,
    /// Its captures.
    pub count: u64,
    /// Its sightings (a capture may stand for several).
    pub seen: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub sources: Vec<Source>,
    /// Its best captures first (by detection score), at most [`CLUSTER_CAPTURE_IDS`].
    pub capture_ids: Vec<CaptureId>,
}

/// The cluster an answer names for an unknown face: the stable id users ask for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeenCluster {
    pub cluster_id: ClusterId,
    /// How often it was seen, this time included.
    pub seen: u64,
    pub first_seen: DateTime<Utc>,
}

/// What storing a capture did.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub capture: Capture,
    /// Whether it updated an earlier sighting instead of adding a capture.
    pub merged_sighting: bool,
    /// Captures dropped to stay within the collection's bound.
    pub evicted: u64,
}

/// Which captures to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureFilter {
    pub status: Option<CaptureStatus>,
    pub source: Option<Source>,
    pub cluster: Option<ClusterId>,
    pub person: Option<PersonId>,
    pub since: Option<DateTime<Utc>>,
    /// Only captures seen before this one (the previous page's last).
    pub before: Option<CaptureId>,
    pub limit: u32,
}

/// How to search the held captures for a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureSearch<'a> {
    /// The similarity a capture needs (the collection's threshold in force).
    pub threshold: f32,
    /// Only captures seen at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only captures from this source.
    pub source: Option<&'a Source>,
    pub limit: usize,
}

/// A rejected capture held against a person: a probe closer to it than to the person's own faces
/// is not named them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub capture: CaptureId,
    pub person: PersonId,
    pub embedding: NormalizedEmbedding,
}

/// Whom captures are named for.
#[derive(Debug, Clone)]
pub enum NameFor {
    Existing(PersonId),
    /// A person created from them, with the consent the reviewer attested.
    New(NewPerson),
}

/// What naming captures for a person did.
#[derive(Debug, Clone)]
pub struct Assigned {
    pub person: Person,
    pub captures: Vec<Capture>,
    /// Faces the person was given from them.
    pub faces_added: usize,
}

/// The captures a cluster gives a person when it is named, or that are assigned to one: those
/// with a chip, best detection first.
pub fn best_for_faces(mut captures: Vec<Capture>, n: usize) -> Vec<Capture> {
    captures.sort_by(|a, b| b.det_score.total_cmp(&a.det_score));
    captures.truncate(n);
    captures
}

/// Checks a capture's settings the way [`crate::CollectionSettings::check`] does the rest.
pub fn check_settings(hours: Option<u32>, max: Option<u32>) -> StoreResult<()> {
    let invalid = |m: String| Err(StoreError::InvalidCollection(m));
    if hours.is_some_and(|h| h == 0 || h > MAX_RETENTION_HOURS) {
        return invalid(format!(
            "capture_retention_hours must be within 1..={MAX_RETENTION_HOURS}"
        ));
    }
    if max.is_some_and(|m| m == 0 || m > MAX_MAX_CAPTURES) {
        return invalid(format!("capture_max must be within 1..={MAX_MAX_CAPTURES}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_short_plain_names() {
        assert!(Source::new("front-door_1.cam").is_ok());
        assert!(Source::new("").is_err());
        assert!(Source::new("front door").is_err());
        assert!(Source::new(&"a".repeat(65)).is_err());
        assert_eq!(
            Source::from_label("Front door (Frigate)").as_str(),
            "Front_door__Frigate_"
        );
        assert_eq!(Source::from_label("").as_str(), "unnamed");
    }

    #[test]
    fn modes_keep_what_they_say() {
        assert!(!CaptureMode::Off.keeps(false));
        assert!(CaptureMode::Unknown.keeps(false) && !CaptureMode::Unknown.keeps(true));
        assert!(CaptureMode::All.keeps(true));
    }

    #[test]
    fn settings_are_bounded() {
        assert!(check_settings(Some(72), Some(10_000)).is_ok());
        assert!(check_settings(Some(0), None).is_err());
        assert!(check_settings(None, Some(MAX_MAX_CAPTURES + 1)).is_err());
    }
}
