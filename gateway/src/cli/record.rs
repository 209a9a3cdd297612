//! `medgw record`: a serial port's bytes with their receipt times, as a capture ([`crate::capture`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use medgw_protocols::Timestamp;

use crate::config::{self, LogFormat};
use crate::{capture, pipeline, simulate, telemetry};

#[derive(clap::Args)]
pub struct RecordOptions {
    #[arg(long)]
    port: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    #[arg(long, value_parser = simulate::parse_duration)]
    duration: Option<Duration>,
}

pub fn run(options: RecordOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    let RecordOptions { port, out, baud, duration } = options;
    telemetry::init(log, "info");
    super::runtime()?.block_on(record(port, out, baud, duration))?;
    Ok(ExitCode::SUCCESS)
}

async fn record(port: PathBuf, out: PathBuf, baud: u32, duration: Option<Duration>) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let settings = config::SerialSettings { baud, data_bits: 8, parity: config::Parity::None, stop_bits: 1 };
    let mut serial = crate::source::serial::open(&port, &settings).with_context(|| format!("cannot open {}", port.display()))?;
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
