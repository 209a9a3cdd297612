//! Simulated device servers (`medgw simulate --tcp ADDR` and `--connect ADDR`): a device
//! simulator behind a TCP socket, as a serial device server (Moxa NPort, Lantronix, Digi)
//! carries a bedside device's RS-232 port over the network.
//!
//! - `--tcp ADDR`: the device server in "TCP server" mode. It listens on ADDR and serves one
//!   client at a time; a client that connects while another is served replaces it (as device
//!   servers do once their alive check has dropped a dead client). With no client connected the
//!   device's output waits for the next one, like a device server with data buffering, so
//!   everything recorded with `--sent` went on a connection.
//! - `--connect ADDR`: the device server in "TCP client" mode. It connects to ADDR (the
//!   gateway's `listen` address), optionally from a chosen local address (`--from`), and
//!   connects again whenever the connection ends.
//!
//! Faults are those of the pty mode; `unplug=DUR` takes the device server off the network for
//! DUR: the connection is closed and (in server mode) nothing listens meanwhile.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use medgw_protocols::sim::Sent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::simulate::{drive, schedule, Driven, SimIo, SimRun};

/// The device server in "TCP server" mode.
struct ServerIo {
    listener: TcpListener,
    stream: Option<TcpStream>,
}

impl ServerIo {
    fn attach(&mut self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        if self.stream.is_some() {
            tracing::info!(%peer, "a new client replaces the connected one");
        } else {
            tracing::info!(%peer, "client connected");
        }
        self.stream = Some(stream);
    }

    async fn accept(&mut self) -> std::io::Result<()> {
        let (s, peer) = self.listener.accept().await?;
        self.attach(s, peer);
        Ok(())
    }

    /// Ends the current connection without losing its last frames.
    async fn finish(&mut self) {
        if let Some(s) = self.stream.take() {
            close_gracefully(s).await;
        }
    }
}

/// Sends FIN and waits (at most 2 s) for the peer to read everything and close, so that the
/// last frames are not lost to a reset.
async fn close_gracefully(mut s: TcpStream) {
    let _ = s.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl SimIo for ServerIo {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.stream.as_mut() {
                None => self.accept().await?,
                Some(s) => {
                    tokio::select! {
                        r = s.read(buf) => match r {
                            Ok(n) if n > 0 => return Ok(n),
                            _ => {
                                tracing::info!("client disconnected");
                                self.stream = None;
                            }
                        },
                        a = self.listener.accept() => {
                            let (s, peer) = a?;
                            self.attach(s, peer);
                        }
                    }
                }
            }
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.stream.is_none() {
            self.accept().await?;
        }
        if let Some(s) = self.stream.as_mut() {
            if let Err(e) = s.write_all(data).await {
                // The client is gone; what was being written is lost with the connection.
                tracing::info!(error = %e, "client disconnected");
                self.stream = None;
            }
        }
        Ok(())
    }
}

/// Binds `addr`, retrying while it is still taken (after an unplug) until `stop`.
async fn bind(addr: SocketAddr, stop: &CancellationToken) -> Result<Option<TcpListener>, String> {
    let start = tokio::time::Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(Some(l)),
            Err(e) if start.elapsed() > Duration::from_secs(30) => return Err(format!("cannot listen on {addr}: {e}")),
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => return Ok(None),
        }
    }
}

/// Runs a simulator behind a device server in TCP-server mode on `addr` until `stop`; `ready`
/// receives the bound address (with the real port when `addr` asked for port 0).
pub async fn run_tcp_server(
    run: SimRun,
    addr: SocketAddr,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<String>,
    mut on_sent: impl FnMut(Sent) + Send,
) -> Result<(), String> {
    let mut sim = run.make()?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let _ = ready.send(bound.to_string());
    let mut io = ServerIo { listener, stream: None };
    let start = tokio::time::Instant::now();
    let mut faults = schedule(&run);
    loop {
        match drive(&mut io, &mut sim, &mut faults, start, &run, &stop, &mut on_sent).await? {
            Driven::Done => {
                io.finish().await;
                return Ok(());
            }
            Driven::Unplug(d) => {
                tracing::info!(protocol = %run.protocol, "simulated device server unplugged");
                drop(io);
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
                let Some(listener) = bind(bound, &stop).await? else { return Ok(()) };
                io = ServerIo { listener, stream: None };
            }
        }
    }
}

/// A connection attempt in progress.
type Attempt = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

/// The device server in "TCP client" mode.
struct ClientIo {
    addr: String,
    from: Option<IpAddr>,
    stream: Option<TcpStream>,
    /// Kept across cancellation: the simulator's read (which connects when there is no
    /// connection) races its write timer in a `select!`, and an attempt dropped after the
    /// gateway accepted it would show the gateway a connection closed unused — a real
    /// disconnection to it, which it reports as one.
    attempt: Option<Attempt>,
    retry: Duration,
}

async fn try_connect(addr: String, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let target: SocketAddr = tokio::net::lookup_host(&addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr}: no address")))?;
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let s = socket.connect(target).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

impl ClientIo {
    /// Connects, retrying with a growing pause (0.2 s to 5 s) while the gateway refuses.
    /// Cancel-safe (see [`ClientIo::attempt`]).
    async fn connect(&mut self) {
        loop {
            let attempt = self.attempt.get_or_insert_with(|| Box::pin(try_connect(self.addr.clone(), self.from)));
            let result = attempt.as_mut().await;
            self.attempt = None;
            match result {
                Ok(s) => {
                    tracing::info!(addr = %self.addr, local = ?s.local_addr().ok(), "connected");
                    self.stream = Some(s);
                    return;
                }
                Err(e) => {
                    tracing::debug!(addr = %self.addr, error = %e, "cannot connect; retrying");
                    tokio::time::sleep(self.retry).await;
                    self.retry = (self.retry * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn lost(&mut self) {
        tracing::info!(addr = %self.addr, "connection closed");
        self.stream = None;
    }
}

impl SimIo for ClientIo {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.stream.as_mut() {
                None => self.connect().await,
                Some(s) => match s.read(buf).await {
                    Ok(n) if n > 0 => {
                        self.retry = Duration::from_millis(200);
                        return Ok(n);
                    }
                    _ => {
                        self.lost();
                        // A gateway that refuses this address closes at once: do not hammer it.
                        tokio::time::sleep(self.retry).await;
                        self.retry = (self.retry * 2).min(Duration::from_secs(5));
                    }
                },
            }
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.stream.is_none() {
            self.connect().await;
        }
        if let Some(s) = self.stream.as_mut() {
            if s.write_all(data).await.is_err() {
                self.lost();
            }
        }
        Ok(())
    }
}

/// Runs a simulator behind a device server in TCP-client mode, connecting to `addr` (from
/// `from` if given) until `stop`; `ready` receives `addr`.
pub async fn run_tcp_client(
    run: SimRun,
    addr: String,
    from: Option<IpAddr>,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<String>,
    mut on_sent: impl FnMut(Sent) + Send,
) -> Result<(), String> {
    let mut sim = run.make()?;
    let _ = ready.send(addr.clone());
    let mut io = ClientIo { addr, from, stream: None, attempt: None, retry: Duration::from_millis(200) };
    let start = tokio::time::Instant::now();
    let mut faults = schedule(&run);
    loop {
        match drive(&mut io, &mut sim, &mut faults, start, &run, &stop, &mut on_sent).await? {
            Driven::Done => {
                if let Some(s) = io.stream.take() {
                    close_gracefully(s).await;
                }
                return Ok(());
            }
            Driven::Unplug(d) => {
                tracing::info!(protocol = %run.protocol, "simulated device server unplugged");
                io.stream = None;
                io.attempt = None;
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::sim::SimOptions;

    fn sim_run(period_ms: u32) -> SimRun {
        SimRun {
            protocol: "nonin-df8".into(),
            options: SimOptions { seed: 1, period_ms, record: true },
            faults: Vec::new(),
            link: None,
            duration: None,
            write_every: std::time::Duration::ZERO,
            session_timeout: None,
            patient_id: None,
        }
    }

    #[tokio::test]
    async fn server_mode_serves_the_newest_client_and_prints_its_address() {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(run_tcp_server(sim_run(20), "127.0.0.1:0".parse().unwrap(), stop.clone(), tx, move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        let addr: SocketAddr = rx.await.unwrap().parse().unwrap();
        assert_ne!(addr.port(), 0, "the real port is reported");
        // Nothing is produced before a client connects.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(sent.load(std::sync::atomic::Ordering::Relaxed) <= 2, "output waits for a client");
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), first.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        // A second client takes over; the first gets nothing more.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut drained = 0;
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), first.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            drained += n;
        }
        assert!(drained < 64, "the replaced client stops receiving ({drained} bytes after)");
        stop.cancel();
        drop(second);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn client_mode_connects_from_the_given_address_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task =
            tokio::spawn(run_tcp_client(sim_run(20), addr.to_string(), Some("127.0.0.2".parse().unwrap()), stop.clone(), tx, |_| {}));
        assert_eq!(rx.await.unwrap(), addr.to_string());
        let (mut a, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.2");
        let mut buf = [0u8; 64];
        assert!(a.read(&mut buf).await.unwrap() > 0);
        drop(a);
        let (mut b, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(2), b.read(&mut buf)).await.unwrap().unwrap() > 0);
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    /// The simulator's read connects while its write timer runs beside it in a `select!`: an
    /// attempt cut short there is finished by the next call, not dropped — a dropped one that
    /// the gateway had accepted showed it a connection closed unused, a disconnection that
    /// never happened on the device server's side.
    #[tokio::test]
    async fn a_connection_attempt_cut_short_is_finished_not_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut io = ClientIo { addr: addr.to_string(), from: None, stream: None, attempt: None, retry: Duration::from_millis(200) };
        let mut buf = [0u8; 16];
        tokio::select! {
            biased;
            _ = io.read(&mut buf) => panic!("nothing was written to read"),
            _ = std::future::ready(()) => {}
        }
        assert!(io.stream.is_none() && io.attempt.is_some(), "the attempt was under way when cut short");
        io.write_all(b"hello").await.unwrap();
        let (mut first, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), first.read(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello", "the first connection the gateway accepted carries the data");
    }
}
