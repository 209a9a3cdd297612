//! The GATT client without I/O: which characteristics to use, in which order, and the
//! Record Access Control Point (RACP) transfers that fetch what a device stored while it was not
//! connected. The source task ([`super::run`]) does the I/O and feeds the results back; time is
//! passed in.
//!
//! On every connection, in this order:
//! 1. read the Device Information strings and System ID (the device's identity);
//! 2. write Current Time (0x2A2B) when the device lets it be written, so that the time stamps
//!    of later measurements are right;
//! 3. subscribe to the measurement characteristics (notifications for Heart Rate and PLX
//!    Continuous, indications for the others) and to the RACPs;
//! 4. ask each RACP for the stored records not yet taken — Glucose: "report stored records
//!    with sequence number ≥ last taken + 1"; PLX spot-check: "all" (the Pulse Oximeter
//!    Service filters by nothing else), skipping what was taken before (see [`Cursor`]).
//!
//! # The cursor: what was taken, kept across restarts
//! [`Cursor`] holds the last glucose sequence number and a fingerprint of the last PLX
//! spot-check record taken. It advances only after the records are *committed* to the buffer
//! (the runner returned from their batch), and is persisted by the task in the buffer's
//! directory at the end of each transfer, every [`PERSIST_EVERY`] records and at disconnect.
//! A crash between a commit and the next persist makes the next transfer fetch up to that many
//! records again: they have the same observation ids (duplicates a receiver removes, as with
//! any QoS 1 redelivery), and nothing is missed. A cursor that ran ahead of the buffer could
//! lose records, so it never does.
//!
//! The cursor is bound to the device's identity (System ID, else serial number, else
//! address): a different meter behind the same configuration starts from the beginning. A
//! meter whose numbering restarted (reset, new firmware) answers "no records found" for
//! sequence numbers beyond the cursor; the client then asks for the *last* record, and if its
//! number is below the cursor, fetches all records again.
//!
//! A disconnection in the middle of a transfer loses nothing: the cursor stays at the last
//! committed record and the next connection asks for the rest.

use std::collections::VecDeque;

use medgw_protocols::observation::{DeviceIdentity, Flags};
use medgw_protocols::wire::gatt::current_time::{CurrentTime, ADJUST_EXTERNAL_REFERENCE};
use medgw_protocols::wire::gatt::device_info;
use medgw_protocols::wire::gatt::glucose::{Bound, Glucose, RacpRequest, RacpResponse, RacpResponseCode, RecordFilter};
use medgw_protocols::wire::gatt::{uuid, GattKind};
use medgw_protocols::Timestamp;
use serde::{Deserialize, Serialize};

use super::transport::{CharId, CharacteristicInfo};

/// 16-bit UUIDs of the services used (Bluetooth Assigned Numbers).
pub mod service {
    pub const CURRENT_TIME: u16 = 0x1805;
    pub const GLUCOSE: u16 = 0x1808;
    pub const HEALTH_THERMOMETER: u16 = 0x1809;
    pub const DEVICE_INFORMATION: u16 = 0x180A;
    pub const HEART_RATE: u16 = 0x180D;
    pub const BLOOD_PRESSURE: u16 = 0x1810;
    pub const WEIGHT_SCALE: u16 = 0x181D;
    pub const PULSE_OXIMETER: u16 = 0x1822;
}

/// The health services `medgw ble scan` reports, with the name an installer reads.
pub const HEALTH_SERVICES: &[(u16, &str)] = &[
    (service::HEART_RATE, "heart-rate"),
    (service::PULSE_OXIMETER, "pulse-oximeter"),
    (service::BLOOD_PRESSURE, "blood-pressure"),
    (service::HEALTH_THERMOMETER, "thermometer"),
    (service::WEIGHT_SCALE, "weight-scale"),
    (service::GLUCOSE, "glucose"),
];

/// Records taken between two writes of the cursor (see the module doc).
pub const PERSIST_EVERY: u32 = 32;

/// No RACP response or record for this long ends a transfer (the next connection retries).
pub const RACP_TIMEOUT_MS: i64 = 30_000;

/// Spot-check records held while looking for the last one taken before (bounded: past this,
/// records are passed on and may repeat).
const MAX_HELD: usize = 1000;

/// The service a measurement characteristic belongs to.
pub fn service_of(kind: GattKind) -> u16 {
    match kind {
        GattKind::HeartRate => service::HEART_RATE,
        GattKind::PlxSpotCheck | GattKind::PlxContinuous => service::PULSE_OXIMETER,
        GattKind::BloodPressure => service::BLOOD_PRESSURE,
        GattKind::Temperature => service::HEALTH_THERMOMETER,
        GattKind::Weight => service::WEIGHT_SCALE,
        GattKind::Glucose => service::GLUCOSE,
    }
}

/// The configuration's service name (`services = [...]`, `config::BLE_SERVICES`) of a kind.
pub fn config_name(kind: GattKind) -> &'static str {
    crate::config::ble_service_name(kind)
}

/// The kinds a configuration names, in [`GattKind::ALL`] order (all of them for an empty list).
pub fn kinds_for(services: &[GattKind]) -> Vec<GattKind> {
    if services.is_empty() {
        return GattKind::ALL.to_vec();
    }
    GattKind::ALL.into_iter().filter(|k| services.contains(k)).collect()
}

/// What has been taken from a device's storage (see the module doc), persisted per device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The identity the cursor belongs to (`eui64:...`, `sn:...` or `addr:...`).
    pub device: Option<String>,
    /// The last glucose sequence number committed.
    pub glucose_seq: Option<u16>,
    /// FNV-1a fingerprint of the last PLX spot-check record committed from storage.
    pub plx_last: Option<u64>,
}

/// What the task must do after a connection is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The measurement characteristics used, by kind.
    pub used: Vec<(GattKind, CharId)>,
    /// Configured kinds the device does not offer.
    pub missing: Vec<GattKind>,
    /// Device Information characteristics to read.
    pub reads: Vec<CharId>,
    /// Current Time, when it can be written.
    pub current_time: Option<CharId>,
    /// Measurement characteristics and RACPs, in this order.
    pub subscribe: Vec<CharId>,
}

/// Why a connection cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GattClientError {
    #[error("the device offers none of the configured services ({wanted}); it offers: {offered}")]
    NoWantedService { wanted: String, offered: String },
}

/// What became of a value, so the cursor can advance once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Nothing,
    GlucoseRecord(u16),
    PlxRecord(u64),
}

/// What the task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Feed `value` to the decoder of `kind`, adding `flags` to what it decodes.
    Decode { kind: GattKind, value: Vec<u8>, flags: Flags, taken: Taken },
    /// Write with response.
    Write { id: CharId, value: Vec<u8> },
    /// A `session` event for the device.
    Event(String),
    /// Persist the cursor now.
    Persist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Glucose,
    Plx,
}

/// An RACP procedure in progress.
#[derive(Debug)]
struct Transfer {
    which: Which,
    control: CharId,
    request: RacpRequest,
    /// Glucose: asking for the last record to see whether the numbering restarted.
    checking_last: bool,
    last_seen: Option<u16>,
    records: u32,
    deadline: Timestamp,
    /// PLX: records before the one taken last time are held until it is seen.
    skipping: bool,
    held: Vec<Vec<u8>>,
}

/// The per-device GATT client (lives across reconnects; the cursor across restarts). Not a
/// "session": in medgw that word means a protocol's session with its peer (an IntelliVue
/// association, an MQTT session), which a Bluetooth health device does not have.
#[derive(Debug)]
pub struct GattClient {
    wanted: Vec<GattKind>,
    cursor: Cursor,
    used: Vec<(GattKind, CharId)>,
    glucose_racp: Option<CharId>,
    plx_racp: Option<CharId>,
    identity: DeviceIdentity,
    transfer: Option<Transfer>,
    queue: VecDeque<Which>,
    since_persist: u32,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// `a` comes after `b` in u16 serial-number arithmetic (RFC 1982 style).
fn seq_after(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

fn encode(request: RacpRequest) -> Vec<u8> {
    let mut out = [0u8; 20];
    let n = request.emit(&mut out).unwrap_or(0);
    out[..n].to_vec()
}

const DIS: [u16; 5] = [uuid::MANUFACTURER_NAME, uuid::MODEL_NUMBER, uuid::SERIAL_NUMBER, uuid::FIRMWARE_REVISION, uuid::SYSTEM_ID];

impl GattClient {
    /// `services`: the configured services (empty: every supported one the device has).
    pub fn new(services: &[GattKind], cursor: Cursor) -> GattClient {
        GattClient {
            wanted: kinds_for(services),
            cursor,
            used: Vec::new(),
            glucose_racp: None,
            plx_racp: None,
            identity: DeviceIdentity::default(),
            transfer: None,
            queue: VecDeque::new(),
            since_persist: 0,
        }
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// The kinds in use on this connection.
    pub fn used(&self) -> &[(GattKind, CharId)] {
        &self.used
    }

    /// Decides what to use on a fresh connection from the discovered characteristics.
    pub fn plan(&mut self, chars: &[CharacteristicInfo]) -> Result<Plan, GattClientError> {
        self.transfer = None;
        self.queue.clear();
        self.identity = DeviceIdentity::default();
        let find = |service: u16, u: u16| chars.iter().find(|c| c.id == CharId::new(service, u));
        let mut used = Vec::new();
        let mut missing = Vec::new();
        for kind in &self.wanted {
            match find(service_of(*kind), kind.uuid()) {
                Some(c) if c.props.notify || c.props.indicate => used.push((*kind, c.id)),
                _ => missing.push(*kind),
            }
        }
        if used.is_empty() {
            let offered: Vec<String> = {
                let mut s: Vec<u16> = chars.iter().map(|c| c.id.service).collect();
                s.dedup();
                s.iter().map(|s| format!("0x{s:04X}")).collect()
            };
            return Err(GattClientError::NoWantedService {
                wanted: self.wanted.iter().map(|k| config_name(*k)).collect::<Vec<_>>().join(", "),
                offered: if offered.is_empty() { "nothing".into() } else { offered.join(", ") },
            });
        }
        // With no configured list, only what the device offers is expected.
        let configured_all = self.wanted.len() == GattKind::ALL.len();
        if configured_all {
            missing.clear();
        }
        let racp =
            |service: u16| find(service, uuid::RECORD_ACCESS_CONTROL_POINT).filter(|c| c.props.write && c.props.indicate).map(|c| c.id);
        let has = |k: GattKind| used.iter().any(|(u, _)| *u == k);
        self.glucose_racp = if has(GattKind::Glucose) { racp(service::GLUCOSE) } else { None };
        self.plx_racp = if has(GattKind::PlxSpotCheck) { racp(service::PULSE_OXIMETER) } else { None };
        let reads = DIS.iter().filter_map(|u| find(service::DEVICE_INFORMATION, *u)).filter(|c| c.props.read).map(|c| c.id).collect();
        let current_time = find(service::CURRENT_TIME, uuid::CURRENT_TIME).filter(|c| c.props.write).map(|c| c.id);
        let mut subscribe: Vec<CharId> = used.iter().map(|(_, c)| *c).collect();
        subscribe.extend(self.glucose_racp);
        subscribe.extend(self.plx_racp);
        self.used = used.clone();
        Ok(Plan { used, missing, reads, current_time, subscribe })
    }

    /// A Device Information value read; malformed ones are ignored (an error to log).
    pub fn device_information(&mut self, id: CharId, value: &[u8]) -> Result<(), medgw_protocols::Error> {
        let part = device_info::identity(id.uuid, value)?;
        self.identity.merge(&part);
        Ok(())
    }

    /// The identity read on this connection, if the device said anything.
    pub fn identity(&self) -> Option<&DeviceIdentity> {
        (self.identity != DeviceIdentity::default()).then_some(&self.identity)
    }

    /// Binds the cursor to the connected device: a different device (by System ID, serial
    /// number, else address) starts from the beginning.
    pub fn bind_device(&mut self, address: &str) -> Vec<Step> {
        let key = if let Some(eui) = self.identity.eui64 {
            format!("eui64:{eui}")
        } else if let Some(sn) = &self.identity.serial {
            format!("sn:{}:{}:{sn}", self.identity.manufacturer.as_deref().unwrap_or(""), self.identity.model.as_deref().unwrap_or(""))
        } else {
            format!("addr:{address}")
        };
        match &self.cursor.device {
            Some(k) if *k == key => Vec::new(),
            None => {
                self.cursor.device = Some(key);
                vec![Step::Persist]
            }
            Some(old) => {
                let had = self.cursor.glucose_seq.is_some() || self.cursor.plx_last.is_some();
                let detail = format!("a different device ({key}, was {old}): stored records are fetched from the beginning");
                self.cursor = Cursor { device: Some(key), ..Cursor::default() };
                let mut steps = vec![Step::Persist];
                if had {
                    steps.insert(0, Step::Event(detail));
                }
                steps
            }
        }
    }

    /// The Current Time value for the device's wall-clock time `local`.
    pub fn current_time(local: Timestamp) -> Vec<u8> {
        let mut out = [0u8; CurrentTime::LEN];
        let n = CurrentTime::from_local(local, ADJUST_EXTERNAL_REFERENCE).emit(&mut out).unwrap_or(0);
        out[..n].to_vec()
    }

    /// After subscribing: the first RACP request, if the device stores records.
    pub fn start_transfers(&mut self, now: Timestamp) -> Vec<Step> {
        self.queue.clear();
        if self.glucose_racp.is_some() {
            self.queue.push_back(Which::Glucose);
        }
        if self.plx_racp.is_some() {
            self.queue.push_back(Which::Plx);
        }
        self.next_transfer(now)
    }

    fn next_transfer(&mut self, now: Timestamp) -> Vec<Step> {
        self.transfer = None;
        let Some(which) = self.queue.pop_front() else { return Vec::new() };
        let (control, request) = match which {
            Which::Glucose => {
                let filter = match self.cursor.glucose_seq {
                    // 0xFFFF + 1 wraps to 0: "≥ 0" is every record (some may repeat).
                    Some(s) => RecordFilter::AtLeast(Bound::Sequence(s.wrapping_add(1))),
                    None => RecordFilter::All,
                };
                (self.glucose_racp, RacpRequest::ReportStoredRecords(filter))
            }
            Which::Plx => (self.plx_racp, RacpRequest::ReportStoredRecords(RecordFilter::All)),
        };
        let Some(control) = control else { return self.next_transfer(now) };
        self.begin(which, control, request, now)
    }

    fn begin(&mut self, which: Which, control: CharId, request: RacpRequest, now: Timestamp) -> Vec<Step> {
        let skipping = which == Which::Plx && self.cursor.plx_last.is_some();
        self.transfer = Some(Transfer {
            which,
            control,
            request,
            checking_last: request == RacpRequest::ReportStoredRecords(RecordFilter::Last),
            last_seen: None,
            records: 0,
            deadline: Timestamp(now.0 + RACP_TIMEOUT_MS),
            skipping,
            held: Vec::new(),
        });
        vec![Step::Write { id: control, value: encode(request) }]
    }

    /// When [`GattClient::poll`] is due (an RACP transfer's time-out).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.transfer.as_ref().map(|t| t.deadline)
    }

    pub fn poll(&mut self, now: Timestamp) -> Vec<Step> {
        match &self.transfer {
            Some(t) if now >= t.deadline => {
                let what = if t.which == Which::Glucose { "glucose" } else { "spot-check" };
                let mut steps = vec![Step::Event(format!(
                    "{what} record transfer: no answer for {} s; retried on the next connection",
                    RACP_TIMEOUT_MS / 1000
                ))];
                steps.extend(self.next_transfer(now));
                steps
            }
            _ => Vec::new(),
        }
    }

    /// A notification or indication arrived.
    pub fn on_value(&mut self, id: CharId, value: &[u8], now: Timestamp) -> Vec<Step> {
        if Some(id) == self.glucose_racp || Some(id) == self.plx_racp {
            return self.on_racp(id, value, now);
        }
        let Some(kind) = self.used.iter().find(|(_, c)| *c == id).map(|(k, _)| *k) else {
            return Vec::new();
        };
        let transfer = self.transfer.as_mut();
        match (kind, transfer) {
            (GattKind::Glucose, t) => {
                let seq = Glucose::parse(value).ok().map(|g| g.sequence);
                let mut flags = Flags::NONE;
                if let Some(t) = t.filter(|t| t.which == Which::Glucose) {
                    // Records sent in answer to the RACP come from the meter's storage: their
                    // times are when they were measured, not a reading of the meter's clock.
                    flags = Flags::FROM_STORAGE;
                    t.records += 1;
                    t.deadline = Timestamp(now.0 + RACP_TIMEOUT_MS);
                    if t.checking_last {
                        t.last_seen = seq.or(t.last_seen);
                    }
                }
                let taken = seq.map_or(Taken::Nothing, Taken::GlucoseRecord);
                vec![Step::Decode { kind, value: value.to_vec(), flags, taken }]
            }
            (GattKind::PlxSpotCheck, Some(t)) if t.which == Which::Plx => {
                t.deadline = Timestamp(now.0 + RACP_TIMEOUT_MS);
                let hash = fnv1a(value);
                if t.skipping {
                    if Some(hash) == self.cursor.plx_last {
                        // Everything up to here was taken before.
                        t.skipping = false;
                        t.held.clear();
                    } else if t.held.len() < MAX_HELD {
                        t.held.push(value.to_vec());
                    } else {
                        t.skipping = false;
                        let mut steps: Vec<Step> = std::mem::take(&mut t.held)
                            .into_iter()
                            .map(|v| {
                                let h = fnv1a(&v);
                                Step::Decode { kind, value: v, flags: Flags::FROM_STORAGE, taken: Taken::PlxRecord(h) }
                            })
                            .collect();
                        t.records += steps.len() as u32 + 1;
                        steps.push(Step::Decode { kind, value: value.to_vec(), flags: Flags::FROM_STORAGE, taken: Taken::PlxRecord(hash) });
                        return steps;
                    }
                    return Vec::new();
                }
                t.records += 1;
                vec![Step::Decode { kind, value: value.to_vec(), flags: Flags::FROM_STORAGE, taken: Taken::PlxRecord(hash) }]
            }
            _ => vec![Step::Decode { kind, value: value.to_vec(), flags: Flags::NONE, taken: Taken::Nothing }],
        }
    }

    fn on_racp(&mut self, id: CharId, value: &[u8], now: Timestamp) -> Vec<Step> {
        let response = match RacpResponse::parse(value) {
            Ok(r) => r,
            Err(e) => return vec![Step::Event(format!("malformed record access control point response ({e}); ignored"))],
        };
        let Some(t) = self.transfer.as_mut().filter(|t| t.control == id) else {
            return Vec::new();
        };
        let RacpResponse::ResponseCode { code, .. } = response else {
            return Vec::new();
        };
        let what = if t.which == Which::Glucose { "glucose" } else { "spot-check" };
        let mut steps = Vec::new();
        match (t.which, code) {
            (Which::Glucose, RacpResponseCode::Success) if t.checking_last => match (t.last_seen, self.cursor.glucose_seq) {
                (Some(last), Some(cursor)) if seq_after(cursor, last) => {
                    steps.push(Step::Event(format!(
                        "glucose meter's record numbers restarted (last record {last}, {cursor} taken before): fetching all stored records"
                    )));
                    self.cursor.glucose_seq = None;
                    steps.push(Step::Persist);
                    let control = t.control;
                    steps.extend(self.begin(Which::Glucose, control, RacpRequest::ReportStoredRecords(RecordFilter::All), now));
                    return steps;
                }
                _ => {}
            },
            (Which::Glucose, RacpResponseCode::NoRecordsFound) if !t.checking_last && self.cursor.glucose_seq.is_some() => {
                // Nothing new — or the meter's numbering restarted below the cursor.
                let control = t.control;
                return self.begin(Which::Glucose, control, RacpRequest::ReportStoredRecords(RecordFilter::Last), now);
            }
            (
                Which::Glucose,
                RacpResponseCode::OpCodeNotSupported
                | RacpResponseCode::InvalidOperator
                | RacpResponseCode::OperatorNotSupported
                | RacpResponseCode::InvalidOperand
                | RacpResponseCode::OperandNotSupported,
            ) if matches!(t.request, RacpRequest::ReportStoredRecords(RecordFilter::AtLeast(_))) => {
                steps.push(Step::Event(format!(
                    "glucose meter refused a sequence-number filter ({code:?}): fetching all stored records (earlier ones repeat with the same ids)"
                )));
                let control = t.control;
                steps.extend(self.begin(Which::Glucose, control, RacpRequest::ReportStoredRecords(RecordFilter::All), now));
                return steps;
            }
            (_, RacpResponseCode::Success | RacpResponseCode::NoRecordsFound) => {}
            (_, code) => steps.push(Step::Event(format!("{what} record transfer refused by the device ({code:?})"))),
        }
        // The transfer is over.
        if t.which == Which::Plx && t.skipping && !t.held.is_empty() {
            // The record taken last time is gone from the device (deleted, or the storage
            // wrapped): everything it sent may be new.
            for v in std::mem::take(&mut t.held) {
                let h = fnv1a(&v);
                t.records += 1;
                steps.push(Step::Decode { kind: GattKind::PlxSpotCheck, value: v, flags: Flags::FROM_STORAGE, taken: Taken::PlxRecord(h) });
            }
        }
        if t.records > 0 && !t.checking_last {
            steps.push(Step::Event(format!("{} stored {what} records received", t.records)));
        }
        steps.push(Step::Persist);
        steps.extend(self.next_transfer(now));
        steps
    }

    /// The values of a batch were committed to the buffer: the cursor may advance. Returns
    /// `true` when it is time to persist it.
    pub fn committed(&mut self, taken: &[Taken]) -> bool {
        for t in taken {
            match *t {
                Taken::Nothing => continue,
                Taken::GlucoseRecord(seq) => {
                    let checking_last = self.transfer.as_ref().is_some_and(|t| t.checking_last);
                    match self.cursor.glucose_seq {
                        // Asking for the last record must not move a cursor the meter may
                        // have restarted below.
                        _ if checking_last => continue,
                        Some(c) if !seq_after(seq, c) => continue,
                        _ => self.cursor.glucose_seq = Some(seq),
                    }
                }
                Taken::PlxRecord(h) => self.cursor.plx_last = Some(h),
            }
            self.since_persist += 1;
        }
        if self.since_persist >= PERSIST_EVERY {
            self.since_persist = 0;
            return true;
        }
        false
    }

    /// The link is gone: a transfer in progress ends (the cursor stays at the last record
    /// committed; the next connection asks for the rest).
    pub fn disconnected(&mut self) {
        self.transfer = None;
        self.queue.clear();
        self.since_persist = 0;
    }

    /// Whether an RACP transfer is in progress.
    pub fn transferring(&self) -> bool {
        self.transfer.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::transport::Props;
    use super::*;

    fn ch(service: u16, u: u16, props: Props) -> CharacteristicInfo {
        CharacteristicInfo { id: CharId::new(service, u), props }
    }
    const IND: Props = Props { read: false, write: false, notify: false, indicate: true };
    const RACP: Props = Props { read: false, write: true, notify: false, indicate: true };
    const READ: Props = Props { read: true, write: false, notify: false, indicate: false };
    const G: CharId = CharId::new(service::GLUCOSE, uuid::GLUCOSE_MEASUREMENT);
    const GR: CharId = CharId::new(service::GLUCOSE, uuid::RECORD_ACCESS_CONTROL_POINT);

    fn meter() -> Vec<CharacteristicInfo> {
        vec![
            ch(service::GLUCOSE, uuid::GLUCOSE_MEASUREMENT, IND),
            ch(service::GLUCOSE, uuid::RECORD_ACCESS_CONTROL_POINT, RACP),
            ch(service::DEVICE_INFORMATION, uuid::SERIAL_NUMBER, READ),
            ch(service::CURRENT_TIME, uuid::CURRENT_TIME, Props { read: true, write: true, notify: true, indicate: false }),
        ]
    }

    fn record(seq: u16) -> Vec<u8> {
        let mut b = vec![0x02, 0, 0, 0xE8, 0x07, 3, 15, 8, 30, 0, 0x5F, 0xB0, 0x11];
        b[1..3].copy_from_slice(&seq.to_le_bytes());
        b
    }

    fn writes(steps: &[Step]) -> Vec<Vec<u8>> {
        steps.iter().filter_map(|s| if let Step::Write { value, .. } = s { Some(value.clone()) } else { None }).collect()
    }

    fn response(code: u8) -> Vec<u8> {
        vec![0x06, 0x00, 0x01, code]
    }

    #[test]
    fn plan_orders_reads_time_and_subscriptions() {
        let mut s = GattClient::new(&[GattKind::Glucose], Cursor::default());
        let p = s.plan(&meter()).unwrap();
        assert_eq!(p.used, [(GattKind::Glucose, G)]);
        assert_eq!(p.reads, [CharId::new(service::DEVICE_INFORMATION, uuid::SERIAL_NUMBER)]);
        assert_eq!(p.current_time, Some(CharId::new(service::CURRENT_TIME, uuid::CURRENT_TIME)));
        assert_eq!(p.subscribe, [G, GR]);
        let mut s = GattClient::new(&[GattKind::HeartRate], Cursor::default());
        let e = s.plan(&meter()).unwrap_err();
        assert!(e.to_string().contains("heart-rate") && e.to_string().contains("0x1808"), "{e}");
    }

    #[test]
    fn glucose_fetches_everything_first_then_only_what_is_new() {
        let mut s = GattClient::new(&[], Cursor::default());
        s.plan(&meter()).unwrap();
        let steps = s.start_transfers(Timestamp(0));
        assert_eq!(writes(&steps), [vec![0x01, 0x01]], "all records the first time");
        for seq in 0..3 {
            let st = s.on_value(G, &record(seq), Timestamp(1));
            assert!(
                matches!(&st[..], [Step::Decode { flags, taken: Taken::GlucoseRecord(q), .. }] if *flags == Flags::FROM_STORAGE && *q == seq)
            );
        }
        // Not committed yet: the cursor has not moved.
        assert_eq!(s.cursor().glucose_seq, None);
        s.committed(&[Taken::GlucoseRecord(0), Taken::GlucoseRecord(1), Taken::GlucoseRecord(2)]);
        let st = s.on_value(GR, &response(1), Timestamp(2));
        assert!(st.contains(&Step::Persist) && !s.transferring());
        assert_eq!(s.cursor().glucose_seq, Some(2));
        // Next connection: from 3 on.
        s.disconnected();
        s.plan(&meter()).unwrap();
        assert_eq!(writes(&s.start_transfers(Timestamp(3))), [vec![0x01, 0x03, 0x01, 0x03, 0x00]]);
        // A live record outside a transfer carries no storage flag.
        s.on_value(GR, &response(1), Timestamp(4));
        let st = s.on_value(G, &record(3), Timestamp(5));
        assert!(matches!(&st[..], [Step::Decode { flags, .. }] if *flags == Flags::NONE));
    }

    #[test]
    fn a_meter_whose_numbering_restarted_is_read_from_the_beginning() {
        let mut s = GattClient::new(&[], Cursor { device: None, glucose_seq: Some(40), plx_last: None });
        s.plan(&meter()).unwrap();
        s.start_transfers(Timestamp(0));
        let st = s.on_value(GR, &response(6), Timestamp(1));
        assert_eq!(writes(&st), [vec![0x01, 0x06]], "no records ≥ 41: ask for the last one");
        s.on_value(G, &record(4), Timestamp(2));
        s.committed(&[Taken::GlucoseRecord(4)]);
        assert_eq!(s.cursor().glucose_seq, Some(40), "the last record does not move the cursor");
        let st = s.on_value(GR, &response(1), Timestamp(3));
        assert_eq!(writes(&st), [vec![0x01, 0x01]], "restarted: all records");
        assert!(st.iter().any(|x| matches!(x, Step::Event(d) if d.contains("restarted"))));
        assert_eq!(s.cursor().glucose_seq, None);
        // Last record at or beyond the cursor: nothing new, the transfer ends.
        let mut s = GattClient::new(&[], Cursor { device: None, glucose_seq: Some(40), plx_last: None });
        s.plan(&meter()).unwrap();
        s.start_transfers(Timestamp(0));
        s.on_value(GR, &response(6), Timestamp(1));
        s.on_value(G, &record(40), Timestamp(2));
        let st = s.on_value(GR, &response(1), Timestamp(3));
        assert!(writes(&st).is_empty() && !s.transferring());
    }

    #[test]
    fn a_refused_filter_falls_back_to_all_and_silence_times_out() {
        let mut s = GattClient::new(&[], Cursor { device: None, glucose_seq: Some(7), plx_last: None });
        s.plan(&meter()).unwrap();
        s.start_transfers(Timestamp(0));
        let st = s.on_value(GR, &response(4), Timestamp(1));
        assert_eq!(writes(&st), [vec![0x01, 0x01]]);
        assert_eq!(s.next_wakeup(), Some(Timestamp(1 + RACP_TIMEOUT_MS)));
        assert!(s.poll(Timestamp(RACP_TIMEOUT_MS)).is_empty());
        let st = s.poll(Timestamp(1 + RACP_TIMEOUT_MS));
        assert!(matches!(&st[..], [Step::Event(d)] if d.contains("no answer")));
        assert!(!s.transferring());
        // A malformed response is reported, not fatal.
        let st = s.on_value(GR, &[0x06], Timestamp(2));
        assert!(matches!(&st[..], [Step::Event(d)] if d.contains("malformed")));
    }

    #[test]
    fn plx_spot_check_records_taken_before_are_skipped() {
        let chars = vec![
            ch(service::PULSE_OXIMETER, uuid::PLX_SPOT_CHECK_MEASUREMENT, IND),
            ch(service::PULSE_OXIMETER, uuid::RECORD_ACCESS_CONTROL_POINT, RACP),
        ];
        let spot = CharId::new(service::PULSE_OXIMETER, uuid::PLX_SPOT_CHECK_MEASUREMENT);
        let racp = CharId::new(service::PULSE_OXIMETER, uuid::RECORD_ACCESS_CONTROL_POINT);
        let rec = |n: u8| vec![0x00, 0x60 + n, 0x00, 0x48, 0x00];
        let mut s = GattClient::new(&[GattKind::PlxSpotCheck], Cursor::default());
        s.plan(&chars).unwrap();
        assert_eq!(writes(&s.start_transfers(Timestamp(0))), [vec![0x01, 0x01]]);
        let mut taken = Vec::new();
        for n in 0..3 {
            for st in s.on_value(spot, &rec(n), Timestamp(1)) {
                if let Step::Decode { taken: t, .. } = st {
                    taken.push(t);
                }
            }
        }
        s.committed(&taken);
        s.on_value(racp, &response(1), Timestamp(2));
        // Next time the device sends 0..5: only 3 and 4 are new.
        s.disconnected();
        s.plan(&chars).unwrap();
        s.start_transfers(Timestamp(3));
        let mut decoded = Vec::new();
        for n in 0..5 {
            for st in s.on_value(spot, &rec(n), Timestamp(4)) {
                if let Step::Decode { value, .. } = st {
                    decoded.push(value[1] - 0x60);
                }
            }
        }
        assert_eq!(decoded, [3, 4]);
        // The record taken last is gone from the device: everything is passed on at the end.
        let mut s = GattClient::new(&[GattKind::PlxSpotCheck], Cursor { device: None, glucose_seq: None, plx_last: Some(1) });
        s.plan(&chars).unwrap();
        s.start_transfers(Timestamp(0));
        assert!(s.on_value(spot, &rec(7), Timestamp(1)).is_empty());
        let st = s.on_value(racp, &response(1), Timestamp(2));
        assert_eq!(st.iter().filter(|x| matches!(x, Step::Decode { .. })).count(), 1);
    }

    #[test]
    fn the_cursor_belongs_to_one_device() {
        let mut s = GattClient::new(&[], Cursor { device: Some("sn:::1".into()), glucose_seq: Some(9), plx_last: None });
        s.plan(&meter()).unwrap();
        s.device_information(CharId::new(service::DEVICE_INFORMATION, uuid::SERIAL_NUMBER), b"1").unwrap();
        assert!(s.bind_device("AA:BB:CC:DD:EE:FF").iter().all(|x| !matches!(x, Step::Event(_))));
        // Another meter (other serial) behind the same configuration.
        s.plan(&meter()).unwrap();
        s.device_information(CharId::new(service::DEVICE_INFORMATION, uuid::SERIAL_NUMBER), b"2").unwrap();
        let st = s.bind_device("AA:BB:CC:DD:EE:FF");
        assert!(matches!(&st[0], Step::Event(d) if d.contains("different device")));
        assert_eq!(s.cursor().glucose_seq, None);
        assert_eq!(writes(&s.start_transfers(Timestamp(0))), [vec![0x01, 0x01]]);
    }

    #[test]
    fn sequence_arithmetic_wraps() {
        assert!(seq_after(1, 0) && seq_after(0, 0xFFFF) && !seq_after(5, 5) && !seq_after(4, 5));
    }
}
