//! A scripted peripheral: a [`BleTransport`] without a radio, for testing the source logic.
//!
//! It replays GATT values (the public vectors, the simulators' output, malformed values) to a
//! connected session, disconnects where the script says, refuses connections as a missing
//! adapter would, and has a glucose meter behind its Record Access Control Point: a
//! [`GattSim`] that stores records and answers RACP requests as a meter does (records as
//! indications of 0x2A18, then the RACP response). Writes are logged for the tests to check.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use medgw_protocols::sim::gatt::GattSim;
use medgw_protocols::sim::DeviceSimulator;
use medgw_protocols::wire::gatt::glucose::{RacpRequest, RacpResponse, RacpResponseCode};
use medgw_protocols::wire::gatt::uuid;
use medgw_protocols::Timestamp;
use tokio::sync::Notify;

use super::gatt_client::{service, HEALTH_SERVICES};
use super::transport::{Advertisement, BleError, BleLink, BleTransport, CharId, CharacteristicInfo, GattValue, Props, Target};

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Item {
    /// The device sends this value (if the gateway subscribed to it).
    Value(GattValue),
    /// The device goes away (out of range, switched off).
    Disconnect,
}

/// The peripheral's state, shared across connections.
pub struct Device {
    pub address: String,
    pub name: Option<String>,
    pub rssi: i16,
    pub chars: Vec<CharacteristicInfo>,
    pub reads: HashMap<CharId, Vec<u8>>,
    pub script: VecDeque<Item>,
    /// A glucose meter answering the Glucose Service's RACP.
    pub meter: Option<GattSim>,
    meter_now: Timestamp,
    /// Stored PLX spot-check records, sent in answer to "report all" on the PLX RACP.
    pub plx_store: Vec<Vec<u8>>,
    /// During the next RACP transfer, disconnect after this many records (once).
    pub drop_after_records: Option<usize>,
    /// Connection attempts to refuse, with these errors, before connecting.
    pub refuse: VecDeque<BleError>,
    /// Every write, in order.
    pub writes: Vec<(CharId, Vec<u8>)>,
    pub connects: u32,
    /// The current link closed; bumps each connection.
    epoch: u64,
}

/// Properties helpers for building devices.
pub const NOTIFY: Props = Props { read: false, write: false, notify: true, indicate: false };
pub const INDICATE: Props = Props { read: false, write: false, notify: false, indicate: true };
pub const CONTROL: Props = Props { read: false, write: true, notify: false, indicate: true };
pub const READ: Props = Props { read: true, write: false, notify: false, indicate: false };
pub const READ_WRITE: Props = Props { read: true, write: true, notify: true, indicate: false };

impl Device {
    pub fn new(address: &str, name: Option<&str>) -> Device {
        Device {
            address: address.to_string(),
            name: name.map(String::from),
            rssi: -60,
            chars: Vec::new(),
            reads: HashMap::new(),
            script: VecDeque::new(),
            meter: None,
            meter_now: Timestamp(0),
            plx_store: Vec::new(),
            drop_after_records: None,
            refuse: VecDeque::new(),
            writes: Vec::new(),
            connects: 0,
            epoch: 0,
        }
    }

    pub fn characteristic(mut self, service: u16, uuid: u16, props: Props) -> Device {
        self.chars.push(CharacteristicInfo { id: CharId::new(service, uuid), props });
        self
    }

    /// A Device Information Service with these strings and System ID.
    pub fn device_information(mut self, manufacturer: &str, model: &str, serial: &str, system_id: Option<[u8; 8]>) -> Device {
        for (u, v) in [(uuid::MANUFACTURER_NAME, manufacturer), (uuid::MODEL_NUMBER, model), (uuid::SERIAL_NUMBER, serial)] {
            let id = CharId::new(service::DEVICE_INFORMATION, u);
            self.chars.push(CharacteristicInfo { id, props: READ });
            self.reads.insert(id, v.as_bytes().to_vec());
        }
        if let Some(s) = system_id {
            let id = CharId::new(service::DEVICE_INFORMATION, uuid::SYSTEM_ID);
            self.chars.push(CharacteristicInfo { id, props: READ });
            self.reads.insert(id, s.to_vec());
        }
        self
    }

    /// A glucose meter whose clock starts at `now` (wall-clock time, as the meter shows it).
    pub fn glucose_meter(mut self, sim: GattSim, now: Timestamp) -> Device {
        self.meter = Some(sim);
        self.meter_now = now;
        self.characteristic(service::GLUCOSE, uuid::GLUCOSE_MEASUREMENT, INDICATE).characteristic(
            service::GLUCOSE,
            uuid::RECORD_ACCESS_CONTROL_POINT,
            CONTROL,
        )
    }

    /// The meter takes `n` measurements, one per period, while nobody listens: they are
    /// only in its storage. Returns the sequence numbers' count stored.
    pub fn measure_offline(&mut self, n: usize) -> usize {
        let Some(m) = self.meter.as_mut() else { return 0 };
        for _ in 0..n {
            self.meter_now = m.next_tick();
            let mut out = Vec::new();
            m.tick(self.meter_now, &mut out);
        }
        m.stored_records()
    }

    fn answer_racp(&mut self, id: CharId, request: &[u8], queue: &mut VecDeque<GattValue>) -> bool {
        let mut records = Vec::new();
        let mut response = None;
        if id.service == service::GLUCOSE {
            let Some(m) = self.meter.as_mut() else { return false };
            let now = self.meter_now;
            // How many records the request matches (the meter's answer has no side effect).
            let count = match RacpRequest::parse(request) {
                Ok(RacpRequest::ReportStoredRecords(f)) => {
                    let mut q = [0u8; 20];
                    let n = RacpRequest::ReportNumberOfRecords(f).emit(&mut q).unwrap_or(0);
                    m.receive(&q[..n], now, &mut Vec::new());
                    match m.take_racp_indications().first().map(|v| RacpResponse::parse(v)) {
                        Some(Ok(RacpResponse::NumberOfRecords(n))) => n as usize,
                        _ => 0,
                    }
                }
                _ => 0,
            };
            m.receive(request, now, &mut Vec::new());
            response = m.take_racp_indications().pop();
            for _ in 0..count {
                // Stored records go out at once (the simulator's next tick is due now).
                let at = Timestamp(now.0.max(m.next_tick().0));
                let mut out = Vec::new();
                m.tick(at, &mut out);
                if !out.is_empty() {
                    records.push(out);
                }
            }
        } else if id.service == service::PULSE_OXIMETER {
            let code = match RacpRequest::parse(request) {
                Ok(RacpRequest::ReportStoredRecords(_)) if self.plx_store.is_empty() => RacpResponseCode::NoRecordsFound,
                Ok(RacpRequest::ReportStoredRecords(_)) => {
                    records = self.plx_store.clone();
                    RacpResponseCode::Success
                }
                _ => RacpResponseCode::OpCodeNotSupported,
            };
            let mut out = [0u8; 4];
            let r = RacpResponse::ResponseCode { request_op_code: request.first().copied().unwrap_or(0), code };
            let n = r.emit(&mut out).unwrap_or(0);
            response = Some(out[..n].to_vec());
        }
        let measurement = if id.service == service::GLUCOSE { uuid::GLUCOSE_MEASUREMENT } else { uuid::PLX_SPOT_CHECK_MEASUREMENT };
        let drop_after = self.drop_after_records.take();
        for (i, r) in records.into_iter().enumerate() {
            if drop_after == Some(i) {
                // The link breaks here: the meter abandons the procedure.
                if let Some(m) = self.meter.as_mut() {
                    m.receive(&[0x03, 0x00], self.meter_now, &mut Vec::new());
                    m.take_racp_indications();
                }
                return true;
            }
            queue.push_back(GattValue { id: CharId::new(id.service, measurement), value: r });
        }
        if let Some(r) = response {
            queue.push_back(GattValue { id, value: r });
        }
        false
    }
}

/// The transport: a handle on one scripted peripheral.
#[derive(Clone)]
pub struct Scripted {
    dev: Arc<Mutex<Device>>,
    notify: Arc<Notify>,
}

impl Scripted {
    pub fn new(device: Device) -> Scripted {
        Scripted { dev: Arc::new(Mutex::new(device)), notify: Arc::new(Notify::new()) }
    }

    pub fn device(&self) -> MutexGuard<'_, Device> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends to the script and wakes the connected session.
    pub fn push(&self, item: Item) {
        self.device().script.push_back(item);
        self.notify.notify_one();
    }

    /// Appends values of one characteristic.
    pub fn push_values(&self, id: CharId, values: impl IntoIterator<Item = Vec<u8>>) {
        {
            let mut d = self.device();
            for value in values {
                d.script.push_back(Item::Value(GattValue { id, value }));
            }
        }
        self.notify.notify_one();
    }
}

impl BleTransport for Scripted {
    type Link = ScriptedLink;

    async fn scan(&mut self, _duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        let d = self.device();
        if let Some(e) = d.refuse.front() {
            return Err(e.clone());
        }
        let mut services: Vec<u16> = d.chars.iter().map(|c| c.id.service).filter(|s| HEALTH_SERVICES.iter().any(|(h, _)| h == s)).collect();
        services.dedup();
        Ok(vec![Advertisement { address: d.address.clone(), name: d.name.clone(), rssi: Some(d.rssi), services }])
    }

    async fn connect(&mut self, target: &Target, _timeout: Duration) -> Result<ScriptedLink, BleError> {
        let mut d = self.device();
        if let Some(e) = d.refuse.pop_front() {
            return Err(e);
        }
        let matches = match target {
            Target::Address(a) => a.eq_ignore_ascii_case(&d.address),
            Target::Name(n) => d.name.as_deref() == Some(n.as_str()),
        };
        if !matches {
            return Err(BleError::NotFound(target.to_string()));
        }
        d.connects += 1;
        d.epoch += 1;
        Ok(ScriptedLink {
            dev: self.dev.clone(),
            notify: self.notify.clone(),
            epoch: d.epoch,
            queue: VecDeque::new(),
            subscribed: Vec::new(),
            closed: false,
        })
    }
}

/// One connection to the scripted peripheral.
pub struct ScriptedLink {
    dev: Arc<Mutex<Device>>,
    notify: Arc<Notify>,
    epoch: u64,
    /// Answers to this connection's requests (RACP records and responses).
    queue: VecDeque<GattValue>,
    subscribed: Vec<CharId>,
    closed: bool,
}

impl ScriptedLink {
    fn device(&self) -> MutexGuard<'_, Device> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<(), BleError> {
        if self.closed || self.device().epoch != self.epoch {
            return Err(BleError::Disconnected("link lost".into()));
        }
        Ok(())
    }

    /// The next value without waiting; `Err` when the link is gone.
    fn pull(&mut self) -> Result<Option<GattValue>, BleError> {
        if let Some(v) = self.queue.pop_front() {
            return Ok(Some(v));
        }
        self.check()?;
        let mut d = self.dev.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(item) = d.script.pop_front() {
            match item {
                Item::Disconnect => {
                    drop(d);
                    self.closed = true;
                    return Err(BleError::Disconnected("the device went away".into()));
                }
                Item::Value(v) if self.subscribed.contains(&v.id) => return Ok(Some(v)),
                Item::Value(_) => {}
            }
        }
        Ok(None)
    }
}

impl BleLink for ScriptedLink {
    fn address(&self) -> String {
        self.device().address.clone()
    }

    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        self.device().chars.clone()
    }

    async fn read(&mut self, id: CharId) -> Result<Vec<u8>, BleError> {
        self.check()?;
        self.device().reads.get(&id).cloned().ok_or_else(|| BleError::Gatt(format!("read of {id} not permitted")))
    }

    async fn write(&mut self, id: CharId, value: &[u8]) -> Result<(), BleError> {
        self.check()?;
        let mut queue = std::mem::take(&mut self.queue);
        let dropped = {
            let mut d = self.device();
            d.writes.push((id, value.to_vec()));
            if id.uuid == uuid::RECORD_ACCESS_CONTROL_POINT {
                d.answer_racp(id, value, &mut queue)
            } else {
                false
            }
        };
        self.queue = queue;
        if dropped {
            // The records before the break are delivered, then the link is gone.
            self.queue.push_back(GattValue { id: CharId::new(0, 0), value: Vec::new() });
        }
        self.notify.notify_one();
        Ok(())
    }

    async fn subscribe(&mut self, id: CharId) -> Result<(), BleError> {
        self.check()?;
        let ok = self.device().chars.iter().any(|c| c.id == id && (c.props.notify || c.props.indicate));
        if !ok {
            return Err(BleError::Gatt(format!("{id} cannot be subscribed")));
        }
        self.subscribed.push(id);
        Ok(())
    }

    async fn next_value(&mut self) -> Result<GattValue, BleError> {
        let notify = self.notify.clone();
        loop {
            let notified = notify.notified();
            match self.pull()? {
                // The marker of a scripted break in a transfer.
                Some(v) if v.id == CharId::new(0, 0) => {
                    self.closed = true;
                    return Err(BleError::Disconnected("link lost during a record transfer".into()));
                }
                Some(v) => return Ok(v),
                None => notified.await,
            }
        }
    }

    fn try_next_value(&mut self) -> Option<GattValue> {
        match self.queue.front() {
            Some(v) if v.id == CharId::new(0, 0) => None,
            _ => self.pull().ok().flatten(),
        }
    }

    async fn disconnect(self) {}
}
