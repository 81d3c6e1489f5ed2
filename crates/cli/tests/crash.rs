//! Crash safety: `kill -9` in the middle of registrations (HTTP) and of `facerec enroll`, then the
//! database is checked: every person whole (with their face and both audit events) or absent, no
//! face without its person, no person twice, and a re-run of enroll completes the work.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use facerec_core::{AuditAction, PageRequest};
use facerec_store::StoreOptions;
use support::*;

/// Checks every stored person: at least one face, a `person_created` event and a `face_added` event
/// for each face. Returns the persons by name (each name once).
async fn check_whole(db: &str) -> HashMap<String, usize> {
    let store = facerec_store::testing::open(db, &StoreOptions::default())
        .await
        .expect("the database opens after the crash");
    let page = PageRequest {
        limit: 500,
        offset: 0,
        name_contains: None,
        expires_before: None,
        external_id: None,
    };
    let persons = store
        .list_persons(facerec_core::CollectionId::DEFAULT, &page)
        .await
        .unwrap()
        .items;
    let mut names = HashMap::new();
    let mut faces_total = 0;
    for person in &persons {
        let faces = store
            .list_faces(facerec_core::CollectionId::DEFAULT, person.id)
            .await
            .unwrap();
        assert!(!faces.is_empty(), "{} has no face", person.name);
        faces_total += faces.len();
        let events = store
            .audit_events(
                None,
                &facerec_core::AuditFilter::newest(Some(person.id), 100),
            )
            .await
            .unwrap();
        let count = |action| events.iter().filter(|e| e.action == action).count();
        assert_eq!(count(AuditAction::PersonCreated), 1, "{}", person.name);
        assert_eq!(
            count(AuditAction::FaceAdded),
            faces.len(),
            "{}",
            person.name
        );
        *names.entry(person.name.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        store.count_faces(None).await.unwrap() as usize,
        faces_total,
        "no orphan face"
    );
    assert!(names.values().all(|n| *n == 1), "a person twice: {names:?}");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_http_registrations_leaves_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/facerec.db", dir.path().display());
    let server = std::sync::Arc::new(Server::start(Db::Url(db.clone()), &[]).await);
    let photo = registry_photo("vectron/yaoming.jpg");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (server, photo) = (server.clone(), photo.clone());
        tasks.push(tokio::spawn(async move {
            let form = reqwest::multipart::Form::new()
                .part("image", image_part(photo, "y.jpg"))
                .text("name", format!("Person {i}"))
                .text("consent", "true");
            let sent = server
                .client
                .post(format!("{}/v1/register", server.url))
                .multipart(form)
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 201 => Some(format!("Person {i}")),
                _ => None,
            }
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = server.pid();
    // SIGKILL, as a power cut or the OOM killer would.
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut confirmed = Vec::new();
    for task in tasks {
        confirmed.extend(task.await.unwrap());
    }
    drop(server);
    let stored = check_whole(&db).await;
    for name in &confirmed {
        assert!(
            stored.contains_key(name),
            "{name} was confirmed (201) but is gone"
        );
    }
    assert!(
        stored.len() < 40,
        "the kill came in the middle of the burst: {}",
        stored.len()
    );
}

/// Persons committed so far, read beside the running writer (a read-only SQLite connection; WAL lets
/// it read while another process writes). 0 while the file does not exist yet.
fn persons_in(file: &std::path::Path) -> usize {
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=1)\n\
        print(db.execute('SELECT count(*) FROM persons').fetchone()[0])";
    std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_enroll_then_a_rerun_completes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    let photo = registry_photo("vectron/yaoming.jpg");
    for i in 0..20 {
        let folder = people.join(format!("Enrolled_{i:02}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("a.jpg"), &photo).unwrap();
    }
    let db = format!("sqlite://{}/facerec.db", dir.path().display());
    let enroll = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"));
        command
            .args([
                "enroll",
                people.to_str().unwrap(),
                "--consent",
                "--database-url",
                &db,
            ])
            .current_dir(workspace())
            .env("FACEREC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let mut first = enroll().spawn().unwrap();
    // Kill once some persons are stored (the models take a moment to load).
    let file = dir.path().join("facerec.db");
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if persons_in(&file) >= 3 {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let after_kill = check_whole(&db).await;
    assert!(
        (1..20).contains(&after_kill.len()),
        "killed in the middle: {} persons",
        after_kill.len()
    );
    let rerun = enroll().status().unwrap();
    assert!(rerun.success());
    let complete = check_whole(&db).await;
    assert_eq!(complete.len(), 20, "every folder once: {complete:?}");
}
