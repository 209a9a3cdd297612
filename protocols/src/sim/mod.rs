//! Device simulators: the device's side of each protocol, sans-IO like the decoders.
//!
//! A simulator produces the byte stream a real device would send, with realistic, slowly
//! changing values, answers the gateway's requests as the device would (and refuses
//! out-of-order ones as the device would), and injects faults on demand. `medgw simulate`,
//! `medgw demo`, the benchmarks and the end-to-end tests drive them over pseudo-terminals and
//! TCP; the property tests drive them directly.
//!
//! Every simulator records the values it sent ([`Sent`]), so a test can check that each one
//! arrived at the broker with the right code, unit and value.

use alloc::vec::Vec;

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::time::Timestamp;

pub mod gatt;
pub mod intellivue;
pub mod link;
pub mod masimo;
pub mod medibus;
pub mod nonin;

/// A fault to inject into the next output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Corrupt the checksum/CRC/FCS of the next frame (line protocols: corrupt a digit).
    BadChecksum,
    /// Send only the first half of the next frame.
    Truncate,
    /// Send this many random bytes before the next frame.
    Garbage(usize),
    /// Report the sensor off the patient (or back on with `false`).
    SensorOff(bool),
    /// Send nothing for this many milliseconds (the gateway should call the device silent).
    Silence(u32),
    /// The SpO2 falls to [`SPO2_LOW_VALUE`] %, below the simulated device's low alarm limit
    /// [`SPO2_LOW_LIMIT`] % (or recovers with `false`). Devices with an alarm channel report the
    /// alarm (Masimo ALARM bit 0x0002, MEDIBUS current alarms); the others just send the value.
    Spo2Low(bool),
    /// ECG leads off the patient (or back on with `false`). Devices with ECG and an alarm
    /// channel report the technical alert (the IntelliVue simulator's INOP "LEADS OFF"); the
    /// others ignore it.
    LeadOff(bool),
}

/// The SpO2 a simulator sends under [`Fault::Spo2Low`].
pub const SPO2_LOW_VALUE: i64 = 85;
/// The low SpO2 alarm limit the simulators report.
pub const SPO2_LOW_LIMIT: i64 = 90;

/// A value the simulator put on the wire: what the gateway must publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub metric: MdcCode,
    /// `None` when the simulator sent the protocol's "no value".
    pub value: Option<Decimal>,
    pub unit: MdcCode,
    /// The device time written on the wire, if the protocol carries one.
    pub device_time: Option<Timestamp>,
    pub seq: Option<u32>,
}

/// Options common to all simulators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// Seed of the value generator: the same seed gives the same values.
    pub seed: u64,
    /// Output period in ms where the protocol lets the device choose (1000 = the device's
    /// normal once-a-second output). The benchmark lowers it to reach high rates.
    pub period_ms: u32,
    /// Record [`Sent`] values (tests); off for long runs so memory stays flat.
    pub record: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { seed: 1, period_ms: 1000, record: false }
    }
}

/// The device's side of a protocol.
pub trait DeviceSimulator: Send {
    fn protocol(&self) -> &'static str;

    /// Bytes the gateway sent to the device at `now`; the answer is appended to `out`.
    fn receive(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<u8>);

    /// Advances the simulator to `now`; bytes the device sends on its own are appended to `out`.
    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>);

    /// When the simulator next wants [`DeviceSimulator::tick`].
    fn next_tick(&self) -> Timestamp;

    /// Injects a fault into what follows.
    fn inject(&mut self, fault: Fault);

    /// Drains the record of values sent since the last call (empty unless `record` is on).
    fn take_sent(&mut self) -> Vec<Sent>;

    /// How long the device keeps a session whose client went quiet (IntelliVue: the connection
    /// time-out, during which it refuses new associations). Devices without sessions ignore it.
    fn set_session_timeout_ms(&mut self, ms: u64) {
        let _ = ms;
    }

    /// The patient the device has admitted, when it reports one (IntelliVue patient
    /// demographics). Devices that report no patient id ignore it.
    fn set_patient_id(&mut self, id: Option<&str>) {
        let _ = id;
    }
}

/// A constructor in the simulator registry.
pub type MakeSimulator = fn(&SimOptions, Timestamp) -> alloc::boxed::Box<dyn DeviceSimulator>;

/// SplitMix64: a small, seedable generator for values and faults (not for anything secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }

    /// A slow random walk: `value` moved by at most `step`, kept within `lo..=hi`.
    pub fn walk(&mut self, value: i64, step: i64, lo: i64, hi: i64) -> i64 {
        (value + self.range(-step, step)).clamp(lo, hi)
    }
}

/// Every simulator, by protocol name.
pub fn simulators() -> impl Iterator<Item = &'static (&'static str, MakeSimulator)> {
    let tables: [&'static [(&'static str, MakeSimulator)]; 6] =
        [nonin::SIMULATORS, masimo::SIMULATORS, intellivue::SIMULATORS, medibus::SIMULATORS, link::SIMULATORS, gatt::SIMULATORS];
    tables.into_iter().flatten()
}

/// The simulator of protocol `name`.
pub fn find(name: &str) -> Option<MakeSimulator> {
    simulators().find(|(n, _)| *n == name).map(|(_, m)| *m)
}
