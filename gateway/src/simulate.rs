//! Device simulators on pseudo-terminals and serial ports (`medgw simulate`, `medgw demo`).
//!
//! The simulator's side of a pty is the master; the gateway opens the slave path like any
//! serial port, so the demo and the tests go through the real serial path. A stable symlink
//! (`--link`) names the device the way `/dev/serial/by-id/...` does on a gateway: it survives
//! an "unplug", which closes the pty and opens a new one under the same link.
//!
//! The same simulators run behind a simulated device server over TCP in `simulate_tcp.rs`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use medgw_protocols::sim::{self, DeviceSimulator, Fault, Sent, SimOptions};
use medgw_protocols::Timestamp;
use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

/// A fault at a time offset from the start (`--fault 5s:garbage=100`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    pub at: Duration,
    pub action: FaultAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    Device(Fault),
    /// Close the pseudo-terminal for this long, then open a new one (USB unplug and replug).
    Unplug(Duration),
}

/// Parses `5s:garbage=100`, `2500ms:bad-checksum`, `10s:unplug=3s`, `1m:silence=15s`.
pub fn parse_fault(s: &str) -> Result<ScheduledFault, String> {
    let (at, what) = s.split_once(':').ok_or_else(|| format!("{s:?}: expected TIME:KIND[=ARG], e.g. 5s:garbage=100"))?;
    let at = parse_duration(at)?;
    let (kind, arg) = match what.split_once('=') {
        Some((k, a)) => (k, Some(a)),
        None => (what, None),
    };
    let action = match (kind, arg) {
        ("bad-checksum", None) => FaultAction::Device(Fault::BadChecksum),
        ("truncate", None) => FaultAction::Device(Fault::Truncate),
        ("garbage", Some(n)) => FaultAction::Device(Fault::Garbage(n.parse().map_err(|_| format!("garbage={n}: a byte count"))?)),
        ("sensor-off", None) => FaultAction::Device(Fault::SensorOff(true)),
        ("sensor-on", None) => FaultAction::Device(Fault::SensorOff(false)),
        // SpO2 below the simulated low limit (an alarm on Masimo and MEDIBUS), and back.
        ("spo2-low", None) => FaultAction::Device(Fault::Spo2Low(true)),
        ("spo2-normal", None) => FaultAction::Device(Fault::Spo2Low(false)),
        ("lead-off", None) => FaultAction::Device(Fault::LeadOff(true)),
        ("lead-on", None) => FaultAction::Device(Fault::LeadOff(false)),
        ("silence", Some(d)) => FaultAction::Device(Fault::Silence(parse_duration(d)?.as_millis() as u32)),
        ("unplug", Some(d)) => FaultAction::Unplug(parse_duration(d)?),
        _ => {
            return Err(format!(
            "{what:?}: kinds are bad-checksum, truncate, garbage=N, sensor-off, sensor-on, spo2-low, spo2-normal, lead-off, lead-on, silence=DUR, unplug=DUR"
        ))
        }
    };
    Ok(ScheduledFault { at, action })
}

/// `250ms`, `5s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1000)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 20s, 5m)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_millis((v * mult as f64) as u64))
}

/// A pseudo-terminal: the master for the simulator, the slave path for the gateway.
pub struct Pty {
    pub master: AsyncFd<OwnedFd>,
    /// Kept open so the master does not read EIO before the gateway opens the slave.
    _slave: OwnedFd,
    pub path: PathBuf,
}

impl Pty {
    pub fn open() -> std::io::Result<Pty> {
        let p = openpty(None, None).map_err(std::io::Error::from)?;
        // Raw mode on the slave: no echo, no line editing, no CR/LF translation, 8 bits. The
        // gateway's serial open sets it too; doing it here makes the pty clean from the start.
        let mut t = termios::tcgetattr(&p.slave).map_err(std::io::Error::from)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&p.slave, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))?;
        let flags = nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
        // SAFETY: `p.master` is an `OwnedFd` that the AsyncFd owns from here on; nothing else
        // closes or replaces the descriptor while it is registered.
        let master = unsafe { AsyncFd::register(p.master)? };
        Ok(Pty { master, _slave: p.slave, path })
    }

    /// Writes all of `data`, waiting while the pty's buffer is full.
    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Bytes written by the simulator that the gateway has not read yet.
    pub fn unread(&self) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for the call.
        let r = unsafe { libc::ioctl(self._slave.as_raw_fd(), libc::FIONREAD, &mut n) };
        if r == 0 {
            n.max(0) as usize
        } else {
            0
        }
    }

    /// Waits (up to `max`) until the gateway has read everything: closing a pty discards what
    /// is still queued, and a simulator that stops must not lose its last frames that way.
    pub async fn drain(&self, max: Duration) {
        let start = tokio::time::Instant::now();
        // Bytes written to the master reach the slave's queue asynchronously (the tty layer's
        // flip buffer), so a zero right after a write proves nothing: wait a moment, and want
        // the queue empty twice in a row.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut empty = 0;
        while empty < 2 && start.elapsed() < max {
            empty = if self.unread() == 0 { empty + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(std::io::Error::from)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Points `link` at `target` atomically (a new symlink renamed over the old one).
pub fn relink(link: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = link.with_extension("new-link");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// Options of one simulated device.
#[derive(Debug, Clone)]
pub struct SimRun {
    pub protocol: String,
    pub options: SimOptions,
    pub faults: Vec<ScheduledFault>,
    /// Stable symlink to the current pty.
    pub link: Option<PathBuf>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Write what is due at most this often (zero: every frame when it is due). A USB serial
    /// adapter hands the host its bytes in such chunks too (an FTDI chip every 16 ms by
    /// default, its latency timer); `medgw bench` uses it at full speed so the simulators'
    /// timers and writes do not take the CPU the gateway and broker are measured on. The
    /// frames keep their own times and rate.
    pub write_every: Duration,
    /// How long the device keeps a session whose client went quiet (IntelliVue: the monitor's
    /// connection time-out, during which it refuses a new association); `None`: the
    /// protocol's own.
    pub session_timeout: Option<Duration>,
    /// The patient id the device reports as its own (IntelliVue demographics).
    pub patient_id: Option<String>,
}

impl SimRun {
    /// The simulator of this run, configured.
    pub fn make(&self) -> Result<Box<dyn DeviceSimulator>, String> {
        let mut sim = make(&self.protocol, &self.options)?;
        if let Some(t) = self.session_timeout {
            sim.set_session_timeout_ms(t.as_millis() as u64);
        }
        if let Some(id) = &self.patient_id {
            sim.set_patient_id(Some(id));
        }
        Ok(sim)
    }
}

/// Creates the simulator of `protocol`.
pub fn make(protocol: &str, options: &SimOptions) -> Result<Box<dyn DeviceSimulator>, String> {
    let make = sim::find(protocol).ok_or_else(|| {
        let names: Vec<&str> = sim::simulators().map(|(n, _)| *n).collect();
        format!("no simulator for {protocol:?}; simulators: {}", names.join(", "))
    })?;
    Ok(make(options, Timestamp::now()))
}

/// The byte pipe a simulator talks through.
pub trait SimIo {
    fn read(&mut self, buf: &mut [u8]) -> impl std::future::Future<Output = std::io::Result<usize>> + Send;
    fn write_all(&mut self, data: &[u8]) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl SimIo for Pty {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Pty::read(self, buf).await
    }
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        Pty::write_all(self, data).await
    }
}

impl SimIo for tokio_serial::SerialStream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf).await
    }
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, data).await
    }
}

/// Why [`drive`] returned.
pub(crate) enum Driven {
    Done,
    Unplug(Duration),
}

/// Runs `sim` over `io` until stop, the end of the run, or an unplug fault is due.
pub(crate) async fn drive<I: SimIo>(
    io: &mut I,
    sim: &mut Box<dyn DeviceSimulator>,
    faults: &mut std::iter::Peekable<std::vec::IntoIter<ScheduledFault>>,
    start: tokio::time::Instant,
    run: &SimRun,
    stop: &CancellationToken,
    on_sent: &mut (impl FnMut(Sent) + Send),
) -> Result<Driven, String> {
    let mut out = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 4096];
    let mut last_write = tokio::time::Instant::now();
    loop {
        if run.duration.is_some_and(|d| start.elapsed() >= d) || stop.is_cancelled() {
            return Ok(Driven::Done);
        }
        while let Some(f) = faults.peek() {
            if start.elapsed() < f.at {
                break;
            }
            match faults.next().map(|f| f.action) {
                Some(FaultAction::Device(fault)) => sim.inject(fault),
                Some(FaultAction::Unplug(d)) => return Ok(Driven::Unplug(d)),
                None => {}
            }
        }
        let now = Timestamp::now();
        let wait = Duration::from_millis((sim.next_tick().0 - now.0).clamp(0, 1000) as u64)
            .max(run.write_every.saturating_sub(last_write.elapsed()));
        let next_fault = faults.peek().map(|f| f.at.saturating_sub(start.elapsed())).unwrap_or(Duration::from_secs(3600));
        let end = run.duration.map(|d| d.saturating_sub(start.elapsed())).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            r = io.read(&mut buf) => match r {
                Ok(n) if n > 0 => {
                    out.clear();
                    sim.receive(&buf[..n], Timestamp::now(), &mut out);
                    if !out.is_empty() {
                        io.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
                    }
                }
                // EIO on a pty: no one has the slave open yet; keep going.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = tokio::time::sleep(wait) => {
                out.clear();
                last_write = tokio::time::Instant::now();
                sim.tick(Timestamp::now(), &mut out);
                if !out.is_empty() {
                    io.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
                }
            }
            _ = tokio::time::sleep(next_fault.min(end)) => {}
            _ = stop.cancelled() => return Ok(Driven::Done),
        }
        for s in sim.take_sent() {
            on_sent(s);
        }
    }
}

pub(crate) fn schedule(run: &SimRun) -> std::iter::Peekable<std::vec::IntoIter<ScheduledFault>> {
    let mut faults = run.faults.clone();
    faults.sort_by_key(|f| f.at);
    faults.into_iter().peekable()
}

/// Runs a simulator on a pseudo-terminal until `stop`; `ready` receives the path the gateway
/// should open (the link if given). `on_sent` gets every value the simulator put on the wire.
pub async fn run_pty(
    run: SimRun,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<PathBuf>,
    mut on_sent: impl FnMut(Sent) + Send,
) -> Result<(), String> {
    let mut sim = run.make()?;
    let mut pty = Pty::open().map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
    if let Some(link) = &run.link {
        relink(link, &pty.path).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    let _ = ready.send(run.link.clone().unwrap_or_else(|| pty.path.clone()));
    let start = tokio::time::Instant::now();
    let mut faults = schedule(&run);
    loop {
        match drive(&mut pty, &mut sim, &mut faults, start, &run, &stop, &mut on_sent).await? {
            Driven::Done => {
                pty.drain(Duration::from_secs(2)).await;
                return Ok(());
            }
            Driven::Unplug(d) => {
                tracing::info!(protocol = %run.protocol, "simulated unplug");
                drop(pty);
                if let Some(link) = &run.link {
                    let _ = std::fs::remove_file(link);
                }
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
                pty = Pty::open().map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
                if let Some(link) = &run.link {
                    relink(link, &pty.path).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
                }
            }
        }
    }
}

/// Runs a simulator on a real serial port with the protocol's default settings.
pub async fn run_port(
    run: SimRun,
    port: PathBuf,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<PathBuf>,
    mut on_sent: impl FnMut(Sent) + Send,
) -> Result<(), String> {
    let mut sim = run.make()?;
    let settings = medgw_protocols::registry::find(&run.protocol).and_then(|p| p.serial).unwrap_or_default();
    let mut serial = crate::source::serial::open(&port, &settings).map_err(|e| format!("cannot open {}: {e}", port.display()))?;
    let _ = ready.send(port.clone());
    let start = tokio::time::Instant::now();
    let mut faults = schedule(&run);
    loop {
        match drive(&mut serial, &mut sim, &mut faults, start, &run, &stop, &mut on_sent).await? {
            Driven::Done => return Ok(()),
            // A real port cannot be unplugged by software: stay silent for the time instead.
            Driven::Unplug(d) => sim.inject(Fault::Silence(d.as_millis() as u32)),
        }
    }
}

/// Replays a capture (`medgw record`) onto a pseudo-terminal: each chunk the device sent is
/// written at its recorded offset from the first, so the gateway sees the bytes with their
/// original timing. Returns when the capture ends (after the reader drained it) or on `stop`.
pub async fn replay_pty(
    chunks: Vec<crate::capture::Chunk>,
    link: Option<PathBuf>,
    speed: f64,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<PathBuf>,
) -> Result<(), String> {
    let pty = Pty::open().map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
    if let Some(link) = &link {
        relink(link, &pty.path).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    let _ = ready.send(link.clone().unwrap_or_else(|| pty.path.clone()));
    let rx: Vec<_> = chunks.into_iter().filter(|c| c.direction == crate::capture::Direction::Rx).collect();
    let Some(t0) = rx.first().map(|c| c.time) else { return Ok(()) };
    let start = tokio::time::Instant::now();
    let speed = if speed > 0.0 { speed } else { 1.0 };
    for c in rx {
        let at = start + Duration::from_secs_f64(((c.time.0 - t0.0).max(0) as f64 / 1000.0) / speed);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.cancelled() => return Ok(()),
        }
        pty.write_all(&c.bytes).await.map_err(|e| format!("pty write: {e}"))?;
    }
    pty.drain(Duration::from_secs(5)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::decode::Event;

    #[test]
    fn alarm_faults_parse() {
        let f = |s: &str| parse_fault(s).map(|f| (f.at, f.action));
        assert_eq!(f("2s:spo2-low"), Ok((Duration::from_secs(2), FaultAction::Device(Fault::Spo2Low(true)))));
        assert_eq!(f("5s:spo2-normal"), Ok((Duration::from_secs(5), FaultAction::Device(Fault::Spo2Low(false)))));
        assert_eq!(f("6s:lead-off"), Ok((Duration::from_secs(6), FaultAction::Device(Fault::LeadOff(true)))));
        assert_eq!(f("7s:lead-on"), Ok((Duration::from_secs(7), FaultAction::Device(Fault::LeadOff(false)))));
        assert!(f("5s:spo2-low=3").is_err());
        assert!(f("5s:spo2").unwrap_err().contains("spo2-low"));
    }

    /// A pipe that records each write and never has anything to read.
    #[derive(Default)]
    struct Recorder {
        writes: usize,
        bytes: Vec<u8>,
    }

    impl SimIo for Recorder {
        async fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
            std::future::pending().await
        }
        async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
            self.writes += 1;
            self.bytes.extend_from_slice(data);
            Ok(())
        }
    }

    fn values_and_writes(write_every: Duration) -> (usize, usize, usize) {
        let run = SimRun {
            protocol: "nonin-df8".into(),
            options: SimOptions { seed: 3, period_ms: 1, record: true },
            faults: Vec::new(),
            link: None,
            duration: Some(Duration::from_millis(400)),
            write_every,
            session_timeout: None,
            patient_id: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut io = Recorder::default();
        // Values the simulator put on the wire (`Sent` is one per value, not per frame).
        let mut sent = 0;
        rt.block_on(async {
            let mut sim = make(&run.protocol, &run.options).unwrap();
            let mut faults = schedule(&run);
            let start = tokio::time::Instant::now();
            drive(&mut io, &mut sim, &mut faults, start, &run, &CancellationToken::new(), &mut |_| sent += 1).await.unwrap();
        });
        // One frame per ms, all fed at one time: the rate gate is opened wide.
        let options = medgw_protocols::decode::DecoderOptions { max_frame_rate: Some(u32::MAX), ..Default::default() };
        let mut decoder = (medgw_protocols::registry::find("nonin-df8").unwrap().make)(&options);
        let mut events = Vec::new();
        decoder.feed(&io.bytes, Timestamp(0), &mut events);
        let measurements = events.iter().filter(|e| matches!(e, Event::Measurement(_))).count();
        (sent, measurements, io.writes)
    }

    #[test]
    fn write_every_coalesces_writes_and_keeps_every_frame() {
        let (sent, measurements, writes) = values_and_writes(Duration::from_millis(40));
        // 400 ms at one frame (SpO2 and pulse rate) per ms; every value sent arrives.
        assert!(sent >= 2 * 300, "{sent} values in 400 ms");
        assert_eq!(measurements, sent, "every value written decodes");
        // At most one write per 40 ms (the first at once), however many frames fell due.
        assert!(writes <= 400 / 40 + 2, "{writes} writes for {sent} values");
    }
}
