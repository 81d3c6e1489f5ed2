//! Every refusal of an upload is read by its client: the server answers before reading the body
//! (no key, a body over the limit, a media type the route does not take) and then closes
//! gracefully, reading what the client still sends, so no client meets a connection reset in place
//! of the answer (about 1 in 30 did, `curl` printing `000`). The client here is what `curl` is: a
//! new connection for each upload, the body sent as fast as the socket takes it (in pieces, so the
//! answer comes while it is still sending), then the answer read.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "refusals-key-0123456789";

/// One upload of `len` bytes: the answer's status line, or why none was read.
async fn upload(
    server: &Server,
    key: Option<&str>,
    content_type: &str,
    len: usize,
) -> Result<String, String> {
    let address = server.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let auth = key.map_or_else(String::new, |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST /v1/recognize HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {len}\r\n\r\n"
    );
    socket
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let piece = vec![0xA5u8; 32 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = piece.len().min(len - sent);
        // A refused upload's later pieces may meet a closed socket: the answer is what counts.
        if socket.write_all(&piece[..n]).await.is_err() {
            break;
        }
        sent += n;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await {
        Ok(Ok(_)) if answer.starts_with(b"HTTP/1.1 ") => {
            Ok(String::from_utf8_lossy(&answer[..12]).into_owned())
        }
        Ok(Ok(_)) => Err(format!("no answer ({} bytes)", answer.len())),
        Ok(Err(e)) => Err(format!("{e} after {} bytes of answer", answer.len())),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_refused_uploads_are_all_answered() {
    let server = Server::start(
        Db::Sqlite,
        &["--api-keys", KEY, "--max-body-bytes", "200000"],
    )
    .await;
    let (mut answered, mut lost) = (std::collections::BTreeMap::new(), Vec::new());
    for n in 0..300 {
        let answer = match n % 3 {
            // No key: 401 before the body is read (a wrong one would soon be throttled, 429;
            // within the body limit, which comes first).
            0 => upload(&server, None, "image/jpeg", 150 * 1024).await,
            // Over the body limit, declared: 413 before it is read.
            1 => upload(&server, Some(KEY), "image/jpeg", 370 * 1024).await,
            // Within the limit but of a type the route does not take: 415, unread.
            _ => upload(&server, Some(KEY), "text/plain", 150 * 1024).await,
        };
        match answer {
            Ok(status) => *answered.entry(status).or_insert(0) += 1,
            Err(e) => lost.push(format!("{n}: {e}")),
        }
    }
    println!(
        "300 refused uploads: {answered:?}, {} not answered",
        lost.len()
    );
    assert!(lost.is_empty(), "answers lost: {lost:?}");
    assert_eq!(answered.get("HTTP/1.1 401"), Some(&100), "{answered:?}");
    assert_eq!(answered.get("HTTP/1.1 413"), Some(&100), "{answered:?}");
    assert_eq!(answered.get("HTTP/1.1 415"), Some(&100), "{answered:?}");
}
