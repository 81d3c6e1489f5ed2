//! Upgrades, on both backends: databases earlier releases wrote (schema versions 3 and 5, made at
//! test time from the checked-in `fixtures/schema-v*-*.sql`, synthetic vectors only; version 9
//! from this build's migrations less the last) open in this build with every person, face, audit
//! event and ticket intact, in the collection `default`, every collection bound to the built-in
//! model pack, and recognized as before; a migration that fails leaves the database exactly as it
//! was.

use facerec_core::*;
use facerec_store::StoreOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// The schema version this build migrates to.
const NEWEST: i64 = 10;

const FIXTURE_SQLITE: &str = include_str!("fixtures/schema-v3-sqlite.sql");
const FIXTURE_POSTGRES: &str = include_str!("fixtures/schema-v3-postgres.sql");
/// The release before collections (schema version 5).
const FIXTURE_V5_SQLITE: &str = include_str!("fixtures/schema-v5-sqlite.sql");
const FIXTURE_V5_POSTGRES: &str = include_str!("fixtures/schema-v5-postgres.sql");

/// The tables and columns of schema version 3, compared row by row before and after.
const V3_TABLES: [(&str, &str); 5] = [
    // (table, its columns in version 3, which rows)
    (
        "persons",
        "id, name, external_id, metadata, consent_given_at, consent_basis, created_at, updated_at, \
         name_folded",
    ),
    (
        "faces",
        "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, \
         image_sha256, created_at",
    ),
    (
        "audit_events",
        "id, at, action, person_id, face_id, actor, details",
    ),
    ("stream_tickets", "ticket_sha256, actor, expires_at"),
    (
        "_sqlx_migrations WHERE version <= 3",
        "version, description, checksum",
    ),
];

enum Kind {
    /// With the folder the file lives in, deleted at the end.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres,
}

struct Fixture {
    url: String,
    kind: Kind,
}

impl Fixture {
    /// A new database holding the previous release's schema and data.
    async fn previous_release(postgres: bool) -> Self {
        Self::release(postgres, FIXTURE_SQLITE, FIXTURE_POSTGRES).await
    }

    /// A new database holding one release's schema and data (its fixture for each backend).
    async fn release(postgres: bool, sqlite_script: &str, postgres_script: &str) -> Self {
        let fixture = if postgres {
            let admin = std::env::var("FACEREC_TEST_DATABASE_URL")
                .expect("FACEREC_TEST_DATABASE_URL is not set: run `make test`");
            let url = facerec_store::testing::create_database(&admin, "facerec_upgrade")
                .await
                .unwrap();
            Self {
                url,
                kind: Kind::Postgres,
            }
        } else {
            let dir = tempfile::tempdir().unwrap();
            Self {
                url: format!("sqlite://{}/facerec.db?mode=rwc", dir.path().display()),
                kind: Kind::Sqlite(dir),
            }
        };
        let script = match fixture.kind {
            Kind::Sqlite(_) => sqlite_script,
            Kind::Postgres => postgres_script,
        };
        fixture.execute(script).await;
        fixture
    }

    /// Runs `sql` (one or more statements) on a connection of its own.
    async fn try_execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self.kind {
            Kind::Sqlite(_) => {
                let mut conn = SqliteConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            Kind::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
        }
    }

    async fn execute(&self, sql: &str) {
        self.try_execute(sql).await.unwrap();
    }

    /// The first column of every row `sql` answers, as text.
    async fn texts(&self, sql: &str) -> Vec<String> {
        match self.kind {
            Kind::Sqlite(_) => {
                let mut conn = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Kind::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }

    /// Every row of the version-3 columns, each as one line of quoted values, sorted.
    async fn snapshot(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (table, columns) in V3_TABLES {
            let quoted: Vec<String> = columns
                .split(',')
                .map(|c| match self.kind {
                    Kind::Sqlite(_) => format!("quote({})", c.trim()),
                    Kind::Postgres => format!("format('%L', {})", c.trim()),
                })
                .collect();
            let sql = format!("SELECT {} FROM {table}", quoted.join(" || ',' || "));
            let rows = self.texts(&sql).await;
            assert!(!rows.is_empty(), "{table}: rows in the fixture");
            lines.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
        }
        lines.sort();
        lines
    }

    async fn schema_version(&self) -> i64 {
        let version = self
            .texts("SELECT CAST(MAX(version) AS TEXT) FROM _sqlx_migrations")
            .await;
        version[0].parse().unwrap()
    }

    async fn open(&self) -> StoreResult<std::sync::Arc<dyn facerec_store::testing::Inspect>> {
        let url = self.url.trim_end_matches("?mode=rwc");
        facerec_store::testing::open(url, &StoreOptions::default()).await
    }
}

/// The two snapshots hold the same rows (printing only those that differ: embeddings are long).
fn same_rows(before: &[String], after: &[String]) {
    let gone: Vec<&String> = before.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    let short = |rows: Vec<&String>| -> Vec<String> {
        rows.iter().map(|r| r.chars().take(300).collect()).collect()
    };
    assert!(
        gone.is_empty() && new.is_empty() && before.len() == after.len(),
        "rows changed:\n  before only: {:?}\n  after only: {:?}",
        short(gone),
        short(new)
    );
}

async fn previous_release_opens_intact(postgres: bool) {
    let fixture = Fixture::previous_release(postgres).await;
    assert_eq!(fixture.schema_version().await, 3);
    let before = fixture.snapshot().await;

    let store = fixture
        .open()
        .await
        .expect("the previous release's database opens");
    drop(store);
    assert_eq!(fixture.schema_version().await, NEWEST);
    same_rows(&before, &fixture.snapshot().await);

    let store = fixture.open().await.unwrap();
    let persons = store
        .list_persons(facerec_core::CollectionId::DEFAULT, &PageRequest::default())
        .await
        .unwrap();
    let names: Vec<&str> = persons.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["Ada Lovelace", "Émile Zola", "Grace Hopper", "Nobody Yet"]
    );
    assert!(persons.items.iter().all(|p| p.consent.expires_at.is_none()));
    let mut faces = 0;
    for person in &persons.items {
        for face in store
            .list_faces(facerec_core::CollectionId::DEFAULT, person.id)
            .await
            .unwrap()
        {
            faces += 1;
            let hits = store
                .search(
                    facerec_core::CollectionId::DEFAULT,
                    &face.embedding,
                    &face.model,
                    1,
                )
                .await
                .unwrap();
            assert_eq!(hits[0].person_id, person.id, "recognized as before");
            assert!(hits[0].similarity.value() > 0.999);
        }
    }
    assert_eq!(faces, 4);
    assert_eq!(store.count_faces(None).await.unwrap(), 4);
    // Everything moved into `default`, the one collection there is; another sees none of it.
    let default = facerec_core::CollectionId::DEFAULT;
    assert_eq!(store.count_faces(Some(default)).await.unwrap(), 4);
    let collections = store.list_collections().await.unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!(
        (collections[0].id, collections[0].name.as_str()),
        (default, "default")
    );
    // Bound to the built-in pack, whose recognizer made every face stored before packs.
    assert_eq!(collections[0].model, facerec_core::ModelBinding::built_in());
    let other = store
        .create_collection(
            facerec_core::NewCollection {
                model: facerec_core::ModelBinding::built_in(),
                name: "other".into(),
                settings: Default::default(),
            },
            &Actor::local_operator(),
        )
        .await
        .unwrap();
    assert_eq!(store.count_faces(Some(other.id)).await.unwrap(), 0);
    let probe = &store
        .list_faces(default, persons.items[0].id)
        .await
        .unwrap()[0];
    assert_eq!(probe.model, collections[0].model.recognizer);
    assert_eq!(
        store
            .search(
                default,
                &probe.embedding,
                &collections[0].model.recognizer,
                1
            )
            .await
            .unwrap()[0]
            .person_id,
        persons.items[0].id
    );
    assert!(store
        .search(other.id, &probe.embedding, &probe.model, 1)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_person(other.id, persons.items[0].id)
        .await
        .is_err());
    let zola = store
        .find_person_by_external_id(facerec_core::CollectionId::DEFAULT, "emp-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(zola.name, "Émile Zola");
    assert_eq!(
        store
            .persons_named(facerec_core::CollectionId::DEFAULT, "ÉMILE ZOLA", 2)
            .await
            .unwrap()
            .len(),
        1
    );
    let audit = store
        .audit_events(Some(default), &facerec_core::AuditFilter::newest(None, 100))
        .await
        .unwrap();
    assert_eq!(audit.len(), 12);
    assert_eq!(audit[0].action, AuditAction::PersonDeleted);
    // The fixture's ticket: sha256("ticket").
    let sha = "14069429150abcbf244c4c2fb2c4c46a49c93ca9457263ecd9ebb176de3a58bb";
    assert_eq!(
        store.ticket_holder(sha).await.unwrap(),
        Some((
            Actor("key:3f2a".into()),
            facerec_core::CollectionId::DEFAULT
        ))
    );
    // What the new version adds works on the old data.
    let soon = chrono::Utc::now() + chrono::Duration::days(1);
    let renewed = PersonPatch {
        consent_expires_at: Some(Some(soon)),
        ..PersonPatch::default()
    };
    let ada = &persons.items[0];
    let updated = store
        .update_person(
            facerec_core::CollectionId::DEFAULT,
            ada.id,
            renewed,
            &Actor::local_operator(),
        )
        .await
        .unwrap();
    assert_eq!(updated.consent.expires_at, Some(soon));
}

/// Migration 0004 made to fail (an index of its name already exists): the open is refused with
/// the reason, and the database keeps its version, its columns and every row; once the obstacle
/// is gone the upgrade completes.
async fn failed_migration_leaves_the_database_as_it_was(postgres: bool) {
    let fixture = Fixture::previous_release(postgres).await;
    fixture
        .execute("CREATE INDEX persons_consent_expires_at ON persons (name)")
        .await;
    let before = fixture.snapshot().await;

    let refused = fixture.open().await;
    let message = refused.err().expect("the migration fails").to_string();
    assert!(message.contains("migrat"), "{message}");
    assert_eq!(fixture.schema_version().await, 3);
    same_rows(&before, &fixture.snapshot().await);
    let added_column = fixture
        .try_execute("SELECT consent_expires_at FROM persons")
        .await;
    assert!(
        added_column.is_err(),
        "the half-run migration's column is rolled back"
    );

    fixture
        .execute("DROP INDEX persons_consent_expires_at")
        .await;
    fixture.open().await.expect("the upgrade completes");
    assert_eq!(fixture.schema_version().await, NEWEST);
}

/// The release before collections (schema version 5, with a consent expiry and a calibration):
/// after the upgrade every row is in `default`, every person is recognized there as before, and
/// what version 5 added survives.
async fn release_before_collections_moves_into_default(postgres: bool) {
    let fixture = Fixture::release(postgres, FIXTURE_V5_SQLITE, FIXTURE_V5_POSTGRES).await;
    assert_eq!(fixture.schema_version().await, 5);
    let store = fixture.open().await.expect("the version 5 database opens");
    assert_eq!(fixture.schema_version().await, NEWEST);
    let default = CollectionId::DEFAULT;
    for table in [
        "persons",
        "faces",
        "audit_events",
        "stream_tickets",
        "calibrations",
    ] {
        let elsewhere = fixture
            .texts(&format!(
                "SELECT CAST(count(*) AS TEXT) FROM {table} \
                 WHERE collection_id <> '00000000-0000-0000-0000-000000000000'"
            ))
            .await;
        assert_eq!(elsewhere, ["0"], "{table}: every row in default");
    }
    let persons = store
        .list_persons(default, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(persons.total, 4);
    for person in &persons.items {
        for face in store.list_faces(default, person.id).await.unwrap() {
            let hits = store
                .search(default, &face.embedding, &face.model, 1)
                .await
                .unwrap();
            assert_eq!(hits[0].person_id, person.id, "recognized as before");
        }
    }
    let grace = persons
        .items
        .iter()
        .find(|p| p.name == "Grace Hopper")
        .unwrap();
    assert!(
        grace.consent.expires_at.is_some(),
        "the consent expiry survives"
    );
    let calibrations = store.recent_calibrations(default).await.unwrap();
    assert_eq!(
        calibrations,
        vec![serde_json::json!({ "fixture": "schema version 5" })],
        "the calibration is the collection's"
    );
    assert_eq!(store.count_faces(Some(default)).await.unwrap(), 4);
}

#[tokio::test]
async fn release_before_collections_moves_into_default_on_sqlite() {
    release_before_collections_moves_into_default(false).await;
}

#[tokio::test]
async fn release_before_collections_moves_into_default_on_postgres() {
    release_before_collections_moves_into_default(true).await;
}

#[tokio::test]
async fn previous_release_opens_intact_on_sqlite() {
    previous_release_opens_intact(false).await;
}

#[tokio::test]
async fn previous_release_opens_intact_on_postgres() {
    previous_release_opens_intact(true).await;
}

#[tokio::test]
async fn failed_migration_leaves_sqlite_as_it_was() {
    failed_migration_leaves_the_database_as_it_was(false).await;
}

#[tokio::test]
async fn failed_migration_leaves_postgres_as_it_was() {
    failed_migration_leaves_the_database_as_it_was(true).await;
}

/// The release before model packs (schema version 9: these migrations, the last left out), with a
/// second collection beside `default`.
async fn release_before_packs(postgres: bool) -> Fixture {
    let fixture = Fixture::release(postgres, "SELECT 1", "SELECT 1").await;
    let dir = match fixture.kind {
        Kind::Sqlite(_) => "migrations/sqlite",
        Kind::Postgres => "migrations/postgres",
    };
    let mut migrator =
        sqlx::migrate::Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .await
            .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 9)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    match fixture.kind {
        Kind::Sqlite(_) => {
            let mut conn = SqliteConnection::connect(&fixture.url).await.unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
        Kind::Postgres => {
            let mut conn = PgConnection::connect(&fixture.url).await.unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
    }
    fixture
        .execute(
            "INSERT INTO collections (id, name, settings, created_at, updated_at) VALUES \
             ('0190a000-0000-7000-8000-0000000000c1', 'cameras', '{}', \
              '2026-11-01T10:00:00+00:00', '2026-11-01T10:00:00+00:00')",
        )
        .await;
    fixture
}

/// Every collection of the release before model packs is bound to the built-in buffalo_s, whose
/// recognizer made every face it holds; a new one can be bound to another pack.
async fn release_before_packs_binds_every_collection_to_buffalo_s(postgres: bool) {
    let fixture = release_before_packs(postgres).await;
    assert_eq!(fixture.schema_version().await, 9);
    let store = fixture.open().await.unwrap();
    assert_eq!(fixture.schema_version().await, NEWEST);
    let collections = store.list_collections().await.unwrap();
    let mut names: Vec<_> = collections.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cameras", "default"]);
    for c in &collections {
        assert_eq!(
            c.model,
            facerec_core::ModelBinding::built_in(),
            "{}",
            c.name
        );
    }
    let other = facerec_core::ModelBinding {
        pack: "buffalo_l".into(),
        recognizer: facerec_core::ModelId {
            name: "buffalo_l/w600k_r50".into(),
            sha256: "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43".into(),
        },
        detector_pack: "buffalo_l".into(),
        detector_sha256: "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91".into(),
    };
    let created = store
        .create_collection(
            facerec_core::NewCollection {
                model: other.clone(),
                name: "large".into(),
                settings: Default::default(),
            },
            &Actor::local_operator(),
        )
        .await
        .unwrap();
    assert_eq!(created.model, other);
    assert_eq!(store.get_collection(created.id).await.unwrap().model, other);
}

#[tokio::test]
async fn release_before_packs_binds_every_collection_to_buffalo_s_on_sqlite() {
    release_before_packs_binds_every_collection_to_buffalo_s(false).await;
}

#[tokio::test]
async fn release_before_packs_binds_every_collection_to_buffalo_s_on_postgres() {
    release_before_packs_binds_every_collection_to_buffalo_s(true).await;
}
