//! The `medgw` command line: argument parsing and dispatch. Everything else is in the library.

use std::io::{Read as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use medgw::config::{self, LogFormat, PayloadFormat};
#[cfg(feature = "tools")]
use medgw::demo;
use medgw::{capture, decode_cmd, open_files, pipeline, simulate, telemetry};
use medgw_protocols::sim::SimOptions;
use medgw_protocols::Timestamp;
use tokio_util::sync::CancellationToken;

/// medgw: an edge gateway for bedside medical devices.
///
/// Reads vital signs from serial devices, normalises them to IEEE 11073 MDC codes, buffers
/// them on disk and publishes FHIR R4, HL7 v2 (IHE PCD-01) or canonical JSON over MQTT.
#[derive(Parser)]
#[command(name = "medgw", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogArg {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Canonical,
    Fhir,
    Hl7v2,
}

impl From<FormatArg> for PayloadFormat {
    fn from(f: FormatArg) -> PayloadFormat {
        match f {
            FormatArg::Canonical => PayloadFormat::Canonical,
            FormatArg::Fhir => PayloadFormat::Fhir,
            FormatArg::Hl7v2 => PayloadFormat::Hl7v2,
        }
    }
}

#[derive(Subcommand)]
enum BufferAction {
    /// Depth, oldest entry, bytes.
    Stats {
        /// The buffer file (buffer.path in the configuration).
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Every buffered observation as JSON lines on stdout (for recovering data by hand).
    Export { path: PathBuf },
}

#[derive(Subcommand)]
enum AdtAction {
    /// Apply a file of ADT messages (MLLP-framed or one segment per line) to an empty
    /// association state with the configured bed map; print each ACK and audit event, then the
    /// beds, as JSON lines. Nothing is persisted.
    Replay {
        file: PathBuf,
        /// The configuration file with the [adt] table.
        #[arg(short, long, default_value = "/etc/medgw/medgw.toml")]
        config: PathBuf,
    },
    /// The persisted association state of every bed, as JSON.
    Status {
        #[arg(short, long, default_value = "/etc/medgw/medgw.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BleAction {
    /// List advertising devices: address, signal strength, name and health services.
    Scan {
        /// How long to listen for advertisements.
        #[arg(long, value_parser = simulate::parse_duration, default_value = "10s")]
        duration: Duration,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The ADT feed: patient-bed association (docs/adt.md).
    Adt {
        #[command(subcommand)]
        action: AdtAction,
    },
    /// Run the gateway with a configuration file.
    Run {
        /// The configuration file (see config/medgw.toml).
        #[arg(short, long, default_value = "/etc/medgw/medgw.toml")]
        config: PathBuf,
    },
    #[cfg(feature = "tools")]
    /// The demo: an embedded broker, simulated bedside devices on pseudo-terminals, the gateway
    /// reading them through the real serial path, and a live view of what is published.
    Demo {
        /// Stop after this long (e.g. 20s, 5m); runs until Ctrl-C without it.
        #[arg(long, value_parser = simulate::parse_duration)]
        duration: Option<Duration>,
        /// Payload format of the demo gateway.
        #[arg(long, value_enum, default_value = "fhir")]
        format: FormatArg,
        /// Port of the status page on 127.0.0.1 (default: a free port, printed).
        #[arg(long)]
        status_port: Option<u16>,
        /// How the simulated devices are attached: pseudo-terminals (the serial path) or
        /// device servers on loopback (the network path).
        #[arg(long, value_enum, default_value = "pty")]
        transport: demo::DemoTransport,
    },
    /// Check a configuration file and report every problem with its line and a hint.
    CheckConfig { file: PathBuf },
    /// Run a device simulator on a pseudo-terminal, a serial port, or behind a simulated
    /// device server on TCP; or replay a capture.
    Simulate {
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
        /// 30s:sensor-off, 31s:bad-checksum, 32s:truncate.
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
    },
    /// Decode a capture or raw bytes from a device: one observation per line on stdout,
    /// rejected frames on stderr. Exit 0 if every frame decoded, 1 if any was rejected.
    Decode {
        /// Protocol name.
        #[arg(long, required_unless_present = "list")]
        protocol: Option<String>,
        /// The input is hex text.
        #[arg(long)]
        hex: bool,
        #[arg(long, value_enum, default_value = "canonical")]
        format: FormatArg,
        /// Zone of the device's clock for protocols that send local time.
        #[arg(long)]
        timezone: Option<String>,
        /// List the protocols.
        #[arg(long)]
        list: bool,
        /// Input file, or - for stdin.
        #[arg(default_value = "-")]
        input: String,
    },
    /// Record the raw bytes from a serial port with timestamps (a capture for `decode`).
    Record {
        #[arg(long)]
        port: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        #[arg(long, value_parser = simulate::parse_duration)]
        duration: Option<Duration>,
    },
    /// Print the nomenclature in use: MDC code, reference id, LOINC, UCUM.
    Codes {
        /// A site override file to apply.
        #[arg(long)]
        nomenclature: Option<PathBuf>,
    },
    #[cfg(feature = "tools")]
    /// Benchmark: N simulated devices through the real path (pseudo-terminals, `medgw run`,
    /// Mosquitto) — observations/s, latency p50/p99 and the gateway's peak memory.
    Bench(medgw::bench::BenchOptions),
    /// Inspect the on-disk buffer (safe while the gateway runs).
    Buffer {
        #[command(subcommand)]
        action: BufferAction,
    },
    /// Bluetooth LE: find the health devices in range (for configuring `ble = "..."`).
    Ble {
        #[command(subcommand)]
        action: BleAction,
    },
    /// Convert canonical JSON lines (from `decode`) to FHIR or HL7 v2.
    Encode {
        #[arg(long, value_enum)]
        format: FormatArg,
        #[arg(default_value = "-")]
        input: String,
    },
}

fn read_input(input: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    if input == "-" {
        std::io::stdin().read_to_end(&mut data)?;
    } else {
        data = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
    }
    Ok(data)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match cli.log_format {
        Some(LogArg::Json) => LogFormat::Json,
        _ => LogFormat::Human,
    };
    match run(cli.command, log) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medgw: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Two worker threads: the gateway is I/O-bound and small; more threads cost memory.
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn run(command: Command, log: LogFormat) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(c) => {
                if !c.warnings.is_empty() {
                    eprintln!("{}", config::ConfigWarnings { file: &file.display().to_string(), warnings: &c.warnings });
                }
                println!(
                    "{}: OK ({} devices, broker {}:{}, format {})",
                    file.display(),
                    c.devices.len(),
                    c.mqtt.host,
                    c.mqtt.port,
                    c.mqtt.format.as_str()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) found", e.errors.len());
                Ok(ExitCode::from(1))
            }
        },
        Command::Run { config: path } => {
            let config = match config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    eprintln!("medgw: refusing to start with {} configuration problem(s)", e.errors.len());
                    return Ok(ExitCode::from(2));
                }
            };
            telemetry::init(if log == LogFormat::Json { LogFormat::Json } else { config.gateway.log_format }, "info");
            let status_connections = if config.status.enabled { config.status.max_connections } else { 0 };
            let needed = open_files::needed(config.devices.len(), status_connections);
            match open_files::raise() {
                Ok((_, after)) if after < needed => tracing::warn!(
                    limit = after,
                    needed,
                    "the limit on open files is low for the configured devices; raise LimitNOFILE (systemd) or ulimit -n"
                ),
                Ok((before, after)) => tracing::info!(before, limit = after, needed, "open files limit"),
                Err(e) => tracing::warn!(error = %e, "cannot raise the limit on open files"),
            }
            for w in &config.warnings {
                tracing::warn!("{}", config::ConfigWarnings { file: &path.display().to_string(), warnings: std::slice::from_ref(w) });
            }
            runtime()?.block_on(async {
                let shutdown = CancellationToken::new();
                let (_running, done) = pipeline::start(config, shutdown.clone()).await?;
                pipeline::signal().await;
                shutdown.cancel();
                done.await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "tools")]
        Command::Demo { duration, format, status_port, transport } => {
            // The embedded broker logs every client it drops; the demo shows only medgw's warnings.
            telemetry::init(log, "warn,rumqttd=off");
            runtime()?.block_on(demo::run(duration, format.into(), status_port, transport))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
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
        } => {
            telemetry::init(log, "info");
            if !pty && port.is_none() && tcp.is_none() && connect.is_none() {
                anyhow::bail!("give --pty, --port PATH, --tcp ADDR or --connect ADDR");
            }
            if let Some(file) = replay {
                let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                let chunks = capture::read(text.as_slice()).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                return runtime()?.block_on(async move {
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
            let run = simulate::SimRun { protocol: device, options, faults, link, duration, write_every: Duration::ZERO, session_timeout };
            let mut sent_file = match &sent {
                Some(p) => {
                    Some(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?))
                }
                None => None,
            };
            runtime()?.block_on(async move {
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
                    (_, Some(addr), _) => tokio::spawn(medgw::simulate_tcp::run_tcp_server(run, addr, stop.clone(), addr_tx, on_sent)),
                    (_, _, Some(addr)) => {
                        tokio::spawn(medgw::simulate_tcp::run_tcp_client(run, addr, from, stop.clone(), addr_tx, on_sent))
                    }
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
        Command::Decode { protocol, hex, format, timezone, list, input } => {
            if list {
                decode_cmd::list(&mut std::io::stdout());
                return Ok(ExitCode::SUCCESS);
            }
            let protocol = protocol.unwrap_or_default();
            let data = match read_input(&input) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("medgw: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match decode_cmd::run(&protocol, &data, hex, format.into(), timezone.as_deref(), &mut out, &mut std::io::stderr()) {
                Ok(s) => {
                    out.flush()?;
                    eprintln!("{} observations, {} frames rejected", s.observations, s.rejected);
                    Ok(if s.rejected > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
                }
                Err(e) => {
                    eprintln!("medgw: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Record { port, out, baud, duration } => {
            telemetry::init(log, "info");
            runtime()?.block_on(record(port, out, baud, duration))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Codes { nomenclature } => {
            let nom = match nomenclature {
                Some(p) => medgw::nomenclature_file::load(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                None => medgw_protocols::nomenclature::Nomenclature::builtin(),
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            writeln!(out, "{:<8} {:<38} {:<20} {:<10} {:<34} source", "code", "reference id", "LOINC", "UCUM", "display")?;
            for m in nom.metrics() {
                let ucum = m.fhir_unit.and_then(|u| nom.unit(u)).map(|u| u.ucum.to_string()).unwrap_or_default();
                let loinc: Vec<&str> = m.loinc.iter().map(|l| l.as_ref()).collect();
                writeln!(out, "{:<8} {:<38} {:<20} {:<10} {:<34} {}", m.code.0, m.ref_id, loinc.join(","), ucum, m.display, m.src)?;
            }
            writeln!(out)?;
            for u in nom.units() {
                writeln!(out, "{:<8} {:<38} {:<20} {}", u.code.0, u.ref_id, u.ucum, u.display)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "tools")]
        Command::Bench(options) => {
            telemetry::init(log, "warn");
            let report = runtime()?.block_on(medgw::bench::run(options))?;
            medgw::bench::print(&report, &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ble { action: BleAction::Scan { duration } } => {
            telemetry::init(log, "warn");
            match runtime()?.block_on(medgw::source::ble::scan(duration)) {
                Ok(found) => {
                    medgw::source::ble::print_scan(&found, &mut std::io::stdout())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("medgw: cannot scan for Bluetooth devices: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Adt { action } => {
            let (config, replay) = match &action {
                AdtAction::Replay { file, config } => (config, Some(file)),
                AdtAction::Status { config } => (config, None),
            };
            let settings = medgw::adt::AdtSettings::load(config)?;
            let mut out = std::io::stdout().lock();
            match replay {
                Some(file) => {
                    medgw::adt::cli::replay(file, &settings, &mut out)?;
                }
                None => medgw::adt::cli::status(&settings, &mut out)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Buffer { action } => match action {
            BufferAction::Stats { path, json } => {
                let s = medgw::buffer::cli::stats(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    let now = Timestamp::now();
                    println!("buffer      {}", path.display());
                    println!("depth       {} observations waiting for the broker", s.depth);
                    match s.oldest {
                        Some(t) => println!("oldest      {} ({:.0} s ago)", t.rfc3339(), (now.0 - t.0) as f64 / 1000.0),
                        None => println!("oldest      -"),
                    }
                    println!(
                        "bytes       {} of {} ({:.1} %)",
                        s.bytes,
                        s.max_bytes,
                        if s.max_bytes > 0 { 100.0 * s.bytes as f64 / s.max_bytes as f64 } else { 0.0 }
                    );
                    println!("dropped     {} (policy drop-oldest, since the buffer was created)", s.dropped_total);
                    println!("quarantined {}", s.quarantined);
                }
                Ok(ExitCode::SUCCESS)
            }
            BufferAction::Export { path } => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let n = medgw::buffer::cli::export(&path, &mut out).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                out.flush()?;
                eprintln!("{n} entries exported");
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Encode { format, input } => {
            let data = read_input(&input)?;
            let text = String::from_utf8(data).context("input is not UTF-8")?;
            let nom = medgw_protocols::nomenclature::Nomenclature::builtin();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut buf = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let obs = medgw_protocols::encode::canonical::parse(line, "medgw").map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
                buf.clear();
                medgw::sink::mqtt::encode(&obs, format.into(), &nom, &mut buf);
                out.write_all(&buf)?;
                out.write_all(b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn record(port: PathBuf, out: PathBuf, baud: u32, duration: Option<Duration>) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let settings = config::SerialSettings { baud, data_bits: 8, parity: config::Parity::None, stop_bits: 1 };
    let mut serial = medgw::source::serial::open(&port, &settings).with_context(|| format!("cannot open {}", port.display()))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?);
    writeln!(file, "{} port={} baud={baud}", capture::HEADER, port.display())?;
    eprintln!("recording {} to {} (Ctrl-C to stop)", port.display(), out.display());
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut buf = vec![0u8; 4096];
    let mut total = 0u64;
    loop {
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = AsyncReadExt::read(&mut serial, &mut buf) => match r {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    capture::write_chunk(&mut file, &capture::Chunk { time: Timestamp::now(), direction: capture::Direction::Rx, bytes: buf[..n].to_vec() })?;
                    file.flush()?;
                }
                Err(e) => { eprintln!("read failed: {e}"); break; }
            },
            _ = until => break,
            _ = pipeline::signal() => break,
        }
    }
    file.flush()?;
    eprintln!("{total} bytes recorded");
    Ok(())
}
