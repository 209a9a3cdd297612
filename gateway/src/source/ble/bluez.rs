//! The BlueZ transport (cargo feature `ble`): btleplug, which talks to bluetoothd over the
//! D-Bus system bus. The only part of the Bluetooth source that needs a radio.
//!
//! Nothing is opened until it is needed, and everything is opened again after a failure, so a
//! gateway started before bluetoothd (or before the USB dongle was plugged in) connects once
//! they are there. Failures are classified into what an installer can fix: no system bus,
//! bluetoothd not running, access refused, no adapter ([`BleError`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use btleplug::api::{Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter, ValueNotification, WriteType};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use futures::{FutureExt, Stream, StreamExt};
use uuid::Uuid;

use super::transport::{Advertisement, BleError, BleLink, BleTransport, CharId, CharacteristicInfo, GattValue, Props, Target};

/// The Bluetooth Base UUID's fixed part (Core v5.x Vol 3 Part B §2.5.1): 16-bit UUIDs are
/// `0000xxxx-0000-1000-8000-00805F9B34FB`.
const BASE_TAIL: [u8; 12] = [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0x80, 0x5F, 0x9B, 0x34, 0xFB];

/// The 16-bit SIG UUID inside a 128-bit one, if it is one.
pub fn short_uuid(u: &Uuid) -> Option<u16> {
    let b = u.as_bytes();
    (b[0] == 0 && b[1] == 0 && b[4..] == BASE_TAIL).then(|| u16::from_be_bytes([b[2], b[3]]))
}

pub fn long_uuid(short: u16) -> Uuid {
    btleplug::api::bleuuid::uuid_from_u16(short)
}

/// Maps btleplug's errors (and the D-Bus errors inside them) to what is missing.
pub fn classify(e: &btleplug::Error) -> BleError {
    let text = format!("{e} {e:?}");
    if text.contains("ServiceUnknown") || text.contains("org.bluez was not provided") || text.contains("NameHasNoOwner") {
        BleError::NoBluetoothd
    } else if text.contains("AccessDenied") || matches!(e, btleplug::Error::PermissionDenied) {
        BleError::PermissionDenied(e.to_string())
    } else if text.contains("NoServer")
        || text.contains("FileNotFound")
        || text.contains("system_bus_socket")
        || text.contains("Failed to connect to socket")
        || text.contains("Address does not contain a colon")
    {
        BleError::NoSystemBus(e.to_string())
    } else if matches!(e, btleplug::Error::NoAdapterAvailable) || text.contains("No Bluetooth adapters") {
        BleError::NoAdapter
    } else if matches!(e, btleplug::Error::NotConnected | btleplug::Error::DeviceNotFound) {
        BleError::Disconnected(e.to_string())
    } else {
        BleError::Gatt(e.to_string())
    }
}

/// BlueZ through btleplug.
#[derive(Default)]
pub struct Bluez {
    adapter: Option<Adapter>,
}

impl Bluez {
    /// The first adapter, opening the D-Bus session on first use (or after a failure).
    async fn adapter(&mut self) -> Result<Adapter, BleError> {
        if let Some(a) = &self.adapter {
            return Ok(a.clone());
        }
        let manager = Manager::new().await.map_err(|e| classify(&e))?;
        let adapter = manager.adapters().await.map_err(|e| classify(&e))?.into_iter().next().ok_or(BleError::NoAdapter)?;
        self.adapter = Some(adapter.clone());
        Ok(adapter)
    }

    async fn advertisement(p: &Peripheral) -> Option<Advertisement> {
        let props = p.properties().await.ok()??;
        Some(Advertisement {
            address: props.address.to_string(),
            name: props.local_name.or(props.advertisement_name),
            rssi: props.rssi,
            services: props.services.iter().filter_map(short_uuid).collect(),
        })
    }

    async fn find(&mut self, adapter: &Adapter, target: &Target, timeout: Duration) -> Result<Peripheral, BleError> {
        // Bonded and recently seen devices are known to BlueZ without scanning.
        if let Some(p) = Self::matching(adapter, target).await? {
            return Ok(p);
        }
        adapter.start_scan(ScanFilter::default()).await.map_err(|e| classify(&e))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let found = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(p) = Self::matching(adapter, target).await? {
                break Ok(p);
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(BleError::NotFound(target.to_string()));
            }
        };
        if let Err(e) = adapter.stop_scan().await {
            tracing::debug!(error = %e, "stopping the Bluetooth scan failed");
        }
        found
    }

    async fn matching(adapter: &Adapter, target: &Target) -> Result<Option<Peripheral>, BleError> {
        for p in adapter.peripherals().await.map_err(|e| classify(&e))? {
            let hit = match target {
                Target::Address(a) => p.address().to_string().eq_ignore_ascii_case(a),
                Target::Name(n) => Self::advertisement(&p).await.and_then(|a| a.name).as_deref() == Some(n.as_str()),
            };
            if hit {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

impl BleTransport for Bluez {
    type Link = BluezLink;

    async fn scan(&mut self, duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        let adapter = self.adapter().await?;
        adapter.start_scan(ScanFilter::default()).await.map_err(|e| classify(&e))?;
        tokio::time::sleep(duration).await;
        if let Err(e) = adapter.stop_scan().await {
            tracing::debug!(error = %e, "stopping the Bluetooth scan failed");
        }
        let mut out = Vec::new();
        for p in adapter.peripherals().await.map_err(|e| classify(&e))? {
            if let Some(a) = Self::advertisement(&p).await {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn connect(&mut self, target: &Target, timeout: Duration) -> Result<BluezLink, BleError> {
        let result: Result<BluezLink, BleError> = async {
            let adapter = self.adapter().await?;
            let p = self.find(&adapter, target, timeout).await?;
            let events = adapter.events().await.map_err(|e| classify(&e))?;
            if !p.is_connected().await.unwrap_or(false) {
                tokio::time::timeout(timeout, p.connect())
                    .await
                    .map_err(|_| BleError::NotFound(format!("{target}: connection timed out")))?
                    .map_err(|e| classify(&e))?;
            }
            p.discover_services().await.map_err(|e| classify(&e))?;
            // Before subscribing, so that no value is missed.
            let values = p.notifications().await.map_err(|e| classify(&e))?;
            let mut chars = HashMap::new();
            for c in p.characteristics() {
                if let (Some(service), Some(u)) = (short_uuid(&c.service_uuid), short_uuid(&c.uuid)) {
                    chars.insert(CharId::new(service, u), c);
                }
            }
            Ok(BluezLink { id: p.id(), address: p.address().to_string(), peripheral: p, chars, values, events, gone: false })
        }
        .await;
        if matches!(result, Err(ref e) if e.is_host_problem()) {
            // Open everything again next time (bluetoothd restarted, adapter replugged).
            self.adapter = None;
        }
        result
    }
}

type ValueStream = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

/// A connection through BlueZ.
pub struct BluezLink {
    id: PeripheralId,
    address: String,
    peripheral: Peripheral,
    chars: HashMap<CharId, Characteristic>,
    values: ValueStream,
    events: EventStream,
    /// The device disconnected; values still queued are delivered first.
    gone: bool,
}

impl BluezLink {
    fn characteristic(&self, id: CharId) -> Result<&Characteristic, BleError> {
        self.chars.get(&id).ok_or_else(|| BleError::Gatt(format!("no characteristic {id}")))
    }

    fn value(&self, n: ValueNotification) -> Option<GattValue> {
        Some(GattValue { id: CharId::new(short_uuid(&n.service_uuid)?, short_uuid(&n.uuid)?), value: n.value })
    }
}

impl BleLink for BluezLink {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        let mut out: Vec<CharacteristicInfo> = self
            .chars
            .iter()
            .map(|(id, c)| {
                use btleplug::api::CharPropFlags as F;
                let p = c.properties;
                CharacteristicInfo {
                    id: *id,
                    props: Props {
                        read: p.contains(F::READ),
                        write: p.contains(F::WRITE),
                        notify: p.contains(F::NOTIFY),
                        indicate: p.contains(F::INDICATE),
                    },
                }
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    async fn read(&mut self, id: CharId) -> Result<Vec<u8>, BleError> {
        let c = self.characteristic(id)?.clone();
        self.peripheral.read(&c).await.map_err(|e| classify(&e))
    }

    async fn write(&mut self, id: CharId, value: &[u8]) -> Result<(), BleError> {
        let c = self.characteristic(id)?.clone();
        self.peripheral.write(&c, value, WriteType::WithResponse).await.map_err(|e| classify(&e))
    }

    async fn subscribe(&mut self, id: CharId) -> Result<(), BleError> {
        let c = self.characteristic(id)?.clone();
        self.peripheral.subscribe(&c).await.map_err(|e| classify(&e))
    }

    async fn next_value(&mut self) -> Result<GattValue, BleError> {
        loop {
            while self.gone {
                match self.values.next().now_or_never() {
                    Some(Some(n)) => {
                        if let Some(v) = self.value(n) {
                            return Ok(v);
                        }
                    }
                    _ => return Err(BleError::Disconnected("the device disconnected".into())),
                }
            }
            tokio::select! {
                n = self.values.next() => match n {
                    Some(n) => if let Some(v) = self.value(n) { return Ok(v) },
                    None => return Err(BleError::Disconnected("BlueZ ended the notification stream".into())),
                },
                e = self.events.next() => match e {
                    Some(CentralEvent::DeviceDisconnected(id)) if id == self.id => {
                        // Values that arrived before the disconnection still count.
                        self.gone = true;
                    }
                    Some(_) => {}
                    None => return Err(BleError::Disconnected("BlueZ event stream ended (bluetoothd stopped?)".into())),
                },
            }
        }
    }

    fn try_next_value(&mut self) -> Option<GattValue> {
        match self.values.next().now_or_never() {
            Some(Some(n)) => self.value(n),
            _ => None,
        }
    }

    async fn disconnect(self) {
        if let Err(e) = self.peripheral.disconnect().await {
            tracing::debug!(error = %e, "Bluetooth disconnect failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_uuids_round_trip_and_vendor_uuids_are_not_short() {
        assert_eq!(long_uuid(0x2A37).to_string(), "00002a37-0000-1000-8000-00805f9b34fb");
        assert_eq!(short_uuid(&long_uuid(0x2A37)), Some(0x2A37));
        let vendor: Uuid = "6e400001-b5a3-f393-e0a9-e50e24dcca9e".parse().unwrap();
        assert_eq!(short_uuid(&vendor), None);
    }
}
