//! Collections and keys: creating and revoking them, and turning a presented secret into the
//! [`Caller`] a request acts as. The database is the truth; what it says about keys and
//! collections is cached for [`CACHE_TTL`], so a revocation, an expiry or a changed setting takes
//! effect on every replica within that time.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use facerec_core::{
    ApiKey, AuditEvent, AuditFilter, Caller, Collection, CollectionId, CollectionPatch,
    DeletedCollection, KeyId, NewApiKey, NewCollection, Scope, Scopes, StoreError,
};
use sha2::{Digest, Sha256};

use crate::app::App;
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

/// The short-lived copies of what the database says.
pub(crate) struct AccessCache {
    keys: moka::future::Cache<String, ApiKey>,
    /// By the text a caller named it with (its name, or its id).
    collections: moka::future::Cache<String, Arc<Collection>>,
}

impl Default for AccessCache {
    fn default() -> Self {
        Self {
            keys: moka::future::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
            collections: moka::future::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }
}

/// A key and what it may do: as created (the secret is shown this once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
    pub collection: Collection,
}

/// Refuses a caller without the scope.
pub fn require(caller: &Caller, scope: Scope) -> AppResult<()> {
    if caller.scopes.has(scope) {
        Ok(())
    } else {
        Err(AppError::InsufficientScope(scope))
    }
}

impl App {
    /// A collection by name or id (as a caller names it), read through the cache.
    pub async fn collection(&self, name_or_id: &str) -> AppResult<Arc<Collection>> {
        let store = Arc::clone(&self.store);
        let named = name_or_id.to_owned();
        let lookup = async move {
            match named.parse::<CollectionId>() {
                Ok(id) => store.get_collection(id).await,
                Err(_) => store.collection_named(&named).await,
            }
            .map(Arc::new)
        };
        self.access
            .collections
            .try_get_with(name_or_id.to_owned(), lookup)
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

    pub async fn collection_by_id(&self, id: CollectionId) -> AppResult<Arc<Collection>> {
        self.collection(&id.to_string()).await
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
        name_or_id: &str,
        patch: CollectionPatch,
        caller: &Caller,
    ) -> AppResult<Collection> {
        require(caller, Scope::Admin)?;
        let id = self.collection(name_or_id).await?.id;
        let updated = self
            .store
            .update_collection(id, patch, &caller.actor)
            .await?;
        // Cached under its name and its id: a rare change forgets them all.
        self.access.collections.invalidate_all();
        Ok(updated)
    }

    /// Deletes the collection with everything in it (its persons, faces and keys).
    pub async fn delete_collection(
        &self,
        name_or_id: &str,
        caller: &Caller,
    ) -> AppResult<DeletedCollection> {
        require(caller, Scope::Admin)?;
        let id = self.collection(name_or_id).await?.id;
        let deleted = self.store.delete_collection(id, &caller.actor).await?;
        // Cached under its name and its id: a rare change forgets them all.
        self.access.collections.invalidate_all();
        self.access.keys.invalidate_all();
        self.calibrations
            .write()
            .expect("calibration lock")
            .remove(&id);
        Ok(deleted)
    }

    /// A new key of a collection with these scopes; its secret is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        collection: &str,
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
        Ok(CreatedKey {
            key,
            secret,
            collection: (*collection).clone(),
        })
    }

    /// Every key (never a secret), of one collection when named.
    pub async fn keys(&self, collection: Option<&str>, caller: &Caller) -> AppResult<Vec<ApiKey>> {
        require(caller, Scope::Admin)?;
        let collection = match collection {
            Some(name) => Some(self.collection(name).await?.id),
            None => None,
        };
        Ok(self.store.list_keys(collection).await?)
    }

    /// Revokes a key: refused on this replica at once, on the others within [`CACHE_TTL`].
    pub async fn revoke_key(&self, id: KeyId, caller: &Caller) -> AppResult<ApiKey> {
        require(caller, Scope::Admin)?;
        let key = self.store.revoke_key(id, &caller.actor).await?;
        self.access.keys.invalidate_all();
        Ok(key)
    }

    /// The live key with this secret, if there is one (read through the cache), its use noted
    /// at most every [`ApiKey::LAST_USED_RESOLUTION`].
    pub async fn key_for_secret(&self, secret: &str) -> AppResult<Option<ApiKey>> {
        let digest = secret_sha256(secret);
        let key = match self.access.keys.get(&digest).await {
            Some(key) => key,
            None => match self.store.key_by_secret(&digest).await? {
                Some(key) => {
                    self.access.keys.insert(digest.clone(), key.clone()).await;
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
            self.access.keys.insert(digest, touched).await;
            if let Err(e) = self.store.touch_key(key.id, now).await {
                tracing::warn!(error = %e, key = %key.id, "noting a key's use failed");
            }
        }
        Ok(Some(key))
    }

    /// The audit log: of the caller's collection, or (an `admin` caller) of the one named, or of
    /// every collection (`all`).
    pub async fn audit_events(
        &self,
        caller: &Caller,
        collection: Option<&str>,
        filter: &AuditFilter,
    ) -> AppResult<Vec<AuditEvent>> {
        let collection = match collection {
            None => Some(caller.collection_id()),
            Some(named) => {
                require(caller, Scope::Admin)?;
                match named {
                    "all" => None,
                    named => Some(self.collection(named).await?.id),
                }
            }
        };
        Ok(self.store.audit_events(collection, filter).await?)
    }

    /// The local operator (the command line) in a collection, with the operator's scopes.
    pub async fn local_operator(&self, collection: &str) -> AppResult<Caller> {
        Ok(Caller::operator(self.collection(collection).await?, false))
    }
}
