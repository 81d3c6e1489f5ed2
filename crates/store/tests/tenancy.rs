//! What the second red team found at the store, closed, on both backends: revoked keys make room
//! under the cap (and are pruned later), `all` is no collection's name, key events are an admin's
//! to read, and a write into a collection deleted meanwhile answers that it is gone.

use std::sync::Arc;

use chrono::Utc;
use facerec_core::*;
use facerec_store::testing::Inspect;
use facerec_store::StoreOptions;
use facerec_types::{FaceQuality, NormalizedEmbedding};

async fn sqlite() -> (Arc<dyn Inspect>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    let store = facerec_store::testing::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    (store, dir)
}

async fn postgres() -> Arc<dyn Inspect> {
    let admin = std::env::var("FACEREC_TEST_DATABASE_URL").expect(
        "FACEREC_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL",
    );
    let url = facerec_store::testing::create_database(&admin, "facerec_tenancy")
        .await
        .expect("PostgreSQL reachable");
    facerec_store::testing::open(&url, &StoreOptions::default())
        .await
        .unwrap()
}

fn operator() -> Actor {
    Actor::local_operator()
}

async fn collection(store: &Arc<dyn Inspect>, name: &str) -> Collection {
    let new = NewCollection {
        model: facerec_core::ModelBinding::built_in(),
        name: name.into(),
        settings: CollectionSettings::default(),
    };
    store.create_collection(new, &operator()).await.unwrap()
}

fn new_key(collection: CollectionId, label: &str) -> NewApiKey {
    NewApiKey {
        collection_id: collection,
        label: label.into(),
        scopes: Scopes::NONE.with(Scope::Recognize),
        expires_at: None,
        secret_sha256: format!("secret-of-{label}-{}", uuid::Uuid::new_v4()),
    }
}

async fn revoked_keys_make_room_and_are_pruned(store: Arc<dyn Inspect>) {
    let door = collection(&store, "door").await;
    // Ended long ago: pruned at the next creation.
    let old = Utc::now() - ApiKey::KEEP_ENDED - chrono::Duration::days(1);
    let ancient = store.fill_keys(door.id, 5, Some(old)).await.unwrap();
    let live = store
        .fill_keys(door.id, ApiKey::MAX - 1, None)
        .await
        .unwrap();
    let last = store
        .create_key(new_key(door.id, "the last one"), &operator())
        .await
        .expect("revoked keys do not count");
    let listed = store.list_keys(Some(door.id)).await.unwrap();
    assert!(
        ancient.iter().all(|id| listed.iter().all(|k| k.id != *id)),
        "keys revoked more than {} days ago are pruned",
        ApiKey::KEEP_ENDED.num_days()
    );
    assert!(listed.iter().any(|k| k.id == last.id));
    let refused = store
        .create_key(new_key(door.id, "one too many"), &operator())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidKey, "{refused}");
    assert!(refused.to_string().contains("live keys"), "{refused}");
    // Rotation: revoke one, create one.
    store.revoke_key(live[0], &operator()).await.unwrap();
    let rotated = store
        .create_key(new_key(door.id, "rotated"), &operator())
        .await
        .expect("a revoked key makes room");
    let listed = store.list_keys(Some(door.id)).await.unwrap();
    assert!(listed.iter().any(|k| k.id == rotated.id));
    assert!(
        listed
            .iter()
            .any(|k| k.id == live[0] && k.revoked_at.is_some()),
        "a recently revoked key is still listed"
    );
}

async fn the_name_all_is_reserved(store: Arc<dyn Inspect>) {
    let new = NewCollection {
        model: facerec_core::ModelBinding::built_in(),
        name: Collection::ALL_NAME.into(),
        settings: CollectionSettings::default(),
    };
    let refused = store.create_collection(new, &operator()).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidCollection, "{refused}");
    let door = collection(&store, "door").await;
    let rename = CollectionPatch {
        name: Some(Collection::ALL_NAME.into()),
        settings: None,
    };
    let refused = store
        .update_collection(door.id, rename, &operator())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidCollection, "{refused}");
}

async fn key_events_are_read_with_key_events_only(store: Arc<dyn Inspect>) {
    let door = collection(&store, "door").await;
    let key = store
        .create_key(new_key(door.id, "door camera"), &operator())
        .await
        .unwrap();
    store.revoke_key(key.id, &operator()).await.unwrap();
    let mut filter = AuditFilter::newest(None, 100);
    let without = store.audit_events(Some(door.id), &filter).await.unwrap();
    assert!(
        without
            .iter()
            .all(|e| !matches!(e.action, AuditAction::KeyCreated | AuditAction::KeyRevoked)),
        "{without:?}"
    );
    assert!(without
        .iter()
        .any(|e| e.action == AuditAction::CollectionCreated));
    filter.key_events = true;
    let with = store.audit_events(Some(door.id), &filter).await.unwrap();
    for action in [AuditAction::KeyCreated, AuditAction::KeyRevoked] {
        assert!(with.iter().any(|e| e.action == action), "{with:?}");
    }
}

fn face(image: &str) -> NewFace {
    let mut raw = vec![0.0f32; EMBEDDING_DIM];
    raw[0] = 1.0;
    NewFace {
        embedding: NormalizedEmbedding::normalize(&raw).unwrap().0,
        det_score: 0.8,
        bbox: [10.0, 20.0, 110.0, 150.0],
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 0.9,
            embedding_norm: 22.0,
        },
        model: ModelId {
            name: "buffalo_s/w600k_mbf".into(),
            sha256: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f".into(),
        },
        image_sha256: image.into(),
    }
}

async fn writes_into_a_deleted_collection_say_it_is_gone(store: Arc<dyn Inspect>) {
    let door = collection(&store, "door").await;
    store.delete_collection(door.id, &operator()).await.unwrap();
    let person = NewPerson {
        name: "Ana Lima".into(),
        external_id: None,
        metadata: serde_json::Value::Null,
        consent: Consent::given_now("signed form").unwrap(),
    };
    // What a request that resolved the collection just before it was deleted then does.
    let refused = store
        .register(door.id, person.clone(), face("a"), &operator())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::CollectionNotFound, "{refused}");
    let refused = store
        .register_named(door.id, person, vec![face("b")], &operator())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::CollectionNotFound, "{refused}");
    let refused = store
        .issue_ticket(
            door.id,
            "ticket-sha",
            &operator(),
            Utc::now() + chrono::Duration::minutes(1),
            TicketBudget::flat(10),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::CollectionNotFound, "{refused}");
}

async fn ticket_shares_leave_room_for_others(store: Arc<dyn Inspect>) {
    let (door, lobby) = (
        collection(&store, "door").await,
        collection(&store, "lobby").await,
    );
    let budget = TicketBudget {
        total: 5,
        per_collection: 3,
        per_holder: 2,
    };
    let soon = Utc::now() + chrono::Duration::minutes(1);
    let issue = |c: CollectionId, ticket: String, holder: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .issue_ticket(c, &ticket, &Actor(holder.into()), soon, budget)
                .await
                .unwrap()
        }
    };
    assert!(issue(door.id, "a1".into(), "key:a").await);
    assert!(issue(door.id, "a2".into(), "key:a").await);
    assert!(
        !issue(door.id, "a3".into(), "key:a").await,
        "one holder's share"
    );
    assert!(
        issue(door.id, "b1".into(), "key:b").await,
        "another key of the collection"
    );
    assert!(
        !issue(door.id, "b2".into(), "key:b").await,
        "the collection's share"
    );
    assert!(
        issue(lobby.id, "c1".into(), "key:c").await,
        "another collection"
    );
    assert!(issue(lobby.id, "c2".into(), "key:c").await);
    assert!(!issue(lobby.id, "d1".into(), "key:d").await, "the total");
    assert!(store.redeem_ticket("a1").await.unwrap());
    assert!(issue(lobby.id, "d1".into(), "key:d").await, "room again");
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _dir) = super::sqlite().await;
                super::$name(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::postgres().await).await; })*
        }
    };
}

on_both_backends!(
    revoked_keys_make_room_and_are_pruned,
    the_name_all_is_reserved,
    key_events_are_read_with_key_events_only,
    writes_into_a_deleted_collection_say_it_is_gone,
    ticket_shares_leave_room_for_others,
);
