//! The `medgw` command line: the argument model and one module per command. `main.rs` calls
//! [`main`], which parses and dispatches; each command's module turns its options into library
//! calls and an exit code; an error that ends a command is printed with its causes.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{LogFormat, PayloadFormat};

pub mod adt;
#[cfg(feature = "tools")]
pub mod bench;
pub mod ble;
pub mod buffer;
pub mod check_config;
pub mod codes;
pub mod decode;
#[cfg(feature = "tools")]
pub mod demo;
pub mod encode;
pub mod record;
pub mod run;
pub mod simulate;

/// medgw: an edge gateway for bedside medical devices.
///
/// Reads vital signs from serial devices, normalises them to IEEE 11073 MDC codes, buffers
/// them on disk and publishes FHIR R4, HL7 v2 (IHE PCD-01) or canonical JSON over MQTT.
#[derive(Parser)]
#[command(name = "medgw", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
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

/// The payload formats as command-line values.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
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
enum Command {
    /// The ADT feed: patient-bed association (docs/adt.md).
    Adt {
        #[command(subcommand)]
        action: adt::AdtAction,
    },
    /// Run the gateway with a configuration file.
    Run(run::RunOptions),
    #[cfg(feature = "tools")]
    /// The demo: an embedded broker, simulated bedside devices on pseudo-terminals, the gateway
    /// reading them through the real serial path, and a live view of what is published.
    Demo(demo::DemoOptions),
    /// Check a configuration file and report every problem with its line and a hint.
    CheckConfig(check_config::CheckConfigOptions),
    /// Run a device simulator on a pseudo-terminal, a serial port, or behind a simulated
    /// device server on TCP; or replay a capture.
    Simulate(simulate::SimulateOptions),
    /// Decode a capture or raw bytes from a device: one observation per line on stdout,
    /// rejected frames on stderr. Exit 0 if every frame decoded, 1 if any was rejected.
    Decode(decode::DecodeOptions),
    /// Record the raw bytes from a serial port with timestamps (a capture for `decode`).
    Record(record::RecordOptions),
    /// Print the nomenclature in use: MDC code, reference id, LOINC, UCUM.
    Codes(codes::CodesOptions),
    #[cfg(feature = "tools")]
    /// Benchmark: N simulated devices through the real path (pseudo-terminals, `medgw run`,
    /// Mosquitto) — observations/s, latency p50/p99 and the gateway's peak memory.
    Bench(crate::bench::BenchOptions),
    /// Inspect the on-disk buffer (safe while the gateway runs).
    Buffer {
        #[command(subcommand)]
        action: buffer::BufferAction,
    },
    /// Bluetooth LE: find the health devices in range (for configuring `ble = "..."`).
    Ble {
        #[command(subcommand)]
        action: ble::BleAction,
    },
    /// Convert canonical JSON lines (from `decode`) to FHIR or HL7 v2.
    Encode(encode::EncodeOptions),
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    dispatch(Cli::parse())
}

/// Runs the parsed command; an error is printed (with its causes) and exits 1.
pub fn dispatch(cli: Cli) -> ExitCode {
    let log = match cli.log_format {
        Some(LogArg::Json) => LogFormat::Json,
        _ => LogFormat::Human,
    };
    match run_command(cli.command, log) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medgw: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_command(command: Command, log: LogFormat) -> anyhow::Result<ExitCode> {
    match command {
        Command::Adt { action } => adt::run(action),
        Command::Run(options) => run::run(options, log),
        #[cfg(feature = "tools")]
        Command::Demo(options) => demo::run(options, log),
        Command::CheckConfig(options) => check_config::run(options),
        Command::Simulate(options) => simulate::run(options, log),
        Command::Decode(options) => decode::run(options),
        Command::Record(options) => record::run(options, log),
        Command::Codes(options) => codes::run(options),
        #[cfg(feature = "tools")]
        Command::Bench(options) => bench::run(options, log),
        Command::Buffer { action } => buffer::run(action),
        Command::Ble { action } => ble::run(action, log),
        Command::Encode(options) => encode::run(options),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(2)
}

/// The runtime of `medgw run` (and of the processes the benchmarks measure in its place): one
/// worker thread. The gateway's work is small pieces handed from task to task; with two
/// workers each hand-over could wake the other thread, and that switching cost more than the
/// second core gave (issue 20, `medgw bench --transport tcp --protocol masimo --devices 8`:
/// 6,000 observations/s took 14.8 instead of 18.2 µs of CPU per observation, and 16 devices at
/// full speed delivered the same 61,700 observations/s). The storage thread (SQLite, fsync)
/// and blocking calls run on threads of their own.
pub(crate) fn gateway_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tune_allocator();
    runtime_with(1)
}

/// glibc's allocator set for a small daemon whose memory is mostly short-lived messages
/// (issue 20, peak RSS): at most two arenas (the runtime's thread, the storage thread and each
/// blocking thread would otherwise each get one, each keeping its own high-water mark), and a
/// fixed 128 KiB mmap and trim threshold — glibc otherwise raises its mmap threshold to the
/// largest block freed, after which blocks that size come from the heap and its top stays
/// resident. Measured with `medgw bench --transport tcp --protocol masimo --devices 16
/// --period-ms 1 --broker-inflight 1000`: anonymous peak 5.9 → 5.4 MiB at the same CPU per
/// observation. An operator's `GLIBC_TUNABLES` is left to rule.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only changes allocator parameters, under the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        }
    }
}

/// A multi-thread runtime with `workers` worker threads; TOKIO_WORKER_THREADS (tokio's own
/// variable) overrides the number, for measurements.
fn runtime_with(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(workers);
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?)
}

/// The bytes of a file, or of stdin for `-`.
fn read_input(input: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    if input == "-" {
        std::io::stdin().read_to_end(&mut data)?;
    } else {
        data = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
    }
    Ok(data)
}
