//! The `[[sink]]` tables: further destinations beside `[mqtt]` (issue 15). Only `kind = "mllp"`
//! exists: HL7 v2 (IHE PCD-01) to an interface engine over MLLP, acknowledged per HL7 v2
//! (docs/deployment.md, "Connecting to an interface engine over MLLP"); with `carries` including
//! `"alarms"`, IHE PCD-04 alarm events to an Alarm Manager (docs/alarms.md).

use std::collections::HashMap;
use std::ops::Range;

use super::model::{Carries, MllpSinkConfig, PayloadFormat, SinkConfig};
use super::reader::{Reader, Tbl};
use medgw_protocols::hl7::AckMode;

/// The registered port of HL7 over MLLP (IANA `hl7`, 2575/tcp).
pub const MLLP_DEFAULT_PORT: u16 = 2575;

impl Reader<'_> {
    pub(super) fn sinks(&mut self, top: &mut Tbl) -> Vec<SinkConfig> {
        let Some(v) = self.get(top, "sink") else {
            return Vec::new();
        };
        let Some(array) = v.get_ref().as_array() else {
            self.err(v.span(), "sink", "must be an array of tables", Some("write each sink as [[sink]]".into()));
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for (i, item) in array.iter().enumerate() {
            let Some(table) = item.get_ref().as_table() else {
                self.err(item.span(), &format!("sink[{i}]"), "must be a table", None);
                continue;
            };
            let mut t = Tbl { t: table, span: item.span(), path: format!("sink[{i}]"), used: Default::default() };
            let Some((kind, kind_span)) = self.string(&mut t, "kind", Some("the kind of destination: kind = \"mllp\"")) else {
                continue;
            };
            match kind.as_str() {
                "mllp" => {}
                "mqtt" => {
                    self.err(
                        kind_span,
                        &format!("sink[{i}].kind"),
                        "the MQTT broker is configured in the [mqtt] table",
                        Some("keep [mqtt] as it is; [[sink]] adds further destinations".into()),
                    );
                    continue;
                }
                other => {
                    self.err(kind_span, &format!("sink[{i}].kind"), format!("unknown sink kind {other:?}"), Some("one of: mllp".into()));
                    continue;
                }
            }
            if let Some(s) = self.mllp_sink(t, i, &mut names) {
                out.push(SinkConfig::Mllp(s));
            }
        }
        out
    }

    fn mllp_sink(&mut self, mut t: Tbl, i: usize, names: &mut HashMap<String, Range<usize>>) -> Option<MllpSinkConfig> {
        let key = |k: &str| format!("sink[{i}].{k}");
        let (name, name_span) = self.string(&mut t, "name", None).unwrap_or_else(|| ("mllp".to_string(), t.span.clone()));
        if name == crate::sink::MQTT_SINK {
            self.err(
                name_span.clone(),
                &key("name"),
                format!("{name:?} is the name of the [mqtt] sink"),
                Some("the buffer tracks delivery per sink by name: choose another, e.g. the interface engine's".into()),
            );
        } else if let Some(first) = names.get(&name) {
            let (line, _) = self.pos(first.start);
            self.err(
                name_span.clone(),
                &key("name"),
                format!("sink name {name:?} is already used at line {line}"),
                Some("give each sink its own name = \"...\": the buffer tracks delivery per sink by it".into()),
            );
        } else {
            names.insert(name.clone(), name_span);
        }
        let host = self.string(&mut t, "host", Some("the interface engine's host name, e.g. host = \"engine.hospital.local\""));
        let port = self.int(&mut t, "port", 1..=65535, MLLP_DEFAULT_PORT as i64) as u16;
        let tls = self.tls_table(&mut t, "interface engine");
        if let Some((f, span)) = self.string(&mut t, "format", None) {
            if f != "hl7v2" {
                self.err(
                    span,
                    &key("format"),
                    format!("{f:?} cannot be sent over MLLP"),
                    Some("MLLP carries HL7 v2: format = \"hl7v2\" (IHE PCD-01)".into()),
                );
            }
        }
        let ack_mode =
            self.choice(&mut t, "ack_mode", &[("original", AckMode::Original), ("enhanced", AckMode::Enhanced)], AckMode::Original);
        let ack_timeout_s = self.int(&mut t, "ack_timeout_s", 1..=3600, 30) as u32;
        let max_in_flight = self.int(&mut t, "max_in_flight", 1..=1000, 1) as u16;
        let min_span = self.get(&mut t, "retry_backoff_min_s").map(|v| v.span());
        let retry_backoff_min_s = self.int(&mut t, "retry_backoff_min_s", 1..=3600, 1) as u32;
        let retry_backoff_max_s = self.int(&mut t, "retry_backoff_max_s", 1..=86_400, 60) as u32;
        if retry_backoff_min_s > retry_backoff_max_s {
            self.err(
                min_span.unwrap_or_else(|| t.span.clone()),
                &key("retry_backoff_min_s"),
                format!("{retry_backoff_min_s} s is more than retry_backoff_max_s ({retry_backoff_max_s} s)"),
                Some("the back-off doubles from min to max".into()),
            );
        }
        let ae_retries = self.int(&mut t, "ae_retries", 0..=1000, 3) as u32;
        let carries = self.carries(&mut t, &key("carries"));
        self.finish(
            t,
            &[
                "kind",
                "name",
                "host",
                "port",
                "tls",
                "format",
                "ack_mode",
                "ack_timeout_s",
                "max_in_flight",
                "retry_backoff_min_s",
                "retry_backoff_max_s",
                "ae_retries",
                "carries",
            ],
        );
        Some(MllpSinkConfig {
            name,
            host: host?.0,
            port,
            tls,
            format: PayloadFormat::Hl7v2,
            ack_mode,
            ack_timeout_s,
            max_in_flight,
            retry_backoff_min_s,
            retry_backoff_max_s,
            ae_retries,
            carries,
        })
    }

    /// `carries = ["observations"]` (default), `["alarms"]` or both: a non-empty list of
    /// distinct names.
    fn carries(&mut self, t: &mut Tbl, key: &str) -> Carries {
        const HINT: &str = "carries = [\"observations\"], [\"alarms\"] or [\"observations\", \"alarms\"]";
        let Some(v) = self.get(t, "carries") else { return Carries::default() };
        let Some(items) = v.get_ref().as_array() else {
            self.err(v.span(), key, format!("must be a list, not {}", v.get_ref().type_str()), Some(HINT.into()));
            return Carries::default();
        };
        if items.is_empty() {
            self.err(v.span(), key, "must name at least one kind of message", Some(HINT.into()));
            return Carries::default();
        }
        let mut c = Carries { observations: false, alarms: false };
        for item in items.iter() {
            let slot = match item.get_ref().as_str() {
                Some("observations") => &mut c.observations,
                Some("alarms") => &mut c.alarms,
                Some(other) => {
                    self.err(item.span(), key, format!("unknown kind of message {other:?}"), Some("one of: observations, alarms".into()));
                    continue;
                }
                None => {
                    self.err(item.span(), key, format!("must list strings, not {}", item.get_ref().type_str()), Some(HINT.into()));
                    continue;
                }
            };
            if *slot {
                self.err(item.span(), key, "listed twice", Some(HINT.into()));
            }
            *slot = true;
        }
        if !c.observations && !c.alarms {
            return Carries::default();
        }
        c
    }
}
