//! `medgw simulate`: a device simulator on a pseudo-terminal, a serial port or behind a
//! simulated device server (see [`crate::simulate`], [`crate::simulate_tcp`]), or the replay of
//! a capture.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use medgw_protocols::sim::SimOptions;
use tokio_util::sync::CancellationToken;

use crate::config::LogFormat;
use crate::{capture, pipeline, simulate, telemetry};

#[derive(clap::Args)]
pub struct SimulateOptions {
    /// The protocol to simulate (`medgw decode --list`).
    #[arg(long, required_unless_present = "replay")]
    device: Option<String>,
    /// Replay a capture made by `medgw record` (with its timing) instead of simulating.
    #[arg(long, conflicts_with_all = ["device", "port"], requires = "pty")]
    replay: Option<PathBuf>,
    /// Replay speed factor (2 = twice as fast).
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    speed: f64,
    /// Create a pseudo-terminal; the first line on stdout is its path (or --link's).
    #[arg(long, conflicts_with_all = ["port", "tcp", "connect"])]
    pty: bool,
    /// Write to this serial port instead.
    #[arg(long, conflicts_with_all = ["tcp", "connect"])]
    port: Option<PathBuf>,
    /// Be a device server in TCP-server mode: listen on ADDR (e.g. 127.0.0.1:0) and serve
    /// one client at a time; the first line on stdout is the bound address.
    #[arg(long, value_name = "ADDR", conflicts_with = "connect")]
    tcp: Option<std::net::SocketAddr>,
    /// Be a device server in TCP-client mode: connect to ADDR (the gateway's `listen`) and
    /// reconnect whenever the connection ends.
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// With --connect: the local address to connect from (the peer address the gateway sees).
    #[arg(long, value_name = "IP", requires = "connect")]
    from: Option<std::net::IpAddr>,
    /// Keep a stable symlink to the pseudo-terminal (survives simulated unplugs).
    #[arg(long, requires = "pty")]
    link: Option<PathBuf>,
    /// Faults to inject: TIME:KIND[=ARG], e.g. 5s:garbage=100, 10s:unplug=3s, 20s:silence=15s,
    /// 30s:sensor-off, 31s:bad-checksum, 32s:truncate; alarms: 40s:spo2-low, 50s:spo2-normal,
    /// 60s:sensor-on, 70s:lead-off, 80s:lead-on (ECG leads: IntelliVue).
    #[arg(long = "fault", value_parser = simulate::parse_fault)]
    faults: Vec<simulate::ScheduledFault>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output period where the device chooses its rate (ms).
    #[arg(long, default_value_t = 1000)]
    period_ms: u32,
    /// Write every value put on the wire to this file as JSON lines (for tests).
    #[arg(long)]
    sent: Option<PathBuf>,
    #[arg(long, value_parser = simulate::parse_duration)]
    duration: Option<Duration>,
    /// How long the device keeps a session whose client went quiet, e.g. 30s (IntelliVue:
    /// the monitor refuses new associations until then unless the old one was released).
    #[arg(long, value_parser = simulate::parse_duration)]
    session_timeout: Option<Duration>,
    /// The patient id the simulated device holds for its patient (IntelliVue: its patient
    /// demographics), e.g. to test the ADT mismatch rule.
    #[arg(long)]
    patient_id: Option<String>,
}

pub fn run(options: SimulateOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    let SimulateOptions {
        device,
        replay,
        speed,
        pty,
        port,
        tcp,
        connect,
        from,
        link,
        faults,
        seed,
        period_ms,
        sent,
        duration,
        session_timeout,
        patient_id,
    } = options;
    telemetry::init(log, "info");
    if !pty && port.is_none() && tcp.is_none() && connect.is_none() {
        anyhow::bail!("give --pty, --port PATH, --tcp ADDR or --connect ADDR");
    }
    if let Some(file) = replay {
        let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let chunks = capture::read(text.as_slice()).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        return super::runtime()?.block_on(async move {
            let stop = CancellationToken::new();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut task = tokio::spawn(simulate::replay_pty(chunks, link, speed, stop.clone(), tx));
            if let Ok(path) = rx.await {
                println!("{}", path.display());
                let _ = std::io::stdout().flush();
            }
            tokio::select! {
                r = &mut task => r.map_err(|e| anyhow::anyhow!("{e}"))?.map_err(|e| anyhow::anyhow!(e))?,
                _ = pipeline::signal() => stop.cancel(),
            }
            anyhow::Ok(ExitCode::SUCCESS)
        });
    }
    let device = device.unwrap_or_default();
    let options = SimOptions { seed, period_ms, record: sent.is_some() };
    let run =
        simulate::SimRun { protocol: device, options, faults, link, duration, write_every: Duration::ZERO, session_timeout, patient_id };
    let mut sent_file = match &sent {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?)),
        None => None,
    };
    super::runtime()?.block_on(async move {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let on_sent = move |s: medgw_protocols::sim::Sent| {
            if let Some(f) = sent_file.as_mut() {
                let line = serde_json::json!({
                    "metric": s.metric.0, "value": s.value.map(|v| v.to_string()), "unit": s.unit.0,
                    "device_time": s.device_time.map(|t| t.rfc3339().to_string()), "seq": s.seq,
                });
                let _ = writeln!(f, "{line}");
                let _ = f.flush();
            }
        };
        // The first stdout line says where the device is: a path or an address.
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
        let task = match (port, tcp, connect) {
            (Some(port), _, _) => tokio::spawn(simulate::run_port(run, port, stop.clone(), tx, on_sent)),
            (_, Some(addr), _) => tokio::spawn(crate::simulate_tcp::run_tcp_server(run, addr, stop.clone(), addr_tx, on_sent)),
            (_, _, Some(addr)) => tokio::spawn(crate::simulate_tcp::run_tcp_client(run, addr, from, stop.clone(), addr_tx, on_sent)),
            _ => tokio::spawn(simulate::run_pty(run, stop.clone(), tx, on_sent)),
        };
        let first = tokio::select! {
            p = rx => p.ok().map(|p| p.display().to_string()),
            a = addr_rx => a.ok(),
        };
        if let Some(first) = first {
            println!("{first}");
            let _ = std::io::stdout().flush();
        }
        let mut task = task;
        tokio::select! {
            r = &mut task => r.map_err(|e| anyhow::anyhow!("{e}"))?.map_err(|e| anyhow::anyhow!(e))?,
            _ = pipeline::signal() => {
                // Stop producing, then let the reader take what is still queued.
                stop.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
