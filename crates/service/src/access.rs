//! Collections and keys: creating and revoking them, and turning a presented secret into the
//! [`Caller`] a request acts as. The database is the truth; what it says about keys and
//! collections is cached for [`CACHE_TTL`], so a revocation, an expiry or a changed setting takes
//! effect on every replica within that time.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use facerec_core::{
    ApiKey, AuditEvent, AuditFilter, Caller, Collection, CollectionPatch, CollectionRef,
    DeletedCollection, KeyId, KeysInForce, NewApiKey, NewCollection, Scope, Scopes, Store,
    StoreError,
};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// How long a key's or a collection's row is trusted before it is read again: the delay of a
/// revocation on other replicas.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Keys and collections cached at most (each: one row).
pub const CACHE_ENTRIES: u64 = 10_000;

/// The hex sha256 of a key's secret: all that is stored of it.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret: 32 bytes from the operating system, base64url without padding (43
/// characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Who may do what, where: collections, keys, stream tickets and the audit log, over the store
/// and short-lived copies of what it says. Needs no inference engine (`facerec keys` uses it
/// alone).
pub struct Access {
    pub(crate) store: Arc<dyn Store>,
    keys: moka::future::Cache<String, ApiKey>,
    /// The same rows by id, for callers that hold no secret (an open stream).
    keys_by_id: moka::future::Cache<KeyId, ApiKey>,
    /// By how a caller named it (its name, or its id).
    collections: moka::future::Cache<CollectionRef, Arc<Collection>>,
    /// Whether database keys are in force (one entry), trusted for [`CACHE_TTL`] like the keys.
    in_force: moka::future::Cache<(), KeysInForce>,
}

/// A cache of [`CACHE_ENTRIES`] rows, each trusted for [`CACHE_TTL`].
fn cache<K, V>() -> moka::future::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(CACHE_ENTRIES)
        .time_to_live(CACHE_TTL)
        .build()
}

/// A key and what it may do: as created (the secret is shown this once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
    pub collection: Collection,
}

/// What ended a caller's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// Its key was revoked, or expired.
    KeyEnded,
    /// Its collection was deleted.
    CollectionDeleted,
}

impl Lapse {
    /// In a sentence, for a client whose stream ends.
    pub fn reason(self) -> &'static str {
        match self {
            Self::KeyEnded => "the key was revoked or has expired",
            Self::CollectionDeleted => "the collection was deleted",
        }
    }
}

/// Whose audit log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOf {
    /// The caller's own collection.
    Caller,
    /// Another collection (`admin` only).
    Collection(CollectionRef),
    /// Every collection (`admin` only).
    All,
}

impl AuditOf {
    /// The word that names every collection (no collection may take it).
    pub const ALL: &'static str = Collection::ALL_NAME;

    /// From the `collection` parameter: absent (the caller's), [`AuditOf::ALL`], or a collection.
    pub fn parse(collection: Option<&str>) -> Self {
        match collection {
            None => Self::Caller,
            Some(Self::ALL) => Self::All,
            Some(named) => Self::Collection(named.parse().unwrap_or_else(|never| match never {})),
        }
    }
}

/// Refuses a caller without the scope.
pub fn require(caller: &Caller, scope: Scope) -> AppResult<()> {
    if caller.scopes.has(scope) {
        Ok(())
    } else {
        Err(AppError::InsufficientScope(scope))
    }
}

impl Access {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            keys: cache(),
            keys_by_id: cache(),
            collections: cache(),
            in_force: cache(),
        }
    }

    /// Whether database keys are in force: from the first live key on, every request needs a key
    /// (on loopback too), on every replica within [`CACHE_TTL`].
    pub async fn keys_in_force(&self) -> AppResult<KeysInForce> {
        let store = Arc::clone(&self.store);
        let read = self
            .in_force
            .try_get_with((), async move { store.keys_in_force(Utc::now()).await })
            .await;
        // Shared by every caller that waited on the same read: its failure, as text.
        read.map_err(|e| AppError::Store(StoreError::Database(e.to_string())))
    }

    /// A collection as a caller names it, read through the cache.
    pub async fn collection(&self, named: &CollectionRef) -> AppResult<Arc<Collection>> {
        let store = Arc::clone(&self.store);
        let lookup = {
            let named = named.clone();
            async move {
                match &named {
                    CollectionRef::Id(id) => store.get_collection(*id).await,
                    CollectionRef::Name(name) => store.collection_named(name).await,
                }
                .map(Arc::new)
            }
        };
        self.collections
            .try_get_with(named.clone(), lookup)
            .await
            // Shared by every caller that waited on the same lookup: a missing collection stays
            // one (404), whatever else is a database failure.
            .map_err(|e| match &*e {
                StoreError::CollectionNotFound(name) => {
                    AppError::Store(StoreError::CollectionNotFound(name.clone()))
                }
                other => AppError::Store(StoreError::Database(other.to_string())),
            })
    }

    pub async fn collections(&self) -> AppResult<Vec<Collection>> {
        Ok(self.store.list_collections().await?)
    }

    pub async fn create_collection(
        &self,
        new: NewCollection,
        caller: &Caller,
    ) -> AppResult<Collection> {
        require(caller, Scope::Admin)?;
        Ok(self.store.create_collection(new, &caller.actor).await?)
    }

    pub async fn update_collection(
        &self,
        named: &CollectionRef,
        patch: CollectionPatch,
        caller: &Caller,
    ) -> AppResult<Collection> {
        require(caller, Scope::Admin)?;
        let id = self.collection(named).await?.id;
        let updated = self
            .store
            .update_collection(id, patch, &caller.actor)
            .await?;
        // Cached under its name and its id: a rare change forgets them all.
        self.collections.invalidate_all();
        Ok(updated)
    }

    /// Deletes the collection with everything in it (its persons, faces and keys).
    pub async fn delete_collection(
        &self,
        named: &CollectionRef,
        caller: &Caller,
    ) -> AppResult<DeletedCollection> {
        require(caller, Scope::Admin)?;
        let id = self.collection(named).await?.id;
        let deleted = self.store.delete_collection(id, &caller.actor).await?;
        // Cached under its name and its id: a rare change forgets them all.
        self.collections.invalidate_all();
        self.keys.invalidate_all();
        self.keys_by_id.invalidate_all();
        self.in_force.invalidate_all();
        Ok(deleted)
    }

    /// A new key of a collection with these scopes; its secret is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        collection: &CollectionRef,
        scopes: Scopes,
        label: String,
        expires_at: Option<DateTime<Utc>>,
        caller: &Caller,
    ) -> AppResult<CreatedKey> {
        require(caller, Scope::Admin)?;
        let collection = self.collection(collection).await?;
        let secret = generate_secret();
        let new = NewApiKey {
            collection_id: collection.id,
            label,
            scopes,
            expires_at,
            secret_sha256: secret_sha256(&secret),
        };
        let key = self.store.create_key(new, &caller.actor).await?;
        self.in_force.invalidate_all();
        Ok(CreatedKey {
            key,
            secret,
            collection: (*collection).clone(),
        })
    }

    /// Every key (never a secret), of one collection when named.
    pub async fn keys(
        &self,
        collection: Option<&CollectionRef>,
        caller: &Caller,
    ) -> AppResult<Vec<ApiKey>> {
        require(caller, Scope::Admin)?;
        let collection = match collection {
            Some(named) => Some(self.collection(named).await?.id),
            None => None,
        };
        Ok(self.store.list_keys(collection).await?)
    }

    /// Revokes a key: refused on this replica at once, on the others within [`CACHE_TTL`].
    pub async fn revoke_key(&self, id: KeyId, caller: &Caller) -> AppResult<ApiKey> {
        require(caller, Scope::Admin)?;
        let key = self.store.revoke_key(id, &caller.actor).await?;
        self.keys.invalidate_all();
        self.in_force.invalidate_all();
        self.keys_by_id.invalidate(&id).await;
        Ok(key)
    }

    /// The live key with this secret, if there is one (read through the cache), its use noted
    /// at most every [`ApiKey::LAST_USED_RESOLUTION`].
    pub async fn key_for_secret(&self, secret: &str) -> AppResult<Option<ApiKey>> {
        let digest = secret_sha256(secret);
        let key = match self.keys.get(&digest).await {
            Some(key) => key,
            None => match self.store.key_by_secret(&digest).await? {
                Some(key) => {
                    self.keys.insert(digest.clone(), key.clone()).await;
                    key
                }
                None => return Ok(None),
            },
        };
        let now = Utc::now();
        if !key.is_live(now) {
            return Ok(None);
        }
        if key
            .last_used_at
            .is_none_or(|at| now - at >= ApiKey::LAST_USED_RESOLUTION)
        {
            // Noted once per resolution: the cached copy carries the new time.
            let mut touched = key.clone();
            touched.last_used_at = Some(now);
            self.keys.insert(digest, touched).await;
            if let Err(e) = self.store.touch_key(key.id, now).await {
                tracing::warn!(error = %e, key = %key.id, "noting a key's use failed");
            }
        }
        Ok(Some(key))
    }

    /// The audit log: of the caller's collection, or (an `admin` caller) of another, or of all.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        of: &AuditOf,
        filter: &AuditFilter,
    ) -> AppResult<Vec<AuditEvent>> {
        let collection = match of {
            AuditOf::Caller => Some(caller.collection_id()),
            AuditOf::Collection(named) => {
                require(caller, Scope::Admin)?;
                Some(self.collection(named).await?.id)
            }
            AuditOf::All => {
                require(caller, Scope::Admin)?;
                None
            }
        };
        let filter = AuditFilter {
            key_events: caller.scopes.has(Scope::Admin),
            ..filter.clone()
        };
        Ok(self.store.audit_events(collection, &filter).await?)
    }

    /// Whether what a caller was granted has ended since: its database key revoked or expired,
    /// or its collection deleted (as the database said within [`CACHE_TTL`]). An open stream asks
    /// this while it runs, and a stream ticket when it is spent.
    pub async fn lapse(&self, caller: &Caller) -> AppResult<Option<Lapse>> {
        match self.collection(&caller.collection_id().into()).await {
            Err(AppError::Store(StoreError::CollectionNotFound(_))) => {
                return Ok(Some(Lapse::CollectionDeleted))
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let Some(id) = caller.key else {
            // The operator's keys are the configuration's: they end with the process.
            return Ok(None);
        };
        let store = Arc::clone(&self.store);
        let key = self
            .keys_by_id
            .try_get_with(id, async move { store.get_key(id).await })
            .await;
        match key {
            Ok(key) if key.is_live(Utc::now()) => Ok(None),
            Ok(_) => Ok(Some(Lapse::KeyEnded)),
            // Deleted with its collection.
            Err(e) if matches!(&*e, StoreError::KeyNotFound(_)) => Ok(Some(Lapse::KeyEnded)),
            Err(e) => Err(AppError::Store(StoreError::Database(e.to_string()))),
        }
    }

    /// The local operator (the command line) in a collection, with the operator's scopes.
    pub async fn local_operator(&self, collection: &CollectionRef) -> AppResult<Caller> {
        Ok(Caller::operator(self.collection(collection).await?, false))
    }
}
