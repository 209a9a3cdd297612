//! `medgw bench`: N simulated devices at a chosen rate through the real path — pseudo-terminals,
//! `medgw run` as its own process (serial source, decoder, durable buffer, MQTT sink) — into a
//! real Mosquitto broker, and a subscriber that measures what arrives.
//!
//! With `--transport tcp` each simulator sits behind a simulated device server in TCP-server
//! mode (`simulate_tcp.rs`) and the gateway connects to it (`port = "tcp://..."`) instead of
//! opening a pty.
//!
//! Reported: observations per second delivered, latency percentiles from the gateway's receipt
//! of the device's bytes to delivery at the subscriber (the pty hop before it is sub-millisecond
//! on one machine), the gateway's peak resident memory (VmHWM), its CPU per observation, and the
//! Receive Maximum the broker announced. With `--ceiling` the same run then measures the native
//! ceiling: the gateway stops and a bare MQTT 5 publisher, then a plain rumqttc client, each in
//! a process of its own at the gateway's priority, publish the payloads the subscriber received
//! (same topics, same broker, one connection, the same in-flight window and Receive Maximum) as
//! fast as they can, so that the gateway's rate is a ratio taken side by side on the same loaded
//! machine. With `--transport tcp` the simulated devices go on sending meanwhile (into the
//! harness, which throws the bytes away), so the reference has the same device load beside it.
//! Run it with `--release`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medgw_protocols::sim::SimOptions;
use medgw_protocols::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::simulate::{self, SimRun};

/// How the simulated devices reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchTransport {
    /// Pseudo-terminals (the serial path).
    Pty,
    /// Device servers in TCP-server mode on loopback (the raw TCP path).
    Tcp,
}

/// Where the bench measures delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchSink {
    /// A subscriber of the MQTT broker.
    Mqtt,
    /// An MLLP receiver started by the bench (`bench_mllp.rs`), configured as a `[[sink]]`
    /// beside `[mqtt]` (which the gateway always has; nobody subscribes to its observations).
    Mllp,
}

/// `medgw bench`'s options (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    #[arg(long, default_value_t = 32)]
    pub devices: usize,
    #[arg(long, default_value = "nonin-df8")]
    pub protocol: String,
    /// Each simulated device's output period in ms (the rate).
    #[arg(long, default_value_t = 1000)]
    pub period_ms: u32,
    #[arg(long, value_parser = simulate::parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// Measure after this warm-up.
    #[arg(long, value_parser = simulate::parse_duration, default_value = "3s")]
    pub warmup: Duration,
    /// MQTT over TLS with a client certificate.
    #[arg(long)]
    pub tls: bool,
    #[arg(long, default_value = "canonical")]
    pub format: String,
    /// Keep the work directory (config, logs, buffer) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Drain benchmark: start with this many observations buffered (an outage); measured until
    /// all are delivered while the live devices keep sending.
    #[arg(long)]
    pub drain: Option<u64>,
    /// With --drain: measure the drain as the broker acknowledges it (the gateway's buffer
    /// empties), with the subscriber taking only the live devices' topics, instead of as the
    /// subscriber receives the backlog (which makes the broker forward every message).
    #[arg(long, requires = "drain")]
    pub drain_to_broker: bool,
    /// How the simulated devices are attached: pseudo-terminals or device servers on TCP.
    #[arg(long, value_enum, default_value = "pty")]
    pub transport: BenchTransport,
    /// Each simulator writes what is due at most this often, as a USB serial adapter hands
    /// over its bytes in chunks (an FTDI chip's latency timer is 16 ms by default); `0s`
    /// writes every frame on its own. The frames keep their rate and times.
    #[arg(long, value_parser = simulate::parse_duration, default_value = "4ms")]
    pub write_every: Duration,
    /// Nice value for the harness (simulators, subscriber) once the gateway and broker
    /// run; 0 (default) leaves every process at the same priority, as in a comparison with
    /// another gateway on the same machine.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub harness_nice: i32,
    /// Alarm latency: every device raises an SpO2-low alarm and clears it, alternately, this
    /// often (`--protocol masimo` or `medibus`, `--format canonical`); the report gives the
    /// latency from the gateway's receipt of the device bytes to the subscriber, measured
    /// during the drain with `--drain`, else during the measurement.
    #[arg(long, value_parser = simulate::parse_duration)]
    pub alarms: Option<Duration>,
    /// Waveforms instead of observations (`bench_waves.rs`): `--devices` beds, each with an
    /// ECG at 500 samples/s and a pleth at 125 samples/s, through the wave path.
    #[arg(long)]
    pub waves: bool,
    /// With --waves: the MQTT QoS of wave segments (0 or 1).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub waves_qos: u8,
    /// With --waves: durable waves (`[waves] durable = true`: every segment stored in the
    /// buffer, deleted on its PUBACK; QoS 1).
    #[arg(long)]
    pub waves_durable: bool,
    /// The measured process of `--waves` (started by it).
    #[arg(long, hide = true)]
    pub waves_child: bool,
    /// The broker's port, for `--waves-child`.
    #[arg(long, hide = true)]
    pub broker_port: Option<u16>,
    /// Mosquitto's `max_inflight_messages`, which it announces to MQTT 5 clients as its Receive
    /// Maximum: 20 is Mosquitto's default, 1000 a raised one.
    #[arg(long, default_value_t = 20)]
    pub broker_inflight: u16,
    /// After the measurement, stop the gateway and measure the native ceiling for as long:
    /// a plain MQTT client in its own process publishing the received payloads through the
    /// same broker.
    #[arg(long)]
    pub ceiling: bool,
    /// With `--ceiling`: stop the simulated devices before the native publishers run. By
    /// default (`--transport tcp`) they go on sending through the ceiling, their bytes read and
    /// thrown away by the harness, so that the reference shares the machine with the same device
    /// load as the gateway did; with pseudo-terminals and with `--sink mllp` they always stop.
    #[arg(long, requires = "ceiling")]
    pub ceiling_quiet: bool,
    /// The native publisher of `--ceiling` (started by it, in its own process): publishes the
    /// payloads of this file (written by the bench) until it is killed.
    #[arg(long, hide = true)]
    pub ceiling_child: Option<PathBuf>,
    /// With `--ceiling-child`: the most messages in flight (the gateway's `max_inflight`; the
    /// broker's Receive Maximum may lower it, as it does the gateway's).
    #[arg(long, hide = true, default_value_t = 1000)]
    pub ceiling_window: u16,
    /// With `--ceiling-child`: which publisher.
    #[arg(long, hide = true, value_enum, default_value = "raw")]
    pub ceiling_client: CeilingClient,
    /// Mosquitto's `set_tcp_nodelay true` (off by default): without it the broker's small
    /// writes to the subscriber may wait for the subscriber's delayed ACK (Nagle).
    #[arg(long)]
    pub broker_nodelay: bool,
    /// The gateway's `[buffer] commit_interval_ms`; unset: its default (0, commit as soon as
    /// the previous commit finished). 5 was the default before issue 20.
    #[arg(long)]
    pub commit_interval_ms: Option<u32>,
    /// Where delivery is measured: the MQTT subscriber, or an MLLP receiver started by the
    /// bench (PCD-01 ORU^R01 per observation set, answered AA; latency from OBR-7, which is
    /// the gateway's receipt time for a device without a clock such as nonin-df8). With
    /// `--ceiling`, the reference is a plain MLLP sender of the messages received, with the
    /// same number in flight.
    #[arg(long, value_enum, default_value = "mqtt")]
    pub sink: BenchSink,
    /// With --sink mllp: the sink's `max_in_flight` (and the reference sender's window).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub mllp_in_flight: u16,
    /// The MLLP reference sender as its own process (started by `--sink mllp --ceiling`): the
    /// file of messages to send, and the receiver's port.
    #[arg(long, hide = true, requires = "engine_port")]
    pub mllp_reference: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub engine_port: Option<u16>,
}

/// The native publishers of `--ceiling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CeilingClient {
    /// The least work any MQTT client does: one task, one socket, a PUBLISH packet framed per
    /// message around the ready-made payload, the window refilled as PUBACKs arrive.
    Raw,
    /// A plain rumqttc MQTT 5 client (`AsyncClient` and its event loop), as a hand-wired
    /// publisher would be written.
    Rumqttc,
}

/// Payloads kept from the gateway's run for the native publisher (`--ceiling`).
const CEILING_PAYLOADS: usize = 20_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub sink: BenchSink,
    /// With `--sink mllp`: the sink's `max_in_flight`, and the messages per second the
    /// engine acknowledged (medgw's, and with `--ceiling` the reference sender's).
    pub mllp_in_flight: Option<u16>,
    pub mllp_messages_per_s: Option<f64>,
    pub reference_messages_per_s: Option<f64>,
    pub transport: BenchTransport,
    pub devices: usize,
    pub protocol: String,
    pub period_ms: u32,
    /// How often each simulator wrote what was due (`--write-every`), in ms.
    pub write_every_ms: u64,
    /// `--commit-interval-ms` when given.
    pub commit_interval_ms: Option<u32>,
    pub tls: bool,
    pub format: String,
    pub seconds: f64,
    pub delivered: u64,
    pub observations_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub gateway_peak_rss_kib: u64,
    /// Sampled during the measurement: the peak of the gateway's anonymous resident memory
    /// (heap, stacks) and of its file-backed part (the executable's and libraries' pages
    /// mapped in, shared with any other process running them).
    pub gateway_rss_anon_peak_kib: u64,
    pub gateway_rss_file_peak_kib: u64,
    /// CPU time the gateway process used during the measurement, in % of one core.
    pub gateway_cpu_percent: f64,
    /// Gateway CPU time per delivered observation, in µs.
    pub gateway_cpu_us_per_observation: f64,
    /// Mosquitto's `max_inflight_messages` in this run.
    pub broker_inflight: u16,
    /// Mosquitto's `set_tcp_nodelay` in this run.
    pub broker_nodelay: bool,
    /// The Receive Maximum the broker announced and the gateway's resulting window, from its
    /// `/api/status` (`None`: none announced, or the status was not read).
    pub broker_receive_maximum: Option<u64>,
    pub gateway_in_flight_limit: Option<u64>,
    /// `--ceiling`: messages per second one plain client got through the same broker, and the
    /// gateway's rate as a percentage of it.
    pub ceiling_per_s: Option<f64>,
    pub percent_of_ceiling: Option<f64>,
    /// Whether the simulated devices went on sending (to the harness) while the native
    /// publishers ran (see `--ceiling-quiet`).
    pub ceiling_beside_devices: Option<bool>,
    pub ceiling_broker_cpu_percent: Option<f64>,
    /// The native publisher's CPU time per message received by the subscriber, in µs, and its
    /// peak resident memory.
    pub ceiling_cpu_us_per_message: Option<f64>,
    pub ceiling_peak_rss_kib: Option<u64>,
    /// The same for a plain rumqttc client ([`CeilingClient::Rumqttc`]), measured after it.
    pub rumqttc_per_s: Option<f64>,
    pub percent_of_rumqttc: Option<f64>,
    pub rumqttc_cpu_us_per_message: Option<f64>,
    pub rumqttc_peak_rss_kib: Option<u64>,
    /// CPU time Mosquitto used during the measurement, in % of one core: Mosquitto is
    /// single-threaded, so near 100 % the broker, not the gateway, sets the rate.
    pub broker_cpu_percent: f64,
    /// CPU time of this process (simulators and subscriber) during the measurement, in % of
    /// one core: what the harness takes from the machine the gateway and broker share.
    pub harness_cpu_percent: f64,
    pub cpus: usize,
    /// Drain benchmark: the backlog size, how long it took to deliver, and the rate.
    pub drain_backlog: Option<u64>,
    pub drain_seconds: Option<f64>,
    pub drain_per_s: Option<f64>,
    /// Latency of live observations while the backlog drained (live-first), p99 in ms.
    pub drain_live_p99_ms: Option<f64>,
    /// Where the drain was measured: `subscriber` (every backlog message received) or
    /// `broker` (every backlog message acknowledged to the gateway, not forwarded).
    pub drain_measured_at: Option<&'static str>,
    /// CPU of the gateway and of the broker while the backlog drained, in % of one core.
    pub drain_gateway_cpu_percent: Option<f64>,
    pub drain_broker_cpu_percent: Option<f64>,
    /// With `--alarms`: alarm events received, and their latency from the gateway's receipt
    /// of the device bytes to the subscriber (during the drain with `--drain`).
    pub alarm_events: Option<u64>,
    pub alarm_latency_ms_p50: Option<f64>,
    pub alarm_latency_ms_p99: Option<f64>,
    pub alarm_latency_ms_max: Option<f64>,
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path.split(':').chain(["/usr/sbin", "/usr/local/sbin"]).map(|d| Path::new(d).join(name)).find(|p| p.is_file());
    found
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process now: (anonymous, file-backed) in KiB (`RssAnon`, `RssFile`).
fn rss_split_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
        let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
        // After the command name: field 3 is rest[0], so utime (14) is rest[11], stime rest[12].
        Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
    });
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks.unwrap_or(0) as f64 / hz
}

/// Writes `n` observations of a "backlog" device into the buffer file, as an outage would have
/// left them (batches of 8192, one transaction each).
fn prefill(path: &Path, n: u64) -> anyhow::Result<()> {
    use medgw_protocols::mdc::{code, unit};
    use medgw_protocols::observation::{DeviceContext, Flags, Location, Measurement, Observation};
    let cfg = crate::config::BufferConfig {
        path: path.to_path_buf(),
        max_bytes: 8 << 30,
        when_full: crate::config::WhenFull::DropOldest,
        commit_interval_ms: 5,
        replay: crate::config::Replay::LiveFirst,
    };
    let (mut store, _) = crate::buffer::SqliteStore::open(&cfg)?;
    let ctx = std::sync::Arc::new(DeviceContext {
        gateway: "bench-gw".into(),
        name: "backlog".into(),
        protocol: "nonin-df8".into(),
        port: "/dev/null".into(),
        location: Location { site: "BENCH".into(), unit: "U".into(), room: None, bed: "BACKLOG".into() },
        ..Default::default()
    });
    // Receipt times from an outage more than an hour ago, 2 ms apart: told apart from live data
    // by their age.
    let t0 = Timestamp::now().0 - 3_600_000 - (n as i64) * 2;
    let mut done = 0u64;
    while done < n {
        let batch: Vec<Observation> = (done..(done + 8192).min(n))
            .map(|i| {
                let m = Measurement::numeric(
                    code::MDC_PULS_OXIM_SAT_O2,
                    medgw_protocols::Decimal::from_int(90 + (i % 10) as i32),
                    unit::MDC_DIM_PERCENT,
                );
                Observation::new(ctx.clone(), m, Timestamp(t0 + i as i64 * 2), None, Flags::NONE)
            })
            .collect();
        done += batch.len() as u64;
        store.append_group(&[batch.as_slice()])?;
    }
    Ok(())
}

/// Lowers the scheduling priority of every thread of this process (the simulators and the
/// subscriber) to `nice`, after the gateway and the broker were started at normal priority.
/// The harness stands in for devices and consumers that sit on other machines in a real
/// install; on the two shared cores it should not take CPU time from the two processes it
/// measures. Linux priorities are per thread, hence the walk over `/proc/self/task`; threads
/// created later inherit the priority of the thread that creates them.
fn lower_own_priority(nice: i32) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for tid in tasks.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<libc::id_t>().ok())) {
        // SAFETY: setpriority has no memory preconditions; a failure only leaves the priority.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    }
}

/// Reads and throws away what a simulated device server sends, in the gateway's place, while
/// the native ceiling is measured (the device load stays on the machine).
async fn drain_device(addr: String) {
    use tokio::io::AsyncReadExt;
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else { return };
    let mut buf = vec![0u8; 64 * 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Asks the kernel to drop the cached pages of `path` that no process maps, so that the
/// gateway's code is read from disk as on a first start. The file-backed part of the resident
/// memory depends on how the cached copy was laid out: a binary a build or `cp` just wrote
/// sits in large page-cache folios, and each fault then maps a whole folio — the same binary
/// measured 10.6 MiB of mapped code after this and 11.3–11.8 MiB without it. Pages the harness
/// itself maps (when the gateway is this executable) stay.
fn drop_from_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: posix_fadvise on an open descriptor only advises the page cache.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(o: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        o.alarms.is_none() || (o.format == "canonical" && matches!(o.protocol.as_str(), "masimo" | "medibus")),
        "--alarms needs --format canonical and --protocol masimo or medibus (simulators with an alarm channel)"
    );
    let mosquitto = which("mosquitto").ok_or_else(|| anyhow::anyhow!("mosquitto is not installed (apt-get install mosquitto)"))?;
    let dir = tempfile::Builder::new().prefix("medgw-bench-").tempdir()?;
    // Both listeners are held while the ports are read, so the two ports differ.
    let (l1, l2) = (std::net::TcpListener::bind("127.0.0.1:0")?, std::net::TcpListener::bind("127.0.0.1:0")?);
    let (port, tls_port) = (l1.local_addr()?.port(), l2.local_addr()?.port());
    drop((l1, l2));
    let mut conf = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages {}\n",
        o.broker_inflight
    );
    if o.broker_nodelay {
        conf.push_str("set_tcp_nodelay true\n");
    }
    if o.tls {
        crate::pki::generate(dir.path(), "bench-gw")?;
        let d = dir.path().display();
        conf.push_str(&format!(
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n"
        ));
    }
    std::fs::write(dir.path().join("mosquitto.conf"), conf)?;
    let log = std::fs::File::create(dir.path().join("mosquitto.log"))?;
    let broker =
        Killed(Command::new(mosquitto).arg("-c").arg(dir.path().join("mosquitto.conf")).stdout(Stdio::null()).stderr(log).spawn()?);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default();
        anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "mosquitto did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Simulators in this process, on pseudo-terminals or behind simulated device servers.
    let stop = CancellationToken::new();
    let mut ports = Vec::new();
    for i in 0..o.devices {
        let link = dir.path().join(format!("tty{i}"));
        let run = SimRun {
            protocol: o.protocol.clone(),
            options: SimOptions { seed: i as u64 + 1, period_ms: o.period_ms, record: false },
            faults: o.alarms.map(alarm_faults).unwrap_or_default(),
            link: (o.transport == BenchTransport::Pty).then(|| link.clone()),
            duration: None,
            write_every: o.write_every,
            session_timeout: None,
            patient_id: None,
        };
        let stop = stop.clone();
        match o.transport {
            BenchTransport::Pty => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    if let Err(e) = simulate::run_pty(run, stop, tx, |_| {}).await {
                        eprintln!("simulator: {e}");
                    }
                });
                rx.await?;
                ports.push(link.display().to_string());
            }
            BenchTransport::Tcp => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
                tokio::spawn(async move {
                    if let Err(e) = crate::simulate_tcp::run_tcp_server(run, any, stop, tx, |_| {}).await {
                        eprintln!("simulator: {e}");
                    }
                });
                ports.push(format!("tcp://{}", rx.await?));
            }
        }
    }

    // The gateway as its own process, so its memory is measured alone.
    let mut cfg = format!(
        "[gateway]\nid = \"bench-gw\"\nsite = \"BENCH\"\nunit = \"U\"\ntimezone = \"UTC\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nformat = \"{}\"\nmax_inflight = 1000\n",
        if o.tls { tls_port } else { port },
        o.format
    );
    if o.tls {
        let d = dir.path().display();
        cfg.push_str(&format!("[mqtt.tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/client.pem\"\nkey = \"{d}/client.key\"\n"));
    }
    let status_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    cfg.push_str(&format!("\n[status]\nbind = \"127.0.0.1:{status_port}\"\n"));
    cfg.push_str(&format!("\n[buffer]\npath = \"{}\"\nmax_bytes = \"4GB\"\n", dir.path().join("buffer.db").display()));
    if let Some(ms) = o.commit_interval_ms {
        cfg.push_str(&format!("commit_interval_ms = {ms}\n"));
    }
    for (i, port) in ports.iter().enumerate() {
        cfg.push_str(&format!(
            "\n[[device]]\nname = \"dev{i}\"\nprotocol = \"{}\"\nport = \"{port}\"\nbed = \"BED{i}\"\npoll_period_ms = {}\nmax_frame_rate = 1000000\n",
            o.protocol,
            o.period_ms.max(100)
        ));
    }
    // The engine (`--sink mllp`): started before the gateway, which connects to it.
    let mllp_stop = CancellationToken::new();
    let (mllp_tx, mut mllp_rx) = tokio::sync::mpsc::unbounded_channel::<crate::bench_mllp::Received>();
    let mut engine_port = 0;
    if o.sink == BenchSink::Mllp {
        let rx = crate::bench_mllp::Receiver::start(mllp_tx, CEILING_PAYLOADS, mllp_stop.clone()).await?;
        engine_port = rx.port;
        cfg.push_str(&format!(
            "\n[[sink]]\nkind = \"mllp\"\nname = \"engine\"\nhost = \"127.0.0.1\"\nport = {}\nmax_in_flight = {}\n",
            rx.port, o.mllp_in_flight
        ));
    }
    let cfg_path = dir.path().join("medgw.toml");
    std::fs::write(&cfg_path, cfg)?;

    // Subscriber: counts deliveries and measures latency from the receipt time in the payload.
    let (sample_tx, mut sample_rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let sample_tx_mllp = sample_tx.clone();
    let (alarm_tx, mut alarm_rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    // Every message received, with what the native publisher needs to send it again.
    let (recv_tx, mut recv_rx) = tokio::sync::mpsc::unbounded_channel::<(String, bytes::Bytes)>();
    let mut opts = rumqttc::MqttOptions::new("medgw-bench-sub", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 1000);
    if o.sink == BenchSink::Mllp {
        // Measured at the engine: the broker's observations are not forwarded to anyone.
    } else if o.drain_to_broker {
        // Only the live devices (beds BED0..): the backlog's bed is not forwarded to anyone.
        for i in 0..o.devices {
            client.subscribe(format!("medgw/v1/+/BED{i}/+/obs"), rumqttc::QoS::AtMostOnce).await?;
        }
    } else {
        client.subscribe("medgw/v1/+/+/+/obs", rumqttc::QoS::AtMostOnce).await?;
    }
    if o.alarms.is_some() {
        client.subscribe("medgw/v1/+/+/+/alarm", rumqttc::QoS::AtMostOnce).await?;
    }
    let format = o.format.clone();
    // Its own token: it goes on receiving through the native ceiling after the devices stop.
    let sub_stop = CancellationToken::new();
    let sub_done = sub_stop.clone();
    let sub = tokio::spawn(async move {
        loop {
            tokio::select! {
                e = events.poll() => match e {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let now = Timestamp::now().0 as f64;
                        if p.topic.ends_with("/alarm") {
                            if let Some(rx) = alarm_receipt_ms(&p.payload) {
                                let _ = alarm_tx.send(now - rx);
                            }
                        } else if let Some(rx) = receipt_ms(&p.payload, &format) {
                            let _ = sample_tx.send(now - rx);
                        }
                        let _ = recv_tx.send((p.topic, p.payload));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                },
                _ = sub_stop.cancelled() => break,
            }
        }
    });
    // The engine's receipts as samples (one per observation, as the subscriber gives one per
    // canonical message), and the messages kept for the reference sender.
    let (mllp_msgs_tx, mut mllp_msgs_rx) = tokio::sync::mpsc::unbounded_channel::<(std::sync::Arc<[u8]>, u32)>();
    let mllp_acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if o.sink == BenchSink::Mllp {
        let (sample_tx, acked) = (sample_tx_mllp.clone(), mllp_acked.clone());
        tokio::spawn(async move {
            while let Some(r) = mllp_rx.recv().await {
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(l) = r.latency_ms {
                    for _ in 0..r.observations {
                        let _ = sample_tx.send(l);
                    }
                }
                if let Some(m) = r.message {
                    let _ = mllp_msgs_tx.send((m, r.observations));
                }
            }
        });
    }
    drop(sample_tx_mllp);
    tokio::time::sleep(Duration::from_millis(300)).await;

    if let Some(n) = o.drain {
        let t = Instant::now();
        prefill(&dir.path().join("buffer.db"), n)?;
        eprintln!("buffer prefilled with {n} observations in {:.1} s", t.elapsed().as_secs_f64());
    }
    // MEDGW_BENCH_GATEWAY: another build of the gateway, measured against the same harness and
    // native ceiling (before/after comparisons in one series).
    let exe = match std::env::var_os("MEDGW_BENCH_GATEWAY") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?,
    };
    drop_from_page_cache(&exe);
    let log = std::fs::File::create(dir.path().join("gateway.log"))?;
    let gw = Killed(
        Command::new(exe).args(["run", "--config"]).arg(&cfg_path).env("MEDGW_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn()?,
    );
    let pid = gw.0.id();
    if o.harness_nice > 0 {
        lower_own_priority(o.harness_nice);
    }

    let mut drain_result = None;
    let mut alarm_samples = Vec::new();
    if let Some(n) = o.drain {
        // Count until every backlog observation arrived; live ones are told apart by being
        // less than half an hour old (the backlog's receipt times are over an hour old).
        let t = Instant::now();
        let (mut backlog_seen, mut live) = (0u64, Vec::new());
        let (cpu0, broker_cpu0) = (cpu_seconds(pid), cpu_seconds(broker.0.id()));
        if o.drain_to_broker {
            // Done when the oldest buffered row is no longer from the outage (over an hour old).
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                while let Ok(latency) = sample_rx.try_recv() {
                    live.push(latency);
                }
                let age = oldest_buffered_age_s(status_port).await;
                if age.is_some_and(|a| a < 1800.0) || t.elapsed() > Duration::from_secs(900) {
                    backlog_seen = if age.is_some_and(|a| a < 1800.0) { n } else { 0 };
                    break;
                }
            }
        }
        while !o.drain_to_broker && backlog_seen < n && t.elapsed() < Duration::from_secs(900) {
            match tokio::time::timeout(Duration::from_secs(30), sample_rx.recv()).await {
                Ok(Some(latency)) if latency > 1_800_000.0 => backlog_seen += 1,
                Ok(Some(latency)) => live.push(latency),
                _ => break,
            }
        }
        let secs = t.elapsed().as_secs_f64();
        while let Ok(a) = alarm_rx.try_recv() {
            alarm_samples.push(a);
        }
        live.sort_by(|a, b| a.total_cmp(b));
        drain_result = Some((
            backlog_seen,
            secs,
            percentile(&live, 0.99),
            (cpu_seconds(pid) - cpu0) / secs * 100.0,
            (cpu_seconds(broker.0.id()) - broker_cpu0) / secs * 100.0,
        ));
    } else {
        tokio::time::sleep(o.warmup).await;
    }
    while sample_rx.try_recv().is_ok() {}
    while recv_rx.try_recv().is_ok() {}
    let t0 = Instant::now();
    let mllp_acked0 = mllp_acked.load(std::sync::atomic::Ordering::Relaxed);
    let (cpu0, broker_cpu0, harness_cpu0) = (cpu_seconds(pid), cpu_seconds(broker.0.id()), cpu_seconds(std::process::id()));
    let mut samples = Vec::with_capacity(1 << 20);
    let deadline = tokio::time::Instant::now() + o.duration;
    // The peak of each part of the resident memory, looked at four times a second.
    let (mut anon_peak, mut file_peak) = (0u64, 0u64);
    let mut look = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            s = sample_rx.recv() => match s { Some(s) => samples.push(s), None => break },
            _ = look.tick() => {
                let (anon, file) = rss_split_kib(pid);
                (anon_peak, file_peak) = (anon_peak.max(anon), file_peak.max(file));
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let mllp_messages = mllp_acked.load(std::sync::atomic::Ordering::Relaxed) - mllp_acked0;
    let rss = peak_rss_kib(pid);
    let cpu = (cpu_seconds(pid) - cpu0) / secs * 100.0;
    let broker_cpu = (cpu_seconds(broker.0.id()) - broker_cpu0) / secs * 100.0;
    let harness_cpu = (cpu_seconds(std::process::id()) - harness_cpu0) / secs * 100.0;
    if o.drain.is_none() {
        while let Ok(a) = alarm_rx.try_recv() {
            alarm_samples.push(a);
        }
    }
    alarm_samples.sort_by(|a, b| a.total_cmp(b));
    let alarms_measured = o.alarms.is_some();
    let gateway_cpu_s = cpu_seconds(pid) - cpu0;
    let status = gateway_status(status_port).await;
    let broker_receive_maximum = status.as_ref().and_then(|s| s["broker"]["broker_receive_maximum"].as_u64());
    let in_flight_limit = status.as_ref().and_then(|s| s["broker"]["in_flight_limit"].as_u64());
    // The gateway stops; the devices either stop with it or go on sending into the harness
    // through the native ceiling (`--ceiling-quiet`), which then runs beside the same load.
    let devices_go_on = o.ceiling && !o.ceiling_quiet && o.transport == BenchTransport::Tcp && o.sink == BenchSink::Mqtt;
    if !devices_go_on {
        stop.cancel();
    }
    drop(gw);
    let drains: Vec<_> = if devices_go_on {
        ports.iter().filter_map(|p| p.strip_prefix("tcp://").map(str::to_string)).map(|addr| tokio::spawn(drain_device(addr))).collect()
    } else {
        Vec::new()
    };
    let mut payloads = Vec::with_capacity(CEILING_PAYLOADS);
    while let Ok(p) = recv_rx.try_recv() {
        if payloads.len() < CEILING_PAYLOADS {
            payloads.push(p);
        }
    }
    let mut reference_messages_per_s = None;
    // The MLLP reference sender: (observations/s, broker CPU %).
    let mut mllp_reference = None;
    let ceiling = if o.sink == BenchSink::Mllp {
        let mut messages = Vec::new();
        while let Ok(m) = mllp_msgs_rx.try_recv() {
            messages.push(m);
        }
        if o.ceiling && !messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let broker_cpu0 = cpu_seconds(broker.0.id());
            let (obs, msgs, s) =
                crate::bench_mllp::reference_process(dir.path(), engine_port, &messages, o.mllp_in_flight, o.duration).await?;
            reference_messages_per_s = Some(msgs as f64 / s);
            mllp_reference = Some((obs as f64 / s, (cpu_seconds(broker.0.id()) - broker_cpu0) / s * 100.0));
        }
        None
    } else if o.ceiling && !payloads.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        while recv_rx.try_recv().is_ok() {}
        let file = dir.path().join("ceiling-payloads.bin");
        write_payloads(&file, &payloads)?;
        let (bpid, d) = (broker.0.id(), dir.path());
        let raw = native_ceiling(port, &file, CeilingClient::Raw, &o.format, o.duration, bpid, d, &mut recv_rx).await?;
        let rumqttc = native_ceiling(port, &file, CeilingClient::Rumqttc, &o.format, o.duration, bpid, d, &mut recv_rx).await?;
        Some((raw, rumqttc))
    } else {
        None
    };
    stop.cancel();
    for d in drains {
        d.abort();
    }
    sub_done.cancel();
    mllp_stop.cancel();
    let _ = sub.await;
    if o.keep {
        let kept = dir.keep();
        eprintln!("work directory kept: {}", kept.display());
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let mllp = o.sink == BenchSink::Mllp;
    Ok(BenchReport {
        sink: o.sink,
        mllp_in_flight: mllp.then_some(o.mllp_in_flight),
        mllp_messages_per_s: mllp.then(|| mllp_messages as f64 / secs),
        reference_messages_per_s,
        transport: o.transport,
        devices: o.devices,
        protocol: o.protocol,
        period_ms: o.period_ms,
        write_every_ms: o.write_every.as_millis() as u64,
        commit_interval_ms: o.commit_interval_ms,
        tls: o.tls,
        format: o.format,
        seconds: secs,
        delivered: samples.len() as u64,
        observations_per_s: samples.len() as f64 / secs,
        latency_ms_p50: percentile(&samples, 0.50),
        latency_ms_p99: percentile(&samples, 0.99),
        latency_ms_max: samples.last().copied().unwrap_or(0.0),
        gateway_peak_rss_kib: rss,
        gateway_rss_anon_peak_kib: anon_peak,
        gateway_rss_file_peak_kib: file_peak,
        gateway_cpu_percent: cpu,
        gateway_cpu_us_per_observation: if samples.is_empty() { 0.0 } else { gateway_cpu_s / samples.len() as f64 * 1e6 },
        broker_inflight: o.broker_inflight,
        broker_nodelay: o.broker_nodelay,
        broker_receive_maximum,
        gateway_in_flight_limit: in_flight_limit,
        ceiling_per_s: ceiling.map(|c| c.0.per_s).or(mllp_reference.map(|m| m.0)),
        ceiling_beside_devices: ceiling.map(|_| devices_go_on),
        percent_of_ceiling: ceiling.map(|c| c.0.per_s).or(mllp_reference.map(|m| m.0)).map(|c| samples.len() as f64 / secs / c * 100.0),
        ceiling_broker_cpu_percent: ceiling.map(|c| c.0.broker_cpu_percent).or(mllp_reference.map(|m| m.1)),
        ceiling_cpu_us_per_message: ceiling.map(|c| c.0.cpu_us_per_message),
        ceiling_peak_rss_kib: ceiling.map(|c| c.0.peak_rss_kib),
        rumqttc_per_s: ceiling.map(|c| c.1.per_s),
        percent_of_rumqttc: ceiling.map(|c| samples.len() as f64 / secs / c.1.per_s * 100.0),
        rumqttc_cpu_us_per_message: ceiling.map(|c| c.1.cpu_us_per_message),
        rumqttc_peak_rss_kib: ceiling.map(|c| c.1.peak_rss_kib),
        broker_cpu_percent: broker_cpu,
        harness_cpu_percent: harness_cpu,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        drain_backlog: drain_result.map(|d| d.0),
        drain_seconds: drain_result.map(|d| d.1),
        drain_per_s: drain_result.map(|d| d.0 as f64 / d.1),
        drain_live_p99_ms: drain_result.map(|d| d.2),
        drain_measured_at: o.drain.map(|_| if o.drain_to_broker { "broker" } else { "subscriber" }),
        drain_gateway_cpu_percent: drain_result.map(|d| d.3),
        drain_broker_cpu_percent: drain_result.map(|d| d.4),
        alarm_events: alarms_measured.then_some(alarm_samples.len() as u64),
        alarm_latency_ms_p50: alarms_measured.then(|| percentile(&alarm_samples, 0.50)),
        alarm_latency_ms_p99: alarms_measured.then(|| percentile(&alarm_samples, 0.99)),
        alarm_latency_ms_max: alarms_measured.then(|| alarm_samples.last().copied().unwrap_or(0.0)),
    })
}

/// What the native publisher achieved.
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    per_s: f64,
    broker_cpu_percent: f64,
    cpu_us_per_message: f64,
    peak_rss_kib: u64,
}

/// The native ceiling: this executable again, as its own process at the gateway's priority
/// (`bench --ceiling-child`, [`ceiling_child`]), publishes the payloads of `file` for `duration`
/// after a second of warm-up; counted as the subscriber receives them.
#[allow(clippy::too_many_arguments)]
async fn native_ceiling(
    port: u16,
    file: &Path,
    client: CeilingClient,
    format: &str,
    duration: Duration,
    broker_pid: u32,
    dir: &Path,
    received: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
) -> anyhow::Result<Ceiling> {
    let log = dir.join(format!("ceiling-{client:?}.log"));
    let child = Killed(
        Command::new(std::env::current_exe()?)
            .arg("bench")
            .arg("--ceiling-child")
            .arg(file)
            .args(["--broker-port", &port.to_string(), "--format", format])
            .args(["--ceiling-client", if client == CeilingClient::Raw { "raw" } else { "rumqttc" }])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    let pid = child.0.id();
    // Warm-up: the first second is not counted.
    let warm = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::timeout_at(warm, received.recv()).await.is_ok() {}
    let t = Instant::now();
    let (cpu0, broker_cpu0) = (cpu_seconds(pid), cpu_seconds(broker_pid));
    let deadline = tokio::time::Instant::now() + duration;
    let mut n = 0u64;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, received.recv()).await {
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    let (cpu, broker_cpu, rss) = (cpu_seconds(pid) - cpu0, cpu_seconds(broker_pid) - broker_cpu0, peak_rss_kib(pid));
    drop(child);
    anyhow::ensure!(n > 0, "the native publisher delivered nothing (see {})", log.display());
    // What it sent before it was killed is still arriving: not counted for the next one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while received.try_recv().is_ok() {}
    Ok(Ceiling {
        per_s: n as f64 / secs,
        broker_cpu_percent: broker_cpu / secs * 100.0,
        cpu_us_per_message: cpu / n as f64 * 1e6,
        peak_rss_kib: rss,
    })
}

/// The payloads for the native publisher: per message the topic's and the payload's length
/// (u32, little-endian), each followed by its bytes.
fn write_payloads(path: &Path, payloads: &[(String, bytes::Bytes)]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(payloads.iter().map(|(t, p)| 8 + t.len() + p.len()).sum());
    for (topic, payload) in payloads {
        for part in [topic.as_bytes(), payload.as_ref()] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    std::fs::write(path, out)
}

fn read_payloads(data: &[u8]) -> Option<Vec<(String, bytes::Bytes)>> {
    let mut rest = data;
    let mut take = || -> Option<&[u8]> {
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let part = rest.get(4..4 + n)?;
        rest = &rest[4 + n..];
        Some(part)
    };
    let mut out = Vec::new();
    while let Some(topic) = take() {
        let payload = take()?;
        out.push((String::from_utf8(topic.to_vec()).ok()?, bytes::Bytes::copy_from_slice(payload)));
    }
    Some(out)
}

/// The native publisher (`bench --ceiling-child FILE --broker-port P`): publishes the payloads
/// of `FILE` over and over at QoS 1 on one MQTT 5 connection, as fast as the broker takes
/// them, with at most `--ceiling-window` in flight (lowered by the broker's Receive Maximum, as
/// the gateway's window is), until it is killed.
pub async fn ceiling_child(o: &BenchOptions, file: &Path) -> anyhow::Result<()> {
    let port = o.broker_port.ok_or_else(|| anyhow::anyhow!("--ceiling-child needs --broker-port"))?;
    let payloads = read_payloads(&std::fs::read(file)?).filter(|p| !p.is_empty());
    let payloads = payloads.ok_or_else(|| anyhow::anyhow!("{}: no payloads", file.display()))?;
    let content_type = match o.format.as_str() {
        "fhir" => "application/fhir+json",
        "hl7v2" => "x-application/hl7-v2+er7",
        _ => "application/json",
    };
    match o.ceiling_client {
        CeilingClient::Raw => raw_publisher(port, &payloads, o.ceiling_window.max(1), content_type).await,
        CeilingClient::Rumqttc => rumqttc_publisher(port, payloads, o.ceiling_window.max(1), content_type).await,
    }
}

/// [`CeilingClient::Raw`], with the gateway's own packet codec and transport.
async fn raw_publisher(port: u16, payloads: &[(String, bytes::Bytes)], window: u16, content_type: &'static str) -> anyhow::Result<()> {
    use crate::sink::mqtt::packet::{self, ConnectOptions, Inbound, OutgoingPublish, Version};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = crate::sink::mqtt::transport::connect("127.0.0.1", port, None, Duration::from_secs(10)).await?;
    let (mut wbuf, mut rbuf) = (bytes::BytesMut::with_capacity(64 << 10), bytes::BytesMut::with_capacity(8 << 10));
    let connect = ConnectOptions {
        client_id: "medgw-bench-native".into(),
        keep_alive_s: 0,
        username: None,
        password: None,
        will_topic: "medgw-bench-native/status".into(),
        will_payload: bytes::Bytes::from_static(b"offline"),
        receive_maximum: window,
    };
    packet::encode_connect(Version::V5, &connect, &mut wbuf)?;
    stream.write_all(&wbuf).await?;
    wbuf.clear();
    let limit = loop {
        if let Some(p) = packet::decode(Version::V5, &mut rbuf)? {
            match p {
                Inbound::ConnAck { accepted: true, receive_maximum, .. } => break receive_maximum.map_or(window, |r| r.min(window)),
                other => anyhow::bail!("no CONNACK: {other:?}"),
            }
        }
        anyhow::ensure!(stream.read_buf(&mut rbuf).await? > 0, "broker closed the connection");
    };
    let mut in_use = vec![false; 1 << 16];
    let (mut in_flight, mut pkid) = (0u16, 0u16);
    let mut next = payloads.iter().cycle();
    loop {
        while in_flight < limit {
            let (topic, payload) = next.next().expect("cycle of a non-empty list");
            pkid = pkid.checked_add(1).unwrap_or(1);
            while in_use[usize::from(pkid)] {
                pkid = pkid.checked_add(1).unwrap_or(1);
            }
            in_use[usize::from(pkid)] = true;
            in_flight += 1;
            let p = OutgoingPublish {
                pkid,
                topic: topic.clone(),
                payload: payload.clone(),
                retain: false,
                content_type: Some(content_type),
                dup: false,
            };
            packet::encode_publish(Version::V5, p, &mut wbuf)?;
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        anyhow::ensure!(stream.read_buf(&mut rbuf).await? > 0, "broker closed the connection");
        while let Some(p) = packet::decode(Version::V5, &mut rbuf)? {
            if let Inbound::PubAck { pkid, .. } = p {
                if std::mem::take(&mut in_use[usize::from(pkid)]) {
                    in_flight -= 1;
                }
            }
        }
    }
}

/// [`CeilingClient::Rumqttc`].
async fn rumqttc_publisher(
    port: u16,
    payloads: Vec<(String, bytes::Bytes)>,
    window: u16,
    content_type: &'static str,
) -> anyhow::Result<()> {
    use rumqttc::v5::mqttbytes::{v5::PublishProperties, QoS};
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let mut opts = MqttOptions::new("medgw-bench-native", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(Some(1 << 20));
    opts.set_outgoing_inflight_upper_limit(window);
    let (client, mut events) = AsyncClient::new(opts, 4096);
    tokio::spawn(async move {
        for (topic, payload) in payloads.iter().cycle() {
            let properties =
                PublishProperties { payload_format_indicator: Some(1), content_type: Some(content_type.into()), ..Default::default() };
            let sent = client.publish_bytes_with_properties(topic.clone(), QoS::AtLeastOnce, false, payload.clone(), properties).await;
            if sent.is_err() {
                break;
            }
        }
    });
    loop {
        if let Err(e) = events.poll().await {
            eprintln!("native publisher: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The gateway's `/api/status` as JSON; `None` when it cannot be read.
async fn gateway_status(port: u16) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET /api/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()
}

/// `medgw_buffer_oldest_age_seconds` from the gateway's metrics; `None` while the status
/// server is not up yet.
async fn oldest_buffered_age_s(port: u16) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    let line = body.lines().find(|l| l.starts_with("medgw_buffer_oldest_age_seconds{"))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// The receipt time in a canonical or FHIR payload (FHIR: `issued`).
fn receipt_ms(payload: &[u8], format: &str) -> Option<f64> {
    let key: &[u8] = if format == "fhir" { b"\"issued\":\"" } else { b"\"receipt_time\":\"" };
    let start = memchr::memmem::find(payload, key)? + key.len();
    let end = start + memchr::memchr(b'"', payload.get(start..)?)?;
    let text = std::str::from_utf8(&payload[start..end]).ok()?;
    Timestamp::parse_rfc3339(text).ok().map(|t| t.0 as f64)
}

/// SpO2 low, then normal again, every `period` (for an hour).
fn alarm_faults(period: Duration) -> Vec<simulate::ScheduledFault> {
    let n = (3600.0 / period.as_secs_f64().max(0.1)) as u32;
    (1..=n)
        .map(|k| simulate::ScheduledFault {
            at: period * k,
            action: simulate::FaultAction::Device(medgw_protocols::sim::Fault::Spo2Low(k % 2 == 1)),
        })
        .collect()
}

/// The receipt time of a canonical alarm event (`time`: when the gateway read the bytes).
fn alarm_receipt_ms(payload: &[u8]) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Timestamp::parse_rfc3339(v["time"].as_str()?).ok().map(|t| t.0 as f64)
}

/// Prints the report as a table and one JSON line.
pub fn print(r: &BenchReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "medgw bench: {} devices × {} over {} (period {} ms, written every {} ms), format {}, TLS {}, {} CPUs",
        r.devices,
        r.protocol,
        if r.transport == BenchTransport::Tcp { "TCP" } else { "ptys" },
        r.period_ms,
        r.write_every_ms,
        r.format,
        if r.tls { "on" } else { "off" },
        r.cpus
    )?;
    let to = if r.sink == BenchSink::Mllp { "MLLP receiver" } else { "subscriber" };
    writeln!(
        out,
        "  delivered        {} observations in {:.1} s = {:.0} observations/s ({to})",
        r.delivered, r.seconds, r.observations_per_s
    )?;
    if let (Some(w), Some(m)) = (r.mllp_in_flight, r.mllp_messages_per_s) {
        writeln!(out, "  MLLP             {m:.0} messages/s acknowledged (AA), max_in_flight {w}")?;
    }
    writeln!(
        out,
        "  latency          p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (gateway receipt -> {to})",
        r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_max
    )?;
    writeln!(
        out,
        "  gateway peak RSS {:.1} MiB (sampled peaks: anonymous {:.1} MiB, file-backed {:.1} MiB), CPU {:.0} % of one core = {:.1} µs per observation (Mosquitto {:.0} %, simulators + subscriber {:.0} %)",
        r.gateway_peak_rss_kib as f64 / 1024.0,
        r.gateway_rss_anon_peak_kib as f64 / 1024.0,
        r.gateway_rss_file_peak_kib as f64 / 1024.0,
        r.gateway_cpu_percent,
        r.gateway_cpu_us_per_observation,
        r.broker_cpu_percent,
        r.harness_cpu_percent
    )?;
    writeln!(
        out,
        "  broker           Mosquitto max_inflight_messages {}; Receive Maximum announced {}; gateway in-flight window {}",
        r.broker_inflight,
        r.broker_receive_maximum.map_or("none".to_string(), |n| n.to_string()),
        r.gateway_in_flight_limit.map_or("?".to_string(), |n| n.to_string())
    )?;
    if let (Some(c), Some(pct), Some(m)) = (r.ceiling_per_s, r.percent_of_ceiling, r.reference_messages_per_s) {
        writeln!(
            out,
            "  MLLP reference   {c:.0} observations/s = {m:.0} messages/s (one plain MLLP sender, the same messages, receiver and window): gateway at {pct:.0} % of it"
        )?;
    } else if let (Some(c), Some(pct), Some(b)) = (r.ceiling_per_s, r.percent_of_ceiling, r.ceiling_broker_cpu_percent) {
        writeln!(
            out,
            "  native ceiling   {c:.0} messages/s (a bare MQTT 5 publisher in its own process, same payloads, broker and window; Mosquitto {b:.0} %{}): gateway at {pct:.0} % of it",
            if r.ceiling_beside_devices == Some(true) { "; the devices sending meanwhile" } else { "; the devices stopped" }
        )?;
        if let (Some(us), Some(rss)) = (r.ceiling_cpu_us_per_message, r.ceiling_peak_rss_kib) {
            writeln!(out, "                   native publisher: {us:.1} µs CPU per message, peak RSS {:.1} MiB", rss as f64 / 1024.0)?;
        }
        if let (Some(c), Some(pct), Some(us)) = (r.rumqttc_per_s, r.percent_of_rumqttc, r.rumqttc_cpu_us_per_message) {
            writeln!(
                out,
                "  rumqttc client   {c:.0} messages/s (a plain rumqttc MQTT 5 client, same conditions; {us:.1} µs CPU per message): gateway at {pct:.0} % of it"
            )?;
        }
    }
    if let (Some(n), Some(s), Some(rate), Some(p99)) = (r.drain_backlog, r.drain_seconds, r.drain_per_s, r.drain_live_p99_ms) {
        writeln!(
            out,
            "  drain            {n} buffered observations {} in {s:.1} s = {rate:.0}/s; live p99 during the drain {p99:.1} ms",
            if r.drain_measured_at == Some("broker") { "acknowledged by the broker" } else { "received by the subscriber" }
        )?;
        if let (Some(g), Some(b)) = (r.drain_gateway_cpu_percent, r.drain_broker_cpu_percent) {
            writeln!(out, "                   during the drain: gateway CPU {g:.0} %, Mosquitto {b:.0} % of one core")?;
        }
    }
    if let (Some(n), Some(p50), Some(p99), Some(max)) =
        (r.alarm_events, r.alarm_latency_ms_p50, r.alarm_latency_ms_p99, r.alarm_latency_ms_max)
    {
        writeln!(
            out,
            "  alarms           {n} events{}: latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (gateway receipt -> subscriber)",
            if r.drain_backlog.is_some() { " during the drain" } else { "" }
        )?;
    }
    writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())
}

#[cfg(test)]
mod alarm_tests {
    use super::*;
    use medgw_protocols::sim::Fault;

    #[test]
    fn alarms_are_raised_and_cleared_alternately() {
        let f = alarm_faults(Duration::from_secs(2));
        assert_eq!(f.len(), 1800);
        assert_eq!(f[0].at, Duration::from_secs(2));
        assert_eq!(f[0].action, simulate::FaultAction::Device(Fault::Spo2Low(true)));
        assert_eq!(f[1].action, simulate::FaultAction::Device(Fault::Spo2Low(false)));
        assert_eq!(alarm_receipt_ms(br#"{"phase":"start","time":"1970-01-01T00:00:01.250Z"}"#), Some(1250.0));
        assert_eq!(alarm_receipt_ms(b"MSH|"), None);
    }
}

#[cfg(test)]
mod ceiling_tests {
    use super::*;

    #[test]
    fn the_native_publishers_payload_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.bin");
        let payloads = vec![
            ("medgw/v1/gw/BED0/dev0/obs".to_string(), bytes::Bytes::from_static(b"{\"v\":1}")),
            ("t".to_string(), bytes::Bytes::new()),
        ];
        write_payloads(&file, &payloads).unwrap();
        let data = std::fs::read(&file).unwrap();
        assert_eq!(read_payloads(&data), Some(payloads));
        // A truncated file is refused, not read short.
        assert_eq!(read_payloads(&data[..data.len() - 1]), None);
    }
}
