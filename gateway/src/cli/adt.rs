//! `medgw adt replay FILE` and `medgw adt status`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

// The doc comments are the help text: `[adt]` names the TOML table, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Subcommand)]
pub enum AdtAction {
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

pub fn run(action: AdtAction) -> anyhow::Result<ExitCode> {
    let (config, replay) = match &action {
        AdtAction::Replay { file, config } => (config, Some(file)),
        AdtAction::Status { config } => (config, None),
    };
    let settings = crate::adt::AdtSettings::load(config)?;
    let mut out = std::io::stdout().lock();
    match replay {
        Some(file) => {
            crate::adt::cli::replay(file, &settings, &mut out)?;
        }
        None => crate::adt::cli::status(&settings, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}
