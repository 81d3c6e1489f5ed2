//! An OpenAPI document a client generator can use (#32, 4): `/openapi.json` passes
//! openapi-spec-validator, and a Python client generated from it by openapi-python-client (a real
//! generator, from PyPI, in the test venv) registers, recognizes and deletes a person
//! (`tests/contract/generated_client.py`).

mod support;

use std::process::Command;

use support::*;

const KEY: &str = "generated-client-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_registers_recognizes_and_deletes() {
    let python = test_venv_python();
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;
    let work = tempfile::tempdir().unwrap();
    let photo = workspace().join("vendor/fixtures/registry/vectron/yaoming.jpg");
    let output = Command::new(python)
        .arg(workspace().join("tests/contract/generated_client.py"))
        .args([&server.url, KEY, photo.to_str().unwrap()])
        .arg(work.path())
        .output()
        .expect("the test venv's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["generator_warnings"], serde_json::json!([]), "{seen}");
    // Every request and response body has an example that fits its schema (the script checks).
    assert!(seen["examples_checked"].as_u64() >= Some(40), "{seen}");
    assert!(seen["registered"].is_string(), "{seen}");
    assert_eq!(seen["recognized"], "Generated Client", "{seen}");
    assert_eq!(seen["after_delete"], 404, "{seen}");
    assert_eq!(seen["error_code"], "person_not_found", "{seen}");
}
