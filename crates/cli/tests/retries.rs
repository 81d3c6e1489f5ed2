//! Registration safe to retry (#32, 2), on a running server over both backends: an
//! `Idempotency-Key` makes a retry (sequential or concurrent) answer what the first attempt
//! answered without registering again, refuses the key for another request, and is forgotten with
//! the person; `GET /v1/persons?external_id=` finds a person by their external id, and a taken
//! external id names who holds it.

mod support;

use support::*;

const KEY: &str = "retries-operator-key-0123456789";

/// `POST path` with a photo, the fields and an optional `Idempotency-Key`: the status, the
/// `Idempotent-Replayed` header, the answer.
async fn post_photo(
    server: &Server,
    path: &str,
    fields: &[(&str, &str)],
    idempotency_key: Option<&str>,
) -> (u16, bool, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "image",
        image_part(registry_photo("vectron/yaoming.jpg"), "yao.jpg"),
    );
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    let mut request = server
        .client
        .post(format!("{}{path}", server.url))
        .bearer_auth(KEY)
        .multipart(form);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let (status, body) = json(response).await;
    (status, replayed, body)
}

async fn persons_named(server: &Server, name: &str) -> serde_json::Value {
    let path = format!("/v1/persons?name={}", name.replace(' ', "%20"));
    let (status, body) = call(server, reqwest::Method::GET, &path, KEY, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_retried_under_its_key_registers_once() {
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &["--api-keys", KEY]).await;
        let alice = [("name", "Alice Martin"), ("consent", "true")];

        // Without a key, a name always makes a new person (what the README says).
        let (first, _, _) = post_photo(&server, "/v1/register", &alice, None).await;
        let (second, _, _) = post_photo(&server, "/v1/register", &alice, None).await;
        assert_eq!((first, second), (201, 201));
        assert_eq!(persons_named(&server, "Alice Martin").await["total"], 2);

        // Under a key: the retry answers the first attempt's answer, marked as replayed.
        let bob = [("name", "Bob Key"), ("consent", "true")];
        let (status, replayed, original) =
            post_photo(&server, "/v1/register", &bob, Some("reg-1")).await;
        assert_eq!((status, replayed), (201, false), "{original}");
        let (status, replayed, again) =
            post_photo(&server, "/v1/register", &bob, Some("reg-1")).await;
        assert_eq!((status, replayed), (201, true), "{again}");
        assert_eq!(again["person"]["id"], original["person"]["id"]);
        assert_eq!(again["face"]["id"], original["face"]["id"]);
        assert_eq!(persons_named(&server, "Bob Key").await["total"], 1);

        // Concurrent retries: one registration, every answer the same person.
        // (With an external id: the index on it may be what tells the late ones, still the first
        // attempt's answer.)
        let carol = [
            ("name", "Carol Concurrent"),
            ("external_id", "carol-1"),
            ("consent", "true"),
        ];
        let attempts = (0..6).map(|_| post_photo(&server, "/v1/register", &carol, Some("reg-2")));
        let answers = futures_util::future::join_all(attempts).await;
        let ids: std::collections::HashSet<String> = answers
            .iter()
            .map(|(status, _, body)| {
                assert_eq!(*status, 201, "{body}");
                body["person"]["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1, "{answers:?}");
        assert_eq!(persons_named(&server, "Carol Concurrent").await["total"], 1);

        // The same key for another request is refused; nothing is registered.
        let other = [("name", "Bob Other"), ("consent", "true")];
        let (status, _, refused) = post_photo(&server, "/v1/register", &other, Some("reg-1")).await;
        expect((status, refused), 422, "idempotency_key_reused");
        assert_eq!(persons_named(&server, "Bob Other").await["total"], 0);

        // A key that is not one.
        let long = "k".repeat(256);
        let (status, _, body) = post_photo(&server, "/v1/register", &bob, Some(&long)).await;
        assert_eq!(status, 400, "{body}");

        // Adding a face under a key: the photo is Bob's already (200), and so says the retry.
        let bob_id = original["person"]["id"].as_str().unwrap().to_owned();
        let faces = format!("/v1/persons/{bob_id}/faces");
        let consent = [("consent", "true")];
        let (status, replayed, added) = post_photo(&server, &faces, &consent, Some("face-1")).await;
        assert_eq!((status, replayed), (200, false), "{added}");
        let (status, replayed, again) = post_photo(&server, &faces, &consent, Some("face-1")).await;
        assert_eq!((status, replayed), (200, true), "{again}");
        assert_eq!(again["face"]["id"], added["face"]["id"]);

        // Deleting the person forgets the attempts about them: the key then registers anew.
        let (status, _) = call(
            &server,
            reqwest::Method::DELETE,
            &format!("/v1/persons/{bob_id}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, replayed, anew) =
            post_photo(&server, "/v1/register", &bob, Some("reg-1")).await;
        assert_eq!((status, replayed), (201, false), "{anew}");
        assert_ne!(anew["person"]["id"], original["person"]["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_external_id_names_its_holder() {
    let server = Server::start(Db::Sqlite, &["--api-keys", KEY]).await;
    let dana = [
        ("name", "Dana External"),
        ("external_id", "emp-7"),
        ("consent", "true"),
    ];
    let (status, _, first) = post_photo(&server, "/v1/register", &dana, None).await;
    assert_eq!(status, 201, "{first}");
    let (status, _, taken) = post_photo(&server, "/v1/register", &dana, None).await;
    let error = expect((status, taken), 409, "duplicate_external_id");
    assert_eq!(
        error["error"]["details"]["person_id"],
        first["person"]["id"]
    );

    let (status, found) = call(
        &server,
        reqwest::Method::GET,
        "/v1/persons?external_id=emp-7",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"], first["person"]["id"]);
    let (_, none) = call(
        &server,
        reqwest::Method::GET,
        "/v1/persons?external_id=emp-8",
        KEY,
        None,
    )
    .await;
    assert_eq!(none["total"], 0);
}
