//! `medgw check-config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;

#[derive(clap::Args)]
pub struct CheckConfigOptions {
    file: PathBuf,
}

/// Exit 1 with every problem (line and hint) when the file would not start a gateway.
pub fn run(options: CheckConfigOptions) -> anyhow::Result<ExitCode> {
    let file = options.file;
    match config::load(&file) {
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
    }
}
