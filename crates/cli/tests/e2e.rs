//! End to end: the real binary, real models, a real database, real HTTP.

mod support;

use std::io::Cursor;

use reqwest::multipart::Form;
use support::*;

fn photo_form(bytes: Vec<u8>) -> Form {
    Form::new().part("image", image_part(bytes, "photo.jpg"))
}

fn register_form(bytes: Vec<u8>, name: &str) -> Form {
    photo_form(bytes)
        .text("name", name.to_owned())
        .text("consent", "true")
}

/// The photos the flow uses: identities with several photos and strangers. From `../shared/faces`
/// when present, else from the registry packages (Yao Ming is face 3 of players.jpg).
struct Cast {
    /// (name, enrollment photo, another photo of them)
    known: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// photos of people never registered
    strangers: Vec<Vec<u8>>,
}

fn cast() -> Cast {
    let Some(images) = shared_images() else {
        // The registry packages hold one photo of Yao Ming; a rescaled copy stands in for a second one.
        let yao = registry_photo("vectron/yaoming.jpg");
        let rescaled = image::load_from_memory(&yao).unwrap().resize(
            350,
            430,
            image::imageops::FilterType::CatmullRom,
        );
        return Cast {
            known: vec![(
                "Yao Ming".into(),
                yao,
                encode(rescaled, image::ImageFormat::Png),
            )],
            strangers: vec![registry_photo("vectron/gdp.jpg")],
        };
    };
    let read = |identity: &str| -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(images.join(identity))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    };
    let known = ["Colin_Powell", "Angelina_Jolie", "Barack_Obama"]
        .iter()
        .map(|id| {
            let mut photos = read(id);
            (id.replace('_', " "), photos.remove(0), photos.remove(0))
        })
        .collect();
    let strangers = ["Brian_De_Palma", "Alex_Lacamoire"]
        .iter()
        .map(|id| read(id).remove(0))
        .collect();
    Cast { known, strangers }
}

async fn full_flow(server: Server) {
    let cast = cast();
    let mut ids = Vec::new();
    for (name, enroll, _) in &cast.known {
        let (status, body) = json(
            server
                .post_form("/v1/register", register_form(enroll.clone(), name))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["person"]["name"], name.as_str());
        assert!(body["person"]["consent"]["basis"]
            .as_str()
            .unwrap()
            .contains("consent"));
        assert!(body["face"]["det_score"].as_f64().unwrap() > 0.5);
        assert!(
            body["face"].get("embedding").is_none(),
            "embeddings never leave the server unasked"
        );
        ids.push(body["person"]["id"].as_str().unwrap().to_owned());
    }
    // The same photo again for the same person changes nothing.
    let again = photo_form(cast.known[0].1.clone())
        .text("person_id", ids[0].clone())
        .text("consent", "true");
    let (status, body) = json(server.post_form("/v1/register", again).await).await;
    assert_eq!(
        (status, body["created"].as_bool()),
        (200, Some(false)),
        "{body}"
    );

    for ((name, _, other), id) in cast.known.iter().zip(&ids) {
        let (status, body) = json(
            server
                .post_form("/v1/recognize", photo_form(other.clone()))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let best = body["faces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| !f["match"].is_null())
            .unwrap_or_else(|| panic!("{name} recognized: {body}"));
        assert_eq!(best["match"]["name"], name.as_str());
        assert_eq!(best["match"]["person_id"], id.as_str());
        assert_eq!(best["landmarks"].as_array().unwrap().len(), 5);
        assert!(
            (body["threshold"].as_f64().unwrap() - 0.3).abs() < 1e-6,
            "the default threshold"
        );
    }
    for stranger in &cast.strangers {
        let (status, body) = json(
            server
                .post_form("/v1/recognize", photo_form(stranger.clone()))
                .await,
        )
        .await;
        assert_eq!(status, 200);
        assert!(!body["faces"].as_array().unwrap().is_empty());
        assert!(
            body["faces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["match"].is_null()),
            "a stranger is unknown: {body}"
        );
    }

    // Verify: two photos of one person; a photo against a registered person; a stranger against them.
    let (name, enroll, other) = &cast.known[0];
    let form = photo_form(enroll.clone()).part("image2", image_part(other.clone(), "b.jpg"));
    let (status, body) = json(server.post_form("/v1/verify", form).await).await;
    assert_eq!(
        (status, body["same_person"].as_bool()),
        (200, Some(true)),
        "{name}: {body}"
    );
    let form = photo_form(other.clone()).text("person_id", ids[0].clone());
    assert_eq!(
        json(server.post_form("/v1/verify", form).await).await.1["same_person"],
        true
    );
    let form = photo_form(cast.strangers[0].clone()).text("person_id", ids[0].clone());
    let (_, body) = json(server.post_form("/v1/verify", form).await).await;
    assert_eq!(body["same_person"], false, "{body}");

    // Detect, with embeddings on request.
    let form = photo_form(other.clone()).text("embeddings", "true");
    let (status, body) = json(server.post_form("/v1/detect", form).await).await;
    assert_eq!(status, 200);
    let embedding = body["faces"][0]["embedding"].as_array().unwrap();
    let norm: f64 = embedding
        .iter()
        .map(|v| v.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert_eq!(embedding.len(), 512);
    assert!((norm - 1.0).abs() < 1e-3);

    // Manage persons.
    let (status, page) = json(server.get("/v1/persons?limit=2").await).await;
    assert_eq!(
        (
            status,
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (200, Some(cast.known.len() as u64), 2.min(cast.known.len()))
    );
    let first_word = name.split(' ').next().unwrap().to_lowercase();
    let (_, filtered) = json(server.get(&format!("/v1/persons?name={first_word}")).await).await;
    assert_eq!(filtered["items"][0]["name"], name.as_str());
    let (status, patched) = json(
        server
            .patch(
                &format!("/v1/persons/{}", ids[0]),
                serde_json::json!({"external_id": "emp-7", "metadata": {"desk": 4}}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (
            status,
            patched["external_id"].as_str(),
            patched["metadata"]["desk"].as_i64()
        ),
        (200, Some("emp-7"), Some(4))
    );
    let (status, faces) = json(server.get(&format!("/v1/persons/{}/faces", ids[0])).await).await;
    assert_eq!((status, faces["items"].as_array().unwrap().len()), (200, 1));
    let add = photo_form(other.clone()).text("consent", "true");
    let (status, added) = json(
        server
            .post_form(&format!("/v1/persons/{}/faces", ids[0]), add)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let face_id = added["face"]["id"].as_str().unwrap().to_owned();
    let (status, deleted) = json(server.delete(&format!("/v1/faces/{face_id}")).await).await;
    assert_eq!(
        (status, deleted["face"]["id"].as_str()),
        (200, Some(face_id.as_str()))
    );

    // Delete: the person becomes unknown and is gone.
    let (status, deleted) = json(server.delete(&format!("/v1/persons/{}", ids[0])).await).await;
    assert_eq!(
        (status, deleted["faces_deleted"].as_u64()),
        (200, Some(1)),
        "{deleted}"
    );
    assert_eq!(
        json(server.get(&format!("/v1/persons/{}", ids[0])).await)
            .await
            .0,
        404
    );
    let (_, body) = json(
        server
            .post_form("/v1/recognize", photo_form(other.clone()))
            .await,
    )
    .await;
    assert!(
        body["faces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["match"]["person_id"] != ids[0].as_str()),
        "a deleted person is never recognized: {body}"
    );

    // Operations endpoints.
    assert_eq!(json(server.get("/health").await).await.1["status"], "ok");
    assert_eq!(json(server.get("/ready").await).await.0, 200);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("facerec_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/recognize\""));
    assert!(metrics.contains("facerec_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("facerec_faces_stored"));
    assert!(metrics.contains("facerec_inference_queue_depth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_sqlite() {
    full_flow(Server::start(Db::Sqlite, &["--allow-embeddings"]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_postgres() {
    full_flow(
        Server::start(
            Db::Postgres,
            &["--api-keys", "postgres-test-key-0001", "--allow-embeddings"],
        )
        .await,
    )
    .await;
}

fn png_bomb_header() -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Sends raw bytes and reads one HTTP/1.1 response (status and JSON body).
async fn raw_request(base: &str, head: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("}}") {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    (status, serde_json::from_str(body).unwrap())
}

fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_from_a_real_request() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            "right-key-0123456789,other-key-0123456789",
            "--max-body-bytes",
            "2000000",
        ],
    )
    .await;
    let yao = registry_photo("vectron/yaoming.jpg");

    // Keys: missing, wrong; both header styles work.
    let url = format!("{}/v1/persons", server.url);
    expect(
        json(server.client.get(&url).send().await.unwrap()).await,
        401,
        "missing_api_key",
    );
    expect(
        json(
            server
                .client
                .get(&url)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap(),
        )
        .await,
        401,
        "invalid_api_key",
    );
    assert_eq!(
        server
            .client
            .get(&url)
            .header("X-API-Key", "other-key-0123456789")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server.get("/health").await.status(),
        200,
        "health needs no key"
    );

    // Malformed and unsupported bodies.
    expect(
        json(
            server
                .post_form("/v1/recognize", Form::new().text("top_k", "3"))
                .await,
        )
        .await,
        400,
        "invalid_request",
    );
    expect(
        json(
            server
                .post_form("/v1/recognize", photo_form(Vec::new()))
                .await,
        )
        .await,
        400,
        "empty_image",
    );
    expect(
        json(
            server
                .post_form("/v1/recognize", photo_form(b"name,score\nann,1\n".to_vec()))
                .await,
        )
        .await,
        415,
        "unsupported_format",
    );
    expect(
        json(
            server
                .post_form("/v1/recognize", photo_form(yao[..yao.len() / 2].to_vec()))
                .await,
        )
        .await,
        400,
        "corrupt_image",
    );
    expect(
        json(
            server
                .post_form("/v1/recognize", photo_form(png_bomb_header()))
                .await,
        )
        .await,
        413,
        "image_dimensions_too_large",
    );
    // An oversized body is refused from its declared length, before it is read: the request below
    // sends only its headers, and the answer still comes.
    let (status, body) = raw_request(
        &server.url,
        "POST /v1/recognize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right-key-0123456789\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3000000\r\n\r\n",
    )
    .await;
    expect((status, body), 413, "payload_too_large");
    let response = server
        .client
        .post(format!("{}/v1/recognize", server.url))
        .bearer_auth("right-key-0123456789")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    // A media type the route does not take is refused before its body is read.
    expect(json(response).await, 415, "unsupported_media_type");
    expect(
        json(
            server
                .post_form(
                    "/v1/recognize",
                    photo_form(yao.clone()).text("threshold", "7"),
                )
                .await,
        )
        .await,
        400,
        "invalid_request",
    );

    // Semantic refusals at registration.
    let blank = encode(
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            320,
            240,
            image::Rgb([120, 130, 140]),
        )),
        image::ImageFormat::Png,
    );
    expect(
        json(
            server
                .post_form("/v1/register", register_form(blank.clone(), "Nobody"))
                .await,
        )
        .await,
        422,
        "no_face",
    );
    let (status, body) = json(server.post_form("/v1/recognize", photo_form(blank)).await).await;
    assert_eq!(
        (status, body["faces"].as_array().map(Vec::len)),
        (200, Some(0)),
        "no face is no error when recognizing"
    );
    let group = registry_photo("vectron/gdp.jpg");
    let (status, body) = json(
        server
            .post_form("/v1/register", register_form(group.clone(), "Group"))
            .await,
    )
    .await;
    expect((status, body.clone()), 422, "multiple_faces");
    assert_eq!(body["error"]["details"]["faces"], 5);
    let two = photo_form(group.clone()).text("max_faces", "2");
    let (status, body) = json(server.post_form("/v1/recognize", two).await).await;
    assert_eq!(
        (status, body["faces"].as_array().map(Vec::len)),
        (200, Some(2)),
        "max_faces bounds the faces analyzed: {body}"
    );
    // The largest face of gdp.jpg is in profile: refused for enrollment, with the reason.
    let largest = register_form(group, "Largest").text("face", "largest");
    let (status, body) = json(server.post_form("/v1/register", largest).await).await;
    expect((status, body.clone()), 422, "poor_quality");
    assert_eq!(body["error"]["details"]["reason"], "not_frontal", "{body}");
    let largest =
        register_form(registry_photo("insightface/t1.jpg"), "Largest").text("face", "largest");
    assert_eq!(
        server.post_form("/v1/register", largest).await.status(),
        201
    );
    let no_consent = photo_form(yao.clone()).text("name", "Yao Ming");
    expect(
        json(server.post_form("/v1/register", no_consent).await).await,
        422,
        "consent_required",
    );
    let tiny = image::load_from_memory(&yao).unwrap().resize(
        70,
        70,
        image::imageops::FilterType::Triangle,
    );
    let (status, body) = json(
        server
            .post_form(
                "/v1/register",
                register_form(encode(tiny, image::ImageFormat::Png), "Small"),
            )
            .await,
    )
    .await;
    expect((status, body.clone()), 422, "poor_quality");
    assert_eq!(body["error"]["details"]["reason"], "too_small", "{body}");

    // Conflicts and unknown ids.
    let form = register_form(yao.clone(), "Yao Ming").text("external_id", "nba-11");
    let (status, body) = json(server.post_form("/v1/register", form).await).await;
    assert_eq!(status, 201, "{body}");
    let form = register_form(registry_photo("insightface/t1.jpg"), "Someone")
        .text("external_id", "nba-11")
        .text("face", "largest");
    expect(
        json(server.post_form("/v1/register", form).await).await,
        409,
        "duplicate_external_id",
    );
    let unknown = "01890000-0000-7000-8000-000000000000";
    expect(
        json(server.get(&format!("/v1/persons/{unknown}")).await).await,
        404,
        "person_not_found",
    );
    expect(
        json(server.delete(&format!("/v1/faces/{unknown}")).await).await,
        404,
        "face_not_found",
    );
    expect(
        json(server.get("/v1/persons/not-a-uuid").await).await,
        400,
        "invalid_request",
    );
    expect(
        json(server.get("/v1/nothing-here").await).await,
        404,
        "not_found",
    );
    let form = photo_form(yao)
        .text("person_id", unknown)
        .text("consent", "true");
    expect(
        json(server.post_form("/v1/register", form).await).await,
        404,
        "person_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_key() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            "rate-limit-test-key-0001",
            "--rate-limit-per-minute",
            "3",
        ],
    )
    .await;
    let statuses: Vec<u16> = futures_statuses(&server, 5).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    let response = server.get("/v1/persons").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(json(response).await.1["error"]["code"], "rate_limited");
}

async fn futures_statuses(server: &Server, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(server.get("/v1/persons").await.status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_beyond_the_queue_gets_503_and_the_server_stays_healthy() {
    let server =
        std::sync::Arc::new(Server::start(Db::Sqlite, &["--workers", "1", "--queue", "1"]).await);
    let players = registry_photo("vectron/players.jpg");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (server, players) = (server.clone(), players.clone());
        tasks.push(tokio::spawn(async move {
            let response = server.post_form("/v1/recognize", photo_form(players)).await;
            let retry_after = response.headers().contains_key("retry-after");
            let (status, body) = json(response).await;
            (status, retry_after, body)
        }));
    }
    let mut ok = 0;
    let mut busy = 0;
    for task in tasks {
        let (status, retry_after, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(retry_after, "503 says when to retry");
                assert_eq!(body["error"]["code"], "overloaded");
                busy += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    assert_eq!(server.get("/health").await.status(), 200);
    let after = server
        .post_form(
            "/v1/recognize",
            photo_form(registry_photo("vectron/yaoming.jpg")),
        )
        .await;
    assert_eq!(after.status(), 200, "the server recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates_and_lists_every_route() {
    let server = Server::start(Db::Sqlite, &[]).await;
    let text = server.get("/openapi.json").await.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    let paths = spec.paths.expect("paths");
    for (path, methods) in [
        ("/health", vec!["get"]),
        ("/ready", vec!["get"]),
        ("/v1/register", vec!["post"]),
        ("/v1/recognize", vec!["post"]),
        ("/v1/verify", vec!["post"]),
        ("/v1/detect", vec!["post"]),
        ("/v1/persons", vec!["get"]),
        ("/v1/persons/{id}", vec!["get", "patch", "delete"]),
        ("/v1/persons/{id}/faces", vec!["get", "post"]),
        ("/v1/faces/{id}", vec!["delete"]),
        ("/v1/stream/ticket", vec!["post"]),
        ("/v1/stream", vec!["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} documented"));
        for method in methods {
            let op = match method {
                "get" => &item.get,
                "post" => &item.post,
                "patch" => &item.patch,
                _ => &item.delete,
            };
            assert!(op.is_some(), "{method} {path} documented");
        }
    }
    // Every operation says what it does in a line (#32, 4); every keyed one reads the collection
    // header; refusals that say when to retry document Retry-After.
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(summary.len() > 10, "{method} {path} has no summary");
            if !path.starts_with("/v1/") {
                continue;
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                parameters
                    .iter()
                    .any(|p| p["name"] == "X-Facerec-Collection" && p["in"] == "header"),
                "{method} {path} documents X-Facerec-Collection"
            );
            let overloaded = &operation["responses"]["429"];
            if overloaded.is_object() {
                assert!(
                    overloaded["headers"]["Retry-After"].is_object(),
                    "{method} {path}: 429 says Retry-After"
                );
            }
        }
    }
    assert!(operations >= 28, "{operations}");
    // Each route's error set is its own: registration's refusals are not recognition's.
    let refusals = |path: &str, method: &str| {
        document["paths"][path][method]["responses"]["422"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(refusals("/v1/register", "post").contains("consent_required"));
    for code in [
        "consent_required",
        "multiple_faces",
        "poor_quality",
        "invalid_person",
    ] {
        assert!(
            !refusals("/v1/recognize", "post").contains(code),
            "recognition does not answer {code}"
        );
    }
    assert!(refusals("/v1/persons/{id}", "patch").contains("invalid_person"));
    // Where the operations are, and the request id every answer carries.
    assert_eq!(document["servers"][0]["url"], "/");
    let answer = &document["paths"]["/v1/recognize"]["post"]["responses"]["200"];
    assert!(answer["headers"]["x-request-id"].is_object(), "{answer}");
    // Every property of every schema says what it is (formats and units included).
    let undescribed: Vec<String> = document["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(name, schema)| {
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            properties
                .into_iter()
                .filter(|(_, p)| {
                    // An optional schema of its own is `oneOf: [null, {$ref}]`, described there.
                    let one_of = p["oneOf"].as_array().cloned().unwrap_or_default();
                    p.get("description").is_none()
                        && p.get("$ref").is_none()
                        && p.get("allOf").is_none()
                        && !one_of.iter().any(|m| m.get("description").is_some())
                })
                .map(move |(property, _)| format!("{name}.{property}"))
        })
        .collect();
    assert!(
        undescribed.is_empty(),
        "without a description: {undescribed:?}"
    );
    // Error codes and scopes are enums, from their tables.
    let schemas = &document["components"]["schemas"];
    let codes = schemas["ErrorDetail"]["properties"]["code"]["enum"]
        .as_array()
        .expect("the error codes are an enum");
    assert_eq!(codes.len(), facerec_core::ErrorCode::ALL.len());
    assert!(codes.iter().any(|c| c == "idempotency_key_reused"));
    let scopes = &schemas["KeyDto"]["properties"]["scopes"]["items"]["enum"];
    assert_eq!(
        scopes,
        &serde_json::json!(["recognize", "enroll", "manage", "embeddings", "admin"]),
        "{scopes}"
    );
    let register = &document["paths"]["/v1/register"]["post"]["parameters"];
    assert!(
        register
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key"),
        "{register}"
    );
    let docs = server.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("cdn") && !html.contains("unpkg"),
        "no CDN: the page works offline"
    );
    assert_eq!(
        server.get("/docs/swagger-ui-bundle.js").await.status(),
        200,
        "assets served by the binary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let server = Server::start(Db::Sqlite, &["--workers", "1"]).await;
    let request = server.post_form(
        "/v1/recognize",
        photo_form(registry_photo("vectron/players.jpg")),
    );
    let pid = server.pid();
    let signal = async move {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    };
    let (response, ()) = tokio::join!(request, signal);
    assert_eq!(response.status(), 200, "the request in flight completes");
    let after = server
        .client
        .get(format!("{}/health", server.url))
        .send()
        .await;
    assert!(after.is_err(), "and then the server is gone");
}
