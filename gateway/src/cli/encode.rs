//! `medgw encode`: canonical JSON lines (from `decode`) to the FHIR or HL7 v2 payloads.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use medgw_protocols::nomenclature::Nomenclature;

use super::FormatArg;

#[derive(clap::Args)]
pub struct EncodeOptions {
    #[arg(long, value_enum)]
    format: FormatArg,
    #[arg(default_value = "-")]
    input: String,
}

pub fn run(options: EncodeOptions) -> anyhow::Result<ExitCode> {
    let EncodeOptions { format, input } = options;
    let data = super::read_input(&input)?;
    let text = String::from_utf8(data).context("input is not UTF-8")?;
    let nom = Nomenclature::builtin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obs = medgw_protocols::encode::canonical::parse(line, "medgw").map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
        buf.clear();
        crate::sink::mqtt::encode(&obs, format.into(), &nom, &mut buf);
        out.write_all(&buf)?;
        out.write_all(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
