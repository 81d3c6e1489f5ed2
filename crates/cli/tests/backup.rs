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
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
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
