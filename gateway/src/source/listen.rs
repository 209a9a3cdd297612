//! Device servers in "TCP client" mode (`listen = "0.0.0.0:4001"`, `allow = [...]`): the device
//! server connects to the gateway.
//!
//! One listener per listen address, whatever the number of devices on it. Each accepted
//! connection is bound to a device entry by the peer's address: the entry whose `allow` list
//! contains it. Usually one device has a listen address to itself; several may share one when
//! their allow lists are disjoint (checked with the configuration), which lets every
//! single-port device server of a unit be set up the same way ("connect to gateway:4001") and
//! be told apart by its own IP address. The ports of one multi-port box all connect from the
//! same address, so they need a listen port each.
//!
//! A peer outside every allow list is refused: the socket is closed at once, a warning names
//! the peer, and a `connection-refused` event is published (on the device's topic when the
//! listener serves one device, on the gateway's otherwise), at most once a minute per peer with
//! the number refused meanwhile (`crate::log_limit`), so that a port scan does not flood the
//! log. The accept loop's other warnings are limited the same way, per device and cause. An allowed peer that connects again replaces its
//! previous connection (`connection.rs`): device servers reconnect after a reboot before the old
//! socket has timed out.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::backoff::Backoff;
use super::connection::{Opened, Step, Transport};
use super::tcp::{configure, RawConn};
use super::PipelineLink;
use crate::config::AllowRule;
use crate::events::{Event, EventKind};
use crate::log_limit::LogLimiter;
use crate::sink::mqtt::AuxMessage;

/// Connections waiting for their device's task (it takes them within a read).
const HANDOVER: usize = 4;
/// A refused peer is reported at most this often (the rest are counted).
pub const REFUSAL_REPORT: Duration = crate::log_limit::REPEAT_INTERVAL;
/// After a failed accept (out of file descriptors, usually), the wait before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// The device entry an accepted peer belongs to: the first whose allow list contains it.
pub fn route(allow: &[&[AllowRule]], peer: IpAddr) -> Option<usize> {
    allow.iter().position(|rules| rules.iter().any(|r| r.contains(peer)))
}

/// Decides which refusals are logged and published: the first per peer, then one per
/// [`REFUSAL_REPORT`] with the number suppressed meanwhile.
pub type RefusalLimiter = LogLimiter<IpAddr>;

/// A device whose device server connects to the gateway.
pub struct TcpServerSource {
    bind: SocketAddr,
    rx: mpsc::Receiver<Step<RawConn>>,
}

impl TcpServerSource {
    async fn next(&mut self) -> Step<RawConn> {
        match self.rx.recv().await {
            Some(step) => step,
            // The listener stopped: the gateway is shutting down.
            None => std::future::pending().await,
        }
    }
}

impl Transport for TcpServerSource {
    type Conn = RawConn;

    async fn open(&mut self) -> Step<RawConn> {
        self.next().await
    }

    async fn notice(&mut self) -> Step<RawConn> {
        self.next().await
    }

    fn connects(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for TcpServerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpServerSource({})", self.bind)
    }
}

struct Route {
    device: String,
    allow: Vec<AllowRule>,
    tx: mpsc::Sender<Step<RawConn>>,
}

/// The listeners of a gateway, built while the devices are set up.
#[derive(Default)]
pub struct Listeners {
    by_bind: Vec<(SocketAddr, Vec<Route>)>,
}

impl Listeners {
    /// Registers a device on `bind`; its task gets connections from the returned source.
    pub fn add(&mut self, bind: SocketAddr, allow: Vec<AllowRule>, device: &str) -> TcpServerSource {
        let (tx, rx) = mpsc::channel(HANDOVER);
        let route = Route { device: device.to_string(), allow, tx };
        match self.by_bind.iter_mut().find(|(b, _)| *b == bind) {
            Some((_, routes)) => routes.push(route),
            None => self.by_bind.push((bind, vec![route])),
        }
        TcpServerSource { bind, rx }
    }

    /// Starts one accept loop per listen address.
    pub fn spawn(self, tasks: &mut JoinSet<()>, link: &PipelineLink) {
        for (bind, routes) in self.by_bind {
            tasks.spawn(serve(bind, routes, link.clone()));
        }
    }
}

/// Binds (retrying with back-off while the address is taken) and accepts until shutdown.
async fn serve(bind: SocketAddr, routes: Vec<Route>, link: PipelineLink) {
    let shutdown = link.shutdown.clone();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), bind.port() as u64);
    let mut limiter = RefusalLimiter::default();
    // The accept loop's own warnings, per (cause, device).
    let mut warnings: LogLimiter<(&'static str, usize)> = LogLimiter::default();
    let mut announced = false;
    let devices: Vec<&str> = routes.iter().map(|r| r.device.as_str()).collect();
    let listener = loop {
        match TcpListener::bind(bind).await {
            Ok(l) => break l,
            Err(e) => {
                if !announced {
                    announced = true;
                    tracing::error!(listen = %bind, devices = ?devices, error = %e, "cannot listen for device servers; retrying");
                    for r in &routes {
                        let _ = r.tx.try_send(Step::Event(EventKind::Disconnected, format!("cannot listen on {bind}: {e}")));
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    };
    tracing::info!(listen = %bind, devices = ?devices, "listening for device servers");
    let allow: Vec<&[AllowRule]> = routes.iter().map(|r| r.allow.as_slice()).collect();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) and the like: the connection waits in the
                // backlog; try again shortly, never spin, never give up, log at most once a minute.
                if let Some(suppressed) = warnings.report(("accept", usize::MAX), Instant::now()) {
                    let suppressed = (suppressed > 0).then_some(suppressed);
                    tracing::warn!(listen = %bind, error = %e, suppressed, "accept failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
        };
        match route(&allow, peer.ip()) {
            Some(i) => {
                let r = &routes[i];
                if let Err(e) = configure(&stream) {
                    if let Some(suppressed) = warnings.report(("configure", i), Instant::now()) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %r.device, %peer, error = %e, suppressed, "cannot configure the accepted connection");
                    }
                }
                tracing::debug!(device = %r.device, %peer, listen = %bind, "device server connected");
                let detail = format!("the device server {peer} connected to {bind}");
                if r.tx.try_send(Step::Opened(Opened { conn: RawConn { stream }, detail })).is_err() {
                    if let Some(suppressed) = warnings.report(("handover", i), Instant::now()) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %r.device, %peer, suppressed, "connection dropped: the device has connections waiting already");
                    }
                }
            }
            None => {
                drop(stream);
                let Some(suppressed) = limiter.report(peer.ip(), Instant::now()) else {
                    tracing::debug!(%peer, listen = %bind, "connection refused (not in the allow list)");
                    continue;
                };
                let more = if suppressed > 0 { format!(" ({suppressed} more refused since the last report)") } else { String::new() };
                let detail = format!("refused a connection from {peer} on {bind}: not in the allow list{more}");
                tracing::warn!(%peer, listen = %bind, devices = ?devices, suppressed, "connection refused: the peer is not in the allow list");
                if let [only] = routes.as_slice() {
                    let _ = only.tx.try_send(Step::Event(EventKind::ConnectionRefused, detail));
                } else {
                    let e = Event::gateway(EventKind::ConnectionRefused, detail);
                    if let Ok(json) = serde_json::to_vec(&e) {
                        let _ = link.aux.try_send(AuxMessage {
                            topic: link.topics.gateway_events(),
                            payload: Bytes::from(json),
                            retain: false,
                            sticky: false,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &[&str]) -> Vec<AllowRule> {
        s.iter().map(|r| AllowRule::parse(r).unwrap()).collect()
    }

    #[test]
    fn peers_are_bound_by_address() {
        let a = rules(&["10.1.2.3"]);
        let b = rules(&["10.1.3.0/24", "fd00::7"]);
        let routes: Vec<&[AllowRule]> = vec![&a, &b];
        assert_eq!(route(&routes, "10.1.2.3".parse().unwrap()), Some(0));
        assert_eq!(route(&routes, "10.1.3.200".parse().unwrap()), Some(1));
        assert_eq!(route(&routes, "::ffff:10.1.2.3".parse().unwrap()), Some(0), "IPv4-mapped on a dual-stack listener");
        assert_eq!(route(&routes, "fd00::7".parse().unwrap()), Some(1));
        assert_eq!(route(&routes, "10.1.2.4".parse().unwrap()), None);
        assert_eq!(route(&routes, "fd00::8".parse().unwrap()), None);
    }

    #[test]
    fn refusals_are_reported_once_a_minute_per_peer_with_the_count() {
        let mut l = RefusalLimiter::default();
        let t0 = Instant::now();
        let p: IpAddr = "10.9.9.9".parse().unwrap();
        let q: IpAddr = "10.9.9.10".parse().unwrap();
        assert_eq!(l.report(p, t0), Some(0));
        assert_eq!(l.report(p, t0 + Duration::from_secs(1)), None);
        assert_eq!(l.report(p, t0 + Duration::from_secs(2)), None);
        assert_eq!(l.report(q, t0 + Duration::from_secs(2)), Some(0), "another peer is reported on its own");
        assert_eq!(l.report(p, t0 + REFUSAL_REPORT), Some(2));
        assert_eq!(l.report(p, t0 + REFUSAL_REPORT + Duration::from_secs(1)), None);
    }

    #[test]
    fn the_refusal_table_stays_bounded() {
        let mut l = RefusalLimiter::default();
        let t0 = Instant::now();
        for i in 0..3000u32 {
            l.report(IpAddr::from(i.to_be_bytes()), t0);
            assert!(l.len() <= 1024);
        }
    }
}
