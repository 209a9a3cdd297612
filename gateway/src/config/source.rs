//! Where a device's bytes come from: exactly one of `port` (a serial path, `tcp://`,
//! `rfc2217://`), `listen` with `allow`, or `ble`/`ble_name` with `services`.

use std::ops::Range;
use std::path::PathBuf;

use super::model::{SerialSettings, SourceConfig, BLE_SERVICES};
use super::net::AllowRule;
use super::reader::{Reader, Tbl};

impl Reader<'_> {
    /// Exactly one of `port` (a serial path, `tcp://`, `rfc2217://`), `listen`, `ble`/`ble_name`.
    pub(super) fn source(&mut self, t: &mut Tbl, settings: SerialSettings, is_ble: bool) -> Option<SourceConfig> {
        let has = |k: &str| t.t.iter().any(|(key, _)| key.get_ref().as_ref() == k);
        let given: Vec<&str> = ["port", "listen", "ble"].into_iter().filter(|k| has(k) || (*k == "ble" && has("ble_name"))).collect();
        if given.len() != 1 {
            // At the second source in the file, or at the device's header when there is none.
            let mut sources: Vec<Range<usize>> =
                t.t.iter()
                    .filter(|(k, _)| matches!(k.get_ref().as_ref(), "port" | "listen" | "ble" | "ble_name"))
                    .map(|(k, _)| k.span())
                    .collect();
            sources.sort_by_key(|s| s.start);
            let span = sources.get(1).cloned().unwrap_or_else(|| t.span.clone());
            let message =
                if given.is_empty() { "has no source".to_string() } else { format!("has more than one source: {}", given.join(", ")) };
            self.err(
                span,
                &Self::key(t, "port"),
                message,
                Some("give one of port = \"/dev/ttyUSB0\" | \"tcp://host:port\" | \"rfc2217://host:port\", listen = \"0.0.0.0:4001\", or ble = \"AA:BB:CC:DD:EE:FF\"".into()),
            );
            return None;
        }
        if is_ble {
            let address = self.string(t, "ble", None);
            if let Some((a, span)) = &address {
                let ok =
                    a.len() == 17 && a.split(':').count() == 6 && a.split(':').all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
                if !ok {
                    self.err(
                        span.clone(),
                        &Self::key(t, "ble"),
                        format!("{a:?} is not a Bluetooth address"),
                        Some("six hex bytes, e.g. \"AA:BB:CC:DD:EE:FF\" (`medgw ble scan` lists devices)".into()),
                    );
                }
            }
            let name = self.string(t, "ble_name", None).map(|s| s.0);
            let mut services = Vec::new();
            if let Some(v) = self.get(t, "services") {
                match v.get_ref().as_array() {
                    Some(items) => {
                        for item in items.iter() {
                            match item.get_ref().as_str().and_then(|s| BLE_SERVICES.iter().find(|(n, _)| *n == s)) {
                                Some((_, kind)) => services.push(*kind),
                                None => {
                                    let names: Vec<&str> = BLE_SERVICES.iter().map(|(n, _)| *n).collect();
                                    self.err(
                                        item.span(),
                                        &Self::key(t, "services"),
                                        format!(
                                            "unknown service {}",
                                            item.get_ref().as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| "value".into())
                                        ),
                                        Some(format!("one of: {}", names.join(", "))),
                                    );
                                }
                            }
                        }
                    }
                    None => self.err(
                        v.span(),
                        &Self::key(t, "services"),
                        "must be an array of service names",
                        Some("services = [\"plx-continuous\"]".into()),
                    ),
                }
            }
            return Some(SourceConfig::Ble { address: address.map(|a| a.0), name, services });
        }
        if has("listen") {
            let (bind, span) = self.string(t, "listen", None)?;
            let Ok(bind) = bind.parse::<std::net::SocketAddr>() else {
                self.err(
                    span,
                    &Self::key(t, "listen"),
                    format!("{bind:?} is not an address:port"),
                    Some("e.g. listen = \"0.0.0.0:4001\"".into()),
                );
                return None;
            };
            let mut allow = Vec::new();
            match self.get(t, "allow") {
                None => {
                    self.err(
                        span,
                        &Self::key(t, "allow"),
                        "is required with listen",
                        Some("the device server's address, e.g. allow = [\"10.1.2.3\"] or a network [\"10.1.2.0/24\"]".into()),
                    );
                    return None;
                }
                Some(v) => match v.get_ref().as_array() {
                    Some(items) => {
                        for item in items.iter() {
                            match item.get_ref().as_str().and_then(AllowRule::parse) {
                                Some(r) => allow.push(r),
                                None => self.err(
                                    item.span(),
                                    &Self::key(t, "allow"),
                                    "is not an IP address or network",
                                    Some("e.g. \"10.1.2.3\" or \"10.1.2.0/24\"".into()),
                                ),
                            }
                        }
                    }
                    None => {
                        self.err(v.span(), &Self::key(t, "allow"), "must be an array of addresses", Some("allow = [\"10.1.2.3\"]".into()))
                    }
                },
            }
            return Some(SourceConfig::TcpServer { bind, allow });
        }
        let (port, span) = self.string(t, "port", None)?;
        for (scheme, rfc2217) in [("tcp://", false), ("rfc2217://", true)] {
            if let Some(rest) = port.strip_prefix(scheme) {
                let parsed =
                    rest.rsplit_once(':').and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse::<u16>().ok()?)));
                return match parsed {
                    Some((host, p)) if !host.is_empty() && p != 0 => Some(if rfc2217 {
                        SourceConfig::Rfc2217 { host, port: p, settings }
                    } else {
                        SourceConfig::TcpClient { host, port: p }
                    }),
                    _ => {
                        self.err(
                            span,
                            &Self::key(t, "port"),
                            format!("{port:?} is not {scheme}host:port"),
                            Some(format!("e.g. port = \"{scheme}10.1.2.3:4001\"")),
                        );
                        None
                    }
                };
            }
        }
        if port.contains("://") {
            self.err(
                span,
                &Self::key(t, "port"),
                format!("{port:?}: unknown scheme"),
                Some("a serial device path, tcp://host:port or rfc2217://host:port".into()),
            );
            return None;
        }
        let path = PathBuf::from(&port);
        Some(SourceConfig::Serial { port: if path.is_relative() { self.base.join(path) } else { path }, settings })
    }
}
