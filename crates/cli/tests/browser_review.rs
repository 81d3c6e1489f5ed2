//! A real browser reviews what the cameras saw (#28): Debian's headless Chromium (driven by
//! playwright-core, `tests/browser/review.mjs`) opens the web page with an operator key on a server
//! whose default collection captures unknown faces, after a stranger was recognized from two
//! sources. On the Review view it sees one cluster of the two captured faces with their chips,
//! opens it, finds by photo where the face was seen, and names it (consent and a basis): the
//! cluster is gone. The Settings view then captures every face; the Recognize view names the
//! photo, and registers another stranger from their unknown box. Back on the Review view, "not
//! this person" on the photo's known capture marks it rejected, and the cluster it went back to is
//! deleted. The API agrees afterwards. Screenshots are kept in
//! target/test-artifacts/browser-review/.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const OPERATOR: &str = "browser-review-operator-0001";

/// `POST /v1/recognize` of `photo` from `source`, as the operator: the answer (200 asserted).
async fn recognize(server: &Server, photo: Vec<u8>, source: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo, "photo.jpg"))
        .text("source", source.to_owned());
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET path` as the operator (200 asserted).
async fn get(server: &Server, path: &str) -> Value {
    let (status, body) = call(server, Method::GET, path, OPERATOR, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET path` until `done` says yes of the answer (captures are written off the answer's path).
async fn get_until(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let body = get(server, path).await;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = get(server, path).await;
    panic!("{path} never answered as expected: {body}");
}

fn texts(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_view_names_a_stranger_the_cameras_saw() {
    assert!(
        workspace()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `make setup-test` (scripts/setup-browser.sh)"
    );
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR]).await;
    let (status, body) = call(
        &server,
        Method::PATCH,
        "/v1/collections/default",
        OPERATOR,
        Some(json!({ "settings": { "capture": "unknown" } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A stranger seen at the door, then (once that capture is written) in the garden: one
    // cluster of two captured faces.
    let yao = registry_photo("vectron/yaoming.jpg");
    let door = recognize(&server, yao.clone(), "door").await;
    assert!(door["faces"][0]["match"].is_null(), "{door}");
    let cluster = door["faces"][0]["unknown"]["cluster_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the answer names the stranger's cluster: {door}"))
        .to_owned();
    get_until(&server, "/v1/captures", |b| {
        b["items"][0]["source"] == "door"
    })
    .await;
    let garden = recognize(&server, yao.clone(), "garden").await;
    assert_eq!(
        garden["faces"][0]["unknown"]["cluster_id"],
        cluster.as_str(),
        "{garden}"
    );
    let clusters = get_until(&server, "/v1/clusters", |b| b["items"][0]["count"] == 2).await;
    assert_eq!(
        clusters["items"].as_array().map(Vec::len),
        Some(1),
        "{clusters}"
    );
    assert_eq!(clusters["items"][0]["id"], cluster.as_str(), "{clusters}");

    // Another stranger for the Recognize view to name from their box: the largest face of
    // t1.jpg, cropped (as the live browser test registers it).
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger.png");
    image::load_from_memory(&registry_photo("insightface/t1.jpg"))
        .unwrap()
        .crop_imm(400, 200, 240, 280)
        .save(&stranger)
        .unwrap();
    let photo = workspace().join("vendor/fixtures/registry/vectron/yaoming.jpg");

    let shots = workspace().join("target/test-artifacts/browser-review");
    let mut node = Command::new("node");
    node.arg(workspace().join("tests/browser/review.mjs"))
        .args([
            server.url.as_str(),
            photo.to_str().unwrap(),
            stranger.to_str().unwrap(),
            shots.to_str().unwrap(),
        ])
        .env("FACEREC_TEST_OPERATOR_KEY", OPERATOR);
    let result = browser_result(node);
    assert_eq!(result["pageErrors"], json!([]), "{result}");

    // The Review view: one cluster, of 2, its chips loaded (the aligned 112×112 faces); the
    // collection captures, so no "capture is off".
    let seen = result["clusters"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{result}");
    assert_eq!(seen[0]["id"], cluster.as_str(), "{result}");
    assert_eq!(seen[0]["count"], 2, "{result}");
    assert_eq!(seen[0]["countText"], "2 captured faces", "{result}");
    assert_eq!(seen[0]["chips"], json!([112, 112]), "{result}");
    let meta = seen[0]["meta"].as_str().unwrap_or_default();
    assert!(
        meta.contains("seen 2 times") && meta.contains("door, garden"),
        "{result}"
    );
    assert_eq!(result["captureOffShown"], false, "{result}");
    // Opened: its two captured faces.
    assert_eq!(result["opened"]["id"], cluster.as_str(), "{result}");
    assert_eq!(result["opened"]["chips"], json!([112, 112]), "{result}");
    // Searched by the photo: seen at the door and in the garden.
    let mut sources: Vec<&str> = result["search"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    sources.sort_unstable();
    assert_eq!(sources, ["door", "garden"], "{result}");
    assert_eq!(result["search"]["chips"], json!([112, 112]), "{result}");
    // Named: said in the Review view's own line, and the cluster is gone.
    let named = &result["named"];
    assert!(
        named["status"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Named Yao Ming")),
        "{result}"
    );
    assert_eq!(named["status"]["error"], false, "{result}");
    assert_eq!(named["clusters"], json!([]), "{result}");
    assert_eq!(named["emptyShown"], true, "{result}");
    assert_eq!(named["openPanelShown"], false, "{result}");

    // The Settings view showed the capture setting, and saved `all`.
    assert_eq!(result["captureSettingShown"], "unknown", "{result}");
    assert_eq!(result["captureSettingSaved"], "all", "{result}");

    // The Recognize view: the photo is Yao Ming now; the other stranger registered from their box.
    assert!(
        texts(&result["recognized"])
            .iter()
            .any(|f| f.starts_with("Yao Ming")),
        "{result}"
    );
    let stranger_named = &result["strangerNamed"];
    assert!(
        stranger_named["status"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Registered Stranger One")),
        "{result}"
    );
    assert_eq!(stranger_named["status"]["error"], false, "{result}");
    assert_eq!(stranger_named["formShown"], false, "{result}");

    // Not this person: the photo's known capture (with its chip) shown rejected, in its row and in
    // the list of rejected captures; then the cluster it went back to, deleted (confirmed).
    assert_eq!(result["knownChip"], 112, "{result}");
    let rejected = &result["rejected"];
    let rejected_id = rejected["id"].as_str().unwrap().to_owned();
    assert_eq!(rejected["row"]["status"], "rejected", "{result}");
    assert_eq!(rejected["row"]["person"], "not Yao Ming", "{result}");
    assert_eq!(rejected["status"]["error"], false, "{result}");
    assert!(
        result["rejectedListed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == rejected_id.as_str() && r["status"] == "rejected"),
        "{result}"
    );
    let back = result["rejectedCluster"].as_array().unwrap();
    assert_eq!(back.len(), 1, "{result}");
    assert_eq!(back[0]["count"], 1, "{result}");
    assert_eq!(
        result["dialogs"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    assert!(
        result["deleted"]["status"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Deleted the cluster")),
        "{result}"
    );
    assert_eq!(result["deleted"]["clusters"], json!([]), "{result}");

    // The API agrees: one Yao Ming, with faces; the other stranger registered; no cluster left;
    // the collection captures every face; the rejected capture went with its cluster.
    let persons = get(&server, "/v1/persons?name=Yao").await;
    assert_eq!(persons["total"], 1, "{persons}");
    assert_eq!(persons["items"][0]["name"], "Yao Ming", "{persons}");
    assert!(
        persons["items"][0]["faces"].as_u64() >= Some(1),
        "{persons}"
    );
    let persons = get(&server, "/v1/persons?name=Stranger").await;
    assert_eq!(persons["total"], 1, "{persons}");
    let clusters = get(&server, "/v1/clusters").await;
    assert_eq!(clusters["items"], json!([]), "{clusters}");
    let default = get(&server, "/v1/collections/default").await;
    assert_eq!(default["settings"]["capture"], "all", "{default}");
    expect(
        call(
            &server,
            Method::GET,
            &format!("/v1/captures/{rejected_id}"),
            OPERATOR,
            None,
        )
        .await,
        404,
        "capture_not_found",
    );

    for shot in [
        "1-clusters.png",
        "2-cluster-open.png",
        "3-search.png",
        "4-named.png",
        "5-settings.png",
        "6-recognized.png",
        "7-stranger-named.png",
        "8-known.png",
        "9-rejected.png",
        "10-deleted.png",
    ] {
        assert!(shots.join(shot).is_file(), "{shot} was saved");
    }
}
