//! The connection loop of a serial or network-attached device: connect (or wait for the device
//! server to connect), feed the [`DeviceRunner`], reconnect with back-off, detect silence,
//! publish events. What counts as an outage or a silence, which events to publish with which
//! spans, and how long to back off is [`Liveness`]'s to say (sans-IO, shared with the Bluetooth
//! loop); this loop does the I/O and the waiting.
//!
//! Local serial ports (`serial.rs`) and every network transport run this one loop, each as a
//! [`Transport`], so a device behind a device server behaves exactly like one on a local port: the same `connected`,
//! `disconnected`, `silent` and `resumed` events with their spans, the same back-off, the same
//! silence timeout. On TCP the silence timeout is also the read timeout that finds a half-open
//! connection (a device server that lost power or its cable keeps the socket open but sends
//! nothing); TCP keep-alive (`tcp.rs`) finds the peers that are gone altogether.
//!
//! Protocol sessions: a device with a session (IntelliVue's association) refuses a new one
//! while it still holds the old, so the loop ends sessions explicitly. On shutdown with the
//! connection open it sends the protocol's release and waits up to [`RELEASE_WAIT`] for the
//! answer. When it drops a connection the device may still hear (silence: a half-open socket,
//! a device that stopped talking) it first sends the protocol's abort; when the connection
//! itself failed (read or write error, closed by the peer) there is no one to send it to, and
//! only the decoder's session is ended. Protocols without a session send nothing. (Writing to
//! a serial port whose other end is gone can block in the driver's drain, beyond any time-out,
//! so nothing is written to a connection known to be broken.)

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use medgw_protocols::Timestamp;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::liveness::{Failures, Liveness, Now};
use super::{DeviceRunner, DeviceState, SourceError, Stop};
use crate::events::EventKind;

/// How long a stopping gateway waits for the device to answer the release of its session
/// (the shutdown waits for it, so it is short).
pub const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// How long an abort may take to write before the connection is dropped anyway.
const ABORT_WRITE: Duration = Duration::from_millis(250);

/// A connection that carries the device's bytes.
pub trait Conn: Send {
    /// Reads device bytes; `Ok(0)` when the peer closed. Must be cancel-safe: the loop selects
    /// on it together with timers.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send;
    /// Writes the protocol's requests to the device.
    fn write_frames(&mut self, frames: Vec<Vec<u8>>) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// A connection and what to say about it in the `connected` event.
pub struct Opened<C> {
    pub conn: C,
    pub detail: String,
}

/// What a transport yields.
pub enum Step<C> {
    /// A connection: the gateway connected, or a device server connected to the gateway. While
    /// another is open it replaces it (a device server that rebooted connects again before the
    /// old socket dies).
    Opened(Opened<C>),
    /// Connecting failed (the gateway retries with back-off).
    Failed(SourceError),
    /// An event for this device, e.g. a refused peer or a listener that cannot bind.
    Event(EventKind, String),
}

/// How a device's connections are made.
pub trait Transport: Send {
    type Conn: Conn;
    /// The next connection: connects to the device server, or waits for it to connect.
    fn open(&mut self) -> impl Future<Output = Step<Self::Conn>> + Send;
    /// What happens while a connection is open (a replacement connection, an event); pending
    /// for ever for transports that have nothing to say. Must be cancel-safe.
    fn notice(&mut self) -> impl Future<Output = Step<Self::Conn>> + Send;
    /// True when the gateway connects (and so paces its retries with back-off); false when it
    /// waits for the device server.
    fn connects(&self) -> bool;
    /// The `disconnected` event's detail when the peer closed the connection.
    fn closed(&self) -> &'static str {
        "the device server closed the connection"
    }
    /// What the `silent` event says the gateway does about it.
    fn on_silence(&self) -> &'static str {
        if self.connects() {
            "reconnecting"
        } else {
            "closing the connection; waiting for the device server"
        }
    }
}

/// Runs the device until shutdown.
pub async fn run<T: Transport>(mut runner: DeviceRunner, mut transport: T) {
    let shutdown = runner.shutdown_token();
    let seed = runner.cfg.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut liveness = Liveness::new(Backoff::new(Duration::from_millis(500), Duration::from_secs(30), seed), Failures::Once);
    let silence = Duration::from_millis(runner.cfg.silence_timeout_ms as u64);
    // A connection that arrived while another was open.
    let mut next: Option<Opened<T::Conn>> = None;
    runner.publish_device();
    let mut buf = vec![0u8; 4096];
    'outer: while !shutdown.is_cancelled() {
        let opened = match next.take() {
            Some(o) => o,
            None => tokio::select! {
                step = transport.open() => match step {
                    Step::Opened(o) => o,
                    Step::Failed(e) => {
                        let detail = e.to_string();
                        if liveness.connect_failed(&detail, Now::read()) {
                            runner.status.set_state(DeviceState::Disconnected);
                            runner.event(runner.device_event(EventKind::Disconnected, detail));
                        }
                        if pause(&transport, &mut liveness, &shutdown).await {
                            break;
                        }
                        continue;
                    }
                    Step::Event(kind, detail) => {
                        if kind == EventKind::Disconnected {
                            liveness.lost(&detail, Now::read());
                            runner.status.set_state(DeviceState::Disconnected);
                        }
                        runner.event(runner.device_event(kind, detail));
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            },
        };
        let Opened { mut conn, detail } = opened;
        runner.status.set_state(DeviceState::Connected);
        if liveness.opened() {
            // Reconnecting after silence is not news; coming back from a disconnection is.
            runner.event(runner.device_event(EventKind::Connected, detail));
        }
        let frames = match runner.start(Timestamp::now()).await {
            Ok(f) => f,
            Err(Stop::Shutdown) => break,
        };
        // The connection's life: the block ends when it is lost or silent.
        'conn: {
            if let Err(e) = conn.write_frames(frames).await {
                abort(&mut runner, None::<&mut T::Conn>).await;
                lost(&mut runner, &mut liveness, format!("write failed: {e}"));
                break 'conn;
            }
            liveness.watch(Some(silence), Now::read());
            loop {
                let wake = runner.next_wakeup().map(|t| Instant::now() + Duration::from_millis((t.0 - Timestamp::now().0).max(0) as u64));
                let due = liveness.next_wakeup().map(Instant::from_std);
                // Each wake-up yields the protocol's requests to write (often none).
                let frames = tokio::select! {
                    r = conn.read(&mut buf) => {
                        let now = Now::read();
                        match r {
                            Ok(0) | Err(_) => {
                                let detail = match r { Err(e) => format!("read failed: {e}"), _ => transport.closed().to_string() };
                                abort(&mut runner, None::<&mut T::Conn>).await;
                                lost(&mut runner, &mut liveness, detail);
                                break 'conn;
                            }
                            Ok(n) => {
                                if let Some(since) = liveness.data(now) {
                                    runner.event(runner.device_event(EventKind::Resumed, "data flows again").with_span(since, now.wall));
                                }
                                runner.status.set_state(DeviceState::Connected);
                                match runner.feed(&buf[..n], now.wall).await {
                                    Ok(frames) => frames,
                                    Err(Stop::Shutdown) => break 'outer,
                                }
                            }
                        }
                    }
                    _ = sleep_until_opt(wake) => match runner.poll(Timestamp::now()).await {
                        Ok(frames) => frames,
                        Err(Stop::Shutdown) => break 'outer,
                    },
                    _ = sleep_until_opt(due) => {
                        let now = Now::read();
                        let due = liveness.poll(now);
                        if due.rejections {
                            runner.flush_rejections();
                        }
                        if let Some(s) = due.silence {
                            runner.status.set_state(DeviceState::Silent);
                            if s.announce {
                                let what = transport.on_silence();
                                runner.event(runner.device_event(EventKind::Silent, format!("no data for {} s: {what}", silence.as_secs())).with_span(s.since, now.wall));
                            }
                            // A half-open connection never recovers by itself: close it and connect again.
                            runner.end_waves();
                            abort(&mut runner, Some(&mut conn)).await;
                            break 'conn;
                        }
                        Vec::new()
                    }
                    step = transport.notice() => match step {
                        Step::Opened(o) => {
                            runner.status.reconnects.fetch_add(1, Ordering::Relaxed);
                            // Force a `connected` event for the new connection, whose detail names it.
                            liveness.replaced();
                            next = Some(Opened { detail: format!("{} (replaces the previous connection)", o.detail), conn: o.conn });
                            continue 'outer;
                        }
                        Step::Event(kind, detail) => {
                            runner.event(runner.device_event(kind, detail));
                            Vec::new()
                        }
                        Step::Failed(e) => {
                            tracing::debug!(device = %runner.cfg.name, error = %e, "transport notice");
                            Vec::new()
                        }
                    },
                    _ = shutdown.cancelled() => {
                        release(&mut runner, &mut conn, &mut buf).await;
                        break 'outer;
                    }
                };
                if !frames.is_empty() {
                    if let Err(e) = conn.write_frames(frames).await {
                        abort(&mut runner, None::<&mut T::Conn>).await;
                        lost(&mut runner, &mut liveness, format!("write failed: {e}"));
                        break 'conn;
                    }
                }
            }
        }
        // Lost or silent: close the connection and connect again (after a pause when the
        // gateway is the one that connects).
        liveness.closed();
        drop(conn);
        if pause(&transport, &mut liveness, &shutdown).await {
            break;
        }
    }
    // An `end` for every alarm still active: the gateway stops watching the device.
    runner.alarms_shutdown();
    runner.end_waves();
    runner.flush_rejections();
    runner.flush_repeated(true);
    runner.status.set_state(DeviceState::Disconnected);
}

/// The gateway stops with the connection open: ends the protocol session (release request,
/// then up to [`RELEASE_WAIT`] for the answer, else an abort). Nothing for protocols without
/// a session.
async fn release<C: Conn>(runner: &mut DeviceRunner, conn: &mut C, buf: &mut [u8]) {
    let Ok(frames) = runner.release(Timestamp::now()).await else { return };
    if frames.is_empty() {
        return;
    }
    let deadline = Instant::now() + RELEASE_WAIT;
    if let Err(why) = within(deadline, conn.write_frames(frames)).await {
        tracing::debug!(device = %runner.cfg.name, error = %why, "session release not sent");
        return;
    }
    while runner.releasing() {
        let n = match tokio::time::timeout_at(deadline, conn.read(buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        match runner.feed(&buf[..n], Timestamp::now()).await {
            Ok(frames) if !frames.is_empty() => {
                if let Err(why) = within(deadline, conn.write_frames(frames)).await {
                    tracing::debug!(device = %runner.cfg.name, error = %why, "answer during the session release not sent");
                }
            }
            Ok(_) => {}
            Err(Stop::Shutdown) => break,
        }
    }
    if runner.releasing() {
        tracing::info!(device = %runner.cfg.name, "no answer to the session release: aborting it");
        abort(runner, Some(conn)).await;
    }
}

/// The connection is dropped for an error: aborts the protocol session, and tells the device
/// over `conn` when it may still hear it (best effort), so it need not wait for its own
/// time-out before it accepts a new session.
async fn abort<C: Conn>(runner: &mut DeviceRunner, conn: Option<&mut C>) {
    if let (Ok(frames), Some(conn)) = (runner.abort(Timestamp::now()).await, conn) {
        if !frames.is_empty() {
            if let Err(why) = within(Instant::now() + ABORT_WRITE, conn.write_frames(frames)).await {
                // Best effort: the device ends the session by its own time-out instead.
                tracing::debug!(device = %runner.cfg.name, error = %why, "session abort not sent");
            }
        }
    }
}

/// A write that must be done by `deadline`: its error, or that it was not done in time.
async fn within(deadline: Instant, write: impl Future<Output = std::io::Result<()>>) -> Result<(), String> {
    match tokio::time::timeout_at(deadline, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// The connection broke: state, counters and the `disconnected` event.
fn lost(runner: &mut DeviceRunner, liveness: &mut Liveness, detail: String) {
    runner.end_waves();
    runner.status.set_state(DeviceState::Disconnected);
    runner.status.reconnects.fetch_add(1, Ordering::Relaxed);
    liveness.lost(&detail, Now::read());
    runner.event(runner.device_event(EventKind::Disconnected, detail));
}

/// Waits before connecting again (only when the gateway is the one that connects); true when
/// the gateway is shutting down.
async fn pause<T: Transport>(transport: &T, liveness: &mut Liveness, shutdown: &tokio_util::sync::CancellationToken) -> bool {
    if !transport.connects() {
        return shutdown.is_cancelled();
    }
    tokio::select! {
        _ = tokio::time::sleep(liveness.retry_delay()) => false,
        _ = shutdown.cancelled() => true,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
