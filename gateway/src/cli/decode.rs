//! `medgw decode`: a capture or raw bytes through a protocol's decoder ([`crate::decode_cmd`]).

use std::io::Write;
use std::process::ExitCode;

use super::FormatArg;
use crate::decode_cmd;

#[derive(clap::Args)]
pub struct DecodeOptions {
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
}

/// Exit 0 if every frame decoded, 1 if any was rejected, 2 if the input or options are unusable.
pub fn run(options: DecodeOptions) -> anyhow::Result<ExitCode> {
    let DecodeOptions { protocol, hex, format, timezone, list, input } = options;
    if list {
        decode_cmd::list(&mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let protocol = protocol.unwrap_or_default();
    let data = match super::read_input(&input) {
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
