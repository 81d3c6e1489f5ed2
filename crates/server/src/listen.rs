//! The accept loop, in place of `axum::serve`, for what a server on an open network needs and that
//! one lacks: a deadline for a request's header (and for an idle keep-alive connection), a cap on
//! open connections with a clean refusal beyond it, and the open-file limit raised at start, so
//! that idle or half-sent connections cannot take every socket (slowloris).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt;

/// How connections are held.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A request's header must arrive within this, and so must the next request on an idle
    /// keep-alive connection.
    pub header_timeout: Duration,
    /// Connections open at once; beyond them a new one is answered 503 and closed.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// File descriptors kept free beyond the connections (database files, models, logs).
const RESERVED_DESCRIPTORS: u64 = 64;

/// What a connection beyond the cap is told before it is closed: the envelope's `overloaded`.
fn refusal() -> Vec<u8> {
    // The envelope every other refusal has, written by hand: no HTTP connection is served here.
    let info = crate::api::error::ErrorInfo {
        code: facerec_core::ErrorCode::Overloaded,
        message: "too many open connections; retry shortly".into(),
        details: None,
    };
    let body = serde_json::to_string(&info.body(None).0).expect("the envelope serializes");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Raises the soft open-file limit to the hard one (a default soft limit of 1,024 is often far
/// below what the system allows) and returns the limit now in force, if it could be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur;
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::info!(
                    from = before,
                    to = raised.rlim_cur,
                    "raised the open-file limit"
                );
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (for at most the drain timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(connection_cap(limits)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!("facerec_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let connection = Connection {
            stream: LingeringStream::new(stream, slot),
            peer,
            router: router.clone(),
            builder: builder.clone(),
            header_timeout: limits.header_timeout,
        };
        let watcher = graceful.watcher();
        tokio::spawn(connection.serve(watcher));
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; stopping anyway");
    }
}

/// The connections allowed at once: the configured cap, held below the open-file limit (raised
/// first).
fn connection_cap(limits: &ConnectionLimits) -> usize {
    let descriptors = raise_open_file_limit().unwrap_or(1024);
    let cap = limits
        .max_connections
        .min(descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(1) as usize);
    if cap < limits.max_connections {
        tracing::warn!(cap, descriptors, "the open-file limit caps the connections");
    }
    cap
}

/// One accepted connection and what serving it needs.
struct Connection {
    stream: LingeringStream,
    peer: std::net::SocketAddr,
    router: Router,
    builder: Builder<TokioExecutor>,
    header_timeout: Duration,
}

impl Connection {
    async fn serve(self, watcher: hyper_util::server::graceful::Watcher) {
        let Self {
            stream,
            peer,
            router,
            builder,
            header_timeout,
        } = self;
        // hyper's header deadline starts with the first byte (before it, the HTTP version is not
        // known yet): a connection that sends nothing gets the same deadline here.
        let mut first = [0u8; 1];
        if !matches!(
            tokio::time::timeout(header_timeout, stream.peek(&mut first)).await,
            Ok(Ok(1..))
        ) {
            return;
        }
        let service = router.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let _ = watcher.watch(connection).await;
    }
}

/// Answers a connection beyond the cap with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&refusal()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// How long a closed connection keeps reading what its client still sends, and how much of it.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A connection that closes gracefully (what nginx calls a lingering close). A server that answers
/// before reading a whole upload (a wrong key, a body over the limit, a refused media type, no
/// permit left) and then closes the socket with unread bytes in it makes the kernel send a reset,
/// which can destroy the answer before the client reads it (`curl` prints `000`). So when hyper is
/// done with a connection, it is not closed at once: its sending side is shut (the client sees the
/// answer, then the end), and what the client still sends is read and thrown away, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`], before the socket closes. The connection's slot is held
/// until then, so lingering connections count against `--max-connections`.
struct LingeringStream {
    stream: Option<TcpStream>,
    slot: Option<OwnedSemaphorePermit>,
}

impl LingeringStream {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream: Some(stream),
            slot: Some(slot),
        }
    }

    fn inner(&mut self) -> &mut TcpStream {
        self.stream
            .as_mut()
            .expect("a stream is taken only when dropped")
    }

    async fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.as_ref().expect("open").peek(buf).await
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let (Some(stream), slot) = (self.stream.take(), self.slot.take()) else {
            return;
        };
        // Without a runtime (the process is ending) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(stream).await;
                drop(slot);
            });
        }
    }
}

/// Shuts the sending side, then reads and discards until the client closes, or for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner()).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.inner()).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner()).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner()).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.inner()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }
}
