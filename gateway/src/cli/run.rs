//! `medgw run`: the gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::{self, LogFormat};
use crate::{open_files, pipeline, telemetry};

#[derive(clap::Args)]
pub struct RunOptions {
    /// The configuration file (see config/medgw.toml).
    #[arg(short, long, default_value = "/etc/medgw/medgw.toml")]
    config: PathBuf,
}

/// Exit 2 without starting when the configuration has problems (each printed).
pub fn run(options: RunOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    let path = options.config;
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
    super::gateway_runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        let (_running, done) = pipeline::start(config, shutdown.clone()).await?;
        pipeline::signal().await;
        shutdown.cancel();
        done.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
