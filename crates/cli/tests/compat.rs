//! The CompreFace- and DeepStack-compatible APIs, driven by the real clients
//! (`tests/compat/clients.py`: compreface-sdk, deepstack-python, Double Take's requests; from the
//! test venv `make test` creates) on SQLite and on PostgreSQL, and the consent rule of those APIs.

mod support;

use support::*;

const KEY: &str = "compat-test-key-0001";
const BASIS: &str = "written consent collected at the front desk";

/// A key of a second collection, `other`, as a CompreFace service of its own would have.
async fn other_collections_key(server: &Server) -> String {
    let client = &server.client;
    let created = client
        .post(format!("{}/v1/collections", server.url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, key) = json(
        client
            .post(format!("{}/v1/keys", server.url))
            .bearer_auth(KEY)
            .json(&serde_json::json!({
                "collection": "other", "scopes": ["recognize", "enroll", "manage"], "label": "second service"
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_owned()
}

/// Runs the client checks against `server` (with a key of `default` and one of a second
/// collection) and fails with their output if any fails.
async fn run_clients(server: &Server) {
    let other = other_collections_key(server).await;
    run_compat_clients(server, KEY, &other);
}

/// DeepStack's register, its key in the form as its clients send it.
async fn deepstack_register(
    server: &Server,
    form: reqwest::multipart::Form,
) -> (u16, serde_json::Value) {
    let url = format!("{}/v1/vision/face/register", server.url);
    json(
        reqwest::Client::new()
            .post(url)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn start(db: Db) -> Server {
    Server::start(
        db,
        &[
            "--api-keys",
            KEY,
            "--compat-consent-basis",
            BASIS,
            "--rate-limit-per-minute",
            "0",
            "--allow-embeddings",
        ],
    )
    .await
}

#[tokio::test]
async fn real_clients_work_on_sqlite() {
    run_clients(&start(Db::Sqlite).await).await;
}

#[tokio::test]
async fn real_clients_work_on_postgres() {
    run_clients(&start(Db::Postgres).await).await;
}

/// Without a consent statement, both APIs refuse to register, each in its client's format and
/// saying why; with one, it is recorded on the person.
#[tokio::test]
async fn registration_needs_the_operators_consent_statement() {
    let photo = registry_photo("vectron/yaoming.jpg");
    let client = reqwest::Client::new();
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;

    let form = reqwest::multipart::Form::new().part("file", image_part(photo.clone(), "y.jpg"));
    let (status, body) = json(
        client
            .post(format!(
                "{}/api/v1/recognition/faces?subject=Yao",
                server.url
            ))
            .header("x-api-key", KEY)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (405, Some(32)), "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("--compat-consent-basis"));

    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo.clone(), "y.jpg"))
        .text("userid", "Yao")
        .text("api_key", KEY);
    let (status, body) = deepstack_register(&server, form).await;
    assert_eq!(
        (status, &body["success"]),
        (403, &serde_json::json!(false)),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("consent"));
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(persons["total"], 0, "nothing was registered: {persons}");
    drop(server);

    let server = start(Db::Sqlite).await;
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo, "y.jpg"))
        .text("userid", "Yao")
        .text("api_key", KEY);
    let response = client
        .post(format!("{}/v1/vision/face/register", server.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(persons["items"][0]["name"], "Yao", "{persons}");
    assert_eq!(persons["items"][0]["consent"]["basis"], BASIS, "{persons}");
}

/// The compatible routes sit behind the same guard as `/v1`: another web page is refused, in the
/// client's format.
#[tokio::test]
async fn foreign_pages_are_refused_on_compatible_routes() {
    let server = start(Db::Sqlite).await;
    let (status, body) = json(
        reqwest::Client::new()
            .get(format!("{}/api/v1/recognition/subjects", server.url))
            .header("x-api-key", KEY)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["facerec_code"], "forbidden_origin", "{body}");
    assert!(
        body["message"].is_string() && body["code"].is_i64(),
        "{body}"
    );
}

/// Registration by name is one use case: DeepStack's photos are stored all or none; CompreFace adds
/// for one new subject sent at once make one person; a subject two persons share is refused with a
/// conflict, never resolved to "the first".
#[tokio::test]
async fn registrations_by_name_are_whole_and_name_one_person() {
    let server = start(Db::Sqlite).await;
    let client = reqwest::Client::new();
    let yao = registry_photo("vectron/yaoming.jpg");
    let group = registry_photo("vectron/players.jpg");
    let form = reqwest::multipart::Form::new()
        .part("image1", image_part(yao.clone(), "a.jpg"))
        .part("image2", image_part(group, "b.jpg"))
        .text("userid", "Yao")
        .text("api_key", KEY);
    let (status, body) = deepstack_register(&server, form).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["facerec_code"], "multiple_faces", "{body}");
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(
        persons["total"], 0,
        "the good photo was not kept alone: {persons}"
    );

    let adds = (0..4).map(|_| {
        let form = reqwest::multipart::Form::new().part("file", image_part(yao.clone(), "y.jpg"));
        client
            .post(format!(
                "{}/api/v1/recognition/faces?subject=Crowd",
                server.url
            ))
            .header("x-api-key", KEY)
            .multipart(form)
            .send()
    });
    for response in futures_util::future::join_all(adds).await {
        assert_eq!(response.unwrap().status(), 201);
    }
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(
        persons["total"], 1,
        "one subject however many senders: {persons}"
    );

    let form = reqwest::multipart::Form::new()
        .part("image", image_part(yao, "y.jpg"))
        .text("name", "crowd")
        .text("consent", "true");
    assert_eq!(server.post_form("/v1/register", form).await.status(), 201);
    let (status, body) = json(
        client
            .delete(format!("{}/api/v1/recognition/subjects/Crowd", server.url))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["facerec_code"], "ambiguous_name", "{body}");
    let (_, persons) = json(server.get("/v1/persons").await).await;
    assert_eq!(persons["total"], 2, "neither was deleted: {persons}");
}

/// A browser-style boundary (mixed case) and an upper-case media type parse on the compatible routes
/// as on `/v1`: the boundary is kept as sent.
#[tokio::test]
async fn multipart_boundaries_keep_their_case() {
    let server = start(Db::Sqlite).await;
    let boundary = "----WebKitFormBoundaryAbC123";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"y.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend(registry_photo("vectron/yaoming.jpg"));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let (status, answer) = json(
        reqwest::Client::new()
            .post(format!("{}/api/v1/detection/detect", server.url))
            .header("x-api-key", KEY)
            .header(
                "content-type",
                format!("MULTIPART/FORM-DATA; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
}
