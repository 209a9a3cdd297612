//! The checked configuration: what the rest of the gateway reads. Built only by the readers
//! in this module (or by hand for `demo`), so every value here has passed its checks.

use std::fmt;
use std::path::PathBuf;

use jiff::tz::TimeZone;
use medgw_protocols::decode::ProtocolInfo;
use medgw_protocols::observation::Patient;
use medgw_protocols::wire::gatt::GattKind;

use super::diagnostics::ConfigError;
use super::net::AllowRule;

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
pub struct Secret(pub(super) String);

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
    /// Group commit: how long the first append of a group waits for others before its fsync.
    /// 0 (the default): none — a group is committed as soon as the storage thread is free, so
    /// the wait is proportional to the fsync and groups form only under load.
    pub commit_interval_ms: u32,
    pub replay: Replay,
}

/// Serial line settings are the protocols crate's, so that a protocol's defaults and a
/// configured override are one type.
pub use medgw_protocols::serial::{Parity, SerialSettings};

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
    Ble { address: Option<String>, name: Option<String>, services: Vec<GattKind> },
}

impl SourceConfig {
    /// Where the device is attached, as shown in events, the status page and
    /// `DeviceContext.port`; also what makes two devices' sources the same (`check-config`
    /// refuses one port for two devices).
    pub fn port_name(&self) -> String {
        match self {
            SourceConfig::Serial { port, .. } => port.display().to_string(),
            SourceConfig::TcpClient { host, port } => format!("tcp://{host}:{port}"),
            SourceConfig::Rfc2217 { host, port, .. } => format!("rfc2217://{host}:{port}"),
            SourceConfig::TcpServer { bind, .. } => format!("listen://{bind}"),
            SourceConfig::Ble { address: Some(a), .. } => format!("ble://{a}"),
            SourceConfig::Ble { name, .. } => format!("ble-name://{}", name.as_deref().unwrap_or("")),
        }
    }
}

/// The Bluetooth GATT health services medgw reads, by the name used in `services`, with the
/// characteristic (and so the decoder) each stands for.
pub const BLE_SERVICES: &[(&str, GattKind)] = &[
    ("heart-rate", GattKind::HeartRate),
    ("plx-spot", GattKind::PlxSpotCheck),
    ("plx-continuous", GattKind::PlxContinuous),
    ("blood-pressure", GattKind::BloodPressure),
    ("temperature", GattKind::Temperature),
    ("weight", GattKind::Weight),
    ("glucose", GattKind::Glucose),
];

/// The configuration's name of a GATT service (`services = [...]`).
pub fn ble_service_name(kind: GattKind) -> &'static str {
    BLE_SERVICES.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n).unwrap_or(kind.protocol())
}

/// What decodes a device's input, found in the registry when the file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProtocol {
    /// A byte stream (serial port or device server) read by this protocol's decoder.
    Stream(&'static ProtocolInfo),
    /// A Bluetooth LE device: one GATT decoder per characteristic, chosen by its `services`.
    Ble,
}

impl DeviceProtocol {
    /// The name shown in the status page, metrics and the device context (`ble` for Bluetooth).
    pub fn name(&self) -> &'static str {
        match self {
            DeviceProtocol::Stream(info) => info.name,
            DeviceProtocol::Ble => "ble",
        }
    }
}

/// By name: `protocol == "nonin-df8"`.
impl PartialEq<&str> for DeviceProtocol {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl fmt::Display for DeviceProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub name: String,
    pub protocol: DeviceProtocol,
    pub source: SourceConfig,
    pub bed: String,
    pub room: Option<String>,
    pub patient: Option<Patient>,
    pub poll_period_ms: u32,
    pub listen_only: bool,
    /// Zone of the device's local clock (default: the gateway's, see [`Config::device_zone`]).
    pub timezone: Option<TimeZone>,
    /// No bytes for this long: the device is silent (event) and the port is reopened.
    pub silence_timeout_ms: u32,
    /// The rate gate's limit in frames per second for decoders that have one (`nonin-df8`);
    /// `None` is the protocol's own limit. Raised only for simulators run faster than a device.
    pub max_frame_rate: Option<u32>,
    /// IntelliVue: the waves to poll (physio ids, from `waves = ["ecg-ii", "pleth"]`); empty
    /// (the default): no wave poll.
    pub wave_poll: Vec<u16>,
    /// `waves = true|false`: publishes this device's waveforms or not, over `[waves] enabled`.
    pub waves: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub id: String,
    pub site: String,
    pub unit: String,
    /// Zone of devices that send local time (default: the system's, see [`Config::device_zone`]).
    pub timezone: Option<TimeZone>,
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

/// Waveform delivery (`[waves]`, docs/waveforms.md). Waves are not buffered durably: a
/// segment waits in a bounded in-memory queue of the sink, below observations and events, and
/// the oldest is dropped (and counted) when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavesConfig {
    /// Publish devices' waves (a device's `waves` key overrides it).
    pub enabled: bool,
    /// Segment length (issue 17: default 1 s).
    pub segment_ms: u32,
    /// MQTT QoS of wave messages, 0 or 1.
    pub qos: u8,
    /// Segments the sink holds at most in memory (non-durable: while the broker is slow or
    /// away; durable: the segments read ahead from the buffer).
    pub queue: usize,
    /// Segments go to the disk buffer and are deleted on the broker's PUBACK (forces QoS 1).
    pub durable: bool,
    /// Durable waves: bytes of the buffer the segments may use (drop-oldest within them);
    /// taken from `buffer.max_bytes`, so observations keep the rest.
    pub max_bytes: u64,
}

/// Default `[waves] max_bytes`: 64 MiB, about 5 hours of a DF2 pleth or 6 minutes of 32 beds'
/// ECG and pleth.
pub const WAVES_MAX_BYTES: u64 = 64 << 20;

impl Default for WavesConfig {
    fn default() -> Self {
        WavesConfig { enabled: false, segment_ms: 1000, qos: 0, queue: 1024, durable: false, max_bytes: WAVES_MAX_BYTES }
    }
}

/// A destination beside `[mqtt]` (`[[sink]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    Mllp(MllpSinkConfig),
}

pub use medgw_protocols::hl7::AckMode;

/// HL7 v2 to an interface engine over MLLP (`[[sink]] kind = "mllp"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MllpSinkConfig {
    /// Names the sink in logs, metrics, events and the buffer's per-sink delivery state.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsConfig>,
    /// Always HL7 v2: MLLP carries nothing else.
    pub format: PayloadFormat,
    pub ack_mode: AckMode,
    pub ack_timeout_s: u32,
    /// 1 keeps the order of messages; more only if the receiver allows it.
    pub max_in_flight: u16,
    pub retry_backoff_min_s: u32,
    pub retry_backoff_max_s: u32,
    /// Retries after an AE (or CE) before the message is dead-lettered.
    pub ae_retries: u32,
    /// What the sink delivers (`carries`): observations from the buffer, alarm events
    /// (IHE PCD-04, to an Alarm Manager), or both.
    pub carries: Carries,
}

/// What an MLLP sink delivers (`carries = ["observations", "alarms"]`); at least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carries {
    /// PCD-01 `ORU^R01` from the buffer, tracked per sink (the default).
    pub observations: bool,
    /// PCD-04 `ORU^R40` for every alarm lifecycle event, from memory (`sink/mllp/alarms.rs`).
    pub alarms: bool,
}

impl Default for Carries {
    fn default() -> Carries {
        Carries { observations: true, alarms: false }
    }
}

impl MllpSinkConfig {
    /// The delivery session's settings.
    pub fn delivery(&self) -> medgw_protocols::hl7::DeliveryConfig {
        medgw_protocols::hl7::DeliveryConfig {
            ack_mode: self.ack_mode,
            ack_timeout_ms: u64::from(self.ack_timeout_s) * 1000,
            max_in_flight: usize::from(self.max_in_flight),
            retry_backoff_min_ms: u64::from(self.retry_backoff_min_s) * 1000,
            retry_backoff_max_ms: u64::from(self.retry_backoff_max_s) * 1000,
            ae_retries: self.ae_retries,
            ..Default::default()
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
    /// Destinations beside `[mqtt]` (`[[sink]]`), each with its own sink task (`sink/mllp/`).
    pub sinks: Vec<SinkConfig>,
    /// `[waves]`: waveform segments (docs/waveforms.md).
    pub waves: WavesConfig,
    /// Problems that do not stop the gateway but that an engineer should fix (e.g. a secret
    /// file others may read, on a loopback-only gateway); `check-config` and `run` print them.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Whether `device`'s waves are published: its own `waves` key, else `[waves] enabled`.
    pub fn waves_enabled(&self, device: &DeviceConfig) -> bool {
        device.waves.unwrap_or(self.waves.enabled)
    }

    /// The zone a device's local time stamps are read in, and its clock is set to: its own
    /// `timezone`, else the gateway's, else the system's. The one place this is decided, for
    /// the normaliser and for Bluetooth Current Time alike.
    pub fn device_zone(&self, d: &DeviceConfig) -> TimeZone {
        d.timezone.clone().or_else(|| self.gateway.timezone.clone()).unwrap_or_else(TimeZone::system)
    }
}
