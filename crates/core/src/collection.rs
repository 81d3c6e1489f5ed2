//! Collections (a gallery per application) and the API keys that reach them, with their scopes:
//! who may do what, where.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Actor, CollectionId, KeyId, ModelId};
use crate::error::{StoreError, StoreResult};
use crate::matching::Threshold;

/// A named gallery. Every person belongs to exactly one; every request acts within one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: CollectionId,
    pub name: String,
    /// The models it was created with, for good: its faces compare only with each other.
    pub model: ModelBinding,
    pub settings: CollectionSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a collection may set for itself; `None` is the server's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSettings {
    /// The lowest similarity that names someone here (the calibration may raise it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_threshold: Option<Threshold>,
    /// The share of strangers the calibration allows to be named here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_fpir: Option<f64>,
    /// Days a consent holds here when a registration names no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Streams open at once in this collection, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
    /// Which recognized faces are kept for review (`crate::capture`; off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureMode>,
    /// Hours a captured face is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_retention_hours: Option<u32>,
    /// Captured faces held at most; the oldest go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_max: Option<u32>,
    /// Side of the detector's square input here (a multiple of 32): larger finds smaller faces,
    /// at a cost that grows with its square.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_size: Option<u32>,
}

/// The detector input sides a collection may ask for: InsightFace's 640 is the default; 1280 and
/// more find the small, distant faces cameras see (a detection costs ~(side/640)² as much).
pub const DETECTION_SIZES: std::ops::RangeInclusive<u32> = 160..=1920;

/// The models a collection is bound to when it is created: its model pack's recognizer (faces
/// embedded by another are never compared with its faces) and the detector it finds faces with.
/// Moving a collection to another pack means enrolling its persons again: no photos are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelBinding {
    /// The pack whose recognizer embeds this collection's faces (`buffalo_s`, `buffalo_l`, …).
    pub pack: String,
    /// That recognizer: its name and its file's sha256.
    pub recognizer: ModelId,
    /// The pack whose detector finds faces here (by default the same pack).
    pub detector_pack: String,
    /// That detector's file's sha256 when the collection was created.
    pub detector_sha256: String,
}

impl ModelBinding {
    /// The built-in pack, `buffalo_s`: every collection made before model packs is bound to it.
    pub fn built_in() -> Self {
        Self {
            pack: facerec_types::BUILT_IN_PACK.into(),
            recognizer: ModelId::built_in(),
            detector_pack: facerec_types::BUILT_IN_PACK.into(),
            detector_sha256: facerec_types::BUILT_IN_DETECTOR_SHA256.into(),
        }
    }
}

impl CollectionSettings {
    pub fn check(&self) -> StoreResult<()> {
        let invalid = |m: &str| Err(StoreError::InvalidCollection(m.into()));
        if self
            .match_threshold
            .is_some_and(|t| !(0.0..=1.0).contains(&t.value()))
        {
            return invalid("match_threshold must be within 0..=1");
        }
        if self.target_fpir.is_some_and(|t| !(t > 0.0 && t < 1.0)) {
            return invalid("target_fpir must be within 0..1 (exclusive)");
        }
        if self.retention_days.is_some_and(|d| d == 0 || d > 36_500) {
            return invalid("retention_days must be within 1..=36500");
        }
        if self.max_streams.is_some_and(|n| n > 10_000) {
            return invalid("max_streams must be at most 10000");
        }
        if self
            .detection_size
            .is_some_and(|s| !DETECTION_SIZES.contains(&s) || !s.is_multiple_of(32))
        {
            return invalid("detection_size must be a multiple of 32 within 160..=1920");
        }
        crate::capture::check_settings(self.capture_retention_hours, self.capture_max)
    }
}

impl Collection {
    /// The collection data from before collections lives in; it cannot be deleted.
    pub const DEFAULT_NAME: &'static str = "default";
    /// A name no collection may take: it names every collection (`GET /v1/audit?collection=all`).
    pub const ALL_NAME: &'static str = "all";
    /// Collections a server holds at most: each has its own index and calibration in memory.
    pub const MAX: u32 = 1_000;

    /// A new collection as stored: name and settings checked, with a fresh id.
    pub fn create(new: NewCollection, now: DateTime<Utc>) -> StoreResult<Self> {
        check_collection_name(&new.name)?;
        new.settings.check()?;
        Ok(Self {
            id: CollectionId::new(),
            name: new.name,
            model: new.model,
            settings: new.settings,
            created_at: now,
            updated_at: now,
        })
    }

    /// Applies a patch; returns the names of the fields it changed (for the audit log).
    /// `default` keeps its name.
    pub fn apply(
        &mut self,
        patch: CollectionPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<&'static str>> {
        let mut changed = Vec::new();
        if let Some(name) = patch.name.filter(|n| *n != self.name) {
            if self.id == CollectionId::DEFAULT {
                return Err(StoreError::DefaultCollection);
            }
            check_collection_name(&name)?;
            self.name = name;
            changed.push("name");
        }
        if let Some(settings) = patch.settings {
            settings.check()?;
            self.settings = settings;
            changed.push("settings");
        }
        self.updated_at = now;
        Ok(changed)
    }

    /// Why a collection cannot be deleted, if it cannot.
    pub fn check_deletable(id: CollectionId) -> StoreResult<()> {
        if id == CollectionId::DEFAULT {
            return Err(StoreError::DefaultCollection);
        }
        Ok(())
    }

    /// A server that already holds `count` collections may hold one more.
    pub fn check_room(count: u64) -> StoreResult<()> {
        if count >= u64::from(Self::MAX) {
            return Err(StoreError::InvalidCollection(format!(
                "a server holds at most {} collections",
                Self::MAX
            )));
        }
        Ok(())
    }
}

/// How a caller names a collection, wherever one is named (a path, a header, a key's binding, a
/// command-line flag): by its id or by its name. Text that is a UUID is an id, since a name never
/// is one ([`check_collection_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CollectionRef {
    Id(CollectionId),
    Name(String),
}

impl CollectionRef {
    /// Whether this names `collection`.
    pub fn is(&self, collection: &Collection) -> bool {
        match self {
            Self::Id(id) => *id == collection.id,
            Self::Name(name) => *name == collection.name,
        }
    }
}

impl From<CollectionId> for CollectionRef {
    fn from(id: CollectionId) -> Self {
        Self::Id(id)
    }
}

impl std::str::FromStr for CollectionRef {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.parse::<CollectionId>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(text.to_owned()),
        })
    }
}

impl std::fmt::Display for CollectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for CollectionRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text.parse().unwrap_or_else(|never| match never {}))
    }
}

/// A collection to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCollection {
    pub name: String,
    pub model: ModelBinding,
    pub settings: CollectionSettings,
}

/// A change to a collection; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionPatch {
    pub name: Option<String>,
    pub settings: Option<CollectionSettings>,
}

/// What deleting a collection removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedCollection {
    pub collection: Collection,
    pub persons_deleted: u64,
    pub faces_deleted: u64,
    pub keys_deleted: u64,
}

/// A collection's name: 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit, not itself a
/// UUID (a name or an id is accepted wherever a collection is named), and not
/// [`Collection::ALL_NAME`].
pub fn check_collection_name(name: &str) -> StoreResult<()> {
    if name == Collection::ALL_NAME {
        return Err(StoreError::InvalidCollection(format!(
            "'{}' is reserved: it names every collection",
            Collection::ALL_NAME
        )));
    }
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && uuid::Uuid::parse_str(name).is_err();
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidCollection(format!(
            "a collection's name has 1 to 64 characters of a-z, 0-9, '-' and '_', starts with a \
             letter or digit and is not a UUID, not '{}'",
            name.chars().take(80).collect::<String>()
        )))
    }
}

macro_rules! scopes {
    ($($variant:ident $name:literal $doc:literal;)*) => {
        /// One right a key may hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $(#[doc = $doc] $variant,)*
        }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)* _ => None }
            }

            /// What it allows, in one line (docs/COLLECTIONS-AND-KEYS.md's scope table).
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $doc,)* }
            }
        }
    };
}

scopes! {
    Recognize "recognize" "recognize, verify and detect; streams and their tickets";
    Enroll "enroll" "register persons and add faces";
    Manage "manage" "read, update and delete persons and faces, export them, the collection's audit log and calibration";
    Embeddings "embeddings" "every route that returns or accepts raw embeddings (never implied: granted by name)";
    Admin "admin" "collections and keys, on every collection";
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown scope '{text}' (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Self = Self(0);

    /// Every scope but `embeddings`: what the operator's keys hold.
    pub fn operator(allow_embeddings: bool) -> Self {
        let all = Self::from_iter(Scope::ALL.iter().copied());
        if allow_embeddings {
            all
        } else {
            all.without(Scope::Embeddings)
        }
    }

    pub fn has(self, scope: Scope) -> bool {
        self.0 & (1 << scope as u8) != 0
    }

    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | 1 << scope as u8)
    }

    pub fn without(self, scope: Scope) -> Self {
        Self(self.0 & !(1 << scope as u8))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.iter().copied().filter(move |s| self.has(*s))
    }

    /// Space-separated, in the table's order (how the database keeps them).
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// From names separated by spaces or commas.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        text.split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| format!("unknown scope '{s}'")))
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// Whether keys kept in the database are in force: once any is, every request needs a key (on
/// loopback too); an `admin` one also lets a server without configured keys listen beyond
/// loopback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeysInForce {
    /// A live key exists.
    pub any: bool,
    /// A live key with the `admin` scope exists.
    pub admin: bool,
}

/// A key kept in the database: its secret only as a sha256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub collection_id: CollectionId,
    pub label: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used, to within [`ApiKey::LAST_USED_RESOLUTION`].
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// `last_used_at` is written at most this often per key (not once per request).
    pub const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::minutes(10);
    /// Live keys a server holds at most, over all collections (revoked and expired ones do not
    /// count); also the most ended keys kept.
    pub const MAX: u32 = 10_000;
    /// How long a revoked or expired key stays listed before it is pruned (at the next key
    /// creation).
    pub const KEEP_ENDED: chrono::Duration = chrono::Duration::days(30);

    /// Usable now: neither revoked nor expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// The audit log's name for whoever uses it.
    pub fn actor(&self) -> Actor {
        Actor(format!("key:{}", self.id))
    }

    /// The database key an actor names, if it names one ([`ApiKey::actor`]; a configured key's
    /// actor is a hash prefix, no key id).
    pub fn id_of(actor: &Actor) -> Option<KeyId> {
        actor.0.strip_prefix("key:")?.parse().ok()
    }

    /// A new key as stored: at least one scope, a label of 1 to 200 characters, an expiry (if any)
    /// in the future; a fresh id. The secret's hash stays with `new`.
    pub fn create(new: &NewApiKey, now: DateTime<Utc>) -> StoreResult<Self> {
        let invalid = |m: &str| Err(StoreError::InvalidKey(m.into()));
        if new.scopes.is_empty() {
            return invalid("a key needs at least one scope");
        }
        if new.label.trim().is_empty() || new.label.chars().count() > 200 {
            return invalid("label must have 1 to 200 characters");
        }
        if new.expires_at.is_some_and(|at| at <= now) {
            return invalid("expires_at must be in the future");
        }
        Ok(Self {
            id: KeyId::new(),
            collection_id: new.collection_id,
            label: new.label.trim().to_owned(),
            scopes: new.scopes,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        })
    }

    /// A server that already holds `count` keys may hold one more.
    pub fn check_room(count: u64) -> StoreResult<()> {
        if count >= u64::from(Self::MAX) {
            return Err(StoreError::InvalidKey(format!(
                "a server holds at most {} live keys: revoke (delete) unused ones",
                Self::MAX
            )));
        }
        Ok(())
    }
}

/// A key to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    pub collection_id: CollectionId,
    pub label: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    /// sha256 of the secret, hex.
    pub secret_sha256: String,
}

/// Who asks, with which rights, in which collection: what every use case acts for.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub actor: Actor,
    pub collection: Arc<Collection>,
    pub scopes: Scopes,
    /// The database key it came with (rate limits and stream slots count per key).
    pub key: Option<KeyId>,
    /// That key's label: the source of its recognitions when they name none.
    pub label: Option<String>,
}

impl Caller {
    pub fn collection_id(&self) -> CollectionId {
        self.collection.id
    }

    /// The local operator (the CLI, a server without keys) in a collection, with every scope
    /// the operator holds.
    pub fn operator(collection: Arc<Collection>, allow_embeddings: bool) -> Self {
        Self {
            actor: Actor::local_operator(),
            collection,
            scopes: Scopes::operator(allow_embeddings),
            key: None,
            label: None,
        }
    }

    /// Where its recognitions come from when they name no source: its key's label, else who it is.
    pub fn default_source(&self) -> crate::capture::Source {
        crate::capture::Source::from_label(self.label.as_deref().unwrap_or(&self.actor.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_operators_lack_embeddings() {
        let scopes = Scopes::parse_list("recognize, enroll manage").unwrap();
        assert_eq!(scopes.to_text(), "recognize enroll manage");
        assert_eq!(Scopes::parse_list(&scopes.to_text()).unwrap(), scopes);
        assert!(Scopes::parse_list("recognise").is_err());
        assert!(!Scopes::operator(false).has(Scope::Embeddings));
        assert!(Scopes::operator(false).has(Scope::Admin));
        assert!(Scopes::operator(true).has(Scope::Embeddings));
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(json, r#"["recognize","enroll","manage"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
    }

    #[test]
    fn collection_names_are_slugs_and_never_uuids() {
        for good in ["default", "front-door", "hr_2026", "7"] {
            check_collection_name(good).unwrap();
        }
        for bad in [
            "",
            "all",
            "Front",
            "-x",
            "a b",
            "0190a5c2-7f3b-7c1e-9d4a-3b2c1d0e9f8a",
        ] {
            assert!(check_collection_name(bad).is_err(), "{bad}");
        }
        assert!(check_collection_name(&"a".repeat(65)).is_err());
    }
}
