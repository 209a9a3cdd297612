//! The status server's connections, bounded so that the operator surface cannot exhaust the
//! gateway's file descriptors and starve device input (issue 19, item 2).
//!
//! `axum::serve` (0.7) keeps a half-sent request open for ever and accepts without limit, so a
//! client opening connections and never finishing a request held one descriptor each until
//! accepting device connections failed with "Too many open files". Here, hyper serves each
//! connection with a header-read timeout (which also bounds an idle keep-alive connection:
//! hyper restarts it while waiting for the next request), the router bounds the time a request
//! takes, a connection is closed after a maximum lifetime (after the request it is answering:
//! this also frees the slot of a client that stops reading its answer), and a semaphore caps
//! the connections open at once: beyond the cap a new connection is closed at once, never kept
//! waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::log_limit::LogLimiter;

/// The largest request head accepted (hyper's default is about 400 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Connections still answering at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(2);
/// After a failed accept (out of descriptors, usually): wait before the next, never spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// A connection is closed this long after it was accepted (a browser opens another).
    pub lifetime: Duration,
}

/// Accepts and serves until `shutdown`, then lets open connections finish (up to [`DRAIN`]).
pub async fn run(listener: TcpListener, app: Router, limits: Limits, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    // Refused connections and failed accepts: the first logged at once, then one line a minute
    // with the count (the shared limiter of repeating log lines).
    let mut repeats: LogLimiter<&'static str> = LogLimiter::default();
    let stop = shutdown.child_token();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                if let Some(suppressed) = repeats.report("accept", Instant::now()) {
                    tracing::warn!(error = %e, failures = suppressed + 1, "status server: accept failed; retrying");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(suppressed) = repeats.report("refused", Instant::now()) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused = suppressed + 1,
                    "status server: too many connections open; closing new ones"
                );
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        conns.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let end = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = stop.cancelled() => None,
                _ = tokio::time::sleep(limits.lifetime) => None,
            };
            // Shutting down or too old: the request being answered may finish, then it closes.
            let r = match end {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(DRAIN, conn.as_mut()).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "status connection closed");
            }
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), async { while conns.join_next().await.is_some() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_limit::REPEAT_INTERVAL;

    #[test]
    fn repeated_failures_are_logged_once_a_minute_with_the_count() {
        // As the accept loop uses it: the count logged is the occurrences since the last line.
        let mut t: LogLimiter<&'static str> = LogLimiter::default();
        let count = |r: Option<u64>| r.map(|suppressed| suppressed + 1);
        let t0 = Instant::now();
        assert_eq!(count(t.report("accept", t0)), Some(1));
        assert_eq!(count(t.report("accept", t0 + Duration::from_secs(1))), None);
        assert_eq!(count(t.report("accept", t0 + Duration::from_secs(2))), None);
        assert_eq!(count(t.report("accept", t0 + REPEAT_INTERVAL)), Some(3));
        assert_eq!(count(t.report("accept", t0 + REPEAT_INTERVAL + Duration::from_secs(1))), None);
    }

    /// Reads until the server closes the connection; `false` when it is still open at `within`.
    async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 512];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test]
    async fn half_sent_requests_time_out_and_connections_beyond_the_cap_are_closed_at_once() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Limits { max_connections: 2, header_timeout: Duration::from_millis(500), lifetime: Duration::from_secs(60) };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, app, limits, shutdown.clone()));
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut third, Duration::from_millis(300)).await, "beyond the cap: closed at once");
        for s in &mut held {
            assert!(!closed_within(s, Duration::from_millis(100)).await, "within the cap: served");
        }
        for s in &mut held {
            assert!(closed_within(s, Duration::from_secs(2)).await, "a half-sent request is closed after the header timeout");
        }
        // The slots are free again: a whole request is answered.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut resp = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut resp).await.unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
        // An idle keep-alive connection is closed after the same timeout.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        assert!(!closed_within(&mut s, Duration::from_millis(200)).await, "kept alive after the answer");
        assert!(closed_within(&mut s, Duration::from_secs(2)).await, "an idle keep-alive connection is closed");
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_busy_keep_alive_connection_is_closed_after_its_lifetime() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Limits { max_connections: 1, header_timeout: Duration::from_secs(5), lifetime: Duration::from_millis(600) };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, app, limits, shutdown.clone()));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut answered = 0;
        let mut buf = [0u8; 1024];
        // Well within the header timeout, a request every 100 ms: only the lifetime ends it.
        let closed = loop {
            if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.is_err() {
                break true;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => answered += 1,
                Err(_) => break false,
            }
            if start.elapsed() > Duration::from_secs(3) {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(closed, "still open after {:?}", start.elapsed());
        assert!(answered >= 3, "requests were answered until then: {answered}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        shutdown.cancel();
        server.await.unwrap();
    }
}
