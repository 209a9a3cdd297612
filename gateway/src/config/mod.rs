//! Configuration: `medgw.toml`, checked completely before anything runs.
//!
//! The file is read with toml's spanned parser and walked by hand rather than with
//! `#[derive(Deserialize)]`, because an engineer at a bedside needs *every* problem at once,
//! each with its line and a hint, not the first serde error. `medgw check-config` prints the
//! same messages that `medgw run` refuses to start with.
//!
//! Files by concern: the checked model (`model.rs`), the reader toolkit and its diagnostics
//! (`reader.rs`, `diagnostics.rs`), one reader per section (`gateway.rs`, `mqtt.rs`,
//! `buffer.rs`, `status.rs`, `device.rs`, `source.rs`, `sink.rs`), secrets (`secret.rs`), allow rules and
//! listen conflicts (`net.rs`), sizes (`size.rs`).

mod buffer;
mod device;
mod diagnostics;
mod gateway;
mod model;
mod mqtt;
mod net;
mod reader;
mod secret;
mod sink;
mod size;
mod source;
mod status;
mod waves;

use std::collections::BTreeSet;
use std::path::Path;

use toml::de::DeTable;

pub use self::diagnostics::{ConfigError, ConfigErrors, ConfigWarnings};
pub use self::model::*;
pub use self::net::AllowRule;
use self::reader::{Reader, Tbl};
pub use self::sink::MLLP_DEFAULT_PORT;
pub use self::size::parse_size;

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(|errors| ConfigErrors { file, errors }),
        Err(e) => Err(ConfigErrors {
            file,
            errors: vec![ConfigError { line: 0, column: 0, key: String::new(), message: format!("cannot read: {e}"), hint: None }],
        }),
    }
}

/// Parses configuration text; relative paths are resolved against `base`. Returns every
/// problem found.
pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let mut r = Reader::new(text, base);
    for e in syntax {
        let (line, column) = e.span().map(|s| r.pos(s.start)).unwrap_or((0, 0));
        r.errors.push(ConfigError { line, column, key: String::new(), message: format!("TOML syntax: {}", e.message()), hint: None });
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let root_span = root.span();
    let root = root.into_inner();
    let mut top = Tbl { t: &root, span: root_span, path: String::new(), used: BTreeSet::new() };

    let gateway = r.gateway(&mut top);
    let mqtt = r.mqtt(&mut top, gateway.as_ref().map(|g| g.id.as_str()).unwrap_or("medgw"));
    let buffer = r.buffer(&mut top);
    let status = r.status(&mut top);
    let devices = r.devices(&mut top);
    let sinks = r.sinks(&mut top);
    let waves = r.waves(&mut top);
    // `[adt]` (docs/adt.md) has its own reader (`adt/settings.rs`), shared with `medgw adt`.
    let mut adt = None;
    if let Some(v) = r.get(&mut top, "adt") {
        let span = v.span();
        match crate::adt::settings::AdtSettings::parse(text) {
            Err(e) => r.err(span, "adt", e.to_string(), Some("see docs/adt.md".into())),
            Ok(mut s) => {
                s.resolve(base);
                for m in s.beds.mappings().iter().filter(|m| !devices.iter().any(|d| d.bed == m.gateway_bed)) {
                    r.warn(
                        span.clone(),
                        "adt.beds",
                        format!("gateway_bed {:?} is not the bed of any device: its patients reach no device", m.gateway_bed),
                        Some("gateway_bed is a device's `bed`, as spelled there".into()),
                    );
                }
                adt = Some(s)
            }
        }
    }
    r.finish(top, &["gateway", "mqtt", "buffer", "status", "device", "sink", "adt", "waves"]);
    if let Some(g) = &gateway {
        r.distinct_eui64s(g, &devices);
    }
    // Durable waves take their budget out of the buffer's: observations must keep most of it.
    if let (true, Some(b)) = (waves.durable, &buffer) {
        if waves.max_bytes > b.max_bytes / 2 {
            r.err(
                0..0,
                "waves.max_bytes",
                format!(
                    "{} bytes is more than half of buffer.max_bytes ({}): observations would be left too little",
                    waves.max_bytes, b.max_bytes
                ),
                Some("lower waves.max_bytes or raise buffer.max_bytes".into()),
            );
        }
    }

    match (gateway, mqtt, buffer, r.errors.is_empty()) {
        (Some(gateway), Some(mqtt), Some(buffer), true) => {
            Ok(Config { gateway, mqtt, buffer, status, devices, adt, sinks, waves, warnings: r.warnings })
        }
        _ => Err(r.errors),
    }
}
