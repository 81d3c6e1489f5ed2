//! Who may drive facerec: host names, web page origins, keys on /metrics; and what every refusal
//! looks like (the error envelope, ranges, no database text). The browser's side of the same rules
//! is in browser.rs.

mod support;

use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn get_with(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut request = server.client.get(format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    json(request.send().await.unwrap()).await
}

fn port(server: &Server) -> &str {
    server.url.rsplit(':').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_names_are_refused_unless_allowed() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let own = format!("127.0.0.1:{}", port(&server));
    for host in [
        "attacker.example",
        "attacker.example:80",
        "localhost.attacker.example",
    ] {
        expect(
            get_with(&server, "/v1/persons", &[("host", host)]).await,
            403,
            "forbidden_host",
        );
    }
    for host in [own.as_str(), "localhost", "app.localhost:1234", "[::1]"] {
        assert_eq!(
            get_with(&server, "/v1/persons", &[("host", host)]).await.0,
            200,
            "{host}"
        );
    }
    let proxied = Server::start(Db::Sqlite, &["--allowed-hosts", "attacker.example"]).await;
    let (status, _) = get_with(&proxied, "/v1/persons", &[("host", "attacker.example")]).await;
    assert_eq!(status, 200, "--allowed-hosts serves the name");
    expect(
        get_with(&proxied, "/v1/persons", &[("host", "other.example")]).await,
        403,
        "forbidden_host",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_cannot_register_read_or_stream() {
    let server = Server::start(Db::Sqlite, &["--cors-origins", "https://allowed.example"]).await;
    let own = format!("http://127.0.0.1:{}", port(&server));
    let foreign = "http://127.0.0.1:1";
    let register = || {
        reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
            )
            .text("name", "Injected By Another Site")
            .text("consent", "true")
    };
    let response = server
        .client
        .post(format!("{}/v1/register", server.url))
        .header("origin", foreign)
        .multipart(register())
        .send()
        .await
        .unwrap();
    expect(json(response).await, 403, "forbidden_origin");
    expect(
        get_with(&server, "/v1/persons", &[("origin", "null")]).await,
        403,
        "forbidden_origin",
    );
    // A cross-site request without Origin (a no-cors GET, an image tag) is refused too; a person
    // following a link is not.
    expect(
        get_with(&server, "/v1/persons", &[("sec-fetch-site", "cross-site")]).await,
        403,
        "forbidden_origin",
    );
    let navigation = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
    ];
    assert_eq!(get_with(&server, "/health", &navigation).await.0, 200);
    // The server's own page and the listed origin pass.
    let (status, body) = get_with(&server, "/v1/persons", &[("origin", &own)]).await;
    assert_eq!(
        (status, body["total"].as_u64()),
        (200, Some(0)),
        "nothing was registered"
    );
    let allowed = [("origin", "https://allowed.example")];
    assert_eq!(get_with(&server, "/v1/persons", &allowed).await.0, 200);
    // Browsers do not apply CORS to WebSockets: the handshake itself is refused.
    let mut request = format!("{}/v1/stream", server.url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "a foreign page's WebSocket must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    let response = server
        .client
        .post(format!("{}/v1/register", server.url))
        .header("origin", &own)
        .multipart(register().text("name", "Own Page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "the server's own page registers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_answers_the_envelope() {
    let server = Server::start(Db::Sqlite, &[]).await;
    expect(
        get_with(&server, "/v1/no-such-route", &[]).await,
        404,
        "not_found",
    );
    expect(
        json(server.delete("/v1/persons").await).await,
        405,
        "method_not_allowed",
    );
    expect(
        get_with(&server, "/v1/persons?limit=abc", &[]).await,
        400,
        "invalid_request",
    );
    expect(
        get_with(&server, "/v1/persons/not-a-uuid", &[]).await,
        400,
        "invalid_request",
    );
    // A plain GET where a WebSocket upgrade is expected.
    expect(
        get_with(&server, "/v1/stream", &[]).await,
        400,
        "invalid_request",
    );
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=9223372036854775808", "offset"),
        ("offset=1000000001", "offset"),
    ] {
        let body = expect(
            get_with(&server, &format!("/v1/persons?{query}"), &[]).await,
            400,
            "invalid_request",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{query}: {message}");
    }
    for (field, value) in [("top_k", "0"), ("top_k", "21"), ("max_faces", "101")] {
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
            )
            .text(field, value);
        let body = expect(
            json(server.post_form("/v1/recognize", form).await).await,
            400,
            "invalid_request",
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_tells_no_database_details() {
    let admin = std::env::var("FACEREC_TEST_DATABASE_URL").expect("make test starts PostgreSQL");
    let url = new_postgres_database().await;
    let server = Server::start(Db::Url(url.clone()), &[]).await;
    assert_eq!(get_with(&server, "/v1/persons", &[]).await.0, 200);
    facerec_store::testing::drop_database(&admin, &url)
        .await
        .unwrap();
    let response = server.get("/v1/persons").await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = expect(json(response).await, 503, "database_error");
    let text = body.to_string().to_lowercase();
    let database = url.rsplit('/').next().unwrap();
    for leak in [
        "sql",
        "postgres",
        "database \\\"",
        database,
        "error returned from",
        "127.0.0.1",
    ] {
        assert!(!text.contains(leak), "the answer leaks '{leak}': {text}");
    }
    assert_eq!(body["error"]["request_id"], request_id.as_str(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_key_when_keys_are_configured() {
    let server = Server::start(Db::Sqlite, &["--api-keys", "security-test-key-0001"]).await;
    let anonymous = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    expect(json(anonymous).await, 401, "missing_api_key");
    let keyed = server.get("/metrics").await;
    assert_eq!(keyed.status(), 200);
    assert!(keyed.text().await.unwrap().contains("facerec_faces_stored"));
    let public = Server::start(
        Db::Sqlite,
        &["--api-keys", "security-test-key-0001", "--metrics-public"],
    )
    .await;
    let anonymous = public
        .client
        .get(format!("{}/metrics", public.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
}
