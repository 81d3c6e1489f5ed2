//! Captured faces (#28) on a running server over both backends: off until a collection turns
//! capture on; then unknown faces are kept, grouped into a cluster whose id the answer gives,
//! sightings from one source merged; a cluster named becomes a person who is then recognized;
//! "not this person" changes the answer while the rejected capture is held; captures are bounded,
//! isolated between collections, need `manage`, and go with their person; bad input answers the
//! error table's codes.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

const KEY: &str = "captures-operator-key-0123456789";

/// `POST /v1/recognize` of a fixture photo from `source`: the answer (200 asserted).
async fn recognize(server: &Server, photo: &str, source: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(registry_photo(photo), "photo.jpg"))
        .text("source", source.to_owned());
    let response = server
        .client
        .post(format!("{}/v1/recognize", server.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    call(server, Method::GET, path, KEY, None).await
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    call(server, Method::POST, path, KEY, Some(body)).await
}

async fn set_capture(server: &Server, settings: Value) {
    let (status, body) = call(
        server,
        Method::PATCH,
        "/v1/collections/default",
        KEY,
        Some(json!({ "settings": settings })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The captures listed by `query` once there are `n` (they are written off the answer's path).
async fn captures_when(server: &Server, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) = get(server, &format!("/v1/captures{query}")).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap().clone();
        if items.len() == n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = get(server, &format!("/v1/captures{query}")).await;
    panic!("expected {n} captures for {query}, got {body}");
}

/// The sightings a capture stands for, once they reach `n`.
async fn sightings_when(server: &Server, id: &str, n: u64) {
    for _ in 0..100 {
        let (_, body) = get(server, &format!("/v1/captures/{id}")).await;
        if body["sightings"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("capture {id} never reached {n} sightings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_captured_grouped_named_and_then_recognized() {
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &["--api-keys", KEY]).await;

        // Off by default: nothing is kept, and the answer names no cluster.
        let answer = recognize(&server, "vectron/yaoming.jpg", "door").await;
        assert!(answer["faces"][0].get("unknown").is_none(), "{answer}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(captures_when(&server, "", 0).await.is_empty());

        set_capture(&server, json!({ "capture": "unknown" })).await;
        let first = recognize(&server, "vectron/yaoming.jpg", "door").await;
        let unknown = &first["faces"][0]["unknown"];
        assert_eq!(unknown["seen"], 1, "{first}");
        let cluster = unknown["cluster_id"].as_str().unwrap().to_owned();
        let captured = captures_when(&server, "", 1).await;
        assert_eq!(captured[0]["status"], "unknown");
        assert_eq!(captured[0]["source"], "door");
        assert_eq!(captured[0]["cluster_id"], cluster.as_str());
        assert_eq!(captured[0]["route"], "/v1/recognize");
        let door = captured[0]["id"].as_str().unwrap().to_owned();
        // The answer named the capture it kept.
        assert_eq!(first["faces"][0]["capture_id"], door.as_str(), "{first}");

        // The same face from the same source moments later is the same sighting, counted; the id
        // its answer gave names that capture too.
        let again = recognize(&server, "vectron/yaoming.jpg", "door").await;
        assert_eq!(again["faces"][0]["unknown"]["cluster_id"], cluster.as_str());
        assert_eq!(again["faces"][0]["unknown"]["seen"], 2);
        sightings_when(&server, &door, 2).await;
        let alias = again["faces"][0]["capture_id"].as_str().unwrap();
        assert_ne!(alias, door);
        let (status, merged) = get(&server, &format!("/v1/captures/{alias}")).await;
        assert_eq!(status, 200, "{merged}");
        assert_eq!(merged["id"], door.as_str());
        // From another source: another capture, in the same cluster.
        let garden = recognize(&server, "vectron/yaoming.jpg", "garden").await;
        assert_eq!(
            garden["faces"][0]["unknown"]["cluster_id"],
            cluster.as_str()
        );
        assert_eq!(garden["faces"][0]["unknown"]["seen"], 3);
        let captured = captures_when(&server, "", 2).await;
        assert!(captured.iter().all(|c| c["cluster_id"] == cluster.as_str()));

        let (status, clusters) = get(&server, "/v1/clusters").await;
        assert_eq!(status, 200, "{clusters}");
        let listed = &clusters["items"][0];
        assert_eq!(listed["id"], cluster.as_str());
        assert_eq!(
            (listed["count"].as_u64(), listed["seen"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(listed["sources"], json!(["door", "garden"]));
        assert_eq!(clusters["next_offset"], json!(null), "{clusters}");
        let (status, past) = get(&server, "/v1/clusters?offset=1").await;
        assert_eq!((status, past["items"].as_array().unwrap().len()), (200, 0));
        let (status, _) = get(&server, "/v1/clusters?offset=100001").await;
        assert_eq!(status, 400);

        // The chip: a JPEG of the face, never cached.
        let response = server
            .client
            .get(format!("{}/v1/captures/{door}/image", server.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let chip = response.bytes().await.unwrap();
        let decoded = image::load_from_memory(&chip).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (112, 112));

        // Search back in time: by photo, and from one source only.
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/yaoming.jpg"), "p.jpg"),
            )
            .text("source", "garden");
        let (status, found) = json(server.post_form("/v1/captures/search", form).await).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
        assert_eq!(found["items"][0]["capture"]["source"], "garden");

        // Naming the cluster needs consent, as a registration does.
        let name = format!("/v1/clusters/{cluster}/name");
        let (status, body) = post(&server, &name, json!({ "name": "Yao Ming" })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("consent_required")),
            "{body}"
        );
        let (status, named) = post(
            &server,
            &name,
            json!({ "name": "Yao Ming", "consent": true, "consent_basis": "asked at the door" }),
        )
        .await;
        assert_eq!(status, 201, "{named}");
        assert!(named["faces_added"].as_u64().unwrap() >= 1, "{named}");
        let yao = named["person"]["id"].as_str().unwrap().to_owned();
        assert!(named["captures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "known"
                && c["has_image"] == false
                && c["person_id"] == yao.as_str()));
        // Named: recognized from now on, and the chips are gone.
        let recognized = recognize(&server, "vectron/yaoming.jpg", "door").await;
        assert_eq!(
            recognized["faces"][0]["match"]["name"], "Yao Ming",
            "{recognized}"
        );
        expect(
            get(&server, &format!("/v1/captures/{door}/image")).await,
            409,
            "capture_conflict",
        );
        expect(
            get(&server, &format!("/v1/clusters/{cluster}")).await,
            404,
            "cluster_not_found",
        );
        // Naming again what is named: refused, nothing changed.
        let assign = json!({ "capture_ids": [door], "person_id": yao });
        expect(
            post(&server, "/v1/captures/assign", assign).await,
            409,
            "capture_conflict",
        );

        // Not this person: Yao's face in the group photo, named Yao, is rejected; the same face
        // is then closer to the rejected capture than to Yao's own faces, and is not named Yao.
        set_capture(&server, json!({ "capture": "all" })).await;
        // Yao's face: the one most like him (he is the only person registered).
        let yao_in = |answer: &Value| -> Value {
            let likeness = |f: &&Value| f["candidates"][0]["similarity"].as_f64().unwrap_or(-1.0);
            answer["faces"]
                .as_array()
                .unwrap()
                .iter()
                .max_by(|a, b| likeness(a).total_cmp(&likeness(b)))
                .cloned()
                .unwrap_or_else(|| panic!("faces: {answer}"))
        };
        let group = recognize(&server, "vectron/players.jpg", "gate").await;
        assert_eq!(yao_in(&group)["match"]["name"], "Yao Ming", "{group}");
        let known = captures_when(&server, "?status=known&source=gate", 1).await;
        let gate = known[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(known[0]["person_id"], yao.as_str());
        let (status, rejected) =
            post(&server, &format!("/v1/captures/{gate}/reject"), json!({})).await;
        assert_eq!(status, 200, "{rejected}");
        assert_eq!(rejected["status"], "rejected");
        assert_eq!(rejected["rejected_person_id"], yao.as_str());
        assert!(rejected["cluster_id"].is_string());
        let (_, calibration) = get(&server, "/v1/calibration").await;
        assert_eq!(calibration["observed_false_matches"], 1, "{calibration}");
        let overruled = recognize(&server, "vectron/players.jpg", "porch").await;
        let face = yao_in(&overruled);
        assert!(face["match"].is_null(), "{overruled}");
        assert_eq!(face["feedback_applied"], true);
        // The photo Yao was named from is still Yao's: it is closer to his faces.
        let own = recognize(&server, "vectron/yaoming.jpg", "porch").await;
        assert_eq!(own["faces"][0]["match"]["name"], "Yao Ming", "{own}");
        // Once the rejection is no longer held, the answer is as before.
        let (status, _) = call(
            &server,
            Method::DELETE,
            &format!("/v1/captures/{gate}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let restored = recognize(&server, "vectron/players.jpg", "porch").await;
        let face = yao_in(&restored);
        assert_eq!(face["match"]["name"], "Yao Ming", "{restored}");
        assert!(face.get("feedback_applied").is_none());

        // Search by a person: when and where they were seen.
        let (status, found) =
            post(&server, "/v1/captures/search", json!({ "person_id": yao })).await;
        assert_eq!(status, 200, "{found}");
        assert!(!found["items"].as_array().unwrap().is_empty(), "{found}");

        // Bounded: the oldest go first.
        set_capture(&server, json!({ "capture": "all", "capture_max": 1 })).await;
        recognize(&server, "vectron/gdp.jpg", "bounded").await;
        let held = captures_when(&server, "", 1).await;
        assert_eq!(held[0]["source"], "bounded");

        // A person's export lists the captures named for them; deleting the person deletes them.
        recognize(&server, "vectron/yaoming.jpg", "last").await;
        let theirs = captures_when(&server, &format!("?person_id={yao}"), 1).await;
        let (status, export) = get(&server, &format!("/v1/persons/{yao}/export")).await;
        assert_eq!(status, 200, "{export}");
        assert_eq!(export["captures"][0]["id"], theirs[0]["id"], "{export}");
        let (status, _) = call(
            &server,
            Method::DELETE,
            &format!("/v1/persons/{yao}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 200);
        captures_when(&server, &format!("?person_id={yao}"), 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_are_a_collections_own_need_manage_and_refuse_bad_input() {
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &["--api-keys", KEY]).await;
        set_capture(&server, json!({ "capture": "unknown" })).await;
        recognize(&server, "vectron/yaoming.jpg", "door").await;
        let captured = captures_when(&server, "", 1).await;
        let id = captured[0]["id"].as_str().unwrap().to_owned();
        let cluster = captured[0]["cluster_id"].as_str().unwrap().to_owned();

        // Another collection's keys see nothing of it (404, as if missing)…
        new_collection(&server, KEY, "elsewhere").await;
        let theirs = new_key(&server, KEY, "elsewhere", &["recognize", "manage"]).await;
        for path in [
            format!("/v1/captures/{id}"),
            format!("/v1/captures/{id}/image"),
            format!("/v1/clusters/{cluster}"),
        ] {
            let answer = call(&server, Method::GET, &path, &theirs, None).await;
            assert_eq!(answer.0, 404, "{path}: {}", answer.1);
        }
        let (status, listed) = call(&server, Method::GET, "/v1/captures", &theirs, None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["items"], json!([]));
        // …and a key without `manage` cannot review at all.
        let recognizer = new_key(&server, KEY, "default", &["recognize"]).await;
        let answer = call(&server, Method::GET, "/v1/captures", &recognizer, None).await;
        expect(answer, 403, "insufficient_scope");

        // Bad input: the error table's codes, never a 500.
        expect(
            get(&server, "/v1/captures/not-a-uuid").await,
            400,
            "invalid_request",
        );
        let missing = "0190a5f0-0000-7000-8000-000000000000";
        expect(
            get(&server, &format!("/v1/captures/{missing}")).await,
            404,
            "capture_not_found",
        );
        expect(
            get(&server, &format!("/v1/clusters/{missing}")).await,
            404,
            "cluster_not_found",
        );
        expect(
            get(&server, "/v1/captures?limit=0").await,
            400,
            "invalid_request",
        );
        expect(
            get(&server, "/v1/captures?limit=100000").await,
            400,
            "invalid_request",
        );
        expect(
            get(&server, "/v1/captures?status=maybe").await,
            400,
            "invalid_request",
        );
        expect(
            get(&server, "/v1/captures?source=a%20b").await,
            400,
            "invalid_request",
        );
        let reject = format!("/v1/captures/{id}/reject");
        expect(
            post(&server, &reject, json!({})).await,
            409,
            "capture_conflict",
        );
        let assign = json!({ "capture_ids": [missing], "person_id": missing });
        expect(
            post(&server, "/v1/captures/assign", assign).await,
            404,
            "capture_not_found",
        );
        let assign = json!({ "capture_ids": [], "person_id": missing });
        expect(
            post(&server, "/v1/captures/assign", assign).await,
            400,
            "invalid_request",
        );
        let unknown_person = json!({ "person_id": missing });
        expect(
            post(&server, "/v1/captures/search", unknown_person).await,
            404,
            "person_not_found",
        );
        let blank = {
            let mut bytes = Vec::new();
            image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]))
                .write_to(
                    &mut std::io::Cursor::new(&mut bytes),
                    image::ImageFormat::Png,
                )
                .unwrap();
            bytes
        };
        let form = reqwest::multipart::Form::new().part("image", image_part(blank, "blank.png"));
        let answer = json(server.post_form("/v1/captures/search", form).await).await;
        expect(answer, 422, "no_face");
        let name = json!({ "name": "Nobody", "person_id": missing });
        expect(
            post(&server, &format!("/v1/clusters/{cluster}/name"), name).await,
            400,
            "invalid_request",
        );

        // A cluster deleted takes its captures; deleting the collection takes everything.
        let (status, deleted) = call(
            &server,
            Method::DELETE,
            &format!("/v1/clusters/{cluster}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(
            (status, deleted["captures_deleted"].as_u64()),
            (200, Some(1)),
            "{deleted}"
        );
        captures_when(&server, "", 0).await;

        // The compatible APIs' recognitions are captured too, under their route.
        let form = reqwest::multipart::Form::new().part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        );
        let (status, body) = json(server.post_form("/v1/vision/face/recognize", form).await).await;
        assert_eq!(status, 200, "{body}");
        let via = captures_when(&server, "", 1).await;
        assert_eq!(via[0]["route"], "deepstack");
        let capture = via[0]["id"].as_str().unwrap().to_owned();

        // Assigned to a registered person: named for them, their face, its chip gone; audited.
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
            )
            .text("name", "Somebody Else")
            .text("consent", "true")
            .text("face", "0");
        let (status, registered) = json(server.post_form("/v1/register", form).await).await;
        assert_eq!(status, 201, "{registered}");
        let person = registered["person"]["id"].as_str().unwrap().to_owned();
        let assign = json!({ "capture_ids": [capture], "person_id": person });
        let (status, assigned) = post(&server, "/v1/captures/assign", assign).await;
        assert_eq!(status, 200, "{assigned}");
        assert_eq!(assigned["faces_added"], 1, "{assigned}");
        let named = &assigned["captures"][0];
        assert_eq!(named["status"], "known");
        assert_eq!(named["has_image"], false);
        assert_eq!(named["person_id"], person.as_str());
        let (_, faces) = get(&server, &format!("/v1/persons/{person}/faces")).await;
        assert_eq!(faces["items"].as_array().map_or(0, Vec::len), 2, "{faces}");
        let (_, audit) = get(&server, &format!("/v1/audit?person_id={person}")).await;
        let reviewed = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "captures_reviewed" && e["details"]["what"] == "assigned");
        assert!(reviewed, "{audit}");

        // A collection deleted takes its captures and clusters with it.
        let gone = new_collection(&server, KEY, "gone").await;
        let settings = json!({ "settings": { "capture": "unknown" } });
        let path = format!("/v1/collections/{gone}");
        let (status, _) = call(&server, Method::PATCH, &path, KEY, Some(settings)).await;
        assert_eq!(status, 200);
        let form = reqwest::multipart::Form::new().part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "y.jpg"),
        );
        let response = server
            .client
            .post(format!("{}/v1/recognize", server.url))
            .bearer_auth(KEY)
            .header("x-facerec-collection", "gone")
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, answer) = json(response).await;
        assert_eq!(status, 200, "{answer}");
        let stranger = answer["faces"][0]["unknown"]["cluster_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = call(&server, Method::DELETE, &path, KEY, None).await;
        assert_eq!(status, 200);
        expect(
            get(&server, &format!("/v1/clusters/{stranger}")).await,
            404,
            "cluster_not_found",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_one_capture_per_track_and_register_takes_the_nth_face() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &["--api-keys", KEY]).await;
        set_capture(&server, json!({ "capture": "all" })).await;

        // Twenty frames of one face: one track, one capture (its best face), not twenty.
        let mut socket = open_stream(&server, "?source=webcam", Some(KEY))
            .await
            .unwrap();
        let frame = support::video::frame_from(&registry_photo("vectron/yaoming.jpg"));
        for _ in 0..20 {
            socket
                .send(Message::Binary(frame.clone().into()))
                .await
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(30), socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(answer.is_text(), "{answer:?}");
        }
        let kept = captures_when(&server, "?source=webcam", 1).await;
        assert_eq!(kept[0]["route"], "stream");
        assert_eq!(kept[0]["status"], "unknown");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(captures_when(&server, "?source=webcam", 1).await.len(), 1);
        let bad_source = open_stream(&server, "?source=a%20b", Some(KEY)).await;
        assert!(
            bad_source.is_err(),
            "a bad source is refused at the handshake"
        );

        // face=<n>: the n-th face in the order /v1/detect answers for the same photo.
        let form = reqwest::multipart::Form::new().part(
            "image",
            image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
        );
        let (status, detected) = json(server.post_form("/v1/detect", form).await).await;
        assert_eq!(status, 200, "{detected}");
        let faces = detected["faces"].as_array().unwrap();
        let n = 3;
        let register = |face: String| {
            reqwest::multipart::Form::new()
                .part(
                    "image",
                    image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
                )
                .text("name", "Third Player")
                .text("consent", "true")
                .text("face", face)
        };
        let (status, registered) = json(
            server
                .post_form("/v1/register", register(n.to_string()))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{registered}");
        assert_eq!(registered["face"]["bbox"], faces[n]["bbox"], "{registered}");
        let answer = recognize(&server, "vectron/players.jpg", "check").await;
        let named: Vec<usize> = answer["faces"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, f)| f["match"]["name"] == "Third Player")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(named, vec![n], "{answer}");
        let beyond = faces.len().to_string();
        let answer = json(server.post_form("/v1/register", register(beyond)).await).await;
        expect(answer, 400, "invalid_request");
        let answer = json(
            server
                .post_form("/v1/register", register("first".into()))
                .await,
        )
        .await;
        expect(answer, 400, "invalid_request");

        // face=<x1>,<y1>,<x2>,<y2>: the face a box (here a detected one, a little off) overlaps
        // most; a box around no face, or one that is not a box, is refused.
        let m = 5;
        let b: Vec<f64> = faces[m]["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let boxed = reqwest::multipart::Form::new()
            .part(
                "image",
                image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
            )
            .text("name", "Sixth Player")
            .text("consent", "true")
            .text(
                "face",
                format!(
                    "{},{},{},{}",
                    b[0] + 2.0,
                    b[1] - 2.0,
                    b[2] + 3.0,
                    b[3] + 1.0
                ),
            );
        let (status, registered) = json(server.post_form("/v1/register", boxed).await).await;
        assert_eq!(status, 201, "{registered}");
        assert_eq!(registered["face"]["bbox"], faces[m]["bbox"], "{registered}");
        for bad in ["1,1,5,5", "10,10,5,5", "1,2,3", "a,b,c,d"] {
            let answer = json(server.post_form("/v1/register", register(bad.into())).await).await;
            expect(answer, 400, "invalid_request");
        }
    }
}

/// Over shared/faces: every photo's face captured as a stranger (one source per photo, so none is
/// merged as the same sighting), all but one photo of each identity with three or more; the clusters
/// are then compared with the identities (purity: the share of captures in the cluster of their
/// identity's majority; completeness: the share in their identity's largest cluster), printed and
/// asserted; naming each identity's cluster makes the held-out photo recognized as them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared/faces; `make test` includes it where that folder exists"]
async fn strangers_cluster_by_identity_and_a_named_cluster_is_recognized() {
    use std::collections::{BTreeMap, HashMap};
    let images = shared_images().expect("../shared/faces/images");
    let mut identities: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&images).unwrap() {
        let dir = entry.unwrap().path();
        let mut photos: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        photos.sort();
        identities.insert(
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            photos,
        );
    }
    for db in [Db::Sqlite, Db::Postgres] {
        let server = Server::start(db, &["--api-keys", KEY]).await;
        set_capture(&server, json!({ "capture": "unknown" })).await;
        let mut identity_of: HashMap<String, String> = HashMap::new();
        let mut held_out: Vec<(String, std::path::PathBuf)> = Vec::new();
        let mut sent = 0;
        for (identity, photos) in &identities {
            let (captured, kept) = match photos.len() {
                n if n >= 3 => (&photos[..n - 1], Some(&photos[n - 1])),
                _ => (&photos[..], None),
            };
            if let Some(photo) = kept {
                held_out.push((identity.clone(), photo.clone()));
            }
            for photo in captured {
                let source = format!("p{sent}");
                let form = reqwest::multipart::Form::new()
                    .part("image", image_part(std::fs::read(photo).unwrap(), "p.jpg"))
                    .text("source", source.clone())
                    .text("max_faces", "1");
                let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
                assert_eq!(status, 200, "{}: {body}", photo.display());
                if body["faces"].as_array().is_some_and(|f| !f.is_empty()) {
                    identity_of.insert(source, identity.clone());
                    sent += 1;
                }
            }
        }
        captures_when(&server, "?limit=500", sent.min(500)).await;

        // Each cluster's captures, by identity.
        let (status, clusters) = get(&server, "/v1/clusters?limit=500").await;
        assert_eq!(status, 200, "{clusters}");
        let mut counts: Vec<(String, HashMap<String, usize>)> = Vec::new();
        for cluster in clusters["items"].as_array().unwrap() {
            let id = cluster["id"].as_str().unwrap();
            let (_, members) =
                get(&server, &format!("/v1/captures?cluster_id={id}&limit=500")).await;
            let mut by_identity: HashMap<String, usize> = HashMap::new();
            for capture in members["items"].as_array().unwrap() {
                let identity = &identity_of[capture["source"].as_str().unwrap()];
                *by_identity.entry(identity.clone()).or_default() += 1;
            }
            counts.push((id.to_owned(), by_identity));
        }
        let total: usize = counts.iter().flat_map(|(_, c)| c.values()).sum();
        assert_eq!(total, sent, "every capture is in a cluster");
        let purity = counts
            .iter()
            .map(|(_, c)| c.values().max().copied().unwrap_or(0))
            .sum::<usize>() as f64
            / total as f64;
        let mut largest: HashMap<&str, (usize, &str)> = HashMap::new();
        for (id, by_identity) in &counts {
            for (identity, &n) in by_identity {
                let best = largest.entry(identity.as_str()).or_insert((0, id.as_str()));
                if n > best.0 {
                    *best = (n, id.as_str());
                }
            }
        }
        let completeness = largest.values().map(|(n, _)| n).sum::<usize>() as f64 / total as f64;
        println!(
            "clusters over shared/faces: {} captures of {} identities in {} clusters: purity {purity:.3}, completeness {completeness:.3}",
            total,
            largest.len(),
            counts.len()
        );
        assert!(purity >= 0.95, "purity {purity:.3}");

        // Name each held-out identity's largest cluster, where it is that cluster's majority.
        let majority = |cluster: &str| {
            counts
                .iter()
                .find(|(id, _)| id == cluster)
                .and_then(|(_, c)| c.iter().max_by_key(|(_, n)| **n).map(|(i, _)| i.clone()))
        };
        let (mut named, mut recognized) = (0, 0);
        for (identity, photo) in &held_out {
            let Some(&(_, cluster)) = largest.get(identity.as_str()) else {
                continue;
            };
            if majority(cluster).as_deref() != Some(identity.as_str()) {
                continue;
            }
            let name = json!({ "name": identity, "consent": true, "consent_basis": "test" });
            let (status, body) = post(&server, &format!("/v1/clusters/{cluster}/name"), name).await;
            assert_eq!(status, 201, "{identity}: {body}");
            named += 1;
            let form = reqwest::multipart::Form::new()
                .part("image", image_part(std::fs::read(photo).unwrap(), "p.jpg"))
                .text("max_faces", "1");
            let (_, answer) = json(server.post_form("/v1/recognize", form).await).await;
            if answer["faces"][0]["match"]["name"] == identity.as_str() {
                recognized += 1;
            }
        }
        println!("named {named} clusters; {recognized} held-out photos recognized as them");
        assert!(
            named >= held_out.len() * 8 / 10,
            "{named} of {}",
            held_out.len()
        );
        assert!(recognized * 10 >= named * 9, "{recognized} of {named}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_every_capture_it_wrote_each_with_its_chip() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite://{}/facerec.db", dir.path().display()),
        new_postgres_database().await,
    ] {
        let server = Server::start(Db::Url(url.clone()), &["--api-keys", KEY]).await;
        set_capture(&server, json!({ "capture": "unknown" })).await;
        // A group photo from ever new sources, concurrently, until the kill.
        let server = std::sync::Arc::new(server);
        let mut senders = Vec::new();
        for i in 0..12 {
            let server = std::sync::Arc::clone(&server);
            senders.push(tokio::spawn(async move {
                let form = reqwest::multipart::Form::new()
                    .part(
                        "image",
                        image_part(registry_photo("vectron/players.jpg"), "p.jpg"),
                    )
                    .text("source", format!("cam{i}"));
                let _ = server
                    .client
                    .post(format!("{}/v1/recognize", server.url))
                    .bearer_auth(KEY)
                    .multipart(form)
                    .send()
                    .await;
            }));
        }
        // Some captures written (seen through the API), then SIGKILL mid-flight.
        let mut written = 0;
        for _ in 0..200 {
            let (_, body) = get(&server, "/v1/captures?limit=500").await;
            written = body["items"].as_array().map_or(0, Vec::len);
            if written >= 22 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(written >= 22, "captures were written before the kill");
        assert!(std::process::Command::new("kill")
            .args(["-9", &server.pid().to_string()])
            .status()
            .unwrap()
            .success());
        for sender in senders {
            sender.await.unwrap();
        }
        drop(server);

        // Restarted on the same database: every capture seen before is there, each whole.
        let server = Server::start(Db::Url(url), &["--api-keys", KEY]).await;
        let (status, body) = get(&server, "/v1/captures?limit=500").await;
        assert_eq!(status, 200, "{body}");
        let kept = body["items"].as_array().unwrap();
        assert!(kept.len() >= written, "{} < {written}", kept.len());
        for capture in kept {
            assert_eq!(capture["has_image"], true);
            assert!(capture["cluster_id"].is_string(), "{capture}");
            let id = capture["id"].as_str().unwrap();
            let response = server
                .client
                .get(format!("{}/v1/captures/{id}/image", server.url))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let chip = response.bytes().await.unwrap();
            assert!(
                image::load_from_memory(&chip).is_ok(),
                "capture {id}'s chip decodes"
            );
        }
        let (_, clusters) = get(&server, "/v1/clusters?limit=500").await;
        let in_clusters: u64 = clusters["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum();
        assert_eq!(
            in_clusters as usize,
            kept.len(),
            "every capture in a cluster"
        );
    }
}
