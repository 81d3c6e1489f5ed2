//! `facerec enroll` and `facerec identify` against a database, as an operator runs them.

mod support;

use std::process::{Command, Output};

use support::*;

fn facerec(args: &[&str], db: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(args)
        .args(["--database-url", db])
        .current_dir(workspace())
        .env("FACEREC_LOG", "warn")
        .output()
        .expect("facerec runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn enroll_a_folder_then_identify() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    for (person, photo) in [
        ("Yao_Ming", "vectron/yaoming.jpg"),
        ("The_Group", "vectron/gdp.jpg"),
    ] {
        std::fs::create_dir_all(people.join(person)).unwrap();
        std::fs::write(people.join(person).join("photo.jpg"), registry_photo(photo)).unwrap();
    }
    std::fs::write(people.join("Yao_Ming").join("notes.txt"), "not a photo").unwrap();
    let db = format!("sqlite://{}/facerec.db", dir.path().display());
    let people = people.to_str().unwrap();

    let refused = facerec(&["enroll", people], &db);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--consent"),
        "consent must be explicit"
    );

    let first = facerec(&["enroll", people, "--consent"], &db);
    let text = stdout(&first);
    assert!(
        first.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        text.contains("3 photos: 1 faces added, 0 already registered, 2 refused"),
        "{text}"
    );
    assert!(
        text.contains("multiple_faces") && text.contains("unsupported_format"),
        "{text}"
    );

    let again = stdout(&facerec(&["enroll", people, "--consent"], &db));
    assert!(
        again.contains("0 faces added, 1 already registered"),
        "idempotent: {again}"
    );

    let players = workspace().join("vendor/fixtures/registry/vectron/players.jpg");
    let identified = facerec(&["identify", players.to_str().unwrap()], &db);
    let text = stdout(&identified);
    assert!(identified.status.success(), "{text}");
    assert_eq!(
        text.matches("Yao Ming (").count(),
        1,
        "one face of players.jpg is Yao Ming: {text}"
    );
    assert!(text.contains("unknown"), "{text}");
}

/// A folder named in another script is one person however often it is enrolled, on both backends
/// (the lookup folds the name the way the store does, and walks every match).
async fn enrolling_a_non_ascii_name_twice_gives_one_person(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("people").join("Émile_Zola");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.jpg"), registry_photo("vectron/yaoming.jpg")).unwrap();
    let people = dir.path().join("people");
    let people = people.to_str().unwrap();
    let first = stdout(&facerec(&["enroll", people, "--consent"], db));
    assert!(first.contains("1 faces added"), "{first}");
    // A second photo, so that the re-run has something to add to the same person.
    let rescaled = image::load_from_memory(&registry_photo("vectron/yaoming.jpg"))
        .unwrap()
        .resize(300, 370, image::imageops::FilterType::CatmullRom);
    rescaled.save(folder.join("b.png")).unwrap();
    let again = stdout(&facerec(&["enroll", people, "--consent"], db));
    assert!(
        again.contains("1 faces added, 1 already registered"),
        "{again}"
    );
    let identified = stdout(&facerec(
        &["identify", "--json", folder.join("b.png").to_str().unwrap()],
        db,
    ));
    assert!(identified.contains("Émile Zola"), "{identified}");
    let server = Server::start(Db::Url(db.to_owned()), &[]).await;
    let (_, found) = json(server.get("/v1/persons?name=%C3%89MILE").await).await;
    assert_eq!(found["total"], 1, "one person: {found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_is_idempotent_for_non_ascii_names_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/facerec.db", dir.path().display());
    enrolling_a_non_ascii_name_twice_gives_one_person(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_is_idempotent_for_non_ascii_names_on_postgres() {
    enrolling_a_non_ascii_name_twice_gives_one_person(&new_postgres_database().await).await;
}

/// `analyze` on the pool gives the same lines in the same order whatever the number of workers,
/// failures included.
#[test]
fn analyze_with_two_workers_prints_what_one_worker_prints_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let not_an_image = dir.path().join("notes.txt");
    std::fs::write(&not_an_image, "not a photo").unwrap();
    let registry = workspace().join("vendor/fixtures/registry");
    let mut images: Vec<String> = [
        "vectron/players.jpg",
        "vectron/yaoming.jpg",
        "insightface/t1.jpg",
        "vectron/gdp.jpg",
        "nsface/01.jpg",
        "insightface/mask_blue.jpg",
    ]
    .iter()
    .map(|p| registry.join(p).display().to_string())
    .collect();
    images.insert(2, not_an_image.display().to_string());
    images.push(dir.path().join("missing.jpg").display().to_string());
    let run = |workers: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_facerec"))
            .args(["analyze", "--json", "--workers", workers])
            .args(&images)
            .current_dir(workspace())
            .output()
            .unwrap();
        assert!(!output.status.success(), "two of the files fail");
        stdout(&output)
    };
    let one = run("1");
    assert_eq!(one.lines().count(), images.len(), "{one}");
    for (line, image) in one.lines().zip(&images) {
        assert!(line.contains(&format!("\"path\":\"{image}\"")), "{line}");
    }
    assert!(one.contains("unsupported_format") && one.contains("unreadable_file"));
    assert_eq!(run("2"), one);
}

/// Each subcommand lists its own flags (#32, 5): the background tasks' periods are `serve`'s
/// alone, and `analyze --json` names a face's points as the HTTP API does.
#[test]
fn subcommands_list_their_own_flags() {
    let help = |command: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_facerec"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    for flag in [
        "--calibration-check-secs",
        "--retention-sweep-secs",
        "--mqtt-url",
        "--webhook-allow-private-networks",
        "--frigate-url",
    ] {
        assert!(help("serve").contains(flag), "serve lists {flag}");
        for once in ["identify", "enroll", "calibrate"] {
            assert!(!help(once).contains(flag), "{once} does not list {flag}");
        }
    }
    // Enrollment's quality policy and a consent's default lifetime: only where people are
    // registered.
    for flag in ["--min-face-px", "--retention-days"] {
        for registers in ["serve", "enroll"] {
            assert!(help(registers).contains(flag), "{registers} lists {flag}");
        }
        for reads in ["identify", "calibrate"] {
            assert!(!help(reads).contains(flag), "{reads} does not list {flag}");
        }
    }
    let analyzed = Command::new(env!("CARGO_BIN_EXE_facerec"))
        .current_dir(workspace())
        .args(["analyze", "--json"])
        .arg(workspace().join("vendor/fixtures/registry/vectron/yaoming.jpg"))
        .output()
        .unwrap();
    let line = String::from_utf8(analyzed.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(report["faces"][0]["landmarks"].is_array(), "{report}");
    assert!(report["faces"][0].get("kps").is_none(), "{report}");
}

/// Beside a running server, which holds its SQLite file, `enroll` and `identify` work through it
/// (`--url`, `--key`): the same counts and answers as on the database, and a re-run adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_and_identify_through_a_running_server() {
    const KEY: &str = "cli-remote-operator-key-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/facerec.db", dir.path().display());
    let server = Server::start(Db::Url(db.clone()), &["--api-keys", KEY]).await;
    let people = dir.path().join("people");
    std::fs::create_dir_all(people.join("Yao_Ming")).unwrap();
    std::fs::write(
        people.join("Yao_Ming").join("a.jpg"),
        registry_photo("vectron/yaoming.jpg"),
    )
    .unwrap();
    let people = people.to_str().unwrap();
    // On the database itself: the server holds it.
    let locked = facerec(&["enroll", people, "--consent"], &db);
    assert!(!locked.status.success(), "{}", stdout(&locked));
    let through = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--url", &server.url, "--key", KEY]);
        facerec(&all, "sqlite:///nonexistent/never-opened.db")
    };
    let first = stdout(&through(&["enroll", people, "--consent"]));
    assert!(
        first.contains("1 people, 1 photos: 1 faces added"),
        "{first}"
    );
    let again = stdout(&through(&["enroll", people, "--consent"]));
    assert!(
        again.contains("0 faces added, 1 already registered"),
        "{again}"
    );
    let players = workspace().join("vendor/fixtures/registry/vectron/players.jpg");
    let identified = through(&["identify", players.to_str().unwrap()]);
    let text = stdout(&identified);
    assert!(identified.status.success(), "{text}");
    assert_eq!(text.matches("Yao Ming (").count(), 1, "{text}");
    assert!(text.contains("unknown (closest: Yao Ming"), "{text}");
    let json_line = stdout(&through(&["identify", "--json", players.to_str().unwrap()]));
    let answer: serde_json::Value = serde_json::from_str(json_line.trim()).unwrap();
    let named: Vec<&serde_json::Value> = answer["faces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["match"]["name"] == "Yao Ming")
        .collect();
    assert_eq!(named.len(), 1, "{answer}");
    // A wrong key: the server's refusal, said per photo, and a failing exit.
    let wrong = facerec(
        &[
            "identify",
            players.to_str().unwrap(),
            "--url",
            &server.url,
            "--key",
            "not-a-key-of-this-server-000000",
        ],
        &db,
    );
    assert!(!wrong.status.success());
    assert!(
        stdout(&wrong).contains("error invalid_api_key"),
        "{}",
        stdout(&wrong)
    );
    let (_, persons) = json(server.get("/v1/persons?name=yao").await).await;
    assert_eq!(persons["total"], 1, "{persons}");
}
