//! The WebSocket stream, spoken to by a Rust client: names on stable tracks, strangers unknown, bad
//! frames answered with an error on an open connection, and floods skipped rather than queued.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::video::frame_from;
use support::*;
use tokio_tungstenite::tungstenite::Message;

async fn register_yao(server: &Server) {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "yao.jpg"),
        )
        .text("name", "Yao Ming")
        .text("consent", "true");
    assert_eq!(server.post_form("/v1/register", form).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_person_is_named_on_a_stable_track() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            "stream-test-key-0001",
            "--stream-max-fps",
            "1000",
        ],
    )
    .await;
    register_yao(&server).await;
    assert!(
        open_stream(&server, "", None).await.is_err(),
        "no key, no stream"
    );
    let mut socket = open_stream(&server, "", Some("stream-test-key-0001"))
        .await
        .unwrap();
    let frame = frame_from(&registry_photo("vectron/yaoming.jpg"));
    let mut track = None;
    let mut embedded = 0;
    for n in 1..=12u64 {
        socket
            .send(Message::Binary(frame.clone().into()))
            .await
            .unwrap();
        let answer = reply(&mut socket).await;
        assert_eq!(answer["frame"], n, "{answer}");
        assert_eq!(answer["skipped"], 0);
        assert!(answer["took_ms"].as_f64().unwrap() > 0.0);
        let faces = answer["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{answer}");
        assert_eq!(faces[0]["match"]["name"], "Yao Ming", "frame {n}: {answer}");
        let id = faces[0]["track_id"].as_u64().unwrap();
        assert_eq!(*track.get_or_insert(id), id, "one track across frames");
        embedded += answer["embedded"].as_u64().unwrap();
    }
    assert!(
        embedded <= 3,
        "a steady face is embedded when it appears and every 10 frames, not {embedded} times"
    );

    // A stranger stays unknown.
    socket
        .send(Message::Binary(
            frame_from(&registry_photo("insightface/t1.jpg")).into(),
        ))
        .await
        .unwrap();
    let answer = reply(&mut socket).await;
    let faces = answer["faces"].as_array().unwrap();
    assert!(
        !faces.is_empty() && faces.iter().all(|f| f["match"].is_null()),
        "{answer}"
    );

    // Bad input is answered, and the connection stays open.
    socket
        .send(Message::Binary(b"this is not a jpeg".to_vec().into()))
        .await
        .unwrap();
    let answer = reply(&mut socket).await;
    assert_eq!(answer["error"]["code"], "unsupported_format", "{answer}");
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(reply(&mut socket).await["error"]["code"], "invalid_message");
    socket
        .send(Message::Binary(frame.clone().into()))
        .await
        .unwrap();
    assert_eq!(
        reply(&mut socket).await["faces"][0]["match"]["name"],
        "Yao Ming"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_use_one_time_tickets() {
    let server = Server::start(Db::Sqlite, &["--api-keys", "stream-test-key-0001"]).await;
    let (status, body) = json(
        server
            .client
            .post(format!("{}/v1/stream/ticket", server.url))
            .bearer_auth("stream-test-key-0001")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap();
    assert!(open_stream(&server, &format!("?ticket={ticket}"), None)
        .await
        .is_ok());
    assert!(
        open_stream(&server, &format!("?ticket={ticket}"), None)
            .await
            .is_err(),
        "a ticket works once"
    );
    let unauthorized = server
        .client
        .post(format!("{}/v1/stream/ticket", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_faster_than_processing_are_skipped_not_queued() {
    let server = Server::start(Db::Sqlite, &["--stream-max-fps", "10000", "--workers", "1"]).await;
    register_yao(&server).await;
    let mut socket = open_stream(&server, "", None).await.unwrap();
    let frame = frame_from(&registry_photo("vectron/players.jpg"));
    let sent = 40u64;
    for _ in 0..sent {
        socket
            .send(Message::Binary(frame.clone().into()))
            .await
            .unwrap();
    }
    let mut answers = 0u64;
    let mut skipped = 0u64;
    loop {
        let answer = reply(&mut socket).await;
        answers += 1;
        skipped += answer["skipped"].as_u64().unwrap();
        if answer["frame"] == sent {
            break;
        }
    }
    assert_eq!(
        answers + skipped,
        sent,
        "every frame is either answered or counted as skipped"
    );
    assert!(
        skipped > sent / 2,
        "a flood is mostly skipped ({skipped} of {sent}), so latency stays bounded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_and_too_many_streams_are_refused_politely() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--stream-max-frame-bytes",
            "100000",
            "--stream-max-streams",
            "1",
        ],
    )
    .await;
    let mut socket = open_stream(&server, "", None).await.unwrap();
    socket
        .send(Message::Binary(vec![0xFF; 150_000].into()))
        .await
        .unwrap();
    assert_eq!(reply(&mut socket).await["error"]["code"], "frame_too_large");
    assert!(
        open_stream(&server, "", None).await.is_err(),
        "the one stream slot is taken"
    );
    socket
        .send(Message::Binary(
            frame_from(&registry_photo("vectron/yaoming.jpg")).into(),
        ))
        .await
        .unwrap();
    assert!(reply(&mut socket).await["faces"].is_array(), "still open");
}

async fn ticket(server: &Server, key: &str) -> String {
    let response = server
        .client
        .post(format!("{}/v1/stream/ticket", server.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    body["ticket"].as_str().unwrap().to_owned()
}

fn refused_status(err: tokio_tungstenite::tungstenite::Error) -> u16 {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_are_closed_and_their_slot_freed() {
    let server = Server::start(
        Db::Sqlite,
        &["--stream-idle-secs", "1", "--stream-max-streams", "1"],
    )
    .await;
    let mut idle = open_stream(&server, "", None).await.expect("a slot");
    assert_eq!(
        refused_status(open_stream(&server, "", None).await.unwrap_err()),
        503,
        "the only slot is taken"
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match idle.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.reason.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the idle stream is closed");
    assert!(closed.contains("no frame"), "{closed}");
    // The slot is free again (the server may need a moment to notice the socket is gone).
    let mut again = None;
    for _ in 0..20 {
        if let Ok(socket) = open_stream(&server, "", None).await {
            again = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a new client gets the freed slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_keeps_its_ticket_and_one_key_cannot_take_every_slot() {
    let server = Server::start(
        Db::Sqlite,
        &[
            "--api-keys",
            "first-key-0123456789,second-key-0123456789",
            "--stream-max-streams",
            "3",
            "--stream-max-streams-per-key",
            "2",
        ],
    )
    .await;
    let a1 = open_stream(&server, "", Some("first-key-0123456789"))
        .await
        .expect("slot 1");
    let _a2 = open_stream(&server, "", Some("first-key-0123456789"))
        .await
        .expect("slot 2");
    let ticket_a = ticket(&server, "first-key-0123456789").await;
    let refused = open_stream(&server, &format!("?ticket={ticket_a}"), None)
        .await
        .unwrap_err();
    assert_eq!(refused_status(refused), 429, "a third stream for one key");
    let _b1 = open_stream(&server, "", Some("second-key-0123456789"))
        .await
        .expect("another key still gets the free slot");
    drop(a1);
    let mut reopened = None;
    for _ in 0..20 {
        match open_stream(&server, &format!("?ticket={ticket_a}"), None).await {
            Ok(socket) => {
                reopened = Some(socket);
                break;
            }
            // Until the server sees the first stream gone: all slots, or the key's, are taken.
            Err(e) => assert!([429, 503].contains(&refused_status(e))),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reopened.is_some(),
        "the ticket refused for want of a slot still opens a stream"
    );
    let spent = open_stream(&server, &format!("?ticket={ticket_a}"), None)
        .await
        .unwrap_err();
    assert_eq!(refused_status(spent), 401, "and only once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_beyond_the_key_budget_are_refused_on_an_open_socket() {
    let server = Server::start(Db::Sqlite, &["--stream-max-frames-per-sec-per-key", "2"]).await;
    let frame = frame_from(&registry_photo("vectron/yaoming.jpg"));
    let mut socket = open_stream(&server, "", None).await.unwrap();
    for _ in 0..8 {
        socket.send(Message::binary(frame.clone())).await.unwrap();
    }
    // Every refused frame is answered; of the two within budget one or both are processed (a newer
    // frame may replace one still waiting), so at least 7 answers come.
    let (mut limited, mut processed) = (0, 0);
    while limited + processed < 7 {
        let answer = reply(&mut socket).await;
        match answer["error"]["code"].as_str() {
            Some("rate_limited") => limited += 1,
            Some(other) => panic!("unexpected error {other}"),
            None => processed += 1,
        }
    }
    assert!(processed >= 1, "frames within the budget are processed");
    assert!(
        limited >= 5,
        "8 frames at once, a budget of 2 a second: {limited} refused"
    );
    // The budget refills; the same socket serves again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    socket.send(Message::binary(frame)).await.unwrap();
    loop {
        let answer = reply(&mut socket).await;
        if answer["error"].is_null() && answer["faces"].as_array().is_some_and(|f| f.len() == 1) {
            break;
        }
    }
}
