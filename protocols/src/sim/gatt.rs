//! Simulated Bluetooth health devices, one per GATT characteristic.
//!
//! Each [`DeviceSimulator::tick`] appends exactly one characteristic value to `out` (or none):
//! what the device would put in one ATT notification (heart rate, PLX continuous) or
//! indication (PLX spot-check, blood pressure, temperature, weight, glucose). The BLE
//! transport delivers those values whole, so a caller feeds each tick's output to the
//! decoder as one value; concatenating them into a byte stream would lose the boundaries that
//! ATT provides.
//!
//! Values change slowly and realistically (random walks within physiological ranges). The
//! device's clock is the simulated `now`, written as wall-clock time (the gateway reads Date
//! Time as local time; with a UTC zone it comes back unchanged).
//!
//! Faults:
//! - `SensorOff(true)`: each device's own "no reading" form: heart rate contact not detected
//!   with rate 0 and no RR; PLX "measurement unavailable" + "sensor displaced" with NaN values;
//!   BP "cuff too loose" with NaN pressures; thermometer NaN; scale 0xFFFF "measurement
//!   unsuccessful"; glucose meter a record without concentration and "strip insertion error".
//! - `BadChecksum`: GATT values have no checksum (the link layer's CRC drops corrupted PDUs
//!   before ATT), so the nearest fault is used: the next value reports NaN in its float
//!   fields (scale: 0xFFFF; heart rate, which has no float: a malformed value whose flags
//!   announce a 16-bit rate followed by one byte).
//! - `Truncate`: the next value cut to half its length (at least one byte removed).
//! - `Garbage(n)`: the next value is `n` random bytes (which may or may not happen to parse).
//! - `Silence(ms)`: nothing for that long.
//!
//! The glucose meter keeps its records (the last 1000) and answers Record Access Control
//! Point requests written with [`DeviceSimulator::receive`]: matching records are sent by the
//! following ticks, one value each, due at once. The RACP response is an indication on
//! another characteristic (0x2A52), so it never enters the 0x2A18 value stream: take it with
//! [`GattSim::take_racp_indications`]. A real meter sends the records before the RACP
//! response; here the response is available at once and the records follow — callers that
//! wait for the response to end a transfer must drain the ticks first.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{DeviceSimulator, Fault, MakeSimulator, Rng, Sent, SimOptions};
use crate::decimal::Decimal;
use crate::mdc::{code, unit, MdcCode};
use crate::time::Timestamp;
use crate::wire::gatt::blood_pressure::{BloodPressure, BpStatus};
use crate::wire::gatt::date_time::DateTime;
use crate::wire::gatt::glucose::{
    self as glu, Concentration, Glucose, RacpRequest, RacpResponse, RacpResponseCode, RecordFilter, SensorStatus,
};
use crate::wire::gatt::heart_rate::{self as hr, HeartRate, RrIntervals};
use crate::wire::gatt::plx::{Continuous, DeviceSensorStatus, MeasurementStatus, SpO2Pr, SpotCheck};
use crate::wire::gatt::thermometer::Temperature;
use crate::wire::gatt::weight::{self as wt, Weight};
use crate::wire::gatt::{Float, GattKind, Sfloat};

/// Records a glucose meter keeps.
const MAX_RECORDS: usize = 1000;

/// A simulated GATT health device.
pub struct GattSim {
    kind: GattKind,
    opts: SimOptions,
    rng: Rng,
    next: Timestamp,
    ticks: u64,
    fault: Option<Fault>,
    sensor_off: bool,
    silent_until: Option<Timestamp>,
    sent: Vec<Sent>,
    // Physiological state (integers in the wire's resolution).
    hr: i64,
    spo2: i64,
    pr: i64,
    pai10: i64,
    sys: i64,
    dia: i64,
    temp10: i64,
    weight_raw: i64,
    glucose_mg: i64,
    energy: u32,
    seq: u16,
    records: VecDeque<Glucose>,
    pending: VecDeque<Glucose>,
    racp: Vec<Vec<u8>>,
}

impl GattSim {
    pub fn new(kind: GattKind, opts: &SimOptions, now: Timestamp) -> GattSim {
        let mut rng = Rng::new(opts.seed ^ kind.uuid() as u64);
        GattSim {
            kind,
            opts: opts.clone(),
            next: now,
            ticks: 0,
            fault: None,
            sensor_off: false,
            silent_until: None,
            sent: Vec::new(),
            hr: rng.range(62, 85),
            spo2: rng.range(95, 99),
            pr: rng.range(62, 85),
            pai10: rng.range(20, 80),
            sys: rng.range(112, 135),
            dia: rng.range(70, 85),
            temp10: rng.range(365, 372),
            weight_raw: rng.range(13_000, 16_000),
            glucose_mg: rng.range(85, 130),
            energy: 0,
            seq: 0,
            records: VecDeque::new(),
            pending: VecDeque::new(),
            racp: Vec::new(),
            rng,
        }
    }

    pub fn kind(&self) -> GattKind {
        self.kind
    }

    /// RACP indications (0x2A52 values) produced since the last call.
    pub fn take_racp_indications(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.racp)
    }

    /// Glucose records stored (oldest first).
    pub fn stored_records(&self) -> usize {
        self.records.len()
    }

    fn record(&mut self, metric: MdcCode, value: Option<Decimal>, unit: MdcCode, time: Option<Timestamp>, seq: Option<u32>) {
        if self.opts.record {
            self.sent.push(Sent { metric, value, unit, device_time: time, seq });
        }
    }

    fn sf(&self, v: Option<Decimal>) -> Sfloat {
        v.and_then(crate::wire::sfloat::encode_sfloat).map_or(Sfloat::NAN, Sfloat)
    }

    fn walk(&mut self) {
        self.hr = self.rng.walk(self.hr, 2, 50, 120);
        self.spo2 = self.rng.walk(self.spo2, 1, 92, 100);
        self.pr = self.rng.walk(self.pr, 2, 50, 120);
        self.pai10 = self.rng.walk(self.pai10, 3, 5, 150);
        self.sys = self.rng.walk(self.sys, 3, 100, 160);
        self.dia = self.rng.walk(self.dia, 2, 60, (self.sys - 25).min(100));
        self.temp10 = self.rng.walk(self.temp10, 1, 358, 392);
        self.weight_raw = self.rng.walk(self.weight_raw, 20, 8_000, 30_000);
        self.glucose_mg = self.rng.walk(self.glucose_mg, 6, 60, 250);
    }

    /// Builds the next value into `buf`; returns its length and records what it carries
    /// (`nan`: the BadChecksum fault).
    fn build(&mut self, now: Timestamp, nan: bool, buf: &mut [u8]) -> usize {
        let stamp = Timestamp(now.0 - now.0.rem_euclid(1000));
        let dt = DateTime::from_timestamp(now);
        let off = self.sensor_off;
        let n = match self.kind {
            GattKind::HeartRate => self.build_hr(nan, off, buf),
            GattKind::PlxSpotCheck | GattKind::PlxContinuous => self.build_plx(nan, off, stamp, dt, buf),
            GattKind::BloodPressure => self.build_bp(nan, off, stamp, dt, buf),
            GattKind::Temperature => {
                let v = (!(nan || off)).then(|| Decimal::new(self.temp10, -1)).flatten();
                let t = Temperature {
                    flags: 0,
                    value: v.and_then(crate::wire::sfloat::encode_float).map_or(Float::NAN, Float),
                    timestamp: Some(dt),
                    temperature_type: Some(9),
                };
                self.record(code::MDC_TEMP_BODY, v, unit::MDC_DIM_DEGC, Some(stamp), None);
                t.emit(buf)
            }
            GattKind::Weight => {
                let failed = nan || off;
                let raw = if failed { wt::UNSUCCESSFUL } else { self.weight_raw as u16 };
                // Height 1.755 m; BMI = kg / m² in tenths, rounded: raw × 0.005 / 3.080025 × 10.
                let bmi10 = ((self.weight_raw * 500_000 / 3_080_025) + 5) / 10;
                let w = Weight {
                    flags: 0,
                    weight: raw,
                    timestamp: Some(dt),
                    user_id: Some(1),
                    bmi_height: (!failed).then_some((bmi10 as u16, 1755)),
                };
                let kg = (!failed).then(|| wt::weight_value(raw, false));
                self.record(code::MDC_MASS_BODY_ACTUAL, kg, unit::MDC_DIM_KILO_G, Some(stamp), None);
                if !failed {
                    self.record(
                        code::MDC_RATIO_MASS_BODY_LEN_SQ,
                        Some(wt::bmi_value(bmi10 as u16)),
                        unit::MDC_DIM_KG_PER_M_SQ,
                        Some(stamp),
                        None,
                    );
                    self.record(code::MDC_LEN_BODY_ACTUAL, Some(wt::height_value(1755)), unit::MDC_DIM_CENTI_M, Some(stamp), None);
                }
                w.emit(buf)
            }
            GattKind::Glucose => {
                let seq = self.seq;
                self.seq = self.seq.wrapping_add(1);
                let mg = Decimal::from_int(self.glucose_mg as i32);
                let g = Glucose {
                    flags: 0,
                    sequence: seq,
                    base_time: dt,
                    time_offset: None,
                    // mg/dL → kg/L: the same digits with the exponent lowered by 5.
                    concentration: (!off).then(|| Concentration {
                        value: if nan { Sfloat::NAN } else { self.sf(Decimal::new(mg.mantissa(), -5)) },
                        sample_type: 1,
                        location: 1,
                    }),
                    status: off.then_some(SensorStatus(SensorStatus::STRIP_INSERTION_ERROR)),
                };
                if self.records.len() == MAX_RECORDS {
                    self.records.pop_front();
                }
                self.records.push_back(g);
                self.record_glucose(&g);
                g.emit(buf)
            }
        };
        n.unwrap_or(0)
    }

    fn record_glucose(&mut self, g: &Glucose) {
        let value = g.concentration_value().and_then(|(v, _)| v.ok());
        let time = g.base_time.to_timestamp();
        self.record(glu::mdc_glu::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD, value, unit::MDC_DIM_MILLI_G_PER_DL, time, Some(g.sequence as u32));
    }

    fn build_hr(&mut self, nan: bool, off: bool, buf: &mut [u8]) -> crate::Result<usize> {
        if nan {
            // Flags say uint16, only one byte follows: a malformed value.
            let b = [hr::FLAG_UINT16 | 0x06, self.hr as u8];
            let n = b.len().min(buf.len());
            buf[..n].copy_from_slice(&b[..n]);
            return Ok(n);
        }
        self.energy = self.energy.saturating_add((self.hr / 12) as u32);
        let energy = (self.ticks % 10 == 0).then(|| self.energy.min(u16::MAX as u32) as u16);
        let mut rr_buf = [0u8; 4];
        let mut n_rr = 0;
        if !off {
            // One beat lasts 60/HR s = 61440/HR in 1/1024 s; a second holds one or two beats.
            let beats = if self.hr > 60 && self.ticks % 4 == 0 { 2 } else { 1 };
            for i in 0..beats {
                let raw = (61_440 / self.hr + self.rng.range(-8, 8)) as u16;
                rr_buf[2 * i..2 * i + 2].copy_from_slice(&raw.to_le_bytes());
                n_rr += 1;
            }
        }
        let contact = if off { hr::SensorContact::NotDetected } else { hr::SensorContact::Detected };
        let v = HeartRate {
            flags: contact.bits(),
            bpm: if off { 0 } else { self.hr as u16 },
            energy_kj: energy,
            rr: RrIntervals::from_bytes(&rr_buf[..2 * n_rr]),
        };
        let bpm = (!off).then(|| Decimal::from_int(self.hr as i32));
        self.record(code::MDC_ECG_HEART_RATE, bpm, unit::MDC_DIM_BEAT_PER_MIN, None, None);
        for r in v.rr.iter() {
            self.record(hr::MDC_ECG_TIME_PD_RR_GL, Some(hr::rr_millis(r)), unit::MDC_DIM_MILLI_SEC, None, None);
        }
        if let Some(e) = energy {
            self.record(MdcCode::UNMAPPED, Some(Decimal::from_int(e as i32)), hr::MDC_DIM_KILO_JOULES, None, None);
        }
        v.emit(buf)
    }

    fn build_plx(&mut self, nan: bool, off: bool, stamp: Timestamp, dt: DateTime, buf: &mut [u8]) -> crate::Result<usize> {
        let good = !(nan || off);
        let spo2 = good.then(|| Decimal::from_int(self.spo2 as i32));
        let pr = good.then(|| Decimal::from_int(self.pr as i32));
        let pai = (!off).then(|| Decimal::new(self.pai10, -1)).flatten();
        let reading = SpO2Pr { spo2: self.sf(spo2), pr: self.sf(pr) };
        let status = MeasurementStatus(if off {
            MeasurementStatus::UNAVAILABLE
        } else {
            MeasurementStatus::VALIDATED | MeasurementStatus::FULLY_QUALIFIED
        });
        let dss = off.then_some(DeviceSensorStatus(DeviceSensorStatus::SENSOR_DISPLACED));
        let pai_sf = pai.map(|p| self.sf(Some(p)));
        let time = (self.kind == GattKind::PlxSpotCheck).then_some(stamp);
        self.record(code::MDC_PULS_OXIM_SAT_O2, spo2, unit::MDC_DIM_PERCENT, time, None);
        self.record(code::MDC_PULS_OXIM_PULS_RATE, pr, unit::MDC_DIM_BEAT_PER_MIN, time, None);
        if self.kind == GattKind::PlxSpotCheck {
            if let Some(p) = pai {
                self.record(code::MDC_PULS_OXIM_PERF_REL, Some(p), unit::MDC_DIM_PERCENT, time, None);
            }
            return SpotCheck { flags: 0, reading, timestamp: Some(dt), status: Some(status), device_status: dss, pai: pai_sf }.emit(buf);
        }
        // Continuous: the fast average every third value, the slow one every fifth.
        let fast = (self.ticks % 3 == 0).then(|| {
            let s = good.then(|| Decimal::from_int((self.spo2 + self.rng.range(-1, 0)) as i32));
            let p = good.then(|| Decimal::from_int((self.pr + self.rng.range(-2, 2)) as i32));
            (s, p)
        });
        let slow = (self.ticks % 5 == 0).then_some((spo2, pr));
        let mut pairs = [None, None];
        for (i, pair) in [fast, slow].into_iter().enumerate() {
            if let Some((s, p)) = pair {
                self.record(MdcCode::UNMAPPED, s, unit::MDC_DIM_PERCENT, None, None);
                self.record(MdcCode::UNMAPPED, p, unit::MDC_DIM_BEAT_PER_MIN, None, None);
                pairs[i] = Some(SpO2Pr { spo2: self.sf(s), pr: self.sf(p) });
            }
        }
        if let Some(p) = pai {
            self.record(code::MDC_PULS_OXIM_PERF_REL, Some(p), unit::MDC_DIM_PERCENT, None, None);
        }
        Continuous { flags: 0, normal: reading, fast: pairs[0], slow: pairs[1], status: Some(status), device_status: dss, pai: pai_sf }
            .emit(buf)
    }

    fn build_bp(&mut self, nan: bool, off: bool, stamp: Timestamp, dt: DateTime, buf: &mut [u8]) -> crate::Result<usize> {
        let good = !(nan || off);
        let mean = self.dia + (self.sys - self.dia) / 3;
        let v = |x: i64| good.then(|| Decimal::from_int(x as i32));
        let (s, d, m, p) = (v(self.sys), v(self.dia), v(mean), v(self.pr));
        let mut status = 0;
        if off {
            status |= BpStatus::CUFF_TOO_LOOSE;
        }
        if good && self.ticks % 11 == 5 {
            status |= BpStatus::BODY_MOVEMENT;
        }
        let value = BloodPressure {
            flags: 0,
            systolic: self.sf(s),
            diastolic: self.sf(d),
            mean: self.sf(m),
            timestamp: Some(dt),
            pulse_rate: Some(self.sf(p)),
            user_id: Some(1),
            status: Some(BpStatus(status)),
        };
        let time = Some(stamp);
        self.record(code::MDC_PRESS_BLD_NONINV_SYS, s, unit::MDC_DIM_MMHG, time, None);
        self.record(code::MDC_PRESS_BLD_NONINV_DIA, d, unit::MDC_DIM_MMHG, time, None);
        self.record(code::MDC_PRESS_BLD_NONINV_MEAN, m, unit::MDC_DIM_MMHG, time, None);
        self.record(code::MDC_PULS_RATE_NON_INV, p, unit::MDC_DIM_BEAT_PER_MIN, time, None);
        value.emit(buf)
    }

    fn answer_racp(&mut self, request: &[u8]) {
        use glu::racp_op;
        let respond = |op: u8, code: RacpResponseCode| RacpResponse::ResponseCode { request_op_code: op, code };
        let op = request.first().copied().unwrap_or(0);
        let response = match RacpRequest::parse(request) {
            Err(e) => respond(
                op,
                match e {
                    crate::Error::Unsupported { what: "racp op code", .. } => RacpResponseCode::OpCodeNotSupported,
                    crate::Error::BadField { field: "racp operator", .. } => RacpResponseCode::InvalidOperator,
                    crate::Error::Unsupported { .. } => RacpResponseCode::OperandNotSupported,
                    _ => RacpResponseCode::InvalidOperand,
                },
            ),
            Ok(RacpRequest::Abort) => {
                self.pending.clear();
                respond(racp_op::ABORT, RacpResponseCode::Success)
            }
            // One procedure at a time: a meter refuses a new one while records are still being
            // sent (GLS: "procedure already in progress"; modelled as "procedure not completed").
            Ok(_) if !self.pending.is_empty() => respond(op, RacpResponseCode::ProcedureNotCompleted),
            Ok(RacpRequest::ReportNumberOfRecords(f)) => RacpResponse::NumberOfRecords(self.matching(&f).count() as u16),
            Ok(RacpRequest::ReportStoredRecords(f)) => {
                let found: Vec<Glucose> = self.matching(&f).copied().collect();
                let code = if found.is_empty() { RacpResponseCode::NoRecordsFound } else { RacpResponseCode::Success };
                self.pending.extend(found);
                respond(racp_op::REPORT_STORED_RECORDS, code)
            }
            Ok(RacpRequest::DeleteStoredRecords(f)) => {
                let keep: VecDeque<Glucose> = self.records.iter().filter(|g| !Self::matches(&f, g, &self.records)).copied().collect();
                let code = if keep.len() == self.records.len() { RacpResponseCode::NoRecordsFound } else { RacpResponseCode::Success };
                self.records = keep;
                respond(racp_op::DELETE_STORED_RECORDS, code)
            }
        };
        let mut out = [0u8; 8];
        if let Ok(n) = response.emit(&mut out) {
            self.racp.push(out[..n].to_vec());
        }
    }

    fn matching<'a>(&'a self, f: &'a RecordFilter) -> impl Iterator<Item = &'a Glucose> + 'a {
        self.records.iter().filter(move |g| Self::matches(f, g, &self.records))
    }

    fn matches(f: &RecordFilter, g: &Glucose, all: &VecDeque<Glucose>) -> bool {
        use glu::Bound;
        let key = |b: &Bound| -> (bool, i64) {
            match b {
                Bound::Sequence(s) => (true, *s as i64),
                Bound::Time(t) => (false, t.to_timestamp().map_or(i64::MIN, |t| t.0)),
            }
        };
        let of = |seq: bool| if seq { g.sequence as i64 } else { g.base_time.to_timestamp().map_or(i64::MIN, |t| t.0) };
        match f {
            RecordFilter::All => true,
            RecordFilter::First => all.front().map(|x| x.sequence) == Some(g.sequence),
            RecordFilter::Last => all.back().map(|x| x.sequence) == Some(g.sequence),
            RecordFilter::AtMost(b) => {
                let (s, k) = key(b);
                of(s) <= k
            }
            RecordFilter::AtLeast(b) => {
                let (s, k) = key(b);
                of(s) >= k
            }
            RecordFilter::Range(a, b) => {
                let ((s, lo), (_, hi)) = (key(a), key(b));
                (lo..=hi).contains(&of(s))
            }
        }
    }
}

impl DeviceSimulator for GattSim {
    fn protocol(&self) -> &'static str {
        self.kind.protocol()
    }

    /// The glucose meter takes RACP requests (see the module doc); other devices ignore writes.
    fn receive(&mut self, bytes: &[u8], _now: Timestamp, _out: &mut Vec<u8>) {
        if self.kind == GattKind::Glucose {
            self.answer_racp(bytes);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if now < self.next {
            return;
        }
        // Stored records requested through the RACP go first, one value per tick, at once.
        if let Some(g) = self.pending.pop_front() {
            let mut buf = [0u8; 32];
            if let Ok(n) = g.emit(&mut buf) {
                out.extend_from_slice(&buf[..n]);
            }
            self.record_glucose(&g);
            self.next = now;
            return;
        }
        self.next = Timestamp(now.0 + self.opts.period_ms.max(1) as i64);
        if let Some(until) = self.silent_until {
            if now < until {
                return;
            }
            self.silent_until = None;
        }
        self.ticks += 1;
        self.walk();
        let fault = self.fault.take();
        if let Some(Fault::Garbage(n)) = fault {
            out.extend((0..n.min(crate::wire::gatt::MAX_VALUE_LEN)).map(|_| self.rng.next_u64() as u8));
            return;
        }
        let record = self.opts.record;
        if matches!(fault, Some(Fault::Truncate)) {
            // A value that will be rejected carries nothing to publish.
            self.opts.record = false;
        }
        let mut buf = [0u8; 64];
        let n = self.build(now, matches!(fault, Some(Fault::BadChecksum)), &mut buf);
        self.opts.record = record;
        let n = if matches!(fault, Some(Fault::Truncate)) { (n / 2).min(n.saturating_sub(1)) } else { n };
        out.extend_from_slice(&buf[..n]);
    }

    fn next_tick(&self) -> Timestamp {
        self.next
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::SensorOff(off) => self.sensor_off = off,
            Fault::Silence(ms) => self.silent_until = Some(Timestamp(self.next.0 + ms as i64)),
            // No alarm channel simulated for this protocol (yet).
            // No ECG on this device.
            Fault::LeadOff(_) => {}
            Fault::Spo2Low(_) => {}
            other => self.fault = Some(other),
        }
    }

    fn take_sent(&mut self) -> Vec<Sent> {
        core::mem::take(&mut self.sent)
    }
}

macro_rules! sim_row {
    ($kind:ident) => {
        (
            GattKind::$kind.protocol(),
            (|o: &SimOptions, now: Timestamp| Box::new(GattSim::new(GattKind::$kind, o, now)) as Box<dyn DeviceSimulator>) as MakeSimulator,
        )
    };
}

/// The GATT device simulators, by protocol name.
pub const SIMULATORS: &[(&str, MakeSimulator)] = &[
    sim_row!(HeartRate),
    sim_row!(PlxSpotCheck),
    sim_row!(PlxContinuous),
    sim_row!(BloodPressure),
    sim_row!(Temperature),
    sim_row!(Weight),
    sim_row!(Glucose),
];
