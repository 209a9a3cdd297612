//! `medgw codes`: the nomenclature in use (built in, or with a site override file).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use medgw_protocols::nomenclature::Nomenclature;

#[derive(clap::Args)]
pub struct CodesOptions {
    /// A site override file to apply.
    #[arg(long)]
    nomenclature: Option<PathBuf>,
}

pub fn run(options: CodesOptions) -> anyhow::Result<ExitCode> {
    let nom = match options.nomenclature {
        Some(p) => crate::nomenclature_file::load(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Nomenclature::builtin(),
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
