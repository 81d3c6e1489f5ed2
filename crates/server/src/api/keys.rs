//! The keys given in the configuration (`--api-keys`, `--api-keys-file`, `FACEREC_API_KEYS`): kept
//! only as sha256 hashes and compared in constant time. Keys kept in the database are the
//! service's (`facerec_service::access`).

use std::path::Path;

use facerec_core::{Actor, CollectionRef, Scopes};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest key accepted, in characters: a key is all that stands between the network and the
/// biometric data, and a short one is guessed.
pub const MIN_KEY_CHARS: usize = 16;

/// Refuses a key too short to resist guessing, saying how to make a good one.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_KEY_CHARS {
        return Err(format!(
            "an API key of {} characters is too short: use at least {MIN_KEY_CHARS} random ones, \
             e.g. `facerec keys generate` (32 random bytes, base64url)",
            key.chars().count()
        ));
    }
    Ok(())
}

pub use facerec_service::access::generate_secret as generate_key;

/// A key given in the configuration: the operator's (every scope on every collection but
/// `embeddings`), or bound by the key file to a collection and scopes.
#[derive(Clone)]
struct ConfiguredKey {
    hash: [u8; 32],
    /// `None`: any collection (the one a request names, else `default`).
    collection: Option<CollectionRef>,
    /// `None`: the operator's scopes.
    scopes: Option<Scopes>,
}

/// The configured keys, as hashes.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ConfiguredKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.keys.len())
    }
}

/// What a configured key may do, once verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredGrant {
    pub actor: Actor,
    pub collection: Option<CollectionRef>,
    pub scopes: Option<Scopes>,
}

impl ApiKeys {
    /// From plain keys (comma-separated in FACEREC_API_KEYS): operator keys. Blank entries are
    /// ignored, short ones refused ([`check_key`]).
    pub fn from_plain<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut configured = Vec::new();
        for key in keys.into_iter().map(str::trim).filter(|k| !k.is_empty()) {
            check_key(key)?;
            configured.push(ConfiguredKey {
                hash: hash(key),
                collection: None,
                scopes: None,
            });
        }
        Ok(Self { keys: configured })
    }

    /// Adds the keys of a file, one per line: the key, plain or as `sha256:<hex>` (so the file
    /// need not hold secrets), then optionally `collection=<name>` and `scopes=<a,b,...>`; `#`
    /// starts a comment. A key without `scopes=` is an operator key.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("{}:{}: {e}", path.display(), n + 1);
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else {
                continue;
            };
            let digest = match key.strip_prefix("sha256:") {
                Some(hexed) => hex::decode(hexed)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| at("not a sha256 hex digest".into()))?,
                None => {
                    check_key(key).map_err(at)?;
                    hash(key)
                }
            };
            let mut configured = ConfiguredKey {
                hash: digest,
                collection: None,
                scopes: None,
            };
            for word in words {
                match word.split_once('=') {
                    Some(("collection", name)) => {
                        facerec_core::collection::check_collection_name(name)
                            .map_err(|e| at(e.to_string()))?;
                        configured.collection = Some(CollectionRef::Name(name.to_owned()));
                    }
                    Some(("scopes", list)) => {
                        configured.scopes = Some(Scopes::parse_list(list).map_err(at)?);
                    }
                    _ => {
                        return Err(at(format!(
                            "'{word}' is neither collection=<name> nor scopes=<a,b>"
                        )))
                    }
                }
            }
            self.keys.push(configured);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What the key may do when it is one of ours. Every configured hash is compared, so timing
    /// tells nothing about which or how much matched.
    pub fn verify(&self, presented: &str) -> Option<ConfiguredGrant> {
        let digest = hash(presented);
        let mut found: Option<&ConfiguredKey> = None;
        for candidate in &self.keys {
            if bool::from(candidate.hash.ct_eq(&digest)) {
                found = Some(candidate);
            }
        }
        found.map(|key| ConfiguredGrant {
            actor: key_id(&key.hash),
            collection: key.collection.clone(),
            scopes: key.scopes,
        })
    }
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A key's public name: the start of its hash (never the key).
fn key_id(hash: &[u8; 32]) -> Actor {
    Actor(format!("key:{}", hex::encode(&hash[..6])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_by_hash() {
        let keys =
            ApiKeys::from_plain("alpha-key-0123456789, beta-key-0123456789,".split(',')).unwrap();
        assert!(ApiKeys::from_plain(["short"])
            .unwrap_err()
            .contains("facerec keys generate"));
        assert_eq!(generate_key().len(), 43);
        assert!(check_key(&generate_key()).is_ok());
        assert!(keys.verify("alpha-key-0123456789").is_some());
        assert!(keys.verify("beta-key-0123456789").is_some());
        assert!(keys.verify("gamma-key-0123456789").is_none());
        assert!(keys.verify("").is_none());
        assert_ne!(
            keys.verify("alpha-key-0123456789"),
            keys.verify("beta-key-0123456789"),
            "each key has its own id"
        );
        assert!(!format!("{:?}", keys).contains("alpha-key-0123456789"));
    }

    #[test]
    fn key_files_take_plain_and_hashed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let hashed = hex::encode(hash("second-key-0123456789"));
        std::fs::write(
            &path,
            format!("# ops\nfirst-key-0123456789\nsha256:{hashed}  # ci\n"),
        )
        .unwrap();
        let mut keys = ApiKeys::default();
        keys.add_file(&path).unwrap();
        assert!(
            keys.verify("first-key-0123456789").is_some()
                && keys.verify("second-key-0123456789").is_some()
        );
        std::fs::write(&path, "sha256:abc\n").unwrap();
        assert!(ApiKeys::default().add_file(&path).is_err());
        std::fs::write(&path, "short\n").unwrap();
        assert!(ApiKeys::default().add_file(&path).is_err());
    }
}
