//! A real browser on a server shared by collections: Debian's headless Chromium (driven by
//! playwright-core, `tests/browser/shared.mjs`) opens the web page with an operator key, picks a
//! collection and sees only its persons (faces, consent expiry), edits its settings through the
//! page (read back through the API), sees a refused setting in the settings view's own status line
//! only, and switches collection; then a key bound to one collection sees no picker and only its
//! collection. Screenshots are kept in target/test-artifacts/browser-shared/.

mod support;

use std::process::Command;

use support::*;

const OPERATOR: &str = "browser-shared-operator-0001";

/// Registers `name` from `photo` in `collection` (the operator naming it with the header): the
/// person's id.
async fn register(
    server: &Server,
    collection: &str,
    name: &str,
    photo: Vec<u8>,
    consent_expires_at: Option<&str>,
) -> String {
    let mut form = reqwest::multipart::Form::new()
        .part("image", image_part(photo, "photo.jpg"))
        .text("name", name.to_owned())
        .text("consent", "true");
    if let Some(at) = consent_expires_at {
        form = form.text("consent_expires_at", at.to_owned());
    }
    let answer = server
        .client
        .post(format!("{}/v1/register", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", collection)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json(answer).await;
    assert_eq!(status, 201, "{body}");
    body["person"]["id"].as_str().unwrap().to_owned()
}

/// `GET path` in `collection`, as the operator.
async fn get_in(server: &Server, collection: &str, path: &str) -> serde_json::Value {
    let answer = server
        .client
        .get(format!("{}{path}", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", collection)
        .send()
        .await
        .unwrap();
    let (status, body) = json(answer).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_picks_a_collection_and_edits_its_settings() {
    assert!(
        workspace()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `make setup-test` (scripts/setup-browser.sh)"
    );
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR]).await;
    new_collection(&server, OPERATOR, "alpha").await;
    let beta_id = new_collection(&server, OPERATOR, "beta").await;

    // One person in each; beta's with a consent expiry and two faces (the photo and its mirror).
    let yao = registry_photo("vectron/yaoming.jpg");
    register(&server, "alpha", "Ada Alpha", yao.clone(), None).await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bo = register(
        &server,
        "beta",
        "Bo <i>Beta</i>",
        yao.clone(),
        Some(&expires),
    )
    .await;
    let mut mirrored = Vec::new();
    image::load_from_memory(&yao)
        .unwrap()
        .fliph()
        .write_to(
            &mut std::io::Cursor::new(&mut mirrored),
            image::ImageFormat::Png,
        )
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(mirrored, "mirrored.png"))
        .text("consent", "true");
    let answer = server
        .client
        .post(format!("{}/v1/persons/{bo}/faces", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", "beta")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json(answer).await;
    assert_eq!(status, 201, "{body}");
    let bound = new_key(
        &server,
        OPERATOR,
        "alpha",
        &["recognize", "enroll", "manage"],
    )
    .await;
    // What the API says of Bo, for the page to show the same.
    let listed = get_in(&server, "beta", "/v1/persons").await;
    let bo_api = &listed["items"][0];
    assert_eq!(bo_api["name"], "Bo <i>Beta</i>", "{listed}");

    let shots = workspace().join("target/test-artifacts/browser-shared");
    let mut node = Command::new("node");
    node.arg(workspace().join("tests/browser/shared.mjs"))
        .args([&server.url, "alpha", "beta", shots.to_str().unwrap()])
        .env("FACEREC_TEST_OPERATOR_KEY", OPERATOR)
        .env("FACEREC_TEST_BOUND_KEY", &bound);
    let result = browser_result(node);

    // The picker lists every collection; picking beta names it on the page's requests.
    assert_eq!(
        result["pickerOptions"],
        serde_json::json!(["default", "alpha", "beta"]),
        "{result}"
    );
    assert_eq!(result["chosenStored"], beta_id.as_str(), "{result}");
    assert_eq!(
        result["namedAfterChoosingB"]["collection"],
        beta_id.as_str(),
        "{result}"
    );
    // Beta's persons only: Bo, with the face count the API reports and the consent expiry.
    let persons_b = result["personsB"].as_array().unwrap();
    assert_eq!(persons_b.len(), 1, "{result}");
    let row = &persons_b[0];
    assert_eq!(row["name"], "Bo <i>Beta</i>", "{result}");
    assert_eq!(bo_api["faces"], 2, "{listed}");
    assert_eq!(row["faces"], "2", "{result}");
    let shown_expiry = row["consent_expires_title"].as_str().unwrap_or_default();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(shown_expiry).ok(),
        chrono::DateTime::parse_from_rfc3339(bo_api["consent"]["expires_at"].as_str().unwrap())
            .ok(),
        "{result}"
    );
    let expiry_text = row["consent_expires"].as_str().unwrap();
    assert!(
        !expiry_text.is_empty() && expiry_text != "—" && expiry_text != "expired",
        "{result}"
    );

    // The settings saved through the page, read back through the API.
    assert!(
        result["settingsSaved"]
            .as_str()
            .is_some_and(|s| s.contains("beta")),
        "{result}"
    );
    let (status, beta) = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/collections/{beta_id}"),
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(status, 200, "{beta}");
    assert_eq!(
        beta["settings"],
        serde_json::json!({"target_fpir": 0.05, "retention_days": 90}),
        "{beta}"
    );
    // The refused target FPIR: the API's words in the settings view's line, and in no other.
    let error = result["settingsError"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid_collection") && error.contains("target_fpir"),
        "{result}"
    );
    for (id, text) in result["statusesAfterError"].as_object().unwrap() {
        if id != "settings-status" {
            assert_eq!(text, "", "{id} shows a message: {result}");
        }
    }
    assert_eq!(result["settingsErrorVisible"], true, "{result}");
    assert_eq!(result["settingsErrorVisibleInPersons"], false, "{result}");
    assert_eq!(result["personsStatusVisibleText"], "", "{result}");
    // The accuracy view in beta: the rates at the threshold. Beta is not calibrated yet (the
    // server's first look found it empty): nothing is measured, which the view says rather than
    // an estimate of 100%.
    let rates = result["accuracyB"]["rates"].as_str().unwrap_or_default();
    assert!(
        rates.contains("strangers named: not measured (too few persons)"),
        "{result}"
    );
    assert_eq!(result["accuracyB"]["status"], "", "{result}");

    // Back to alpha: its person; the choice survives a reload of the tab.
    let names = |rows: &serde_json::Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&result["personsA"]), ["Ada Alpha"], "{result}");
    assert_eq!(result["personsA"][0]["consent_expires"], "—", "{result}");
    assert!(
        result["afterReload"]["whoami"]
            .as_str()
            .is_some_and(|w| w.starts_with("alpha")),
        "{result}"
    );
    assert_eq!(
        names(&result["afterReload"]["persons"]),
        ["Ada Alpha"],
        "{result}"
    );
    // Beta's settings are untouched by the refused change.
    let (_, beta) = call(
        &server,
        reqwest::Method::GET,
        "/v1/collections/beta",
        OPERATOR,
        None,
    )
    .await;
    assert_eq!(beta["settings"]["target_fpir"], 0.05, "{beta}");

    // A key bound to alpha: no picker, no settings, alpha's person.
    let seen = &result["bound"];
    assert!(
        seen["whoami"]
            .as_str()
            .is_some_and(|w| w.starts_with("alpha")),
        "{result}"
    );
    assert_eq!(seen["pickerShown"], false, "{result}");
    assert_eq!(seen["settingsTabShown"], false, "{result}");
    assert_eq!(seen["adminTabShown"], false, "{result}");
    assert_eq!(names(&seen["persons"]), ["Ada Alpha"], "{result}");

    for shot in [
        "persons-b.png",
        "settings.png",
        "settings-error.png",
        "accuracy-b.png",
        "persons-a.png",
        "bound-key.png",
    ] {
        assert!(shots.join(shot).is_file(), "{shot} was saved");
    }
}
