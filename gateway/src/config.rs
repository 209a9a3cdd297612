//! Configuration: `medgw.toml`, checked completely before anything runs.
//!
//! The file is read with toml's spanned parser and walked by hand rather than with
//! `#[derive(Deserialize)]`, because an engineer at a bedside needs *every* problem at once,
//! each with its line and a hint, not the first serde error. `medgw check-config` prints the
//! same messages that `medgw run` refuses to start with.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use medgw_protocols::observation::Patient;
use medgw_protocols::registry;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line and column of the offending key or value (0 when not tied to a place).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `device[2].baud`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

/// `LINE:COL: key: message (hint: ...)`, the form compilers use, so that an editor or a CI log
/// viewer can jump to the place; [`ConfigErrors`] puts the file name in front.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// One `FILE:LINE:COL: ...` line (`FILE: ...` for a problem not tied to a place).
fn write_located(f: &mut fmt::Formatter<'_>, file: &str, e: &ConfigError, tag: &str) -> fmt::Result {
    let sep = if e.line > 0 { "" } else { " " };
    write!(f, "{file}:{sep}")?;
    if e.line > 0 {
        write!(f, "{}:{}: ", e.line, e.column)?;
    }
    f.write_str(tag)?;
    let unplaced = ConfigError { line: 0, column: 0, ..e.clone() };
    write!(f, "{unplaced}")
}

/// All problems of a file; `Display` prints one per line as `FILE:LINE:COL: key: message (hint: ...)`.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_located(f, &self.file, e, "")?;
        }
        Ok(())
    }
}

/// The warnings of an accepted file, printed like errors with `warning: ` before the key.
pub struct ConfigWarnings<'a> {
    pub file: &'a str,
    pub warnings: &'a [ConfigError],
}

impl fmt::Display for ConfigWarnings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.warnings.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_located(f, self.file, e, "warning: ")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Fhir,
    Hl7v2,
    Canonical,
}

impl PayloadFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            PayloadFormat::Fhir => "fhir",
            PayloadFormat::Hl7v2 => "hl7v2",
            PayloadFormat::Canonical => "canonical",
        }
    }

    /// MQTT 5 content type of the payload.
    pub fn content_type(&self) -> &'static str {
        match self {
            PayloadFormat::Fhir => "application/fhir+json",
            PayloadFormat::Hl7v2 => "x-application/hl7-v2+er7",
            PayloadFormat::Canonical => "application/json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttProtocol {
    /// MQTT 5 first; 3.1.1 if the broker refuses it.
    Auto,
    V5,
    V311,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Delete the oldest buffered observations to make room: counted, logged and published.
    DropOldest,
    /// Stop reading devices until the broker drains the buffer: nothing is deleted.
    StopReading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Live data first, the backlog drained in the remaining capacity (nurses want the
    /// current value first).
    LiveFirst,
    /// Strict per-device order: the backlog of a device before its live data.
    Ordered,
}

/// Fewest characters of a status token (after its file's trailing newline is removed): the
/// status page shows bed-level clinical values, so a token must not be guessable.
/// `openssl rand -hex 16` makes a 32-character one.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A secret from a file or an environment variable; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive_s: u16,
    pub qos: u8,
    pub topic_prefix: String,
    pub format: PayloadFormat,
    pub protocol: MqttProtocol,
    pub tls: Option<TlsConfig>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Messages in flight (unacknowledged) at most.
    pub max_inflight: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub when_full: WhenFull,
    /// Group commit: the longest an accepted observation waits for its fsync.
    pub commit_interval_ms: u32,
    pub replay: Replay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
}

/// An address or network allowed to connect to a TCP-server source: `10.1.2.3` or `10.1.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowRule {
    pub net: std::net::IpAddr,
    pub prefix: u8,
}

impl AllowRule {
    pub fn parse(s: &str) -> Option<AllowRule> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: std::net::IpAddr = addr.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(AllowRule { net, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether some address is in both rules (CIDR blocks are nested or disjoint).
    pub fn overlaps(&self, other: &AllowRule) -> bool {
        (self.prefix <= other.prefix && self.contains(other.net)) || (other.prefix <= self.prefix && other.contains(self.net))
    }
}

/// Where a device's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// A local serial port (`port = "/dev/ttyUSB0"`).
    Serial { port: PathBuf, settings: SerialSettings },
    /// A device server in "TCP server" mode: medgw connects (`port = "tcp://host:4001"`).
    TcpClient { host: String, port: u16 },
    /// A device server speaking RFC 2217: medgw connects and sets the remote serial port's
    /// settings (`port = "rfc2217://host:4001"`).
    Rfc2217 { host: String, port: u16, settings: SerialSettings },
    /// A device server in "TCP client" mode: medgw listens and the box connects
    /// (`listen = "0.0.0.0:4001"`, `allow = ["10.1.2.3"]`).
    TcpServer { bind: std::net::SocketAddr, allow: Vec<AllowRule> },
    /// A Bluetooth LE device (`ble = "AA:BB:CC:DD:EE:FF"`, or `ble_name` to find it by name),
    /// read through the GATT health services in `services` (default: every supported service
    /// the device offers).
    Ble { address: Option<String>, name: Option<String>, services: Vec<String> },
}

/// The Bluetooth GATT health services medgw reads, by the name used in `services`, with the
/// decoder of each characteristic.
pub const BLE_SERVICES: &[(&str, &str)] = &[
    ("heart-rate", "gatt-heart-rate"),
    ("plx-spot", "gatt-plx-spot"),
    ("plx-continuous", "gatt-plx-continuous"),
    ("blood-pressure", "gatt-blood-pressure"),
    ("temperature", "gatt-temperature"),
    ("weight", "gatt-weight"),
    ("glucose", "gatt-glucose"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub name: String,
    pub protocol: String,
    pub source: SourceConfig,
    pub bed: String,
    pub room: Option<String>,
    pub patient: Option<Patient>,
    pub poll_period_ms: u32,
    pub listen_only: bool,
    /// IANA zone of the device's local clock (default: the gateway's).
    pub timezone: Option<String>,
    /// No bytes for this long: the device is silent (event) and the port is reopened.
    pub silence_timeout_ms: u32,
    /// The rate gate's limit in frames per second for decoders that have one (`nonin-df8`);
    /// `None` is the protocol's own limit. Raised only for simulators run faster than a device.
    pub max_frame_rate: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub id: String,
    pub site: String,
    pub unit: String,
    pub timezone: Option<String>,
    pub nomenclature: Option<PathBuf>,
    pub log_format: LogFormat,
    /// The gateway's own EUI-64 (PCD-01 MSH-3); derived from `id` when not set (docs/pcd-01.md).
    pub eui64: Option<medgw_protocols::observation::Eui64>,
}

/// The status page, JSON API, health endpoints and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    pub enabled: bool,
    pub bind: std::net::SocketAddr,
    /// Required when `bind` is not a loopback address.
    pub token: Option<Secret>,
    /// Status connections open at once; beyond it a new one is closed at once, so the operator
    /// surface holds a bounded number of file descriptors and device sources never starve.
    pub max_connections: usize,
    /// A client must send a request's headers within this time, also between keep-alive
    /// requests; a half-sent or idle connection is closed after it.
    pub header_timeout_s: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_connections: 64,
            header_timeout_s: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub mqtt: MqttConfig,
    pub buffer: BufferConfig,
    pub status: StatusConfig,
    pub devices: Vec<DeviceConfig>,
    /// `[adt]`: the hospital's ADT feed and the bed map (docs/adt.md).
    pub adt: Option<crate::adt::AdtSettings>,
    /// Problems that do not stop the gateway but that an engineer should fix (e.g. a secret
    /// file others may read, on a loopback-only gateway); `check-config` and `run` print them.
    pub warnings: Vec<ConfigError>,
}

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
    r.finish(top, &["gateway", "mqtt", "buffer", "status", "device", "adt"]);
    if let Some(g) = &gateway {
        r.distinct_eui64s(g, &devices);
    }

    match (gateway, mqtt, buffer, r.errors.is_empty()) {
        (Some(gateway), Some(mqtt), Some(buffer), true) => Ok(Config { gateway, mqtt, buffer, status, devices, adt, warnings: r.warnings }),
        _ => Err(r.errors),
    }
}

/// A secret and where it came from, for the checks that depend on what it protects.
struct SecretRead {
    secret: Secret,
    /// The `..._file` or `..._env` key and the span of its value.
    key: String,
    span: Range<usize>,
    file: Option<PathBuf>,
}

struct Tbl<'a, 'i> {
    t: &'a DeTable<'i>,
    span: Range<usize>,
    path: String,
    used: BTreeSet<String>,
}

struct Reader<'s> {
    src: &'s str,
    base: &'s Path,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// Byte offset of the start of each line, so that placing a problem costs a binary search
    /// rather than a scan of the text before it (a file may have 100,000 devices).
    line_starts: Vec<usize>,
}

type Val<'a, 'i> = &'a Spanned<DeValue<'i>>;

impl<'s> Reader<'s> {
    fn new(src: &'s str, base: &'s Path) -> Reader<'s> {
        let line_starts = std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Reader { src, base, errors: Vec::new(), warnings: Vec::new(), line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.src.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start) + 1;
        (line, column)
    }

    fn err(&mut self, span: Range<usize>, key: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.pos(span.start);
        self.errors.push(ConfigError { line, column, key: key.to_string(), message: message.into(), hint });
    }

    fn warn(&mut self, span: Range<usize>, key: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.pos(span.start);
        self.warnings.push(ConfigError { line, column, key: key.to_string(), message: message.into(), hint });
    }

    fn key(t: &Tbl, k: &str) -> String {
        if t.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", t.path)
        }
    }

    fn get<'a, 'i>(&mut self, t: &mut Tbl<'a, 'i>, k: &str) -> Option<Val<'a, 'i>> {
        t.used.insert(k.to_string());
        t.t.iter().find(|(key, _)| key.get_ref().as_ref() == k).map(|(_, v)| v)
    }

    fn missing(&mut self, t: &Tbl, k: &str, hint: &str) {
        let span = t.span.clone();
        let key = Self::key(t, k);
        self.err(span, &key, "is required", Some(hint.to_string()));
    }

    fn string(&mut self, t: &mut Tbl, k: &str, required: Option<&str>) -> Option<(String, Range<usize>)> {
        match self.get(t, k) {
            None => {
                if let Some(h) = required {
                    self.missing(t, k, h);
                }
                None
            }
            Some(v) => match v.get_ref().as_str() {
                Some(s) if s.trim().is_empty() => {
                    self.err(v.span(), &Self::key(t, k), "must not be empty", None);
                    None
                }
                Some(s) => Some((s.to_string(), v.span())),
                None => {
                    self.err(
                        v.span(),
                        &Self::key(t, k),
                        format!("must be a string, not {}", v.get_ref().type_str()),
                        Some(format!("{k} = \"...\"")),
                    );
                    None
                }
            },
        }
    }

    fn int(&mut self, t: &mut Tbl, k: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> i64 {
        let Some(v) = self.get(t, k) else { return default };
        match v.get_ref().as_integer().and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok()) {
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                self.err(
                    v.span(),
                    &Self::key(t, k),
                    format!("{n} is out of range"),
                    Some(format!("use a value from {} to {}", range.start(), range.end())),
                );
                default
            }
            None => {
                self.err(v.span(), &Self::key(t, k), format!("must be an integer, not {}", v.get_ref().type_str()), None);
                default
            }
        }
    }

    fn boolean(&mut self, t: &mut Tbl, k: &str, default: bool) -> bool {
        let Some(v) = self.get(t, k) else { return default };
        match v.get_ref().as_bool() {
            Some(b) => b,
            None => {
                self.err(v.span(), &Self::key(t, k), format!("must be true or false, not {}", v.get_ref().type_str()), None);
                default
            }
        }
    }

    fn choice<T: Copy>(&mut self, t: &mut Tbl, k: &str, options: &[(&str, T)], default: T) -> T {
        let Some((s, span)) = self.string(t, k, None) else { return default };
        match options.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(span, &Self::key(t, k), format!("unknown value {s:?}"), Some(format!("one of: {}", names.join(", "))));
                default
            }
        }
    }

    fn path(&mut self, t: &mut Tbl, k: &str, required: Option<&str>) -> Option<(PathBuf, Range<usize>)> {
        self.string(t, k, required).map(|(s, span)| {
            let p = PathBuf::from(s);
            (if p.is_relative() { self.base.join(p) } else { p }, span)
        })
    }

    fn table<'a, 'i>(&mut self, t: &mut Tbl<'a, 'i>, k: &str) -> Option<Tbl<'a, 'i>> {
        let v = self.get(t, k)?;
        match v.get_ref().as_table() {
            Some(table) => Some(Tbl { t: table, span: v.span(), path: Self::key(t, k), used: BTreeSet::new() }),
            None => {
                self.err(
                    v.span(),
                    &Self::key(t, k),
                    format!("must be a table, not {}", v.get_ref().type_str()),
                    Some(format!("[{}]", Self::key(t, k))),
                );
                None
            }
        }
    }

    /// Reports keys that were never read, with the closest known key as a hint (typos).
    fn finish(&mut self, t: Tbl, known: &[&str]) {
        for (key, _) in t.t.iter() {
            let name = key.get_ref().as_ref();
            if !t.used.contains(name) {
                let hint = known
                    .iter()
                    .min_by_key(|k| edit_distance(k, name))
                    .filter(|k| edit_distance(k, name) <= 3)
                    .map(|k| format!("did you mean `{k}`?"));
                let hint = hint.or_else(|| Some(format!("known keys here: {}", known.join(", "))));
                self.err(key.span(), &Self::key(&t, name), "unknown key", hint);
            }
        }
    }

    fn gateway(&mut self, top: &mut Tbl) -> Option<GatewayConfig> {
        let Some(mut t) = self.table(top, "gateway") else {
            self.missing(top, "gateway", "add a [gateway] table with id, site and unit");
            return None;
        };
        let id = self.string(&mut t, "id", Some("a unique id for this gateway, e.g. id = \"gw-icu-3\""));
        if let Some((id, span)) = &id {
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                self.err(
                    span.clone(),
                    "gateway.id",
                    format!("{id:?} contains characters that are not allowed in an MQTT topic level"),
                    Some("use letters, digits, '-' and '_'".into()),
                );
            }
        }
        let site = self.string(&mut t, "site", Some("the hospital or site code, e.g. site = \"HOSP\""));
        let unit = self.string(&mut t, "unit", Some("the nursing unit, e.g. unit = \"ICU\""));
        let timezone = self.timezone(&mut t, "timezone");
        let nomenclature = self.path(&mut t, "nomenclature", None);
        if let Some((p, span)) = &nomenclature {
            if let Err(e) = crate::nomenclature_file::load(p) {
                self.err(span.clone(), "gateway.nomenclature", format!("{}: {e}", p.display()), None);
            }
        }
        let nomenclature = nomenclature.map(|(p, _)| p);
        let log_format = self.choice(&mut t, "log_format", &[("human", LogFormat::Human), ("json", LogFormat::Json)], LogFormat::Human);
        let eui64 = self.string(&mut t, "eui64", None).and_then(|(v, span)| match v.parse() {
            Ok(e) => Some(e),
            Err(_) => {
                self.err(
                    span,
                    "gateway.eui64",
                    format!("{v:?} is not an EUI-64"),
                    Some("16 hex digits, e.g. eui64 = \"0012345678ABCDEF\"".into()),
                );
                None
            }
        });
        self.finish(t, &["id", "site", "unit", "timezone", "nomenclature", "log_format", "eui64"]);
        Some(GatewayConfig { id: id?.0, site: site?.0, unit: unit?.0, timezone, nomenclature, log_format, eui64 })
    }

    fn timezone(&mut self, t: &mut Tbl, k: &str) -> Option<String> {
        let (tz, span) = self.string(t, k, None)?;
        if jiff::tz::TimeZone::get(&tz).is_err() {
            self.err(
                span,
                &Self::key(t, k),
                format!("unknown time zone {tz:?}"),
                Some("an IANA name such as \"Europe/Berlin\" or \"UTC\"".into()),
            );
            return None;
        }
        Some(tz)
    }

    /// A secret from `file_key` (a file, its trailing newline removed) or `env_key` (an
    /// environment variable). An empty secret is an error: it is never what was meant, and an
    /// empty status token would let anyone in.
    fn secret(&mut self, t: &mut Tbl, file_key: &str, env_key: &str) -> Option<SecretRead> {
        let file = self.path(t, file_key, None);
        let env = self.string(t, env_key, None);
        let (secret, key, span, origin, file) = match (file, env) {
            (Some(_), Some((_, span))) => {
                self.err(span, &Self::key(t, env_key), format!("both {file_key} and {env_key} are set"), Some("keep one".into()));
                return None;
            }
            (Some((path, span)), None) => match std::fs::read_to_string(&path) {
                Ok(s) => {
                    (s.trim_end_matches(['\r', '\n']).to_string(), Self::key(t, file_key), span, path.display().to_string(), Some(path))
                }
                Err(e) => {
                    self.err(
                        span,
                        &Self::key(t, file_key),
                        format!("cannot read {}: {e}", path.display()),
                        Some("check the path and that the medgw user may read it".into()),
                    );
                    return None;
                }
            },
            (None, Some((var, span))) => match std::env::var(&var) {
                Ok(s) => (s, Self::key(t, env_key), span, format!("environment variable {var}"), None),
                Err(_) => {
                    self.err(
                        span,
                        &Self::key(t, env_key),
                        format!("environment variable {var} is not set"),
                        Some(format!("set {var} in the service's environment")),
                    );
                    return None;
                }
            },
            (None, None) => return None,
        };
        if secret.trim().is_empty() {
            self.err(span, &key, format!("{origin} is empty"), Some("an empty secret is never accepted".into()));
            return None;
        }
        Some(SecretRead { secret: Secret(secret), key, span, file })
    }

    /// A secret file that the group or others may read: an error when what it protects is
    /// reachable beyond loopback (`exposed`), a warning otherwise (a test bench or a demo).
    fn secret_permissions(&mut self, s: &SecretRead, exposed: bool, protects: &str) {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &s.file else { return };
        let Ok(meta) = std::fs::metadata(path) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 == 0 {
            return;
        }
        let message = format!(
            "{} is readable by {} (mode {mode:03o}), and it protects {protects}",
            path.display(),
            if mode & 0o004 != 0 { "every user" } else { "its group" }
        );
        let hint = Some(format!("chmod 600 {}, owned by the user medgw runs as", path.display()));
        if exposed {
            self.err(s.span.clone(), &s.key, message, hint);
        } else {
            self.warn(s.span.clone(), &s.key, message, hint);
        }
    }

    /// Builds the TLS client configuration as `run` will, and reports a file that is not what
    /// its key says (garbage, a key given as the certificate, the key of another certificate)
    /// at that key. `spans` are those of ca, cert and key.
    fn tls_files(&mut self, tls: &TlsConfig, spans: &[Option<Range<usize>>; 3]) {
        use crate::sink::mqtt::transport::{self, TlsFile, TransportError};
        match transport::tls_config(tls) {
            Ok(_) => {}
            Err(TransportError::TlsFile { which, path, problem }) => {
                let (span, hint) = match which {
                    TlsFile::Ca => (&spans[0], "the PEM certificate of the CA that signed the broker's certificate"),
                    TlsFile::Cert => (&spans[1], "the gateway's client certificate (PEM), issued for the key in `key`"),
                    TlsFile::Key => (&spans[2], "the unencrypted PEM private key of the certificate in `cert`"),
                };
                let span = span.clone().unwrap_or_default();
                self.err(span, &format!("mqtt.tls.{}", which.key()), format!("{}: {problem}", path.display()), Some(hint.into()));
            }
            Err(e) => self.err(spans[0].clone().unwrap_or_default(), "mqtt.tls", e.to_string(), None),
        }
    }

    fn mqtt(&mut self, top: &mut Tbl, gateway_id: &str) -> Option<MqttConfig> {
        let Some(mut t) = self.table(top, "mqtt") else {
            self.missing(top, "mqtt", "add an [mqtt] table with at least host = \"broker.example\"");
            return None;
        };
        let host = self.string(&mut t, "host", Some("the broker's host name, e.g. host = \"mqtt.hospital.local\""));
        let tls = match self.table(&mut t, "tls") {
            Some(mut tt) => {
                let ca = self.path(&mut tt, "ca", Some("the CA certificate (PEM) that signed the broker's certificate"));
                let cert = self.path(&mut tt, "cert", None);
                let key = self.path(&mut tt, "key", None);
                let mut files_exist = true;
                for (k, p) in [("ca", &ca), ("cert", &cert), ("key", &key)] {
                    if let Some((p, span)) = p {
                        if !p.is_file() {
                            files_exist = false;
                            self.err(
                                span.clone(),
                                &format!("mqtt.tls.{k}"),
                                format!("{} does not exist", p.display()),
                                Some("check the path".into()),
                            );
                        }
                    }
                }
                match (&cert, &key) {
                    (Some((_, span)), None) => self.err(
                        span.clone(),
                        "mqtt.tls.cert",
                        "is given without key",
                        Some("a client certificate needs its private key".into()),
                    ),
                    (None, Some((_, span))) => self.err(
                        span.clone(),
                        "mqtt.tls.key",
                        "is given without cert",
                        Some("a private key needs its client certificate".into()),
                    ),
                    _ => {}
                }
                self.finish(tt, &["ca", "cert", "key"]);
                let spans = [&ca, &cert, &key].map(|f| f.as_ref().map(|(_, span)| span.clone()));
                let tls = ca.map(|(ca, _)| TlsConfig { ca, cert: cert.map(|c| c.0), key: key.map(|k| k.0) });
                if let (Some(tls), true) = (&tls, files_exist && spans[1].is_some() == spans[2].is_some()) {
                    self.tls_files(tls, &spans);
                }
                tls
            }
            None => None,
        };
        let port = self.int(&mut t, "port", 1..=65535, if tls.is_some() { 8883 } else { 1883 }) as u16;
        let client_id = self.string(&mut t, "client_id", None).map(|s| s.0).unwrap_or_else(|| format!("medgw-{gateway_id}"));
        let keep_alive_s = self.int(&mut t, "keep_alive_s", 5..=3600, 30) as u16;
        let qos_span = self.get(&mut t, "qos").map(|v| v.span());
        let qos = self.int(&mut t, "qos", 0..=2, 1) as u8;
        if let (0, Some(span)) = (qos, qos_span) {
            self.err(
                span,
                "mqtt.qos",
                "QoS 0 has no acknowledgement, so the buffer could not know what was delivered",
                Some("use qos = 1 (or 2)".into()),
            );
        }
        let (topic_prefix, prefix_span) = self.string(&mut t, "topic_prefix", None).unwrap_or_else(|| ("medgw/v1".to_string(), 0..0));
        if topic_prefix.contains(['+', '#']) || topic_prefix.starts_with('/') || topic_prefix.ends_with('/') {
            self.err(
                prefix_span,
                "mqtt.topic_prefix",
                format!("{topic_prefix:?} is not a valid topic prefix"),
                Some("no wildcards, no leading or trailing '/'".into()),
            );
        }
        let format = self.choice(
            &mut t,
            "format",
            &[("fhir", PayloadFormat::Fhir), ("hl7v2", PayloadFormat::Hl7v2), ("canonical", PayloadFormat::Canonical)],
            PayloadFormat::Fhir,
        );
        let protocol = self.choice(
            &mut t,
            "protocol",
            &[("auto", MqttProtocol::Auto), ("5", MqttProtocol::V5), ("3.1.1", MqttProtocol::V311)],
            MqttProtocol::Auto,
        );
        let username = self.string(&mut t, "username", None).map(|s| s.0);
        let password = self.secret(&mut t, "password_file", "password_env");
        if let Some(p) = &password {
            if username.is_none() {
                self.err(p.span.clone(), "mqtt.username", "a password is set but no username", Some("add username = \"...\"".into()));
            }
            // A broker on this machine: only its users could use the password.
            let host_name = host.as_ref().map(|h| h.0.as_str()).unwrap_or("");
            let local = host_name == "localhost" || host_name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            self.secret_permissions(p, !local, &format!("the MQTT account of the broker {host_name}"));
        }
        let password = password.map(|p| p.secret);
        let max_inflight = self.int(&mut t, "max_inflight", 1..=65535, 1000) as u16;
        self.finish(
            t,
            &[
                "host",
                "port",
                "client_id",
                "keep_alive_s",
                "qos",
                "topic_prefix",
                "format",
                "protocol",
                "tls",
                "username",
                "password_file",
                "password_env",
                "max_inflight",
            ],
        );
        Some(MqttConfig {
            host: host?.0,
            port,
            client_id,
            keep_alive_s,
            qos,
            topic_prefix,
            format,
            protocol,
            tls,
            username,
            password,
            max_inflight,
        })
    }

    fn buffer(&mut self, top: &mut Tbl) -> Option<BufferConfig> {
        let Some(mut t) = self.table(top, "buffer") else {
            self.missing(top, "buffer", "add a [buffer] table with path = \"/var/lib/medgw/buffer.db\"");
            return None;
        };
        let path = self.path(&mut t, "path", Some("where the on-disk buffer lives, e.g. path = \"/var/lib/medgw/buffer.db\""));
        let max_bytes = match self.get(&mut t, "max_bytes") {
            None => 1 << 30,
            Some(v) => {
                let parsed = match v.get_ref() {
                    DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().and_then(|n| u64::try_from(n).ok()),
                    DeValue::String(s) => parse_size(s),
                    _ => None,
                };
                match parsed {
                    Some(n) if n >= 1 << 20 => n,
                    Some(_) => {
                        self.err(
                            v.span(),
                            "buffer.max_bytes",
                            "is below 1 MB",
                            Some("a useful buffer holds hours of data: e.g. \"1GB\"".into()),
                        );
                        1 << 20
                    }
                    None => {
                        self.err(
                            v.span(),
                            "buffer.max_bytes",
                            "is not a size",
                            Some("bytes as an integer, or a string like \"512MB\" or \"2GB\"".into()),
                        );
                        1 << 30
                    }
                }
            }
        };
        let when_full = self.choice(
            &mut t,
            "when_full",
            &[("drop-oldest", WhenFull::DropOldest), ("stop-reading", WhenFull::StopReading)],
            WhenFull::DropOldest,
        );
        let commit_interval_ms = self.int(&mut t, "commit_interval_ms", 1..=1000, 5) as u32;
        let replay = self.choice(&mut t, "replay", &[("live-first", Replay::LiveFirst), ("ordered", Replay::Ordered)], Replay::LiveFirst);
        self.finish(t, &["path", "max_bytes", "when_full", "commit_interval_ms", "replay"]);
        Some(BufferConfig { path: path?.0, max_bytes, when_full, commit_interval_ms, replay })
    }

    fn status(&mut self, top: &mut Tbl) -> StatusConfig {
        let Some(mut t) = self.table(top, "status") else { return StatusConfig::default() };
        let enabled = self.boolean(&mut t, "enabled", true);
        let mut bind_span = t.span.clone();
        let bind = match self.string(&mut t, "bind", None) {
            None => StatusConfig::default().bind,
            Some((s, span)) => match s.parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    bind_span = span;
                    a
                }
                Err(_) => {
                    self.err(
                        span,
                        "status.bind",
                        format!("{s:?} is not an address:port"),
                        Some("e.g. \"127.0.0.1:8080\", or \"0.0.0.0:8080\" with a token".into()),
                    );
                    StatusConfig::default().bind
                }
            },
        };
        let token_given = t.t.iter().any(|(k, _)| matches!(k.get_ref().as_ref(), "token_file" | "token_env"));
        let token = self.secret(&mut t, "token_file", "token_env");
        let exposed = enabled && !bind.ip().is_loopback();
        if let Some(s) = &token {
            let chars = s.secret.expose().chars().count();
            if chars < MIN_TOKEN_CHARS {
                self.err(
                    s.span.clone(),
                    &s.key,
                    format!("the token has {chars} characters; at least {MIN_TOKEN_CHARS} are required"),
                    Some("make one with `openssl rand -hex 16` (32 characters)".into()),
                );
            }
            self.secret_permissions(s, exposed, "the status page");
        }
        let token = token.map(|s| s.secret);
        // A token that was given but refused above is reported there, not again here.
        if exposed && !token_given {
            self.err(
                bind_span,
                "status.bind",
                format!("{bind} is reachable from the network but no token is set"),
                Some("set token_file or token_env (the page shows clinical values), or bind to 127.0.0.1".into()),
            );
        }
        let defaults = StatusConfig::default();
        let max_connections = self.int(&mut t, "max_connections", 1..=1024, defaults.max_connections as i64) as usize;
        let header_timeout_s = self.int(&mut t, "header_timeout_s", 1..=300, defaults.header_timeout_s as i64) as u64;
        self.finish(t, &["enabled", "bind", "token_file", "token_env", "max_connections", "header_timeout_s"]);
        StatusConfig { enabled, bind, token, max_connections, header_timeout_s }
    }

    /// The EUI-64s that PCD-01 output derives for the gateway and for devices that have none
    /// (from `cfg:<gateway>:<name>` until a device tells its serial) must name one piece of
    /// equipment each: a 64-bit hash collision is unlikely, not impossible (docs/pcd-01.md).
    fn distinct_eui64s(&mut self, g: &GatewayConfig, devices: &[DeviceConfig]) {
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

    fn devices(&mut self, top: &mut Tbl) -> Vec<DeviceConfig> {
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
                let port = crate::source::port_name(&d.source);
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
                ],
            );
        }
        out
    }

    fn device(&mut self, t: &mut Tbl) -> Option<DeviceConfig> {
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
                    let hint = names
                        .iter()
                        .min_by_key(|k| edit_distance(k, p))
                        .filter(|k| edit_distance(k, p) <= 3)
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
        let defaults = info.and_then(|i| i.serial).unwrap_or((9600, 8, 'N', 1));
        let baud = self.int(t, "baud", 50..=4_000_000, defaults.0 as i64) as u32;
        let data_bits = self.int(t, "data_bits", 5..=8, defaults.1 as i64) as u8;
        let default_parity = match defaults.2 {
            'E' => Parity::Even,
            'O' => Parity::Odd,
            _ => Parity::None,
        };
        let parity = self.choice(t, "parity", &[("none", Parity::None), ("even", Parity::Even), ("odd", Parity::Odd)], default_parity);
        let stop_bits = self.int(t, "stop_bits", 1..=2, defaults.3 as i64) as u8;
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
        let settings = SerialSettings { baud, data_bits, parity, stop_bits };
        let source = self.source(t, settings, is_ble)?;
        let protocol = match (&source, info) {
            (SourceConfig::Ble { .. }, _) => "ble".to_string(),
            (_, info) => info?.name.to_string(),
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
        })
    }
}

impl Reader<'_> {
    /// Exactly one of `port` (a serial path, `tcp://`, `rfc2217://`), `listen`, `ble`/`ble_name`.
    fn source(&mut self, t: &mut Tbl, settings: SerialSettings, is_ble: bool) -> Option<SourceConfig> {
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
                            match item.get_ref().as_str() {
                                Some(s) if BLE_SERVICES.iter().any(|(n, _)| *n == s) => services.push(s.to_string()),
                                _ => {
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

/// Devices may share a listen address when their allow lists are disjoint: each connection is
/// bound to the device whose list contains the peer (`source/listen.rs`). Two listen addresses
/// on one port where one is a wildcard cannot both be bound.
///
/// Indexed, so that checking a device costs a few look-ups per allow rule however many devices
/// came before: CIDR blocks are nested or disjoint, so a new block overlaps an earlier one
/// exactly when an earlier block starts inside it, or an earlier block at one of the prefix
/// lengths in use contains its first address.
#[derive(Default)]
struct ListenIndex {
    binds: HashMap<std::net::SocketAddr, BindRules>,
    ports: HashMap<u16, PortBinds>,
}

/// The allow blocks of the devices on one listen address, keyed by (IPv6?, first address).
#[derive(Default)]
struct BindRules {
    exact: HashMap<(bool, u128, u8), (usize, AllowRule)>,
    starts: std::collections::BTreeMap<(bool, u128), (usize, AllowRule)>,
    prefixes: BTreeSet<(bool, u8)>,
}

/// The listen addresses on one port: the first two distinct ones (one of them differs from any
/// new address) and the first wildcard.
#[derive(Default)]
struct PortBinds {
    distinct: Vec<(std::net::SocketAddr, usize)>,
    wildcard: Option<(std::net::SocketAddr, usize)>,
}

/// (IPv6?, first address, host mask) of an allow rule.
fn block(rule: &AllowRule) -> (bool, u128, u128) {
    let (v6, bits, width) = match rule.net {
        std::net::IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32u8),
        std::net::IpAddr::V6(a) => (true, u128::from(a), 128u8),
    };
    let host = host_mask(width - rule.prefix.min(width));
    (v6, bits & !host, host)
}

fn host_mask(host_bits: u8) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

impl BindRules {
    fn overlapping(&self, rule: &AllowRule) -> Option<&(usize, AllowRule)> {
        let (v6, first, host) = block(rule);
        if let Some(e) = self.starts.range((v6, first)..=(v6, first | host)).next() {
            return Some(e.1);
        }
        let width = if v6 { 128 } else { 32 };
        self.prefixes.range((v6, 0)..=(v6, rule.prefix)).find_map(|&(_, q)| self.exact.get(&(v6, first & !host_mask(width - q), q)))
    }

    fn insert(&mut self, device: usize, rule: AllowRule) {
        let (v6, first, _) = block(&rule);
        self.exact.entry((v6, first, rule.prefix)).or_insert((device, rule));
        self.starts.entry((v6, first)).or_insert((device, rule));
        self.prefixes.insert((v6, rule.prefix));
    }
}

impl ListenIndex {
    /// Adds device `index` (`d`); returns (message, hint) if it conflicts with one in `earlier`.
    fn add(&mut self, d: &DeviceConfig, index: usize, earlier: &[DeviceConfig]) -> Option<(String, String)> {
        let SourceConfig::TcpServer { bind, allow } = &d.source else { return None };
        let rules = self.binds.entry(*bind).or_default();
        let shared = allow.iter().find_map(|x| rules.overlapping(x).map(|(e, y)| (x, *e, *y)));
        for rule in allow {
            rules.insert(index, *rule);
        }
        let port = self.ports.entry(bind.port()).or_default();
        let wildcard = if bind.ip().is_unspecified() { port.distinct.iter().find(|(b, _)| b != bind).copied() } else { port.wildcard };
        if port.distinct.len() < 2 && !port.distinct.iter().any(|(b, _)| b == bind) {
            port.distinct.push((*bind, index));
        }
        if bind.ip().is_unspecified() && port.wildcard.is_none() {
            port.wildcard = Some((*bind, index));
        }
        if let Some((x, e, y)) = shared {
            return Some((
                format!(
                    "shares listen {bind} with device {:?}, and both allow lists admit {}/{} and {}/{}: a connection could not be bound to one device",
                    earlier[e].name, x.net, x.prefix, y.net, y.prefix
                ),
                "make the allow lists of devices on one listen address disjoint, or give each its own port".into(),
            ));
        }
        wildcard.map(|(b, e)| {
            (
                format!("listen {bind} overlaps device {:?}'s listen {b}", earlier[e].name),
                "use the same listen address (with disjoint allow lists) or another port".into(),
            )
        })
    }
}

/// "1GB", "512MB", "64 KiB", "1000000" -> bytes (decimal and binary prefixes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
