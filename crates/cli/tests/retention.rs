//! Consent that runs out, and a person's data on request: the retention sweep of a running server,
//! `kill -9` in the middle of one, and `GET /v1/persons/{id}/export`.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use facerec_core::*;
use facerec_store::StoreOptions;
use support::*;

const KEY: &str = "retention-test-key-0123456789";

fn registration(name: &str, expires_at: Option<DateTime<Utc>>) -> reqwest::multipart::Form {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        )
        .text("name", name.to_owned())
        .text("consent", "true")
        .text("consent_basis", "signed form #7");
    match expires_at {
        Some(at) => form.text("consent_expires_at", at.to_rfc3339()),
        None => form,
    }
}

/// Polls `check` every 100 ms for up to `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A person whose consent expires in two seconds is gone a few seconds later, with an audit event
/// saying why; a person without an expiry stays; `expires_before` lists what expires soon; a past
/// or malformed expiry is refused.
async fn consent_expires_on_a_running_server(
    db: Db,
    url_for_audit: impl FnOnce(&Server) -> String,
) {
    let server = Server::start(db, &["--api-keys", KEY, "--retention-sweep-secs", "1"]).await;
    let in_two_seconds = Utc::now() + chrono::Duration::seconds(2);
    let (status, expiring) = json(
        server
            .post_form(
                "/v1/register",
                registration("Expiring", Some(in_two_seconds)),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{expiring}");
    let recorded: DateTime<Utc> = expiring["person"]["consent"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (recorded - in_two_seconds).num_milliseconds().abs() < 1,
        "{expiring}"
    );
    let expiring = expiring["person"]["id"].as_str().unwrap().to_owned();
    let in_an_hour = Utc::now() + chrono::Duration::hours(1);
    let (status, later) = json(
        server
            .post_form("/v1/register", registration("Later", Some(in_an_hour)))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{later}");
    let later = later["person"]["id"].as_str().unwrap().to_owned();
    let (status, staying) = json(
        server
            .post_form("/v1/register", registration("Staying", None))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{staying}");
    let staying = staying["person"]["id"].as_str().unwrap().to_owned();

    // What expires within two hours: "Later", and "Expiring" unless the sweep was first.
    let soon = (Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339()
        .replace('+', "%2B");
    let (status, listed) = json(
        server
            .get(&format!("/v1/persons?expires_before={soon}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&later.as_str()) && !ids.contains(&staying.as_str()),
        "{listed}"
    );
    assert!(
        ids.iter().all(|id| *id == later || *id == expiring),
        "{listed}"
    );

    let past = (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let form = registration("Past", None).text("consent_expires_at", past);
    expect(
        json(server.post_form("/v1/register", form).await).await,
        422,
        "invalid_person",
    );
    let form = registration("Malformed", None).text("consent_expires_at", "next tuesday");
    expect(
        json(server.post_form("/v1/register", form).await).await,
        400,
        "invalid_request",
    );

    let gone = eventually(Duration::from_secs(10), || async {
        server
            .get(&format!("/v1/persons/{expiring}"))
            .await
            .status()
            == 404
    })
    .await;
    assert!(gone, "the expired person is deleted within a few seconds");
    for kept in [&staying, &later] {
        assert_eq!(
            server.get(&format!("/v1/persons/{kept}")).await.status(),
            200
        );
    }

    let url = url_for_audit(&server);
    drop(server);
    let store = facerec_store::testing::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let id = PersonId(expiring.parse().unwrap());
    let events = store
        .audit_events(None, &facerec_core::AuditFilter::newest(Some(id), 10))
        .await
        .unwrap();
    assert_eq!(events[0].action, AuditAction::PersonDeleted, "{events:?}");
    assert_eq!(events[0].details["reason"], "consent_expired");
    assert_eq!(events[0].actor, Actor("retention-sweep".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_expires_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    consent_expires_on_a_running_server(Db::Url(url.clone()), |_| url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_expires_on_postgres() {
    let url = new_postgres_database().await;
    consent_expires_on_a_running_server(Db::Url(url.clone()), |_| url).await;
}

/// The compatible APIs have no expiry field: the server's default retention applies there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compatible_apis_use_the_default_retention() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            KEY,
            "--retention-days",
            "30",
            "--compat-consent-basis",
            "front desk form",
        ],
    )
    .await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
    );
    let response = server
        .client
        .post(format!(
            "{}/api/v1/recognition/faces?subject=Yao",
            server.url
        ))
        .header("x-api-key", KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, persons) = json(server.get("/v1/persons").await).await;
    let consent = &persons["items"][0]["consent"];
    let expires: DateTime<Utc> = consent["expires_at"].as_str().unwrap().parse().unwrap();
    let given: DateTime<Utc> = consent["given_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - given, chrono::Duration::days(30), "{consent}");
}

/// The export holds the person, their consent, their faces' metadata and every audit event about
/// them; embeddings only when asked for on a server that allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_export_holds_all_that_is_kept() {
    for allow in [false, true] {
        let mut args = vec!["--api-keys", KEY];
        if allow {
            args.push("--allow-embeddings");
        }
        let server = Server::start(Db::Sqlite, &args).await;
        let (status, registered) = json(
            server
                .post_form("/v1/register", registration("Ada", None))
                .await,
        )
        .await;
        assert_eq!(status, 201);
        let id = registered["person"]["id"].as_str().unwrap().to_owned();
        // A second photo (the largest face of a group photo: the API takes the caller's word).
        let second = reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
            )
            .text("face", "largest")
            .text("consent", "true");
        let (status, _) = json(
            server
                .post_form(&format!("/v1/persons/{id}/faces"), second)
                .await,
        )
        .await;
        assert_eq!(status, 201);
        let patch = serde_json::json!({ "metadata": { "team": "a" } });
        assert_eq!(
            server
                .patch(&format!("/v1/persons/{id}"), patch)
                .await
                .status(),
            200
        );

        let (status, export) = json(server.get(&format!("/v1/persons/{id}/export")).await).await;
        assert_eq!(status, 200, "{export}");
        assert_eq!(export["person"]["id"], id.as_str());
        assert_eq!(export["person"]["name"], "Ada");
        assert_eq!(export["person"]["metadata"]["team"], "a");
        assert_eq!(export["person"]["consent"]["basis"], "signed form #7");
        let faces = export["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 2, "{export}");
        for face in faces {
            assert_eq!(face["person_id"], id.as_str());
            assert_eq!(face["image_sha256"].as_str().unwrap().len(), 64);
            assert!(face.get("embedding").is_none(), "{face}");
        }
        let actions: Vec<&str> = export["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "person_updated",
                "face_added",
                "face_added",
                "person_created"
            ]
        );
        assert_eq!(export["audit_events_truncated"], false);

        let with = json(
            server
                .get(&format!("/v1/persons/{id}/export?include_embeddings=true"))
                .await,
        )
        .await;
        if !allow {
            expect(with, 403, "insufficient_scope");
            continue;
        }
        let (status, export) = with;
        assert_eq!(status, 200);
        for face in export["faces"].as_array().unwrap() {
            let embedding: Vec<f64> = serde_json::from_value(face["embedding"].clone()).unwrap();
            assert_eq!(embedding.len(), EMBEDDING_DIM);
            let norm = embedding.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        let missing = uuid::Uuid::now_v7();
        expect(
            json(server.get(&format!("/v1/persons/{missing}/export")).await).await,
            404,
            "person_not_found",
        );
    }
}

/// (persons, persons whose consent expired, persons deleted by the sweep per the audit log), read
/// beside the server.
async fn census(path: &std::path::Path) -> (i64, i64, i64) {
    use sqlx::Connection;
    let mut conn = read_only_sqlite(path).await;
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let persons = count("SELECT count(*) FROM persons")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let expired = count("SELECT count(*) FROM persons WHERE consent_expires_at IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let swept = count(
        "SELECT count(*) FROM audit_events WHERE action = 'person_deleted' \
         AND details LIKE '%consent_expired%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    conn.close().await.unwrap();
    (persons, expired, swept)
}

/// `kill -9` in the middle of a retention sweep loses nothing that had not expired and leaves no
/// half-deleted person (each deletion is its own transaction, audit event included); the next
/// sweep completes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_retention_sweep() {
    const EXPIRING: i64 = 1500;
    const KEPT: i64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facerec.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = facerec_store::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
        for i in 0..EXPIRING + KEPT {
            let person = NewPerson {
                name: format!("person {i}"),
                external_id: None,
                metadata: serde_json::json!({}),
                consent: Consent::given_now("synthetic").unwrap(),
            };
            store
                .register(
                    facerec_core::CollectionId::DEFAULT,
                    person,
                    synthetic_face(&mut rng, i as usize),
                    &Actor::local_operator(),
                )
                .await
                .unwrap();
        }
    }
    // Consent that ran out a while ago (a registration cannot give a past expiry).
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE persons SET consent_expires_at = $1 WHERE id IN \
             (SELECT id FROM persons ORDER BY created_at, id LIMIT $2)",
        )
        .bind(Utc::now() - chrono::Duration::days(1))
        .bind(EXPIRING)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let server = Server::start(Db::Url(url.clone()), &["--retention-sweep-secs", "1"]).await;
    let midway = eventually(Duration::from_secs(20), || async {
        census(&path).await.0 < EXPIRING + KEPT - 20
    })
    .await;
    assert!(midway, "the sweep starts");
    drop(server); // SIGKILL
    let (persons, expired_left, swept) = census(&path).await;
    println!("killed with {expired_left} of {EXPIRING} expired persons left");
    assert_eq!(
        persons - expired_left,
        KEPT,
        "nothing that had not expired is lost"
    );
    assert_eq!(
        expired_left + swept,
        EXPIRING,
        "each deletion has its audit event, none is torn"
    );

    let server = Server::start(Db::Url(url.clone()), &["--retention-sweep-secs", "1"]).await;
    let done = eventually(Duration::from_secs(30), || async {
        census(&path).await.1 == 0
    })
    .await;
    assert!(done, "the next sweep completes the work");
    drop(server);
    assert_eq!(census(&path).await, (KEPT, 0, EXPIRING));
}
