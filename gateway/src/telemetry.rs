//! Logging: human-readable by default, JSON with `--log-format json` or `gateway.log_format`.
//! Logs go to stderr; stdout is data (`medgw decode`, the pty path of `medgw simulate`).
//! At info level medgw logs no patient identifiers and no values; secrets are never logged.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_env("MEDGW_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
