//! The boundary between the Bluetooth source's logic and the radio.
//!
//! Everything above this trait (discovery → subscribe → decode → observations, reconnects,
//! Record Access Control Point transfers) is tested without a radio against the scripted
//! peripheral (`scripted.rs`, built for tests only); only [`super::bluez`] (BlueZ over D-Bus)
//! needs hardware.
//!
//! Characteristics are named by their 16-bit Bluetooth SIG UUIDs together with the service
//! they belong to ([`CharId`]): the Record Access Control Point (0x2A52) has the same UUID in
//! the Glucose and the Pulse Oximeter services, and the two are different control points.

use std::future::Future;
use std::time::Duration;

/// A characteristic: its service's and its own 16-bit SIG UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CharId {
    pub service: u16,
    pub uuid: u16,
}

impl CharId {
    pub const fn new(service: u16, uuid: u16) -> CharId {
        CharId { service, uuid }
    }
}

impl std::fmt::Display for CharId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}/{:04X}", self.service, self.uuid)
    }
}

/// What a characteristic allows (the GATT characteristic properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Props {
    pub read: bool,
    pub write: bool,
    pub notify: bool,
    pub indicate: bool,
}

/// A characteristic found by service discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharacteristicInfo {
    pub id: CharId,
    pub props: Props,
}

/// One notification or indication: one whole characteristic value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GattValue {
    pub id: CharId,
    pub value: Vec<u8>,
}

/// A device seen advertising.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// `AA:BB:CC:DD:EE:FF`.
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
    /// The 16-bit SIG service UUIDs advertised (128-bit vendor services are left out).
    pub services: Vec<u16>,
}

/// Which device a configured BLE entry means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `AA:BB:CC:DD:EE:FF` (upper case).
    Address(String),
    /// The first device advertising exactly this local name.
    Name(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Address(a) => f.write_str(a),
            Target::Name(n) => write!(f, "named {n:?}"),
        }
    }
}

/// Why a Bluetooth operation failed. The host-side variants name what is missing on the
/// gateway, so the engineer who installs it reads what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BleError {
    #[error("this medgw was built without Bluetooth support (cargo feature `ble`)")]
    NotBuilt,
    #[error("no D-Bus system bus ({0}): BlueZ is reached over D-Bus; start dbus (systemctl start dbus)")]
    NoSystemBus(String),
    #[error(
        "bluetoothd is not running (org.bluez is not on the D-Bus system bus): install bluez and run `systemctl enable --now bluetooth`"
    )]
    NoBluetoothd,
    #[error("D-Bus refused access to BlueZ ({0}): add the medgw user to the `bluetooth` group (README, \"Bluetooth devices\")")]
    PermissionDenied(String),
    #[error("no Bluetooth adapter: bluetoothd runs but has no controller (check `bluetoothctl list`, rfkill, the USB dongle)")]
    NoAdapter,
    #[error("device {0} not found: not advertising, out of range, or connected to another host")]
    NotFound(String),
    #[error("disconnected: {0}")]
    Disconnected(String),
    #[error("GATT {0}")]
    Gatt(String),
}

impl BleError {
    /// Whether the gateway itself lacks something (bus, daemon, adapter, permission): the
    /// device is not at fault and retries wait longer.
    pub fn is_host_problem(&self) -> bool {
        matches!(
            self,
            BleError::NotBuilt | BleError::NoSystemBus(_) | BleError::NoBluetoothd | BleError::PermissionDenied(_) | BleError::NoAdapter
        )
    }
}

/// The radio: finding and connecting devices.
pub trait BleTransport: Send + 'static {
    type Link: BleLink;

    /// Devices advertising during `duration`.
    fn scan(&mut self, duration: Duration) -> impl Future<Output = Result<Vec<Advertisement>, BleError>> + Send;

    /// Finds `target` (scanning for at most `timeout`), connects and discovers its services.
    fn connect(&mut self, target: &Target, timeout: Duration) -> impl Future<Output = Result<Self::Link, BleError>> + Send;
}

/// A connection to one device. Values arrive whole, one per [`BleLink::next_value`].
pub trait BleLink: Send {
    /// The device's address, `AA:BB:CC:DD:EE:FF`.
    fn address(&self) -> String;

    /// The characteristics service discovery found (16-bit SIG UUIDs only).
    fn characteristics(&self) -> Vec<CharacteristicInfo>;

    fn read(&mut self, id: CharId) -> impl Future<Output = Result<Vec<u8>, BleError>> + Send;

    /// A write with response (control points and Current Time require it).
    fn write(&mut self, id: CharId, value: &[u8]) -> impl Future<Output = Result<(), BleError>> + Send;

    /// Enables notifications or indications, whichever the characteristic offers.
    fn subscribe(&mut self, id: CharId) -> impl Future<Output = Result<(), BleError>> + Send;

    /// The next notification or indication; an error when the link is gone. Cancel-safe: a
    /// value is never lost when the future is dropped before it completes.
    fn next_value(&mut self) -> impl Future<Output = Result<GattValue, BleError>> + Send;

    /// A value already received, without waiting (to commit several as one batch).
    fn try_next_value(&mut self) -> Option<GattValue>;

    fn disconnect(self) -> impl Future<Output = ()> + Send;
}

/// A transport for builds without Bluetooth: every operation says so.
#[derive(Debug, Default)]
pub struct Unavailable;

/// The link of [`Unavailable`] (never made).
#[derive(Debug)]
pub enum NoLink {}

impl BleTransport for Unavailable {
    type Link = NoLink;

    async fn scan(&mut self, _duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        Err(BleError::NotBuilt)
    }

    async fn connect(&mut self, _target: &Target, _timeout: Duration) -> Result<NoLink, BleError> {
        Err(BleError::NotBuilt)
    }
}

impl BleLink for NoLink {
    fn address(&self) -> String {
        match *self {}
    }
    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        match *self {}
    }
    async fn read(&mut self, _id: CharId) -> Result<Vec<u8>, BleError> {
        match *self {}
    }
    async fn write(&mut self, _id: CharId, _value: &[u8]) -> Result<(), BleError> {
        match *self {}
    }
    async fn subscribe(&mut self, _id: CharId) -> Result<(), BleError> {
        match *self {}
    }
    async fn next_value(&mut self) -> Result<GattValue, BleError> {
        match *self {}
    }
    fn try_next_value(&mut self) -> Option<GattValue> {
        match *self {}
    }
    async fn disconnect(self) {
        match self {}
    }
}
