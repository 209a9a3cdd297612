//! Why a source cannot read its device: the one error type at the source boundary.
//!
//! Each variant keeps its cause (`source()`), so a log line can show the whole chain and a
//! caller can tell a missing device from a gateway that lacks something
//! ([`SourceError::is_host_problem`]). Display texts are what the `disconnected` events and
//! start-up errors have always said. I/O causes are shared (`Arc`), so an error can be
//! cloned into an event and a log line.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::ble::gatt_client::GattClientError;
use super::ble::transport::{BleError, CharId, Target};

/// Errors at the source boundary.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The device entry names a protocol this build does not have.
    #[error("unknown protocol {0}")]
    UnknownProtocol(String),
    /// A runner was asked for with no decoder to feed.
    #[error("no decoder")]
    NoDecoder,
    /// The device's (or the gateway's) time zone is not in the time-zone database.
    #[error("time zone {zone}: {source}")]
    TimeZone {
        zone: String,
        #[source]
        source: jiff::Error,
    },
    /// A device handed to the network sources whose port is not a network one.
    #[error("{port} is not a network source")]
    NotNetwork { port: String },
    /// A local serial port could not be opened (absent, busy, no permission).
    #[error("cannot open {}: {source}", path.display())]
    SerialOpen {
        path: PathBuf,
        #[source]
        source: tokio_serial::Error,
    },
    /// The device server refused or did not answer the connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("cannot connect to {addr}: no answer in {secs} s")]
    ConnectTimeout { addr: String, secs: u64 },
    /// Keep-alive, user timeout or no-delay could not be set on a device socket.
    #[error("cannot configure the connection to {addr}: {source}")]
    Configure {
        addr: String,
        #[source]
        source: Arc<io::Error>,
    },
    /// The RFC 2217 device server answered COM-PORT-OPTION with DONT/WONT.
    #[error("{url}: the device server refused the RFC 2217 COM-PORT-OPTION (is it in raw TCP mode? then use tcp://)")]
    ComPortRefused { url: String },
    #[error("{url}: the device server closed the connection during RFC 2217 negotiation")]
    NegotiationClosed { url: String },
    /// Reading or writing (`during`) the socket failed while negotiating.
    #[error("{url}: {during} failed during RFC 2217 negotiation: {source}")]
    NegotiationIo {
        url: String,
        during: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("{url}: RFC 2217 negotiation failed: {stage} within {secs} s")]
    NegotiationTimeout { url: String, stage: &'static str, secs: u64 },
    /// The gateway lacks something Bluetooth needs (adapter, bluetoothd, D-Bus, permission).
    #[error("Bluetooth unavailable: {0}")]
    BleUnavailable(#[source] BleError),
    /// The Bluetooth device could not be found or connected.
    #[error("cannot connect to {target}: {source}")]
    BleConnect {
        target: Target,
        #[source]
        source: BleError,
    },
    /// The device offers nothing the configuration asks for.
    #[error("{address}: {source}")]
    BleServices {
        address: String,
        #[source]
        source: GattClientError,
    },
    #[error("cannot subscribe to {id}: {source}")]
    BleSubscribe {
        id: CharId,
        #[source]
        source: BleError,
    },
    #[error("write to {id} failed: {source}")]
    BleWrite {
        id: CharId,
        #[source]
        source: BleError,
    },
    /// The Bluetooth link failed (the device went away, a GATT operation failed).
    #[error(transparent)]
    Ble(#[from] BleError),
}

impl SourceError {
    /// Whether the gateway itself lacks something (its configuration, a permission, a socket
    /// option, Bluetooth on the host) rather than the device or its device server being away:
    /// retrying will not help until someone fixes the gateway.
    pub fn is_host_problem(&self) -> bool {
        match self {
            SourceError::UnknownProtocol(_)
            | SourceError::NoDecoder
            | SourceError::TimeZone { .. }
            | SourceError::NotNetwork { .. }
            | SourceError::Configure { .. } => true,
            SourceError::SerialOpen { source, .. } => {
                matches!(source.kind, tokio_serial::ErrorKind::Io(io::ErrorKind::PermissionDenied))
            }
            SourceError::BleUnavailable(_) => true,
            SourceError::Ble(e) | SourceError::BleSubscribe { source: e, .. } | SourceError::BleWrite { source: e, .. } => {
                e.is_host_problem()
            }
            SourceError::BleConnect { .. } | SourceError::BleServices { .. } => false,
            SourceError::Connect { .. }
            | SourceError::ConnectTimeout { .. }
            | SourceError::ComPortRefused { .. }
            | SourceError::NegotiationClosed { .. }
            | SourceError::NegotiationIo { .. }
            | SourceError::NegotiationTimeout { .. } => false,
        }
    }

    pub(crate) fn connect(addr: String, e: io::Error) -> SourceError {
        SourceError::Connect { addr, source: Arc::new(e) }
    }

    /// Connecting to a Bluetooth device failed: the host's fault, or the device's.
    pub(crate) fn ble_connect(target: &Target, e: BleError) -> SourceError {
        if e.is_host_problem() {
            SourceError::BleUnavailable(e)
        } else {
            SourceError::BleConnect { target: target.clone(), source: e }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn causes_are_kept_and_texts_unchanged() {
        let e = SourceError::connect("10.0.0.9:4001".into(), io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(e.to_string().starts_with("cannot connect to 10.0.0.9:4001: "), "{e}");
        // Shared causes come out as the `Arc` they are kept in.
        let cause = e.source().and_then(|s| s.downcast_ref::<Arc<io::Error>>()).expect("the io::Error is kept");
        assert_eq!(cause.kind(), io::ErrorKind::ConnectionRefused);
        assert!(!e.is_host_problem(), "a device server that refuses is not the gateway's fault");
        let copy = e.clone();
        assert_eq!(copy.to_string(), e.to_string());

        let zone = jiff::tz::TimeZone::get("Mars/Olympus_Mons").unwrap_err();
        let e = SourceError::TimeZone { zone: "Mars/Olympus_Mons".into(), source: zone };
        assert!(e.to_string().starts_with("time zone Mars/Olympus_Mons: "), "{e}");
        assert!(e.source().is_some() && e.is_host_problem());
    }

    #[test]
    fn host_problems_are_told_apart_from_absent_devices() {
        let open = |kind| SourceError::SerialOpen {
            path: "/dev/ttyUSB0".into(),
            source: tokio_serial::Error::new(tokio_serial::ErrorKind::Io(kind), "open"),
        };
        assert!(open(io::ErrorKind::PermissionDenied).is_host_problem());
        assert!(!open(io::ErrorKind::NotFound).is_host_problem(), "an unplugged adapter is the device side");
        assert_eq!(open(io::ErrorKind::NotFound).to_string(), "cannot open /dev/ttyUSB0: open");
        let target = Target::Address("AA:BB:CC:DD:EE:FF".into());
        let e = SourceError::ble_connect(&target, BleError::NoAdapter);
        assert!(e.is_host_problem());
        assert_eq!(e.to_string(), format!("Bluetooth unavailable: {}", BleError::NoAdapter));
        let e = SourceError::ble_connect(&target, BleError::NotFound("AA:BB:CC:DD:EE:FF".into()));
        assert!(!e.is_host_problem());
        assert!(e.to_string().starts_with("cannot connect to AA:BB:CC:DD:EE:FF: device AA:BB:CC:DD:EE:FF not found"), "{e}");
        assert_eq!(e.source().and_then(|s| s.downcast_ref::<BleError>()), Some(&BleError::NotFound("AA:BB:CC:DD:EE:FF".into())));
        let lost = SourceError::from(BleError::Disconnected("link loss".into()));
        assert_eq!(lost.to_string(), "disconnected: link loss");
    }
}
