//! Two `facerec serve` processes on one PostgreSQL behave as one service: what one registers the
//! other recognizes at once, what one deletes is gone from the other, and a stream ticket issued by
//! one opens a stream on the other, exactly once. And a server with a streaming standby as its
//! read database searches there and writes to the primary.

mod support;

use futures_util::StreamExt;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "replica-test-key-0001";

async fn recognized_name(server: &Server, photo: &[u8]) -> serde_json::Value {
    let form = reqwest::multipart::Form::new().part("image", image_part(photo.to_vec(), "p.jpg"));
    let (status, body) = json(server.post_form("/v1/recognize", form).await).await;
    assert_eq!(status, 200, "{body}");
    body["faces"][0]["match"]["name"].clone()
}

/// Registers the photo as "Yao Ming" (201 expected); the person's id.
async fn register_yao(server: &Server, photo: &[u8]) -> String {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(photo.to_vec(), "yao.jpg"))
        .text("name", "Yao Ming")
        .text("consent", "true");
    let (status, body) = json(server.post_form("/v1/register", form).await).await;
    assert_eq!(status, 201, "{body}");
    body["person"]["id"].as_str().unwrap().to_owned()
}

async fn ticket(server: &Server) -> String {
    let answer = server
        .client
        .post(format!("{}/v1/stream/ticket", server.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// Opens a stream with a ticket: `Ok` with the first answer to a frame, or the HTTP status.
async fn stream_with(
    server: &Server,
    ticket: &str,
    frame: &[u8],
) -> Result<serde_json::Value, u16> {
    let url = format!(
        "{}/v1/stream?ticket={ticket}",
        server.url.replacen("http://", "ws://", 1)
    );
    let mut socket = match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            return Err(response.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    };
    futures_util::SinkExt::send(&mut socket, Message::binary(frame.to_vec()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return Ok(serde_json::from_str(&text).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_behave_as_one_service() {
    let url = new_postgres_database().await;
    let a = Server::start(Db::Url(url.clone()), &["--api-keys", KEY]).await;
    let b = Server::start(Db::Url(url), &["--api-keys", KEY]).await;
    let photo = registry_photo("vectron/yaoming.jpg");

    // Registered through A, recognized through B at once.
    let id = register_yao(&a, &photo).await;
    assert_eq!(recognized_name(&b, &photo).await, "Yao Ming");

    // A ticket from A opens a stream on B, once; not again on either.
    let ticket = ticket(&a).await;
    let answer = stream_with(&b, &ticket, &photo)
        .await
        .expect("B accepts A's ticket");
    assert_eq!(answer["faces"][0]["match"]["name"], "Yao Ming", "{answer}");
    assert_eq!(stream_with(&b, &ticket, &photo).await.unwrap_err(), 401);
    assert_eq!(stream_with(&a, &ticket, &photo).await.unwrap_err(), 401);

    // Deleted through B, gone from A.
    let deleted = b.delete(&format!("/v1/persons/{id}")).await.status();
    assert!(deleted.is_success(), "{deleted}");
    assert_eq!(a.get(&format!("/v1/persons/{id}")).await.status(), 404);
    assert_eq!(recognized_name(&a, &photo).await, serde_json::Value::Null);
}

/// The per-key rate limit is counted by each replica on its own, as docs/DEPLOYMENT.md says: with two
/// replicas a key gets the limit from each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_counts_the_rate_limit_on_its_own() {
    let url = new_postgres_database().await;
    let limited = ["--api-keys", KEY, "--rate-limit-per-minute", "3"];
    let a = Server::start(Db::Url(url.clone()), &limited).await;
    let b = Server::start(Db::Url(url), &limited).await;
    for server in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(server.get("/v1/persons").await.status(), 200);
        }
        assert_eq!(server.get("/v1/persons").await.status(), 429);
    }
}

/// A streaming standby of the test PostgreSQL on a port of its own, stopped when dropped.
struct Standby {
    port: u16,
}

impl Standby {
    fn start(primary_port: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let output = std::process::Command::new(workspace().join("scripts/pg-test.sh"))
            .args(["standby", primary_port])
            .env("FACEREC_TEST_PG_PORT", port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { port }
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = std::process::Command::new(workspace().join("scripts/pg-test.sh"))
            .arg("stop")
            .env("FACEREC_TEST_PG_PORT", self.port.to_string())
            .status();
    }
}

/// Transactions committed in `database` on the server at `url` (a standby counts its read-only ones).
async fn transactions(url: &str, database: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    // Statistics reach the shared counters within a second or so; this reads them fresh.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// With `--database-read-url`, searches run on a streaming standby and registrations on the
/// primary; a person registered is recognized once the standby has replayed the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_answers_searches_and_the_primary_registrations() {
    let primary = new_postgres_database().await;
    let (cluster, database) = primary.rsplit_once('/').unwrap();
    let primary_port = cluster.rsplit(':').next().unwrap();
    let standby = Standby::start(primary_port);
    let standby_url = format!("postgres://facerec@127.0.0.1:{}/{database}", standby.port);
    let server = Server::start(
        Db::Url(primary.clone()),
        &["--database-read-url", &standby_url],
    )
    .await;
    let photo = registry_photo("vectron/yaoming.jpg");

    // The standby refuses writes, so a 201 means the registration went to the primary.
    register_yao(&server, &photo).await;

    let before = transactions(&standby_url, database).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while recognized_name(&server, &photo).await != "Yao Ming" {
        assert!(
            std::time::Instant::now() < deadline,
            "replication caught up within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        assert_eq!(recognized_name(&server, &photo).await, "Yao Ming");
    }
    // The searches ran on the standby: its transaction count for the database rose with them.
    loop {
        let after = transactions(&standby_url, database).await;
        if after >= before + 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby counted {} transactions for 6 recognitions",
            after - before
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
