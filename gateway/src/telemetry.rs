//! Logging: human-readable by default, JSON with `--log-format json` or `gateway.log_format`.
//! Logs go to stderr; stdout is data (`medgw decode`, the pty path of `medgw simulate`).
//! At info level medgw logs no patient identifiers and no values; secrets are never logged.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_env("MEDGW_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Colour escapes only for a person at a terminal: a log redirected to a file, a pipe or the
/// journal must stay plain text (escape codes there make `grep` and log shippers misread it).
/// `NO_COLOR` set to anything but the empty string turns colour off (no-color.org).
pub fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count (no-color.org)");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
