//! The connection an MLLP sink drives for its `DeliverySession`: opened when the session asks
//! (`Action::Connect`), written (`Action::Write`), closed (`Action::Close`) and read for ACKs,
//! each outcome told back to the session. The interface-engine sink (`mod.rs`) and the Alarm
//! Manager sink (`alarms.rs`) differ in what they send and count, not in how they talk.

use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::hl7::delivery::{Action, DeliverySession};
use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::MllpSinkConfig;
use crate::sink::mqtt::transport::{self, Stream};

/// How long a connection attempt may take outside a shutdown drain.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One sink's connection to its peer.
pub(super) struct Link {
    conn: Option<Box<dyn Stream>>,
    ever_connected: bool,
    sink: Arc<str>,
    /// The peer as the log names it ("the MLLP receiver", "the Alarm Manager").
    peer: &'static str,
    rbuf: Vec<u8>,
}

/// What opening the connection did.
pub(super) enum Opened {
    /// Connected; `again` when an earlier connection had been up (a reconnect).
    Connected { again: bool },
    /// Could not connect (logged); the session backs off.
    Failed,
}

impl Link {
    pub(super) fn new(sink: Arc<str>, peer: &'static str) -> Link {
        Link { conn: None, ever_connected: false, sink, peer, rbuf: vec![0u8; 16 * 1024] }
    }

    pub(super) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// `Action::Connect`: connects within `limit` (what is left of a shutdown drain) or, with
    /// none, within [`CONNECT_TIMEOUT`] unless `shutdown` comes first; tells the session.
    pub(super) async fn connect<T>(
        &mut self,
        config: &MllpSinkConfig,
        tls: Option<&Arc<rustls::ClientConfig>>,
        limit: Option<Duration>,
        shutdown: &CancellationToken,
        session: &mut DeliverySession<T>,
        actions: &mut Vec<Action<T>>,
    ) -> Opened {
        let opened = match limit {
            Some(left) => Some(transport::connect(&config.host, config.port, tls, left.max(Duration::from_millis(1))).await),
            None => tokio::select! {
                r = transport::connect(&config.host, config.port, tls, CONNECT_TIMEOUT) => Some(r),
                _ = shutdown.cancelled() => None,
            },
        };
        match opened {
            Some(Ok(stream)) => {
                self.conn = Some(stream);
                let again = std::mem::replace(&mut self.ever_connected, true);
                tracing::info!(sink = %self.sink, host = %config.host, port = config.port, "connected to {}", self.peer);
                session.connected(Timestamp::now(), actions);
                Opened::Connected { again }
            }
            Some(Err(e)) => {
                tracing::warn!(sink = %self.sink, error = %e, "cannot connect to {}; retrying after the back-off", self.peer);
                session.connect_failed(Timestamp::now(), actions);
                Opened::Failed
            }
            None => {
                session.connect_failed(Timestamp::now(), actions);
                Opened::Failed
            }
        }
    }

    /// `Action::Write`: `false` when the connection is gone (the session is told).
    pub(super) async fn write<T>(&mut self, bytes: &[u8], session: &mut DeliverySession<T>, actions: &mut Vec<Action<T>>) -> bool {
        let ok = match self.conn.as_mut() {
            Some(c) => c.write_all(bytes).await.is_ok() && c.flush().await.is_ok(),
            None => false,
        };
        if !ok {
            self.conn = None;
            session.disconnected(Timestamp::now(), actions);
        }
        ok
    }

    /// `Action::Close` and the end of a drain: closes the connection, if any.
    pub(super) async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.shutdown().await;
        }
    }

    /// Reads what the peer sent; for a `select!` branch guarded by [`Link::is_open`], whose
    /// handler passes the result to [`Link::received`].
    pub(super) async fn read(&mut self) -> std::io::Result<usize> {
        match self.conn.as_mut() {
            Some(c) => c.read(&mut self.rbuf).await,
            None => std::future::pending().await,
        }
    }

    /// Gives what [`Link::read`] read to the session; an end of stream or an error closes the
    /// connection and tells the session.
    pub(super) fn received<T>(&mut self, n: std::io::Result<usize>, session: &mut DeliverySession<T>, actions: &mut Vec<Action<T>>) {
        match n {
            Ok(n) if n > 0 => session.handle_inbound(&self.rbuf[..n], Timestamp::now(), actions),
            Ok(_) => {
                tracing::warn!(sink = %self.sink, "{} closed the connection", self.peer);
                self.conn = None;
                session.disconnected(Timestamp::now(), actions);
            }
            Err(e) => {
                tracing::warn!(sink = %self.sink, error = %e, "the connection to {} failed", self.peer);
                self.conn = None;
                session.disconnected(Timestamp::now(), actions);
            }
        }
    }
}
