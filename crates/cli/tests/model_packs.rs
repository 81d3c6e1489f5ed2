//! Model packs, end to end: a second pack made at test time from the shipped files
//! (`scripts/make-test-pack.py rotated`: buffalo_s's recognizer with a fixed orthogonal rotation
//! appended — the same accuracy in another embedding space), a collection bound to it beside
//! `default`, the two never meeting; calibration per collection on its own pack; the compatible
//! APIs' real clients on a key of that collection; broken packs refused at start naming the file;
//! a collection whose pack is gone answering `model_unavailable`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use support::*;

const KEY: &str = "packs-test-key-0001";
const BASIS: &str = "written consent collected at the front desk";

/// Builds a test pack of `kind` in `packs/<kind>` with the test venv's `onnx`.
fn make_pack(kind: &str, packs: &Path) -> PathBuf {
    let out = packs.join(kind);
    let output = Command::new(test_venv_python())
        .arg(workspace().join("scripts/make-test-pack.py"))
        .arg(kind)
        .arg(workspace().join("vendor/models"))
        .arg(&out)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "make-test-pack.py {kind}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

async fn start(db: Db, packs: Option<&Path>) -> Server {
    let mut args = vec![
        "--api-keys",
        KEY,
        "--compat-consent-basis",
        BASIS,
        "--rate-limit-per-minute",
        "0",
        "--allow-embeddings",
    ];
    let packs = packs.map(|p| p.to_str().unwrap().to_owned());
    if let Some(packs) = &packs {
        args.extend(["--model-packs", packs.as_str()]);
    }
    Server::start(db, &args).await
}

async fn post_photo(
    server: &Server,
    path: &str,
    key: &str,
    photo: &str,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new()
        .part("image", image_part(registry_photo(photo), "photo.jpg"));
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    server.post_form_as(path, key, form).await
}

async fn register(server: &Server, key: &str, photo: &str, name: &str) -> serde_json::Value {
    let fields = [("name", name), ("consent", "true"), ("face", "largest")];
    let (status, body) = post_photo(server, "/v1/register", key, photo, &fields).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The names recognized in the photo, and the best similarity of its strongest face.
async fn recognized(server: &Server, key: &str, photo: &str) -> (Vec<String>, f64) {
    let (status, body) = post_photo(server, "/v1/recognize", key, photo, &[]).await;
    assert_eq!(status, 200, "{body}");
    let faces = body["faces"].as_array().unwrap();
    let names = faces
        .iter()
        .filter_map(|f| f["match"]["name"].as_str())
        .map(str::to_owned)
        .collect();
    let best = faces[0]["candidates"][0]["similarity"]
        .as_f64()
        .unwrap_or(-1.0);
    (names, best)
}

async fn embedding(server: &Server, key: &str, photo: &str) -> Vec<f64> {
    let (status, body) =
        post_photo(server, "/v1/detect", key, photo, &[("embeddings", "true")]).await;
    assert_eq!(status, 200, "{body}");
    body["faces"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Creates a collection bound to `pack` and a key of it with every scope a client needs.
async fn collection_on(server: &Server, name: &str, pack: Option<&str>) -> String {
    let mut body = serde_json::json!({ "name": name });
    if let Some(pack) = pack {
        body["model_pack"] = pack.into();
    }
    let (status, created) = call(server, Method::POST, "/v1/collections", KEY, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["model_pack"]["name"], pack.unwrap_or("buffalo_s"));
    new_key(
        server,
        KEY,
        name,
        &["recognize", "enroll", "manage", "embeddings"],
    )
    .await
}

#[tokio::test]
async fn a_collection_on_another_pack_works_alone_and_never_meets_default() {
    let packs = tempfile::tempdir().unwrap();
    let rotated = make_pack("rotated", packs.path());
    let server = start(Db::Sqlite, Some(packs.path())).await;

    // Both packs loaded, the built-in the default.
    let (status, ready) = call(&server, Method::GET, "/ready", KEY, None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["default_pack"], "buffalo_s");
    let names: Vec<_> = ready["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["buffalo_s", "rotated"]);

    // A collection bound to the rotated pack names its files; one for a pack not loaded is refused.
    let key = collection_on(&server, "rotated", Some("rotated")).await;
    let (_, shown) = call(&server, Method::GET, "/v1/collections/rotated", KEY, None).await;
    let pack = &shown["model_pack"];
    assert_eq!(pack["recognizer"], "rotated/recognizer", "{shown}");
    assert_eq!(
        pack["recognizer_sha256"],
        sha256_of(&rotated.join("recognizer.onnx"))
    );
    assert_eq!(
        pack["detector_sha256"],
        sha256_of(&rotated.join("detector.onnx"))
    );
    let (_, default) = call(&server, Method::GET, "/v1/collections/default", KEY, None).await;
    assert_eq!(default["model_pack"]["name"], "buffalo_s", "{default}");
    assert_eq!(default["model_pack"]["recognizer"], "buffalo_s/w600k_mbf");
    let body = serde_json::json!({ "name": "nowhere", "model_pack": "buffalo_xl" });
    let answer = call(&server, Method::POST, "/v1/collections", KEY, Some(body)).await;
    let refused = expect(answer, 422, "invalid_collection");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("buffalo_xl"),
        "{refused}"
    );

    // The same photo in each: the same faces found, embeddings of two different spaces.
    let photo = "vectron/yaoming.jpg";
    let ours = embedding(&server, KEY, photo).await;
    let theirs = embedding(&server, &key, photo).await;
    assert!(
        dot(&ours, &theirs).abs() < 0.3,
        "the spaces differ: {}",
        dot(&ours, &theirs)
    );

    // Registered in default only: the rotated collection does not know him (scores across
    // spaces would be meaningless), and the reverse.
    register(&server, KEY, photo, "Yao in default").await;
    assert!(recognized(&server, &key, photo).await.0.is_empty());
    register(&server, &key, photo, "Yao in rotated").await;
    let (in_default, default_score) = recognized(&server, KEY, photo).await;
    let (in_rotated, rotated_score) = recognized(&server, &key, photo).await;
    assert_eq!(in_default, ["Yao in default"]);
    assert_eq!(in_rotated, ["Yao in rotated"]);
    // A rotation keeps dot products: the same accuracy in the other space.
    assert!(
        (default_score - rotated_score).abs() < 1e-3,
        "{default_score} vs {rotated_score}"
    );

    // A group photo's largest face, registered in the rotated collection: recognized there, a
    // stranger in default.
    register(&server, &key, "vectron/players.jpg", "A player").await;
    let (names, _) = recognized(&server, &key, "vectron/players.jpg").await;
    assert!(names.iter().any(|n| n == "A player"), "{names:?}");
    let (names, _) = recognized(&server, KEY, "vectron/players.jpg").await;
    assert!(
        !names
            .iter()
            .any(|n| n.contains("rotated") || n == "A player"),
        "{names:?}"
    );

    // The detector's input side is the collection's: smaller finds fewer of a group's faces; a
    // side that is not a multiple of 32 is refused.
    let faces_found = |key: String| {
        let server = &server;
        async move {
            let fields = [("max_faces", "100")];
            let (status, body) =
                post_photo(server, "/v1/detect", &key, "vectron/players.jpg", &fields).await;
            assert_eq!(status, 200, "{body}");
            body["faces"].as_array().unwrap().len()
        }
    };
    let at_640 = faces_found(key.clone()).await;
    let set_size = |settings: serde_json::Value| {
        let server = &server;
        async move {
            let body = serde_json::json!({ "settings": settings });
            call(
                server,
                Method::PATCH,
                "/v1/collections/rotated",
                KEY,
                Some(body),
            )
            .await
        }
    };
    let (status, patched) = set_size(serde_json::json!({ "detection_size": 160 })).await;
    assert_eq!(status, 200, "{patched}");
    let at_160 = faces_found(key.clone()).await;
    assert!(at_160 < at_640, "{at_160} faces at 160, {at_640} at 640");
    let answer = set_size(serde_json::json!({ "detection_size": 1000 })).await;
    expect(answer, 422, "invalid_collection");
    let (status, _) = set_size(serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(faces_found(key.clone()).await, at_640);

    // A collection may find faces with another pack's detector: the same faces here, embedded by
    // its own recognizer.
    let body = serde_json::json!({
        "name": "mixed", "model_pack": "rotated", "detector_pack": "buffalo_s"
    });
    let (status, mixed) = call(&server, Method::POST, "/v1/collections", KEY, Some(body)).await;
    assert_eq!(status, 201, "{mixed}");
    assert_eq!(mixed["model_pack"]["name"], "rotated");
    assert_eq!(mixed["model_pack"]["detector_pack"], "buffalo_s");
    let mixed_key = new_key(&server, KEY, "mixed", &["recognize", "embeddings"]).await;
    let theirs_again = embedding(&server, &mixed_key, photo).await;
    assert!(
        dot(&theirs, &theirs_again) > 0.99,
        "{}",
        dot(&theirs, &theirs_again)
    );

    // Inference time is measured per pack.
    let (_, metrics) = call(&server, Method::GET, "/metrics", KEY, None).await;
    let metrics = metrics.as_str().unwrap_or_default();
    for pack in ["buffalo_s", "rotated"] {
        let label = format!("pack=\"{pack}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("facerec_inference_seconds") && l.contains(&label)),
            "{pack}: {metrics}"
        );
    }

    // Calibration runs per collection, each on its own pack's faces.
    let (status, calibrated) = call(&server, Method::POST, "/v1/calibration", &key, None).await;
    assert_eq!(status, 200, "{calibrated}");
    assert!(
        calibrated["model"]
            .as_str()
            .unwrap()
            .starts_with("rotated/recognizer"),
        "{calibrated}"
    );
    assert_eq!(calibrated["persons"], 2, "{calibrated}");
    assert_eq!(calibrated["persons_sampled"], 2, "{calibrated}");
    let (status, calibrated) = call(&server, Method::POST, "/v1/calibration", KEY, None).await;
    assert_eq!(status, 200, "{calibrated}");
    assert!(
        calibrated["model"]
            .as_str()
            .unwrap()
            .starts_with("buffalo_s/w600k_mbf"),
        "{calibrated}"
    );
    assert_eq!(calibrated["persons_sampled"], 1, "{calibrated}");
}

/// CompreFace's and DeepStack's real clients (`tests/compat/clients.py`) on a key of a collection
/// bound to the rotated pack, its second collection on the built-in one.
#[tokio::test]
async fn the_compatible_apis_work_on_a_collection_of_another_pack() {
    let packs = tempfile::tempdir().unwrap();
    make_pack("rotated", packs.path());
    let server = start(Db::Postgres, Some(packs.path())).await;
    let key = collection_on(&server, "cameras", Some("rotated")).await;
    let other = collection_on(&server, "other", None).await;
    run_compat_clients(&server, &key, &other);
}

/// `facerec serve` with one broken pack: it exits at once, and its message names the file.
fn refused_at_start(packs: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/facerec.db", dir.path().display()))
        .arg("--model-packs")
        .arg(packs)
        .current_dir(workspace())
        .env_remove("FACEREC_API_KEYS")
        .env("FACEREC_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success(), "a broken pack must be refused");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn broken_packs_are_refused_at_start_naming_the_file() {
    for (kind, file, says) in [
        ("wrong-sha", "recognizer.onnx", "sha256"),
        ("missing-file", "recognizer.onnx", "missing"),
        ("wrong-shape", "recognizer.onnx", "[N, 3, 112, 112]"),
    ] {
        let packs = tempfile::tempdir().unwrap();
        let pack = make_pack(kind, packs.path());
        let message = refused_at_start(packs.path());
        let named = pack.join(file);
        assert!(
            message.contains(&named.display().to_string()) && message.contains(says),
            "{kind}: the message names {} and says '{says}': {message}",
            named.display()
        );
    }
    // A folder that is neither a known pack nor described.
    let packs = tempfile::tempdir().unwrap();
    std::fs::create_dir(packs.path().join("odd")).unwrap();
    std::fs::write(packs.path().join("odd/model.onnx"), b"not a model").unwrap();
    let message = refused_at_start(packs.path());
    assert!(
        message.contains("odd") && message.contains("pack.json"),
        "{message}"
    );
}

#[tokio::test]
async fn a_collection_whose_pack_is_gone_answers_model_unavailable() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", data.path().display());
    let packs = tempfile::tempdir().unwrap();
    make_pack("rotated", packs.path());
    let key = {
        let server = start(Db::Url(url.clone()), Some(packs.path())).await;
        let key = collection_on(&server, "rotated", Some("rotated")).await;
        register(&server, &key, "vectron/yaoming.jpg", "Yao").await;
        key
    };

    // The pack removed: the collection is still there, says what it is bound to, and its
    // recognitions are refused naming it — in each API's own format.
    let server = start(Db::Url(url), None).await;
    let (status, shown) = call(&server, Method::GET, "/v1/collections/rotated", KEY, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["model_pack"]["name"], "rotated");
    let answer = post_photo(&server, "/v1/recognize", &key, "vectron/yaoming.jpg", &[]).await;
    let body = expect(answer, 503, "model_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("rotated"), "{message}");
    let form = reqwest::multipart::Form::new().part(
        "file",
        image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
    );
    let response = server
        .client
        .post(format!("{}/api/v1/recognition/recognize", server.url))
        .header("x-api-key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("rotated"),
        "{body}"
    );
    // A stream in that collection is refused at its handshake, not frame after frame.
    match open_stream(&server, "", Some(&key)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a stream opened in a collection whose pack is gone"),
    }
    // The default collection is served as ever.
    register(&server, KEY, "vectron/yaoming.jpg", "Yao").await;
    assert_eq!(
        recognized(&server, KEY, "vectron/yaoming.jpg").await.0,
        ["Yao"]
    );
}

/// `facerec collections create --model-pack`, offline: the collection is bound to the pack's files
/// as the server then finds them.
#[tokio::test]
async fn the_command_line_binds_a_collection_to_a_pack() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", data.path().display());
    let packs = tempfile::tempdir().unwrap();
    let rotated = make_pack("rotated", packs.path());
    let facerec = |args: &[&str]| {
        let output = facerec_offline(&url, args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let packs_dir = packs.path().to_str().unwrap();
    let (ok, _, stderr) = facerec(&[
        "collections",
        "create",
        "cams",
        "--model-pack",
        "rotated",
        "--model-packs",
        packs_dir,
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = facerec(&[
        "collections",
        "create",
        "nowhere",
        "--model-pack",
        "buffalo_xl",
    ]);
    assert!(!ok && stderr.contains("buffalo_xl"), "{stderr}");
    let (_, listed, _) = facerec(&["collections", "list"]);
    let cams = listed.lines().find(|l| l.contains("\tcams\t")).unwrap();
    assert!(cams.contains("\trotated\t"), "{listed}");

    let server = start(Db::Url(url.clone()), Some(packs.path())).await;
    let (status, shown) = call(&server, Method::GET, "/v1/collections/cams", KEY, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["model_pack"]["recognizer"], "rotated/recognizer");
    assert_eq!(
        shown["model_pack"]["recognizer_sha256"],
        sha256_of(&rotated.join("recognizer.onnx"))
    );
    let key = new_key(&server, KEY, "cams", &["recognize", "enroll"]).await;
    register(&server, &key, "vectron/yaoming.jpg", "Yao").await;
    assert_eq!(
        recognized(&server, &key, "vectron/yaoming.jpg").await.0,
        ["Yao"]
    );
}
