//! The calibration's review scenarios that need a server (#33; the statistics themselves are tested
//! in `facerec_core::calibration` and by `crates/core/tests/calibration_coverage.rs`): every probe
//! counted on both backends however many faces its person has, replicas of different settings
//! each keeping their own calibration without recomputing in turn, a stream keeping the
//! calibration it opened with across a recalibration, and verify reporting the 1:1 rate.

mod support;

use std::time::{Duration, Instant};

use facerec_core::*;
use futures_util::{SinkExt, StreamExt};
use support::video::frame_from;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "calibration-safety-key-0123456789";

async fn get(server: &Server, path: &str) -> serde_json::Value {
    let (status, body) = call(server, reqwest::Method::GET, path, KEY, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn calibrate(server: &Server) -> serde_json::Value {
    let (status, body) = call(server, reqwest::Method::POST, "/v1/calibration", KEY, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits (at most a minute) until the calibration in force satisfies `ready`.
async fn calibration_where(
    server: &Server,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let calibration = get(server, "/v1/calibration").await;
        if ready(&calibration) {
            return calibration;
        }
        assert!(Instant::now() < deadline, "never ready: {calibration}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One person of `faces` faces close together (a probe's own faces outrank everyone else) and
/// `others` single-face persons, written to the default collection of the database at `url`.
async fn write_gallery_with_a_person_of_many_faces(url: &str, faces: usize, others: usize) {
    use rand::{Rng, SeedableRng};
    let store = facerec_store::open(url, &facerec_store::StoreOptions::default())
        .await
        .unwrap();
    let (c, operator, model) = (
        CollectionId::DEFAULT,
        Actor::local_operator(),
        served_model(),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut random = || -> Vec<f32> {
        (0..EMBEDDING_DIM)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect()
    };
    let unit = |v: &[f32]| facerec_types::NormalizedEmbedding::normalize(v).unwrap().0;
    let person = |name: String| NewPerson {
        name,
        external_id: None,
        metadata: serde_json::Value::Null,
        consent: Consent::given_now("synthetic").unwrap(),
    };
    let centre = random();
    let mut near = |i: usize| {
        let noise = random();
        let face: Vec<f32> = centre
            .iter()
            .zip(&noise)
            .map(|(c, n)| c + 0.3 * n)
            .collect();
        stored_face(unit(&face), &model, format!("many-{i}"))
    };
    let (many, _) = store
        .register(c, person("Many Faces".into()), near(0), &operator)
        .await
        .unwrap();
    for i in 1..faces {
        store
            .add_face(c, many.id, near(i), &operator)
            .await
            .unwrap();
    }
    for p in 0..others {
        let face = stored_face(unit(&random()), &model, format!("other-{p}"));
        store
            .register(c, person(format!("Other {p}")), face, &operator)
            .await
            .unwrap();
    }
}

/// The review's case 4: on PostgreSQL a search for k = 2 fetched 16 faces, all of them the
/// probe's own person's when they had 16 or more, so that person vanished from the sample. Their
/// own person is now left out in the search itself, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_is_counted_on_both_backends() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let url = if postgres {
            new_postgres_database().await
        } else {
            format!("sqlite://{}/facerec.db", dir.path().display())
        };
        write_gallery_with_a_person_of_many_faces(&url, 20, 30).await;
        let server = Server::start(Db::Url(url), &["--api-keys", KEY]).await;
        let calibration = calibrate(&server).await;
        assert_eq!(calibration["stranger_persons"], 31, "{calibration}");
        // Five probes of the person of twenty faces, one of each other person.
        assert_eq!(calibration["stranger_probes"], 35, "postgres: {postgres}");
    }
}

/// The review's case 6: two replicas whose settings differ each find their own recorded
/// calibration among the few kept, rather than recomputing whenever the other's is the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_different_settings_do_not_recalibrate_in_turn() {
    let url = new_postgres_database().await;
    fill(&url, "default", 40, 1).await;
    let replica = |floor: &'static str| {
        let url = url.clone();
        async move {
            let args = [
                "--api-keys",
                KEY,
                "--match-threshold",
                floor,
                "--calibration-check-secs",
                "1",
            ];
            Server::start(Db::Url(url), &args).await
        }
    };
    let (a, b) = (replica("0.3").await, replica("0.35").await);
    let first_a = calibration_where(&a, |c| c["persons"] == 40).await;
    let first_b = calibration_where(&b, |c| c["persons"] == 40).await;
    assert_eq!(first_a["floor_threshold"].as_f64(), Some(0.3));
    assert_eq!(first_b["floor_threshold"].as_f64(), Some(0.35));
    // Several looks of each replica later, each still serves the one it computed, and only the
    // two were ever recorded.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        get(&a, "/v1/calibration").await["computed_at"],
        first_a["computed_at"]
    );
    assert_eq!(
        get(&b, "/v1/calibration").await["computed_at"],
        first_b["computed_at"]
    );
    let mut db = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&url).await.unwrap()
    };
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM calibrations")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(recorded, 2, "one calibration per replica, none recomputed");
}

/// Registers a photo as a person through the API: their id.
async fn register(server: &Server, photo: &str, name: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(registry_photo(photo), "p.jpg"))
        .text("name", name.to_owned())
        .text("consent", "true");
    let (status, body) = json(server.post_form("/v1/register", form).await).await;
    assert_eq!(status, 201, "{body}");
    body["person"]["id"].as_str().unwrap().to_owned()
}

/// The curve's point at or just below `similarity`.
fn point_at(calibration: &serde_json::Value, similarity: f64) -> serde_json::Value {
    let curve = calibration["curve"].as_array().unwrap();
    curve
        .iter()
        .take_while(|p| p["threshold"].as_f64().unwrap() <= similarity)
        .last()
        .unwrap_or(&curve[0])
        .clone()
}

/// The review's case 8: verify reported the whole gallery's 1:N rate for a 1:1 comparison. Against
/// a registered person it now reports the pairwise false-match rate at that similarity (over the
/// person's faces); for two photos, nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_the_one_to_one_rate() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    fill(&url, "default", 40, 1).await;
    let server = Server::start(Db::Url(url), &["--api-keys", KEY]).await;
    let person = register(&server, "vectron/yaoming.jpg", "Yao Ming").await;
    let calibration = calibrate(&server).await;
    for photo in ["vectron/yaoming.jpg", "vectron/gdp.jpg"] {
        let form = reqwest::multipart::Form::new()
            .part("image", image_part(registry_photo(photo), "p.jpg"))
            .text("person_id", person.clone());
        let (status, verified) = json(server.post_form("/v1/verify", form).await).await;
        assert_eq!(status, 200, "{verified}");
        let similarity = verified["similarity"].as_f64().unwrap();
        let fmr = point_at(&calibration, similarity)["fmr"].as_f64().unwrap();
        let reported = verified["estimated_fmr"].as_f64().unwrap();
        // One face: one chance.
        assert!((reported - fmr).abs() < 1e-12, "{photo}: {verified}");
        assert!(verified.get("estimated_fpir").is_none());
    }
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "a.jpg"),
        )
        .part(
            "image2",
            image_part(registry_photo("vectron/gdp.jpg"), "b.jpg"),
        );
    let (status, verified) = json(server.post_form("/v1/verify", form).await).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["estimated_fmr"], serde_json::Value::Null);
}

/// The next match a stream answers (frames of the photo sent until one names someone).
async fn next_match(socket: &mut Socket, frame: &[u8]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        socket
            .send(Message::Binary(frame.to_vec().into()))
            .await
            .unwrap();
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await
        {
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(matched) = answer["faces"][0].get("match").filter(|m| !m.is_null()) {
                return matched.clone();
            }
        }
        assert!(Instant::now() < deadline, "no match");
    }
}

/// The review's case 5: a stream decides at the threshold of the calibration in force when it
/// opened, and its estimates come from that same calibration, across a recalibration to another
/// threshold; a stream opened afterwards decides at the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_the_calibration_it_opened_with() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    fill(&url, "default", 40, 1).await;
    let server = Server::start(
        Db::Url(url),
        &["--api-keys", KEY, "--calibration-check-secs", "1"],
    )
    .await;
    // The first look's calibration (one person more is too small a change for another).
    let before = calibration_where(&server, |c| c["persons"] == 40).await;
    register(&server, "vectron/yaoming.jpg", "Yao Ming").await;
    let frame = frame_from(&registry_photo("vectron/yaoming.jpg"));
    let mut socket = open_stream(&server, "", Some(KEY)).await.unwrap();
    let first = next_match(&mut socket, &frame).await;
    assert_eq!(first["threshold"], before["effective_threshold"]);

    // A higher floor: the background look recalibrates for it.
    let settings = serde_json::json!({ "settings": { "match_threshold": 0.6 } });
    let (status, body) = call(
        &server,
        reqwest::Method::PATCH,
        "/v1/collections/default",
        KEY,
        Some(settings),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = calibration_where(&server, |c| {
        c["floor_threshold"].as_f64() == Some(0.6) && c["persons"] == 41
    })
    .await;
    assert_ne!(after["effective_threshold"], before["effective_threshold"]);

    let later = next_match(&mut socket, &frame).await;
    assert_eq!(later["threshold"], before["effective_threshold"]);
    let similarity = later["similarity"].as_f64().unwrap();
    let of_before = point_at(&before, similarity);
    // A weak calibration gives no point estimate (40 random persons are weak).
    let expected = match before["weak"].as_bool().unwrap() {
        true => serde_json::Value::Null,
        false => of_before["fpir"].clone(),
    };
    assert_eq!(later["estimated_fpir"], expected);
    assert_eq!(later["estimated_fpir_upper"], of_before["fpir_upper"]);

    let mut fresh = open_stream(&server, "", Some(KEY)).await.unwrap();
    let renewed = next_match(&mut fresh, &frame).await;
    assert_eq!(renewed["threshold"], after["effective_threshold"]);
}
