//! A tenant that asks for calibrations as fast as it can (18 clients, a 10,000-face collection)
//! stops nobody: requests while one runs share it, more within a minute are refused (429), one
//! calibration computes at a time on the server and takes no upload permit, and another
//! collection's recognitions keep their answers (at least 95%) and their pace (median within 3x).

mod support;

use std::time::{Duration, Instant};

use support::*;

const OPERATOR: &str = "operator-key-0123456789";
const ATTACKERS: usize = 18;
const ATTACK: Duration = Duration::from_secs(15);

/// One recognition of a registered face in `small`: its status and how long it took.
async fn recognize(server: &Server) -> (u16, Duration) {
    let form = reqwest::multipart::Form::new().part(
        "image",
        image_part(registry_photo("vectron/yaoming.jpg"), "yao.jpg"),
    );
    let started = Instant::now();
    let response = server
        .client
        .post(format!("{}/v1/recognize", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", "small")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    (status, started.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calibration_spam_stops_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/facerec.db", dir.path().display());
    fill(&url, "big", 2_000, 5).await;
    // The default per-key rate limit stays on, as it would be in production; 200 persons sampled
    // keep a debug build's calibration within seconds.
    let server = Server::start(
        Db::Url(url),
        &["--api-keys", OPERATOR, "--calibration-max-persons", "200"],
    )
    .await;
    new_collection(&server, OPERATOR, "small").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            image_part(registry_photo("vectron/yaoming.jpg"), "yao.jpg"),
        )
        .text("name", "Yao Ming")
        .text("consent", "true");
    let registered = server
        .client
        .post(format!("{}/v1/register", server.url))
        .bearer_auth(OPERATOR)
        .header("x-facerec-collection", "small")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let tenant = new_key(&server, OPERATOR, "big", &["manage"]).await;

    let mut before = Vec::new();
    for _ in 0..10 {
        let (status, took) = recognize(&server).await;
        assert_eq!(status, 200);
        before.push(took);
    }
    let before = median(before);

    let until = Instant::now() + ATTACK;
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let (client, url, key) = (server.client.clone(), server.url.clone(), tenant.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                // Two requests at least: on a slow machine the run the first waits for may
                // outlast the attack, and the second is the one the minute's limit refuses.
                while Instant::now() < until || answers.len() < 2 {
                    let started = Instant::now();
                    let response = client
                        .post(format!("{url}/v1/calibration"))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    answers.push((status, retry_after, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut during = Vec::new();
    let mut refused = 0;
    while Instant::now() < until {
        let (status, took) = recognize(&server).await;
        if status == 200 {
            during.push(took);
        } else {
            refused += 1;
        }
    }
    let mut spam = Vec::new();
    for attacker in attackers {
        spam.extend(attacker.await.unwrap());
    }
    let ran: Vec<Duration> = spam
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, _, took)| *took)
        .collect();
    let limited = spam.iter().filter(|(s, _, _)| *s == 429).count();
    println!(
        "a calibration of the 10,000-face collection took {:?} at most; {} calibration requests: \
         {} answered it (shared), {limited} refused 429",
        ran.iter().max(),
        spam.len(),
        ran.len()
    );
    for (status, retry_after, _) in &spam {
        assert!(
            *status == 200 || (*status == 429 && *retry_after),
            "a calibration request answered {status}"
        );
    }
    assert!(!ran.is_empty(), "the first request ran a calibration");
    assert!(limited > 0, "later requests within a minute were refused");
    let answered = during.len() as f64 / (during.len() + refused) as f64;
    let pace = median(during.clone()).as_secs_f64() / before.as_secs_f64();
    println!(
        "another collection's recognitions during the attack: {} answered of {} ({:.1}%), median \
         {:?} against {before:?} before ({pace:.2}x)",
        during.len(),
        during.len() + refused,
        100.0 * answered,
        median(during.clone())
    );
    assert!(answered >= 0.95, "{:.1}% answered", 100.0 * answered);
    assert!(pace <= 3.0, "the median slowed {pace:.2}x");
}

#[tokio::test]
async fn a_deleted_collection_leaves_no_series_in_the_metrics() {
    let server = Server::start(Db::Sqlite, &["--api-keys", OPERATOR, "--metrics-public"]).await;
    let anonymous = reqwest::Client::new();
    let scrape = || async {
        anonymous
            .get(format!("{}/metrics", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("facerec_match_threshold_effective{"))
            .count()
    };
    for round in 0..20 {
        let name = format!("tenant-secret-name-{round}");
        let id = new_collection(&server, OPERATOR, &name).await;
        let calibrate = server
            .client
            .post(format!("{}/v1/calibration", server.url))
            .bearer_auth(OPERATOR)
            .header("x-facerec-collection", &name)
            .send()
            .await
            .unwrap();
        assert_eq!(calibrate.status(), 200);
        let text = scrape().await;
        assert!(text.contains(&format!("collection=\"{id}\"")), "{text}");
        assert!(!text.contains(&name), "the name is never a label");
        let path = format!("/v1/collections/{name}");
        let (status, _) = call(&server, reqwest::Method::DELETE, &path, OPERATOR, None).await;
        assert_eq!(status, 200);
        let text = scrape().await;
        assert!(
            !text.contains(&id),
            "the deleted collection's series are gone"
        );
    }
    // What is left: the collections that exist (here `default`, once calibrated or not).
    assert!(series(&scrape().await) <= 1);
}
