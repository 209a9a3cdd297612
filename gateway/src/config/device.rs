//! The `[[device]]` tables: names, protocols, serial settings, context, and the checks across
//! devices (unique names and ports, listen addresses, derived EUI-64s).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use medgw_protocols::observation::Patient;
use medgw_protocols::registry;
use toml::de::DeValue;

use super::diagnostics::ConfigError;
use super::model::{DeviceConfig, DeviceProtocol, GatewayConfig, Parity, SerialSettings, SourceConfig};
use super::net::ListenIndex;
use super::reader::{closest, Reader, Tbl};

impl Reader<'_> {
    /// The EUI-64s that PCD-01 output derives for the gateway and for devices that have none
    /// (from `cfg:<gateway>:<name>` until a device tells its serial) must name one piece of
    /// equipment each: a 64-bit hash collision is unlikely, not impossible (docs/pcd-01.md).
    pub(super) fn distinct_eui64s(&mut self, g: &GatewayConfig, devices: &[DeviceConfig]) {
        use medgw_protocols::observation::{gateway_eui64, Eui64};
        let mut seen: Vec<(Eui64, String)> = vec![(g.eui64.unwrap_or_else(|| gateway_eui64(&g.id)), "the gateway".into())];
        for d in devices {
            let e = Eui64::derived(&format!("cfg:{}:{}", g.id, d.name));
            if let Some((_, other)) = seen.iter().find(|(x, _)| *x == e) {
                let message = format!("device {:?} would get the EUI-64 {e} of {other}", d.name);
                self.errors.push(ConfigError {
                    line: 0,
                    column: 0,
                    key: "device.name".into(),
                    message,
                    hint: Some("rename the device, or change gateway.eui64".into()),
                });
            }
            seen.push((e, format!("device {:?}", d.name)));
        }
    }

    pub(super) fn devices(&mut self, top: &mut Tbl) -> Vec<DeviceConfig> {
        let Some(v) = self.get(top, "device") else {
            return Vec::new();
        };
        let Some(array) = v.get_ref().as_array() else {
            self.err(v.span(), "device", "must be an array of tables", Some("write each device as [[device]]".into()));
            return Vec::new();
        };
        let mut out = Vec::new();
        // Looked up by hash, not by scanning earlier devices: `check-config` stays linear in
        // the number of devices (a quadratic scan took 89 s for 111,000 devices).
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut ports: HashMap<String, Range<usize>> = HashMap::new();
        let mut listens = ListenIndex::default();
        for (i, item) in array.iter().enumerate() {
            let Some(table) = item.get_ref().as_table() else {
                self.err(item.span(), &format!("device[{i}]"), "must be a table", None);
                continue;
            };
            let mut t = Tbl { t: table, span: item.span(), path: format!("device[{i}]"), used: BTreeSet::new() };
            // Duplicates are found even when a device has other problems.
            let value = |key: &str| table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v);
            let name = value("name").and_then(|v| Some((v.get_ref().as_str()?.to_string(), v.span())));
            if let Some((name, span)) = name {
                match names.entry(name) {
                    Entry::Occupied(prev) => {
                        let (line, _) = self.pos(prev.get().start);
                        self.err(
                            span,
                            &format!("device[{i}].name"),
                            format!("{:?} is already used on line {line}", prev.key()),
                            Some("device names must be unique within a gateway".into()),
                        );
                    }
                    Entry::Vacant(v) => {
                        v.insert(span);
                    }
                }
            }
            if let Some(d) = self.device(&mut t) {
                let port = d.source.port_name();
                let source_span =
                    ["listen", "port", "ble", "ble_name"].into_iter().find_map(value).map(|v| v.span()).unwrap_or_else(|| t.span.clone());
                if let Some((message, hint)) = listens.add(&d, out.len(), &out) {
                    self.err(source_span.clone(), &format!("device[{i}].listen"), message, Some(hint));
                } else if let Some(prev) = ports.get(&port).filter(|_| !matches!(d.source, SourceConfig::TcpServer { .. })) {
                    let (line, _) = self.pos(prev.start);
                    self.err(
                        source_span.clone(),
                        &format!("device[{i}].port"),
                        format!("{port} is already used by the device on line {line}"),
                        Some("one device per port".into()),
                    );
                }
                ports.entry(port).or_insert(source_span);
                out.push(d);
            }
            self.finish(
                t,
                &[
                    "name",
                    "protocol",
                    "port",
                    "listen",
                    "allow",
                    "ble",
                    "ble_name",
                    "services",
                    "baud",
                    "data_bits",
                    "parity",
                    "stop_bits",
                    "bed",
                    "room",
                    "patient",
                    "poll_period_ms",
                    "listen_only",
                    "timezone",
                    "silence_timeout_s",
                    "max_frame_rate",
                    "waves",
                ],
            );
        }
        out
    }

    pub(super) fn device(&mut self, t: &mut Tbl) -> Option<DeviceConfig> {
        let name = self.string(t, "name", Some("a name unique within this gateway, e.g. name = \"bed4-spo2\""));
        if let Some((n, span)) = &name {
            if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                self.err(
                    span.clone(),
                    &Self::key(t, "name"),
                    format!("{n:?} contains characters not allowed in an MQTT topic level"),
                    Some("use letters, digits, '-' and '_'".into()),
                );
            }
        }
        let is_ble = t.t.iter().any(|(k, _)| matches!(k.get_ref().as_ref(), "ble" | "ble_name"));
        let protocol = if is_ble {
            // A Bluetooth device's decoders follow from its GATT services.
            self.string(t, "protocol", None)
        } else {
            self.string(t, "protocol", Some("e.g. protocol = \"nonin-df8\"; `medgw decode --list` lists them"))
        };
        let info = match &protocol {
            Some((p, span)) => match registry::find(p) {
                Some(info) => Some(info),
                None => {
                    let names: Vec<&str> = registry::protocols().filter(|i| !i.gatt).map(|i| i.name).collect();
                    let hint = closest(&names, p)
                        .map(|k| format!("did you mean {k:?}?"))
                        .unwrap_or_else(|| format!("one of: {}", names.join(", ")));
                    self.err(span.clone(), &Self::key(t, "protocol"), format!("unknown protocol {p:?}"), Some(hint));
                    None
                }
            },
            None => None,
        };
        if let (Some(info), Some((_, span))) = (info, &protocol) {
            if info.gatt != is_ble {
                let (message, hint) = if info.gatt {
                    (
                        format!("{} is a Bluetooth GATT characteristic, not a serial protocol", info.name),
                        "a Bluetooth device is configured with ble = \"AA:BB:CC:DD:EE:FF\" and services = [...]",
                    )
                } else {
                    (
                        format!("{} is a serial protocol, but the device is configured as Bluetooth", info.name),
                        "a serial device is configured with port = ...",
                    )
                };
                self.err(span.clone(), &Self::key(t, "protocol"), message, Some(hint.into()));
            }
        }
        let defaults = info.and_then(|i| i.serial).unwrap_or_default();
        let baud = self.int(t, "baud", 50..=4_000_000, defaults.baud as i64) as u32;
        let data_bits = self.int(t, "data_bits", 5..=8, defaults.data_bits as i64) as u8;
        let parity = self.choice(t, "parity", &[("none", Parity::None), ("even", Parity::Even), ("odd", Parity::Odd)], defaults.parity);
        let stop_bits = self.int(t, "stop_bits", 1..=2, defaults.stop_bits as i64) as u8;
        let bed = self.string(t, "bed", Some("the bed this device serves, e.g. bed = \"BED4\""));
        let room = self.string(t, "room", None).map(|s| s.0);
        let patient = match self.get(t, "patient") {
            None => None,
            Some(v) => match v.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() => Some(Patient::configured(s.to_string(), None)),
                DeValue::Table(pt) => {
                    let mut pt = Tbl { t: pt, span: v.span(), path: Self::key(t, "patient"), used: BTreeSet::new() };
                    let id = self.string(&mut pt, "id", Some("the patient identifier, e.g. id = \"MRN123\""));
                    let system = self.string(&mut pt, "system", None).map(|s| s.0);
                    self.finish(pt, &["id", "system"]);
                    id.map(|(id, _)| Patient::configured(id, system))
                }
                other => {
                    self.err(
                        v.span(),
                        &Self::key(t, "patient"),
                        format!("must be a string or a table, not {}", other.type_str()),
                        Some("patient = { id = \"MRN123\", system = \"urn:oid:...\" }".into()),
                    );
                    None
                }
            },
        };
        let poll_period_ms = self.int(t, "poll_period_ms", 100..=3_600_000, 1000) as u32;
        let listen_only = self.boolean(t, "listen_only", false);
        let timezone = self.timezone(t, "timezone");
        let silence_timeout_ms = (self.int(t, "silence_timeout_s", 1..=3600, 10) * 1000) as u32;
        let max_frame_rate =
            t.t.iter()
                .any(|(key, _)| key.get_ref().as_ref() == "max_frame_rate")
                .then(|| self.int(t, "max_frame_rate", 1..=1_000_000, 1) as u32);
        let (waves, wave_poll) = self.device_waves(t, info);
        let settings = SerialSettings { baud, data_bits, parity, stop_bits };
        let source = self.source(t, settings, is_ble)?;
        let protocol = match (&source, info) {
            (SourceConfig::Ble { .. }, _) => DeviceProtocol::Ble,
            (_, info) => DeviceProtocol::Stream(info?),
        };
        Some(DeviceConfig {
            name: name?.0,
            protocol,
            source,
            bed: bed?.0,
            room,
            patient,
            poll_period_ms,
            listen_only,
            timezone,
            silence_timeout_ms,
            max_frame_rate,
            waves,
            wave_poll,
        })
    }

    /// A device's `waves`: `true`/`false` publishes its waveforms or not (over `[waves]
    /// enabled`); a list, `waves = ["ecg-ii", "pleth"]`, names the IntelliVue waves to poll (at
    /// most 11, the monitor's limit of 3 ECG + 8 others) and publishes them. Only the IntelliVue
    /// client polls waves; the others send theirs unasked (Nonin DF2/DF7 pleth).
    fn device_waves(&mut self, t: &mut Tbl, info: Option<&'static medgw_protocols::decode::ProtocolInfo>) -> (Option<bool>, Vec<u16>) {
        if let Some(v) = self.get(t, "waves") {
            if let Some(b) = v.get_ref().as_bool() {
                return (Some(b), Vec::new());
            }
        }
        let poll = self.wave_poll(t, info);
        (if poll.is_empty() { None } else { Some(true) }, poll)
    }

    fn wave_poll(&mut self, t: &mut Tbl, info: Option<&'static medgw_protocols::decode::ProtocolInfo>) -> Vec<u16> {
        use medgw_protocols::wire::intellivue::wave::{physio_by_name, MAX_WAVES};
        const NAMES: &str = "ecg-i, ecg-ii, ecg-iii, pleth, abp, resp";
        let mut waves = Vec::new();
        let Some(v) = self.get(t, "waves") else { return waves };
        if info.is_some_and(|i| i.name != "intellivue") {
            self.err(v.span(), &Self::key(t, "waves"), "only an intellivue device polls waves", None);
            return waves;
        }
        let Some(items) = v.get_ref().as_array() else {
            self.err(
                v.span(),
                &Self::key(t, "waves"),
                "must be true, false or an array of wave names",
                Some("waves = [\"ecg-ii\", \"pleth\"]".into()),
            );
            return waves;
        };
        for item in items.iter() {
            match item.get_ref().as_str().and_then(physio_by_name) {
                Some(p) if !waves.contains(&p) => waves.push(p),
                Some(_) => {}
                None => self.err(item.span(), &Self::key(t, "waves"), "unknown wave".to_string(), Some(format!("one of: {NAMES}"))),
            }
        }
        if waves.len() > MAX_WAVES {
            self.err(v.span(), &Self::key(t, "waves"), format!("at most {MAX_WAVES} waves"), None);
            waves.truncate(MAX_WAVES);
        }
        waves
    }
}
