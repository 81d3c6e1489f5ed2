//! One behaviour suite, run against both backends: SQLite (a temporary file) and PostgreSQL (a fresh
//! database on the server `make test` starts; its URL in FACEREC_TEST_DATABASE_URL).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use facerec_core::*;
use facerec_store::testing::Inspect;
use facerec_store::StoreOptions;
use facerec_types::{FaceQuality, NormalizedEmbedding};
use rand::{Rng, SeedableRng};

/// A store of the given backend, and whatever keeps it alive (the temporary folder).
struct Backend {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}/facerec.db", dir.path().display()),
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Self {
        let admin = std::env::var("FACEREC_TEST_DATABASE_URL").expect(
            "FACEREC_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL \
             (or `scripts/pg-test.sh start` and export the URL it prints)",
        );
        Self {
            url: facerec_store::testing::create_database(&admin, "facerec_test")
                .await
                .expect("PostgreSQL reachable"),
            _dir: None,
        }
    }

    async fn open(&self) -> Arc<dyn Inspect> {
        facerec_store::testing::open(&self.url, &StoreOptions::default())
            .await
            .unwrap()
    }
}

fn model() -> ModelId {
    ModelId {
        name: "buffalo_s/w600k_mbf".into(),
        sha256: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f".into(),
    }
}

fn random_unit(rng: &mut impl Rng) -> NormalizedEmbedding {
    let raw: Vec<f32> = (0..EMBEDDING_DIM)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    NormalizedEmbedding::normalize(&raw).unwrap().0
}

fn new_person(name: &str) -> NewPerson {
    NewPerson {
        name: name.into(),
        external_id: None,
        metadata: serde_json::json!({"team": "test"}),
        consent: Consent::given_now("signed form #1").unwrap(),
    }
}

fn new_face(embedding: NormalizedEmbedding, image: &str) -> NewFace {
    NewFace {
        embedding,
        det_score: 0.8,
        bbox: [10.0, 20.0, 110.0, 150.0],
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 0.9,
            embedding_norm: 22.0,
        },
        model: model(),
        image_sha256: image.into(),
    }
}

fn actor() -> Actor {
    Actor("test-key".into())
}

async fn persons_and_pages(store: Arc<dyn Inspect>) {
    for name in [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Ada Yonath",
        "Edsger Dijkstra",
    ] {
        store
            .create_person(
                facerec_core::CollectionId::DEFAULT,
                new_person(name),
                &actor(),
            )
            .await
            .unwrap();
    }
    let first = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                limit: 2,
                offset: 0,
                name_contains: None,
                expires_before: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    let rest = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                limit: 10,
                offset: 2,
                name_contains: None,
                expires_before: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (first.total, first.items.len(), rest.items.len()),
        (5, 2, 3)
    );
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "Ada Lovelace",
            "Alan Turing",
            "Grace Hopper",
            "Ada Yonath",
            "Edsger Dijkstra"
        ],
        "creation order"
    );
    let ada = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                limit: 10,
                offset: 0,
                name_contains: Some("ADA".into()),
                expires_before: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(ada.total, 2);
    let literal = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                limit: 10,
                offset: 0,
                name_contains: Some("%".into()),
                expires_before: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(literal.total, 0, "wildcards match literally");

    let person = &first.items[0];
    let fetched = store
        .get_person(facerec_core::CollectionId::DEFAULT, person.id)
        .await
        .unwrap();
    assert_eq!(&fetched, person);
    assert_eq!(fetched.consent.basis, "signed form #1");
    assert_eq!(fetched.metadata["team"], "test");

    let patch = PersonPatch {
        name: Some("Augusta Ada King".into()),
        external_id: Some(Some("emp-1".into())),
        metadata: None,
        consent_expires_at: None,
    };
    let updated = store
        .update_person(
            facerec_core::CollectionId::DEFAULT,
            person.id,
            patch,
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.external_id.as_deref()),
        ("Augusta Ada King", Some("emp-1"))
    );
    assert!(updated.updated_at >= person.updated_at);
    assert_eq!(
        store
            .find_person_by_external_id(facerec_core::CollectionId::DEFAULT, "emp-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        person.id
    );
    assert!(store
        .find_person_by_external_id(facerec_core::CollectionId::DEFAULT, "emp-404")
        .await
        .unwrap()
        .is_none());
}

async fn bad_input_is_typed(store: Arc<dyn Inspect>) {
    let mut with_ext = new_person("First");
    with_ext.external_id = Some("dup".into());
    store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            with_ext.clone(),
            &actor(),
        )
        .await
        .unwrap();
    with_ext.name = "Second".into();
    assert!(matches!(
        store.create_person(facerec_core::CollectionId::DEFAULT, with_ext, &actor()).await,
        Err(StoreError::DuplicateExternalId(id)) if id == "dup"
    ));
    let other = store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            new_person("Third"),
            &actor(),
        )
        .await
        .unwrap();
    let steal = PersonPatch {
        external_id: Some(Some("dup".into())),
        ..Default::default()
    };
    assert!(matches!(
        store
            .update_person(
                facerec_core::CollectionId::DEFAULT,
                other.id,
                steal,
                &actor()
            )
            .await,
        Err(StoreError::DuplicateExternalId(_))
    ));

    let mut no_consent = new_person("Nobody");
    no_consent.consent.basis = "  ".into();
    assert!(matches!(
        store
            .create_person(facerec_core::CollectionId::DEFAULT, no_consent, &actor())
            .await,
        Err(StoreError::ConsentRequired)
    ));
    assert!(matches!(
        Consent::given_now(""),
        Err(StoreError::ConsentRequired)
    ));
    let mut unnamed = new_person("");
    unnamed.name = " ".into();
    assert!(matches!(
        store
            .create_person(facerec_core::CollectionId::DEFAULT, unnamed, &actor())
            .await,
        Err(StoreError::InvalidPerson(_))
    ));

    let unknown = PersonId::new();
    assert!(
        matches!(store.get_person(facerec_core::CollectionId::DEFAULT, unknown).await, Err(StoreError::PersonNotFound(id)) if id == unknown)
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    assert!(matches!(
        store
            .add_face(
                facerec_core::CollectionId::DEFAULT,
                unknown,
                new_face(random_unit(&mut rng), "x"),
                &actor()
            )
            .await,
        Err(StoreError::PersonNotFound(_))
    ));
    assert!(matches!(
        store
            .delete_person(facerec_core::CollectionId::DEFAULT, unknown, &actor())
            .await,
        Err(StoreError::PersonNotFound(_))
    ));
    assert!(matches!(
        store
            .delete_face(facerec_core::CollectionId::DEFAULT, FaceId::new(), &actor())
            .await,
        Err(StoreError::FaceNotFound(_))
    ));

    let short = NormalizedEmbedding::normalize(&[1.0; 128]).unwrap().0;
    let err = store
        .add_face(
            facerec_core::CollectionId::DEFAULT,
            other.id,
            new_face(short.clone(), "y"),
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::EmbeddingDimension {
                expected: 512,
                actual: 128
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "invalid_embedding");
    assert!(matches!(
        store
            .search(facerec_core::CollectionId::DEFAULT, &short, &model(), 3)
            .await,
        Err(StoreError::EmbeddingDimension { .. })
    ));
    let mut nan = vec![0.0f32; 512];
    nan[0] = f32::NAN;
    let err = StoreError::from(NormalizedEmbedding::from_unit_vector(nan).unwrap_err());
    assert!(matches!(
        err,
        StoreError::InvalidEmbedding(facerec_types::EmbeddingError::NonFinite)
    ));
    assert!(
        store
            .list_faces(facerec_core::CollectionId::DEFAULT, other.id)
            .await
            .unwrap()
            .is_empty(),
        "nothing half-written"
    );
}

async fn faces_idempotency_and_deletion(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (e1, e2) = (random_unit(&mut rng), random_unit(&mut rng));
    let (alice, first) = store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("Alice"),
            new_face(e1.clone(), "photo-1"),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(first.person_id, alice.id);
    let (again, added) = store
        .add_face(
            facerec_core::CollectionId::DEFAULT,
            alice.id,
            new_face(e1.clone(), "photo-1"),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.id, added),
        (first.id, Added::AlreadyPresent),
        "same photo, same face"
    );
    let (second, added) = store
        .add_face(
            facerec_core::CollectionId::DEFAULT,
            alice.id,
            new_face(e2.clone(), "photo-2"),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(added, Added::Created);
    let faces = store
        .list_faces(facerec_core::CollectionId::DEFAULT, alice.id)
        .await
        .unwrap();
    assert_eq!(
        faces.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(faces[0].embedding, e1, "embeddings round-trip exactly");
    assert_eq!(faces[0].model, model());
    assert_eq!(faces[0].bbox, [10.0, 20.0, 110.0, 150.0]);
    assert_eq!(store.count_faces(None).await.unwrap(), 2);

    let hit = store
        .search(facerec_core::CollectionId::DEFAULT, &e2, &model(), 1)
        .await
        .unwrap();
    assert_eq!((hit[0].person_id, hit[0].face_id), (alice.id, second.id));
    assert!((hit[0].similarity.value() - 1.0).abs() < 1e-4);
    let other_model = ModelId {
        name: "other".into(),
        sha256: "0".into(),
    };
    assert!(
        store
            .search(facerec_core::CollectionId::DEFAULT, &e2, &other_model, 1)
            .await
            .unwrap()
            .is_empty(),
        "models are never mixed"
    );

    let deleted = store
        .delete_face(facerec_core::CollectionId::DEFAULT, second.id, &actor())
        .await
        .unwrap();
    assert_eq!(deleted.id, second.id);
    assert!(matches!(
        store
            .get_face(facerec_core::CollectionId::DEFAULT, second.id)
            .await,
        Err(StoreError::FaceNotFound(_))
    ));
    let hit = store
        .search(facerec_core::CollectionId::DEFAULT, &e2, &model(), 1)
        .await
        .unwrap();
    assert_eq!(
        hit[0].face_id, first.id,
        "the deleted face is no longer searched"
    );

    let bob = store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            new_person("Bob"),
            &actor(),
        )
        .await
        .unwrap();
    store
        .add_face(
            facerec_core::CollectionId::DEFAULT,
            bob.id,
            new_face(e2.clone(), "photo-2"),
            &actor(),
        )
        .await
        .unwrap();
    let gone = store
        .delete_person(facerec_core::CollectionId::DEFAULT, alice.id, &actor())
        .await
        .unwrap();
    assert_eq!((gone.person.id, gone.faces_deleted), (alice.id, 1));
    assert!(matches!(
        store
            .get_person(facerec_core::CollectionId::DEFAULT, alice.id)
            .await,
        Err(StoreError::PersonNotFound(_))
    ));
    assert!(matches!(
        store
            .get_face(facerec_core::CollectionId::DEFAULT, first.id)
            .await,
        Err(StoreError::FaceNotFound(_))
    ));
    let hits = store
        .search(facerec_core::CollectionId::DEFAULT, &e1, &model(), 5)
        .await
        .unwrap();
    assert!(
        hits.iter().all(|h| h.person_id != alice.id),
        "a deleted person is never found"
    );
    assert_eq!(store.count_faces(None).await.unwrap(), 1);

    let events = store
        .audit_events(None, &facerec_core::AuditFilter::newest(Some(alice.id), 50))
        .await
        .unwrap();
    let actions: Vec<AuditAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::PersonDeleted,
            AuditAction::FaceDeleted,
            AuditAction::FaceAdded,
            AuditAction::FaceAdded,
            AuditAction::PersonCreated
        ],
        "newest first; the idempotent re-add recorded nothing"
    );
    assert_eq!(events[0].details["faces_deleted"], 1);
    assert_eq!(events[0].actor, actor());
    let serialized = serde_json::to_string(&events).unwrap();
    assert!(
        !serialized.contains("Alice"),
        "the audit log keeps no personal data of the deleted person"
    );
}

async fn search_matches_brute_force(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut all: Vec<(PersonId, NormalizedEmbedding)> = Vec::new();
    for p in 0..150 {
        let base = random_unit(&mut rng);
        let faces = 1 + p % 3;
        let (person, _) = store
            .register(
                facerec_core::CollectionId::DEFAULT,
                new_person(&format!("P{p}")),
                new_face(base.clone(), &format!("{p}-0")),
                &actor(),
            )
            .await
            .unwrap();
        all.push((person.id, base.clone()));
        for f in 1..faces {
            // Variations of one identity: the base plus noise.
            let raw: Vec<f32> = base
                .as_slice()
                .iter()
                .map(|v| v + 0.03 * (rng.random::<f32>() - 0.5))
                .collect();
            let e = NormalizedEmbedding::normalize(&raw).unwrap().0;
            store
                .add_face(
                    facerec_core::CollectionId::DEFAULT,
                    person.id,
                    new_face(e.clone(), &format!("{p}-{f}")),
                    &actor(),
                )
                .await
                .unwrap();
            all.push((person.id, e));
        }
    }
    for q in 0..25 {
        let (_, target) = &all[(q * 13) % all.len()];
        let raw: Vec<f32> = target
            .as_slice()
            .iter()
            .map(|v| v + 0.05 * (rng.random::<f32>() - 0.5))
            .collect();
        let probe = NormalizedEmbedding::normalize(&raw).unwrap().0;
        let mut best: HashMap<PersonId, f32> = HashMap::new();
        for (person, e) in &all {
            let s = probe.similarity(e).value();
            let b = best.entry(*person).or_insert(f32::MIN);
            *b = b.max(s);
        }
        let mut expected: Vec<(PersonId, f32)> = best.into_iter().collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let hits = store
            .search(facerec_core::CollectionId::DEFAULT, &probe, &model(), 5)
            .await
            .unwrap();
        assert_eq!(hits.len(), 5);
        for (hit, (person, similarity)) in hits.iter().zip(&expected) {
            assert_eq!(hit.person_id, *person, "probe {q}");
            assert!(
                (hit.similarity.value() - similarity).abs() < 1e-4,
                "probe {q}"
            );
        }
    }
}

async fn concurrent_registrations(store: Arc<dyn Inspect>) {
    let target = store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            new_person("Shared"),
            &actor(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..12 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + t);
            let mut ids = Vec::new();
            for i in 0..5 {
                let (p, _) = store
                    .register(
                        facerec_core::CollectionId::DEFAULT,
                        new_person(&format!("T{t}-{i}")),
                        new_face(random_unit(&mut rng), &format!("{t}-{i}")),
                        &actor(),
                    )
                    .await
                    .unwrap();
                ids.push(p.id);
            }
            // Everyone also sends the same photo for the same person: exactly one face results.
            let same = NormalizedEmbedding::normalize(&[1.0; EMBEDDING_DIM])
                .unwrap()
                .0;
            let (_, added) = store
                .add_face(
                    facerec_core::CollectionId::DEFAULT,
                    target.id,
                    new_face(same, "same-photo"),
                    &actor(),
                )
                .await
                .unwrap();
            (ids, added)
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let (persons, added) = task.await.unwrap();
        ids.extend(persons);
        created += usize::from(added == Added::Created);
    }
    assert_eq!(ids.len(), 60, "every registration is there once");
    assert_eq!(created, 1, "one photo, one face, however many senders");
    assert_eq!(
        store
            .list_faces(facerec_core::CollectionId::DEFAULT, target.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let page = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                limit: 1000,
                offset: 0,
                name_contains: None,
                expires_before: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 61);
    assert_eq!(store.count_faces(None).await.unwrap(), 61);
}

async fn persists_across_reopen(backend: &Backend) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let e = random_unit(&mut rng);
    let person = {
        let store = backend.open().await;
        let (person, _) = store
            .register(
                facerec_core::CollectionId::DEFAULT,
                new_person("Persistent"),
                new_face(e.clone(), "p"),
                &actor(),
            )
            .await
            .unwrap();
        person
    };
    let store = backend.open().await;
    assert_eq!(
        store
            .get_person(facerec_core::CollectionId::DEFAULT, person.id)
            .await
            .unwrap()
            .name,
        "Persistent"
    );
    let hits = store
        .search(facerec_core::CollectionId::DEFAULT, &e, &model(), 1)
        .await
        .unwrap();
    assert_eq!(
        hits[0].person_id, person.id,
        "the index is rebuilt from the database"
    );
}

/// The reference embeddings of one set of photos, and who is in them.
struct Labelled {
    identity: String,
    path: String,
    embedding: NormalizedEmbedding,
}

fn labelled_photos(dir: &Path) -> Vec<Labelled> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.csv")).unwrap();
    let identity: HashMap<&str, &str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?, f.next()?))
        })
        .collect();
    let mut out = Vec::new();
    for line in std::fs::read_to_string(dir.join("reference.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap();
        if !path.starts_with("images/") || v["n_faces"].as_u64() == Some(0) {
            continue;
        }
        // The photo's subject: the largest face (three photos also show small background faces).
        let face = v["faces"]
            .as_array()
            .unwrap()
            .iter()
            .max_by(|a, b| {
                let area = |f: &serde_json::Value| {
                    let b: Vec<f64> = serde_json::from_value(f["bbox"].clone()).unwrap();
                    (b[2] - b[0]) * (b[3] - b[1])
                };
                area(a).total_cmp(&area(b))
            })
            .unwrap();
        let values: Vec<f32> = serde_json::from_value(face["embedding"].clone()).unwrap();
        out.push(Labelled {
            identity: identity[path].to_owned(),
            path: path.to_owned(),
            embedding: NormalizedEmbedding::from_unit_vector(values).unwrap(),
        });
    }
    out
}

/// One photo per identity registered; every other photo of them is found first; every single-photo
/// identity (a stranger) stays unknown at the default threshold.
async fn recognition_over_shared_faces(store: Arc<dyn Inspect>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/faces");
    assert!(
        dir.join("reference.jsonl").is_file(),
        "../shared/faces is absent"
    );
    let photos = labelled_photos(&dir);
    let mut by_identity: HashMap<&str, Vec<&Labelled>> = HashMap::new();
    for p in &photos {
        by_identity.entry(&p.identity).or_default().push(p);
    }
    let mut registered: HashMap<PersonId, &str> = HashMap::new();
    let mut probes = Vec::new();
    let mut strangers = Vec::new();
    let mut identities: Vec<_> = by_identity.into_iter().collect();
    identities.sort_by_key(|(identity, _)| *identity);
    for (identity, mut list) in identities {
        list.sort_by_key(|p| p.path.clone());
        if list.len() == 1 {
            strangers.push(list[0]);
            continue;
        }
        let (person, _) = store
            .register(
                facerec_core::CollectionId::DEFAULT,
                new_person(identity),
                new_face(list[0].embedding.clone(), &list[0].path),
                &actor(),
            )
            .await
            .unwrap();
        registered.insert(person.id, identity);
        probes.extend(list[1..].iter().copied());
    }
    let matcher = Matcher::default();
    let mut rank1 = 0;
    let mut failures = Vec::new();
    for p in &probes {
        let hits = store
            .search(
                facerec_core::CollectionId::DEFAULT,
                &p.embedding,
                &model(),
                2,
            )
            .await
            .unwrap();
        if registered[&hits[0].person_id] == p.identity {
            rank1 += 1;
        } else {
            failures.push(format!(
                "{} -> {} ({:.3})",
                p.path,
                registered[&hits[0].person_id],
                hits[0].similarity.value()
            ));
        }
    }
    let mut rejected = 0;
    for s in &strangers {
        let hits = store
            .search(
                facerec_core::CollectionId::DEFAULT,
                &s.embedding,
                &model(),
                1,
            )
            .await
            .unwrap();
        if !matcher.accepts(hits[0].similarity) {
            rejected += 1;
        } else {
            failures.push(format!(
                "stranger {} accepted as {}",
                s.path, registered[&hits[0].person_id]
            ));
        }
    }
    eprintln!(
        "recognition[{}]: {} identities registered, rank-1 {}/{} ({:.1}%), strangers rejected {}/{} ({:.1}%)",
        store.backend(),
        registered.len(),
        rank1,
        probes.len(),
        100.0 * rank1 as f64 / probes.len() as f64,
        rejected,
        strangers.len(),
        100.0 * rejected as f64 / strangers.len() as f64
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Always available: the registry photos (`yaoming.jpg` is face 3 of `players.jpg`).
async fn recognition_over_registry_photos(store: Arc<dyn Inspect>) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/registry_reference.jsonl"),
    )
    .unwrap();
    let refs: HashMap<String, Vec<NormalizedEmbedding>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let faces = v["faces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    NormalizedEmbedding::from_unit_vector(
                        serde_json::from_value(f["embedding"].clone()).unwrap(),
                    )
                    .unwrap()
                })
                .collect();
            (v["path"].as_str().unwrap().to_owned(), faces)
        })
        .collect();
    let (yao, _) = store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("Yao Ming"),
            new_face(refs["vectron/yaoming.jpg"][0].clone(), "yao"),
            &actor(),
        )
        .await
        .unwrap();
    for (i, face) in refs["insightface/t1.jpg"].iter().enumerate() {
        store
            .register(
                facerec_core::CollectionId::DEFAULT,
                new_person(&format!("t1 face {i}")),
                new_face(face.clone(), &format!("t1-{i}")),
                &actor(),
            )
            .await
            .unwrap();
    }
    let matcher = Matcher::default();
    for (i, face) in refs["vectron/players.jpg"].iter().enumerate() {
        let hit = store
            .search(facerec_core::CollectionId::DEFAULT, face, &model(), 1)
            .await
            .unwrap()
            .remove(0);
        let accepted = matcher.accepts(hit.similarity);
        if i == 3 {
            assert!(
                accepted && hit.person_id == yao.id,
                "players face 3 is Yao Ming ({:?})",
                hit.similarity
            );
        } else {
            assert!(
                !accepted,
                "players face {i} is nobody registered ({:?})",
                hit.similarity
            );
        }
    }
}

/// Case-insensitive search folds names the same way on both backends, in any script; a rename
/// refolds.
async fn names_in_any_script(store: Arc<dyn Inspect>) {
    let emile = store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            new_person("Émile Zola"),
            &actor(),
        )
        .await
        .unwrap();
    store
        .create_person(
            facerec_core::CollectionId::DEFAULT,
            new_person("Ωmega Ölund"),
            &actor(),
        )
        .await
        .unwrap();
    let find = |text: &str| PageRequest {
        limit: 10,
        offset: 0,
        name_contains: Some(text.into()),
        expires_before: None,
        external_id: None,
    };
    for text in ["émile", "ÉMILE", "Émile Zola", "zola"] {
        let page = store
            .list_persons(facerec_core::CollectionId::DEFAULT, &find(text))
            .await
            .unwrap();
        assert_eq!(page.total, 1, "'{text}' finds Émile Zola once");
        assert_eq!(page.items[0].id, emile.id);
    }
    for text in ["ωmega", "ÖLUND"] {
        assert_eq!(
            store
                .list_persons(facerec_core::CollectionId::DEFAULT, &find(text))
                .await
                .unwrap()
                .total,
            1,
            "{text}"
        );
    }
    assert_eq!(
        store
            .list_persons(facerec_core::CollectionId::DEFAULT, &find("emile"))
            .await
            .unwrap()
            .total,
        0,
        "accents are kept"
    );
    let patch = PersonPatch {
        name: Some("ÉLODIE Zola".into()),
        external_id: None,
        metadata: None,
        consent_expires_at: None,
    };
    store
        .update_person(
            facerec_core::CollectionId::DEFAULT,
            emile.id,
            patch,
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .list_persons(facerec_core::CollectionId::DEFAULT, &find("élodie"))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .list_persons(facerec_core::CollectionId::DEFAULT, &find("émile"))
            .await
            .unwrap()
            .total,
        0
    );
}

/// Every face, across persons, in the order added, a page at a time, with whose it is.
async fn all_faces_in_pages(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut added = Vec::new();
    for (name, photos) in [("First", 2), ("Second", 1), ("Third", 3)] {
        let person = store
            .create_person(
                facerec_core::CollectionId::DEFAULT,
                new_person(name),
                &actor(),
            )
            .await
            .unwrap();
        for i in 0..photos {
            let face = new_face(random_unit(&mut rng), &format!("{name}-{i}"));
            let (face, _) = store
                .add_face(
                    facerec_core::CollectionId::DEFAULT,
                    person.id,
                    face,
                    &actor(),
                )
                .await
                .unwrap();
            added.push((face.id, person.id, name.to_owned()));
        }
    }
    let mut listed = Vec::new();
    for offset in (0..8).step_by(4) {
        let page = store
            .list_all_faces(facerec_core::CollectionId::DEFAULT, 4, offset)
            .await
            .unwrap();
        assert_eq!(page.total, 6);
        listed.extend(
            page.items
                .into_iter()
                .map(|e| (e.face_id, e.person_id, e.person_name)),
        );
    }
    assert_eq!(listed, added);
    let (gone, _, _) = added.remove(0);
    store
        .delete_face(facerec_core::CollectionId::DEFAULT, gone, &actor())
        .await
        .unwrap();
    let page = store
        .list_all_faces(facerec_core::CollectionId::DEFAULT, 10, 0)
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (5, 5));
    assert!(store
        .list_all_faces(facerec_core::CollectionId::DEFAULT, 10, 1 << 62)
        .await
        .unwrap()
        .items
        .is_empty());
}

/// Registrations by one name, sent at once (as two replicas or two requests would), make one person;
/// names resolve folded, and a name two persons share is refused, never resolved to "the first".
async fn registrations_by_name(store: Arc<dyn Inspect>) {
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(300 + t);
            let faces = vec![
                new_face(random_unit(&mut rng), &format!("{t}-a")),
                new_face(random_unit(&mut rng), &format!("{t}-b")),
            ];
            // Each sender spells the name its own way.
            let name = if t % 2 == 0 {
                "Émile Zola"
            } else {
                "ÉMILE ZOLA"
            };
            store
                .register_named(
                    facerec_core::CollectionId::DEFAULT,
                    new_person(name),
                    faces,
                    &actor(),
                )
                .await
                .unwrap()
        }));
    }
    let mut persons = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let registered = task.await.unwrap();
        persons.insert(registered.person.id);
        created += usize::from(registered.created);
        assert_eq!(registered.faces.len(), 2);
    }
    assert_eq!((persons.len(), created), (1, 1), "one person, created once");
    let person = *persons.iter().next().unwrap();
    assert_eq!(
        store
            .list_faces(facerec_core::CollectionId::DEFAULT, person)
            .await
            .unwrap()
            .len(),
        16
    );
    let named = store
        .persons_named(facerec_core::CollectionId::DEFAULT, "émile zola", 5)
        .await
        .unwrap();
    assert_eq!(named.iter().map(|p| p.id).collect::<Vec<_>>(), [person]);

    // No faces: the person is found, nothing is added.
    let again = store
        .register_named(
            facerec_core::CollectionId::DEFAULT,
            new_person("émile zola"),
            Vec::new(),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!((again.person.id, again.created), (person, false));

    // A second person of that name, made by id-based registration: the name no longer resolves.
    let mut rng = rand::rngs::StdRng::seed_from_u64(400);
    let face = new_face(random_unit(&mut rng), "other");
    store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("Emile Zola"),
            face,
            &actor(),
        )
        .await
        .unwrap();
    store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("Émile zola"),
            new_face(random_unit(&mut rng), "x"),
            &actor(),
        )
        .await
        .unwrap();
    let err = store
        .register_named(
            facerec_core::CollectionId::DEFAULT,
            new_person("ÉMILE ZOLA"),
            Vec::new(),
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AmbiguousName(_)), "{err:?}");
    assert_eq!(
        store
            .persons_named(facerec_core::CollectionId::DEFAULT, "Émile Zola", 5)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A database whose schema a newer facerec wrote is refused at open, naming both versions, and
/// left as it was.
async fn newer_schema_is_refused(backend: &Backend) {
    let store = backend.open().await;
    store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("Kept"),
            new_face(random_unit(&mut rand::rng()), "k"),
            &actor(),
        )
        .await
        .unwrap();
    drop(store);
    let insert =
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', TRUE, $1, 0)";
    let checksum = vec![0u8; 48];
    if backend.url.starts_with("sqlite:") {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&backend.url).await.unwrap();
        sqlx::query(insert)
            .bind(checksum)
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&backend.url).await.unwrap();
        sqlx::query(insert)
            .bind(checksum)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let err = facerec_store::open(&backend.url, &StoreOptions::default())
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::TooNew { database: 9999, .. }),
        "{err}"
    );
    let message = err.to_string();
    // The newest migration this binary knows: one file per version in each backend's folder.
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        message.contains("9999") && message.contains(&format!("up to {known}")),
        "{message}"
    );
}

/// Consent that runs out: the sweep deletes exactly the expired persons, each with an audit event
/// saying why, and their faces leave the search; a renewed consent is kept.
async fn consent_expiry(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(22);
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut register = |name: &str, expires_at| {
        let mut person = new_person(name);
        person.consent = person.consent.until(expires_at);
        let embedding = random_unit(&mut rng);
        let store = Arc::clone(&store);
        async move {
            let (person, face) = store
                .register(
                    facerec_core::CollectionId::DEFAULT,
                    person,
                    new_face(embedding.clone(), "img"),
                    &actor(),
                )
                .await
                .unwrap();
            (person, face.embedding)
        }
    };
    let (expiring, expiring_embedding) = register("Expiring", Some(soon)).await;
    let (renewed, _) = register("Renewed", Some(soon)).await;
    let (hour, _) = register("Hour", Some(later)).await;
    let (forever, _) = register("Forever", None).await;
    assert_eq!(expiring.consent.expires_at, Some(soon));

    let past = new_person("Past").consent.until(Some(chrono::Utc::now()));
    let refused = store
        .register(
            facerec_core::CollectionId::DEFAULT,
            NewPerson {
                consent: past,
                ..new_person("Past")
            },
            new_face(random_unit(&mut rng), "p"),
            &actor(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::InvalidPerson(_))),
        "{refused:?}"
    );

    let renew = PersonPatch {
        consent_expires_at: Some(Some(later)),
        ..PersonPatch::default()
    };
    store
        .update_person(
            facerec_core::CollectionId::DEFAULT,
            renewed.id,
            renew,
            &actor(),
        )
        .await
        .unwrap();

    let expiring_soon = store
        .list_persons(
            facerec_core::CollectionId::DEFAULT,
            &PageRequest {
                expires_before: Some(later),
                external_id: None,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    let listed: HashSet<PersonId> = expiring_soon.items.iter().map(|p| p.id).collect();
    assert_eq!(listed, HashSet::from([expiring.id, renewed.id, hour.id]));
    assert_eq!(expiring_soon.total, 3);

    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let now = chrono::Utc::now();
    let swept = store.delete_expired(now, 100, &actor()).await.unwrap();
    assert_eq!(
        swept.iter().map(|d| d.person.id).collect::<Vec<_>>(),
        [expiring.id]
    );
    assert_eq!(swept[0].faces_deleted, 1);
    assert!(store
        .delete_expired(now, 100, &actor())
        .await
        .unwrap()
        .is_empty());
    for kept in [renewed.id, hour.id, forever.id] {
        store
            .get_person(facerec_core::CollectionId::DEFAULT, kept)
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .get_person(facerec_core::CollectionId::DEFAULT, expiring.id)
            .await,
        Err(StoreError::PersonNotFound(_))
    ));
    let hits = store
        .search(
            facerec_core::CollectionId::DEFAULT,
            &expiring_embedding,
            &model(),
            5,
        )
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.person_id != expiring.id));
    let events = store
        .audit_events(
            None,
            &facerec_core::AuditFilter::newest(Some(expiring.id), 10),
        )
        .await
        .unwrap();
    let deletion = &events[0];
    assert_eq!(deletion.action, AuditAction::PersonDeleted);
    assert_eq!(deletion.details["reason"], "consent_expired");
    assert_eq!(deletion.details["faces_deleted"], 1);
}

/// The calibration's inputs and records: a random sample of persons with all their faces, and the
/// newest calibration document back (the last 10 kept).
async fn calibration_samples_and_records(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut faces_of = HashMap::new();
    for i in 0..12 {
        let (person, _) = store
            .register(
                facerec_core::CollectionId::DEFAULT,
                new_person(&format!("P{i}")),
                new_face(random_unit(&mut rng), "a"),
                &actor(),
            )
            .await
            .unwrap();
        if i % 3 == 0 {
            store
                .add_face(
                    facerec_core::CollectionId::DEFAULT,
                    person.id,
                    new_face(random_unit(&mut rng), "b"),
                    &actor(),
                )
                .await
                .unwrap();
        }
        faces_of.insert(person.id, if i % 3 == 0 { 2 } else { 1 });
    }
    let sample = store
        .sample_faces(facerec_core::CollectionId::DEFAULT, 5, &model())
        .await
        .unwrap();
    let mut persons: HashMap<PersonId, usize> = HashMap::new();
    for face in &sample {
        *persons.entry(face.person_id).or_default() += 1;
    }
    assert_eq!(persons.len(), 5);
    for (person, faces) in &persons {
        assert_eq!(faces, &faces_of[person], "all of a sampled person's faces");
    }
    assert_eq!(
        store
            .sample_faces(facerec_core::CollectionId::DEFAULT, 100, &model())
            .await
            .unwrap()
            .len(),
        16
    );
    let other = ModelId {
        name: "other".into(),
        sha256: "1".into(),
    };
    assert!(store
        .sample_faces(facerec_core::CollectionId::DEFAULT, 100, &other)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(
        store
            .recent_calibrations(facerec_core::CollectionId::DEFAULT)
            .await
            .unwrap(),
        Vec::<serde_json::Value>::new()
    );
    for i in 0..12 {
        let at = chrono::Utc::now();
        store
            .save_calibration(
                facerec_core::CollectionId::DEFAULT,
                at,
                i,
                serde_json::json!({ "run": i }),
            )
            .await
            .unwrap();
    }
    // The newest ten, newest first.
    let kept: Vec<serde_json::Value> = (2..12)
        .rev()
        .map(|i| serde_json::json!({ "run": i }))
        .collect();
    assert_eq!(
        store
            .recent_calibrations(facerec_core::CollectionId::DEFAULT)
            .await
            .unwrap(),
        kept
    );
}

/// Two collections, one person of the same name and external id in each: nothing of one is seen,
/// counted, searched, changed or deleted from the other; deleting a collection takes its persons,
/// faces, keys and calibrations with it and leaves the other whole.
async fn collections_are_isolated(store: Arc<dyn Inspect>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let collection = |name: &str| NewCollection {
        model: facerec_core::ModelBinding::built_in(),
        name: name.into(),
        settings: CollectionSettings::default(),
    };
    let a = store
        .create_collection(collection("lobby"), &actor())
        .await
        .unwrap();
    let b = store
        .create_collection(collection("hr"), &actor())
        .await
        .unwrap();
    let taken = store.create_collection(collection("hr"), &actor()).await;
    assert!(
        matches!(taken, Err(StoreError::CollectionExists(_))),
        "{taken:?}"
    );
    assert!(matches!(
        store
            .create_collection(collection("Not A Slug"), &actor())
            .await,
        Err(StoreError::InvalidCollection(_))
    ));
    let same = random_unit(&mut rng);
    let mut registered = Vec::new();
    for c in [&a, &b] {
        let person = NewPerson {
            external_id: Some("emp-1".into()),
            ..new_person("Ada Lovelace")
        };
        let (person, face) = store
            .register(c.id, person, new_face(same.clone(), "a"), &actor())
            .await
            .expect("the same name and external id in another collection");
        registered.push((c.id, person, face));
    }
    let [(a_id, a_person, a_face), (b_id, b_person, b_face)] = &registered[..] else {
        unreachable!()
    };
    for (own, other, person, face) in [
        (a_id, b_id, a_person, a_face),
        (b_id, a_id, b_person, b_face),
    ] {
        let hits = store.search(*own, &same, &model(), 5).await.unwrap();
        assert_eq!(hits.len(), 1, "one person in each collection");
        assert_eq!(hits[0].person_id, person.id);
        assert_eq!(store.count_faces(Some(*own)).await.unwrap(), 1);
        let page = store
            .list_persons(*own, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!((page.total, page.items[0].id), (1, person.id));
        let named = store.persons_named(*own, "ada lovelace", 5).await.unwrap();
        assert_eq!(named.len(), 1);
        // From the other collection, this person and face do not exist.
        assert!(matches!(
            store.get_person(*other, person.id).await,
            Err(StoreError::PersonNotFound(_))
        ));
        assert!(matches!(
            store.get_face(*other, face.id).await,
            Err(StoreError::FaceNotFound(_))
        ));
        assert!(matches!(
            store.list_faces(*other, person.id).await,
            Err(StoreError::PersonNotFound(_))
        ));
        let patch = PersonPatch {
            name: Some("Renamed".into()),
            ..PersonPatch::default()
        };
        assert!(matches!(
            store
                .update_person(*other, person.id, patch, &actor())
                .await,
            Err(StoreError::PersonNotFound(_))
        ));
        assert!(matches!(
            store
                .add_face(
                    *other,
                    person.id,
                    new_face(random_unit(&mut rng), "x"),
                    &actor()
                )
                .await,
            Err(StoreError::PersonNotFound(_))
        ));
        let found = store
            .find_person_by_external_id(*own, "emp-1")
            .await
            .unwrap();
        assert_eq!(found.map(|p| p.id), Some(person.id));
    }
    assert!(matches!(
        store.delete_person(*b_id, a_person.id, &actor()).await,
        Err(StoreError::PersonNotFound(_))
    ));
    assert!(matches!(
        store.delete_face(*b_id, a_face.id, &actor()).await,
        Err(StoreError::FaceNotFound(_))
    ));
    let a_events = store
        .audit_events(Some(*a_id), &AuditFilter::newest(None, 100))
        .await
        .unwrap();
    assert!(a_events.iter().all(|e| e.collection_id == *a_id));
    assert!(a_events.iter().any(|e| e.person_id == Some(a_person.id)));
    assert!(a_events.iter().all(|e| e.person_id != Some(b_person.id)));
    // Keys: by hash, bound to their collection, revocable.
    let key = store
        .create_key(
            NewApiKey {
                collection_id: b.id,
                label: "hr door".into(),
                scopes: Scopes::parse_list("recognize").unwrap(),
                expires_at: None,
                secret_sha256: "ab".repeat(32),
            },
            &actor(),
        )
        .await
        .unwrap();
    let found = store
        .key_by_secret(&"ab".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.collection_id), (key.id, b.id));
    assert!(found.is_live(chrono::Utc::now()));
    assert!(store
        .key_by_secret(&"cd".repeat(32))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.list_keys(Some(a.id)).await.unwrap().len(), 0);
    assert_eq!(store.list_keys(Some(b.id)).await.unwrap().len(), 1);
    store.touch_key(key.id, chrono::Utc::now()).await.unwrap();
    let revoked = store.revoke_key(key.id, &actor()).await.unwrap();
    assert!(revoked.revoked_at.is_some() && !revoked.is_live(chrono::Utc::now()));
    let again = store
        .key_by_secret(&"ab".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert!(!again.is_live(chrono::Utc::now()) && again.last_used_at.is_some());
    // Deleting a collection takes everything in it, and nothing else.
    assert!(matches!(
        store
            .delete_collection(CollectionId::DEFAULT, &actor())
            .await,
        Err(StoreError::DefaultCollection)
    ));
    let deleted = store.delete_collection(b.id, &actor()).await.unwrap();
    assert_eq!(
        (
            deleted.persons_deleted,
            deleted.faces_deleted,
            deleted.keys_deleted
        ),
        (1, 1, 1)
    );
    assert!(matches!(
        store.get_collection(b.id).await,
        Err(StoreError::CollectionNotFound(_))
    ));
    assert!(store
        .search(b.id, &same, &model(), 5)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_faces(Some(b.id)).await.unwrap(), 0);
    assert!(store
        .key_by_secret(&"ab".repeat(32))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.search(a.id, &same, &model(), 5).await.unwrap().len(),
        1
    );
    let events = store
        .audit_events(Some(b.id), &AuditFilter::newest(None, 1))
        .await
        .unwrap();
    assert_eq!(events[0].action, AuditAction::CollectionDeleted);
}

/// A registration attempt remembered under its key in the registration's own transaction: a second
/// attempt under the key writes nothing, the attempt is read back, and it is forgotten with its
/// face or after its time.
async fn attempts_are_remembered_once(store: Arc<dyn Inspect>) {
    use facerec_core::retry::{Attempt, IdempotencyKey};
    let c = facerec_core::CollectionId::DEFAULT;
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let attempt = |key: &str| Attempt {
        key: IdempotencyKey::new(key).unwrap(),
        fingerprint: format!("asked-{key}"),
    };
    let first = attempt("retry-1");
    let (person, face) = store
        .register_once(
            c,
            new_person("Once"),
            new_face(random_unit(&mut rng), "o1"),
            &actor(),
            &first,
        )
        .await
        .unwrap();
    let again = store
        .register_once(
            c,
            new_person("Once"),
            new_face(random_unit(&mut rng), "o2"),
            &actor(),
            &first,
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::IdempotencyKeyTaken)),
        "{again:?}"
    );
    let listed = store
        .list_persons(c, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.total, 1, "nothing written by the second attempt");
    let remembered = store.remembered(c, &first.key).await.unwrap().unwrap();
    assert_eq!(
        (remembered.person, remembered.face, remembered.created),
        (person.id, face.id, true)
    );
    assert_eq!(remembered.fingerprint, "asked-retry-1");
    // Another collection does not see it.
    let other = store
        .create_collection(
            facerec_core::NewCollection {
                model: facerec_core::ModelBinding::built_in(),
                name: "elsewhere".into(),
                settings: Default::default(),
            },
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(store.remembered(other.id, &first.key).await.unwrap(), None);

    // A face added under a key; the same photo again under another key is remembered as found.
    let second = attempt("retry-2");
    let (added, how) = store
        .add_face_once(
            c,
            person.id,
            new_face(random_unit(&mut rng), "o3"),
            &actor(),
            &second,
        )
        .await
        .unwrap();
    assert_eq!(how, Added::Created);
    let third = attempt("retry-3");
    let same = new_face(random_unit(&mut rng), "o3");
    let (found, how) = store
        .add_face_once(c, person.id, same, &actor(), &third)
        .await
        .unwrap();
    assert_eq!((found.id, how), (added.id, Added::AlreadyPresent));
    let remembered = store.remembered(c, &third.key).await.unwrap().unwrap();
    assert!(!remembered.created);

    // Gone with the face it names, and after its time.
    store.delete_face(c, added.id, &actor()).await.unwrap();
    assert_eq!(store.remembered(c, &second.key).await.unwrap(), None);
    assert_eq!(
        store
            .forget_attempts(chrono::Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.remembered(c, &first.key).await.unwrap(), None);
}

/// A calibration's stranger probe: its own person is left out in the search itself, so a person
/// with more faces than a search fetches (PostgreSQL fetches 16 for k = 2) still finds the others.
async fn a_search_leaves_one_person_out(store: Arc<dyn Inspect>) {
    let c = facerec_core::CollectionId::DEFAULT;
    let mut rng = rand::rngs::StdRng::seed_from_u64(33);
    let probe = random_unit(&mut rng);
    let near = |rng: &mut rand::rngs::StdRng, spread: f32| {
        let noise = random_unit(rng);
        let raw: Vec<f32> = probe
            .as_slice()
            .iter()
            .zip(noise.as_slice())
            .map(|(p, n)| p + spread * n)
            .collect();
        NormalizedEmbedding::normalize(&raw).unwrap().0
    };
    let (many, _) = store
        .register(
            c,
            new_person("Many Faces"),
            new_face(near(&mut rng, 0.1), "m0"),
            &actor(),
        )
        .await
        .unwrap();
    for i in 1..24 {
        let face = new_face(near(&mut rng, 0.1), &format!("m{i}"));
        store.add_face(c, many.id, face, &actor()).await.unwrap();
    }
    let (other, _) = store
        .register(
            c,
            new_person("Other"),
            new_face(near(&mut rng, 1.0), "o"),
            &actor(),
        )
        .await
        .unwrap();
    for i in 0..5 {
        let face = new_face(random_unit(&mut rng), &format!("r{i}"));
        store
            .register(c, new_person(&format!("R{i}")), face, &actor())
            .await
            .unwrap();
    }
    let all = store.search(c, &probe, &model(), 2).await.unwrap();
    assert_eq!(all[0].person_id, many.id);
    let others = store
        .search_others(c, &probe, &model(), many.id, 2)
        .await
        .unwrap();
    assert_eq!(others.len(), 2, "{others:?}");
    assert_eq!(others[0].person_id, other.id);
    assert!(others.iter().all(|o| o.person_id != many.id));
}

/// A capture for the store's tests: `embedding`, unknown or named for `person`, seen at `at`.
fn new_capture(
    embedding: NormalizedEmbedding,
    person: Option<PersonId>,
    source: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> capture::NewCapture {
    use capture::*;
    NewCapture {
        embedding,
        model: model(),
        chip: ChipJpeg(vec![0xFF, 0xD8, 0xFF, 0xD9]),
        det_score: 0.8,
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 0.9,
            embedding_norm: 20.0,
        },
        bbox: facerec_types::BoundingBox {
            x1: 0.0,
            y1: 0.0,
            x2: 100.0,
            y2: 100.0,
        },
        decision: match person {
            Some(person) => Decision::Known {
                person,
                similarity: facerec_types::Similarity::new(0.8),
                estimated_fpir: None,
            },
            None => Decision::Unknown { best: None },
        },
        threshold: Threshold::new(0.3).unwrap(),
        join_at: Threshold::new(0.3).unwrap(),
        source: Source::new(source).unwrap(),
        route: "test",
        seen_at: at,
        proposed_cluster: ClusterId::new(),
        proposed_id: CaptureId::new(),
        max: 1_000,
    }
}

/// Captured faces at the store: a capture linking two clusters merges them into the older, whose
/// id the merged one still resolves to; a rejection is held while its capture is, and lifted when
/// it expires; the oldest go beyond the bound; another collection sees none of it.
async fn captures_cluster_expire_and_stay_bounded(store: Arc<dyn Inspect>) {
    let c = CollectionId::DEFAULT;
    let actor = Actor::local_operator();
    let now = chrono::Utc::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(28);
    let (a, b) = (random_unit(&mut rng), random_unit(&mut rng));
    let first = store
        .capture(c, new_capture(a.clone(), None, "cam-a", now))
        .await
        .unwrap();
    let second = store
        .capture(c, new_capture(b.clone(), None, "cam-b", now))
        .await
        .unwrap();
    let (x, y) = (
        first.capture.cluster_id.unwrap(),
        second.capture.cluster_id.unwrap(),
    );
    assert_ne!(x, y, "two strangers, two clusters");
    // Halfway between them: similar to both (~0.7), so it links their clusters.
    let between: Vec<f32> = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(p, q)| p + q)
        .collect();
    let between = NormalizedEmbedding::normalize(&between).unwrap().0;
    let link = store
        .capture(c, new_capture(between, None, "cam-c", now))
        .await
        .unwrap();
    let survivor = link.capture.cluster_id.unwrap();
    assert_eq!(survivor, x.min(y), "the older cluster survives");
    // The same face from the same source again: one capture seen twice, and the cluster id its
    // answer gave (before the first was written) resolves to the capture's cluster.
    let again = new_capture(a.clone(), None, "cam-a", now);
    let told = again.proposed_cluster;
    let sighting = store.capture(c, again).await.unwrap();
    assert!(sighting.merged_sighting);
    assert_eq!(sighting.capture.id, first.capture.id);
    assert_eq!(sighting.capture.sightings, 2);
    assert_eq!(store.get_cluster(c, told).await.unwrap().id, survivor);
    let merged = store.get_cluster(c, x.max(y)).await.unwrap();
    assert_eq!((merged.id, merged.count), (survivor, 3));
    assert_eq!(
        store
            .cluster_for(c, &a, &model(), 0.3)
            .await
            .unwrap()
            .unwrap()
            .cluster_id,
        survivor
    );

    // A rejection is held against its person while its capture is kept.
    let (alice, _) = store
        .register(
            c,
            new_person("Alice"),
            new_face(random_unit(&mut rng), "alice.jpg"),
            &actor,
        )
        .await
        .unwrap();
    let seen = now - chrono::TimeDelta::hours(3);
    let named = store
        .capture(
            c,
            new_capture(random_unit(&mut rng), Some(alice.id), "door", seen),
        )
        .await
        .unwrap();
    let rejected = store
        .reject_capture(c, named.capture.id, 0.3, &actor)
        .await
        .unwrap();
    assert_eq!(rejected.status, capture::CaptureStatus::Rejected);
    assert_eq!(
        store
            .rejections(c, &[alice.id], &model())
            .await
            .unwrap()
            .len(),
        1
    );
    let other_model = ModelId {
        name: "another".into(),
        sha256: "0".repeat(64),
    };
    assert!(store
        .rejections(c, &[alice.id], &other_model)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_rejections(c).await.unwrap(), 1);
    // Expired (seen three hours ago, kept two): gone, and the rejection with it.
    let deleted = store
        .delete_captures_before(c, now - chrono::TimeDelta::hours(2))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store
        .rejections(c, &[alice.id], &model())
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.get_capture(c, named.capture.id).await,
        Err(StoreError::CaptureNotFound(_))
    ));

    // Another collection sees none of it.
    let other = store
        .create_collection(
            NewCollection {
                model: facerec_core::ModelBinding::built_in(),
                name: "elsewhere".into(),
                settings: CollectionSettings::default(),
            },
            &actor,
        )
        .await
        .unwrap();
    assert!(matches!(
        store.get_cluster(other.id, survivor).await,
        Err(StoreError::ClusterNotFound(_))
    ));
    assert!(store
        .cluster_for(other.id, &a, &model(), 0.3)
        .await
        .unwrap()
        .is_none());

    // The bound: the oldest go first.
    let mut bounded = new_capture(random_unit(&mut rng), None, "bounded", now);
    bounded.max = 2;
    let kept = store.capture(c, bounded).await.unwrap();
    assert_eq!(kept.evicted, 2);
    let left = store
        .list_captures(
            c,
            &capture::CaptureFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].id, kept.capture.id, "newest first");
}

/// The event outbox: an event about a person deleted meanwhile (queued before the deletion,
/// written after it) is not written; a deletion removes the person's undelivered events and appends
/// `person.deleted` without their name, which is kept for the MQTT destination past the outbox's
/// age while the other events go, until that destination itself is forgotten (30 days undriven).
async fn the_outbox_forgets_the_deleted(store: Arc<dyn Inspect>) {
    use facerec_core::events::*;
    let c = CollectionId::DEFAULT;
    let collection = EventCollection {
        id: c,
        name: "default".into(),
    };
    store.ensure_mqtt_sink().await.unwrap();
    let mqtt = || async {
        let sinks = store.sinks().await.unwrap();
        sinks.into_iter().find(|s| s.id == SinkId::Mqtt)
    };
    let sink = mqtt().await.expect("the MQTT destination");
    let person = store
        .create_person(c, new_person("Ada Lovelace"), &actor())
        .await
        .unwrap();
    let seen = |id: PersonId| {
        let mut event = EventData::new(EventType::Recognized, collection.clone(), None);
        event.person = Some(EventPerson {
            id,
            name: Some("Ada Lovelace".into()),
        });
        event
    };
    let kinds = |events: &[Event]| events.iter().map(|e| e.data.kind).collect::<Vec<_>>();
    store.append_events(&[seen(person.id)]).await.unwrap();
    let (events, head) = store.events_after(&sink, 100).await.unwrap();
    assert_eq!(kinds(&events), [EventType::Recognized]);
    assert_eq!(head, events[0].seq);
    store.delete_person(c, person.id, &actor()).await.unwrap();
    store.append_events(&[seen(person.id)]).await.unwrap();
    let (events, _) = store.events_after(&sink, 100).await.unwrap();
    assert_eq!(kinds(&events), [EventType::PersonDeleted]);
    let told = events[0].data.person.as_ref().unwrap();
    assert_eq!((told.id, told.name.as_deref()), (person.id, None));
    let other = EventData::new(EventType::NoFace, collection.clone(), None);
    store.append_events(&[other]).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    // Two days on, nobody drives the MQTT destination: it holds no event back but the deletion.
    store.prune_events(later).await.unwrap();
    let (events, _) = store.events_after(&sink, 100).await.unwrap();
    assert_eq!(kinds(&events), [EventType::PersonDeleted]);
    let forgotten = chrono::Utc::now() + chrono::Duration::days(31);
    store.prune_events(forgotten).await.unwrap();
    assert!(
        mqtt().await.is_none(),
        "an MQTT destination undriven for 30 days is forgotten"
    );
    let (events, _) = store.events_after(&sink, 100).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
}

/// A capture search with a filter looks past the nearest it first asks for: the one capture from
/// `cam-b`, less similar than thirty from other sources, is found with `limit` 1.
async fn capture_search_filters_look_further(store: Arc<dyn Inspect>) {
    use facerec_core::capture::{CaptureSearch, Source};
    let c = CollectionId::DEFAULT;
    let now = chrono::Utc::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let face = random_unit(&mut rng);
    for i in 0..30 {
        store
            .capture(
                c,
                new_capture(face.clone(), None, &format!("cam-a{i}"), now),
            )
            .await
            .unwrap();
    }
    let near: Vec<f32> = face
        .as_slice()
        .iter()
        .zip(random_unit(&mut rng).as_slice())
        .map(|(f, n)| f + 0.2 * n)
        .collect();
    let near = NormalizedEmbedding::normalize(&near).unwrap().0;
    store
        .capture(c, new_capture(near, None, "cam-b", now))
        .await
        .unwrap();
    let source = Source::new("cam-b").unwrap();
    let search = CaptureSearch {
        threshold: 0.5,
        since: None,
        source: Some(&source),
        limit: 1,
    };
    let found = store
        .search_captures(c, &face, &model(), search)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].capture.source.as_str(), "cam-b");
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::sqlite().await.open().await).await; })*
            #[tokio::test]
            async fn persists_across_reopen() { super::persists_across_reopen(&Backend::sqlite().await).await; }
            #[tokio::test]
            async fn newer_schema_is_refused() { super::newer_schema_is_refused(&Backend::sqlite().await).await; }
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::postgres().await.open().await).await; })*
            #[tokio::test]
            async fn persists_across_reopen() { super::persists_across_reopen(&Backend::postgres().await).await; }
            #[tokio::test]
            async fn newer_schema_is_refused() { super::newer_schema_is_refused(&Backend::postgres().await).await; }
        }
    };
}

/// Clusters come a page at a time, largest first, the pages neither overlapping nor skipping one.
async fn clusters_come_in_pages(store: Arc<dyn Inspect>) {
    let c = CollectionId::DEFAULT;
    let now = chrono::Utc::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut strangers = Vec::new();
    for i in 0..5 {
        let face = random_unit(&mut rng);
        let kept = store
            .capture(c, new_capture(face.clone(), None, "cam-a", now))
            .await
            .unwrap();
        strangers.push(kept.capture.cluster_id.unwrap());
        if i == 3 {
            // Seen again by another camera: the largest cluster.
            store
                .capture(c, new_capture(face, None, "cam-b", now))
                .await
                .unwrap();
        }
    }
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let page = store.list_clusters(c, 2, offset).await.unwrap();
        assert_eq!(
            page.len(),
            if offset == 4 { 1 } else { 2 },
            "offset {offset}"
        );
        seen.extend(page.into_iter().map(|cluster| (cluster.id, cluster.count)));
    }
    assert_eq!(seen[0], (strangers[3], 2), "the largest first");
    let mut ids: Vec<_> = seen.iter().map(|(id, _)| *id).collect();
    ids.sort();
    strangers.sort();
    assert_eq!(ids, strangers, "every cluster once");
    assert!(store.list_clusters(c, 2, 5).await.unwrap().is_empty());
}

on_both_backends!(
    persons_and_pages,
    bad_input_is_typed,
    faces_idempotency_and_deletion,
    search_matches_brute_force,
    concurrent_registrations,
    recognition_over_registry_photos,
    names_in_any_script,
    stream_tickets_are_spent_once,
    all_faces_in_pages,
    registrations_by_name,
    consent_expiry,
    calibration_samples_and_records,
    a_search_leaves_one_person_out,
    attempts_are_remembered_once,
    collections_are_isolated,
    captures_cluster_expire_and_stay_bounded,
    the_outbox_forgets_the_deleted,
    capture_search_filters_look_further,
    clusters_come_in_pages,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared/faces; `make test` includes it where that folder exists"]
async fn recognition_over_shared_faces_on_sqlite() {
    recognition_over_shared_faces(Backend::sqlite().await.open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared/faces; `make test` includes it where that folder exists"]
async fn recognition_over_shared_faces_on_postgres() {
    recognition_over_shared_faces(Backend::postgres().await.open().await).await;
}

/// A ticket names its holder until it is spent, is spent once, expires, and the outstanding ones
/// are capped.
async fn stream_tickets_are_spent_once(store: Arc<dyn Inspect>) {
    let actor = Actor("key:0123abcd".into());
    let soon = chrono::Utc::now() + chrono::Duration::seconds(60);
    assert!(store
        .issue_ticket(
            facerec_core::CollectionId::DEFAULT,
            "hash-a",
            &actor,
            soon,
            TicketBudget::flat(3)
        )
        .await
        .unwrap());
    assert_eq!(
        store.ticket_holder("hash-a").await.unwrap(),
        Some((actor.clone(), facerec_core::CollectionId::DEFAULT))
    );
    assert_eq!(store.ticket_holder("hash-b").await.unwrap(), None);
    let spends = tokio::join!(
        store.redeem_ticket("hash-a"),
        store.redeem_ticket("hash-a"),
        store.redeem_ticket("hash-a"),
        store.redeem_ticket("hash-a"),
    );
    let spends = [spends.0, spends.1, spends.2, spends.3];
    let spent = spends.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(spent, 1, "spent exactly once");
    assert_eq!(store.ticket_holder("hash-a").await.unwrap(), None);

    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert!(store
        .issue_ticket(
            facerec_core::CollectionId::DEFAULT,
            "expired",
            &actor,
            past,
            TicketBudget::flat(3)
        )
        .await
        .unwrap());
    assert_eq!(store.ticket_holder("expired").await.unwrap(), None);
    assert!(!store.redeem_ticket("expired").await.unwrap(), "expired");

    for hash in ["t1", "t2", "t3"] {
        assert!(store
            .issue_ticket(
                facerec_core::CollectionId::DEFAULT,
                hash,
                &actor,
                soon,
                TicketBudget::flat(3)
            )
            .await
            .unwrap());
    }
    assert!(
        !store
            .issue_ticket(
                facerec_core::CollectionId::DEFAULT,
                "t4",
                &actor,
                soon,
                TicketBudget::flat(3)
            )
            .await
            .unwrap(),
        "at most 3 outstanding"
    );
    assert!(store.redeem_ticket("t1").await.unwrap());
    assert!(
        store
            .issue_ticket(
                facerec_core::CollectionId::DEFAULT,
                "t4",
                &actor,
                soon,
                TicketBudget::flat(3)
            )
            .await
            .unwrap(),
        "room again"
    );
}

/// Whether `needle` occurs in the file (a missing file holds nothing).
fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// "Deleted for good": after a person is deleted, the bytes of their embedding occur neither in the
/// SQLite file nor in its WAL (secure_delete zeroes the rows, the WAL is checkpointed and truncated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_embeddings_leave_the_sqlite_files() {
    let backend = Backend::sqlite().await;
    let dir = backend._dir.as_ref().unwrap().path().to_path_buf();
    let files = [dir.join("facerec.db"), dir.join("facerec.db-wal")];
    let store = backend.open().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let kept = random_unit(&mut rng);
    let deleted = random_unit(&mut rng);
    // 64 bytes from the middle of each stored vector: any surviving copy of the row would hold them.
    let needle = |e: &NormalizedEmbedding| -> Vec<u8> {
        e.as_slice()[200..216]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    let (kept_needle, deleted_needle) = (needle(&kept), needle(&deleted));
    let (gone, _) = store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("To Delete"),
            new_face(deleted, "a"),
            &actor(),
        )
        .await
        .unwrap();
    store
        .register(
            facerec_core::CollectionId::DEFAULT,
            new_person("To Keep"),
            new_face(kept, "b"),
            &actor(),
        )
        .await
        .unwrap();
    assert!(
        files.iter().any(|f| file_contains(f, &deleted_needle)),
        "the check can see a stored embedding"
    );
    store
        .delete_person(facerec_core::CollectionId::DEFAULT, gone.id, &actor())
        .await
        .unwrap();
    for file in &files {
        assert!(
            !file_contains(file, &deleted_needle),
            "{} still holds the deleted embedding",
            file.display()
        );
    }
    assert!(
        files.iter().any(|f| file_contains(f, &kept_needle)),
        "the other person's embedding is still stored"
    );
}

#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_is_refused() {
    let backend = Backend::sqlite().await;
    let _first = backend.open().await;
    let second = facerec_store::open(&backend.url, &StoreOptions::default()).await;
    let err = second.err().expect("second open refused");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("another facerec process"), "{err}");
}
