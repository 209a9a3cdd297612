//! The monitor's side of the IntelliVue MIB/RS232 Data Export: an IntelliVue that answers a
//! client as the protocol dialog says (see `wire::intellivue::client` for the sources).
//!
//! - AARQ while unassociated: AARE (echoing the client's minimum poll period, or the
//!   configured override), then at once the MDS Create Event Report (model, production
//!   specification with serial number, system id, the MDS clock pair NOM_ATTR_TIME_ABS/REL).
//! - MDS create result: associated. Extended numeric poll: the reply as two linked results
//!   (ROLRS first, ROLRS last) followed by an empty RORS, VSC's reading of RORLS_LAST ("one
//!   RORSapdu to follow"). Single poll of the MDS (the client's keep-alive): one RORS with the
//!   MDS attributes. Single numeric poll (PP-1): one RORS with all numerics.
//! - Out of order, as medgw's simulator chooses (the guide was not available): a data export
//!   request before the association is complete (no AARE yet, or MDS create result not yet
//!   received) is answered with an abort, since a data SPDU outside a session is a session
//!   protocol violation; an AARQ while associated is refused (one association per port); an
//!   unsupported remote operation is answered with ROER "no such action".
//! - Release request: release response, unassociated. Abort from the client: unassociated.
//! - Connection time-out: an association that hears nothing from its client for the time-out of
//!   the negotiated minimum poll period (or the configured one, [`IntelliVueSim::set_connection_timeout_ms`])
//!   is aborted by the monitor. A serial line does not tell the monitor that its client went
//!   away, so a client that vanishes without a release leaves the association up until then,
//!   and the AARQs of a new client are refused meanwhile; they do not count as traffic of the
//!   old association. After a release (or an abort) the monitor accepts at once. A real monitor
//!   refused for about 51 s after a gateway restart that did not release.
//!
//! - Alert monitor poll: the physiological and technical alarm lists (`alarms.rs` layout): an
//!   SpO2-low alarm while [`Fault::Spo2Low`] holds (high priority, "**SpO2 85<90", code
//!   MDC_EVT_LO's term on the SpO2 source), an INOP "SpO2 NO SENSOR" while
//!   [`Fault::SensorOff`] holds (medium technical, a private event term [`INOP_NO_SENSOR`]:
//!   no public table gives the monitor's own code, so it arrives unmapped with its vendor code),
//!   and an INOP "LEADS OFF" while [`Fault::LeadOff`] holds (medium technical on the ECG heart
//!   rate, event term [`INOP_LEADS_OFF`]).
//! - Patient demographics poll: state admitted and the patient id set with
//!   [`IntelliVueSim::set_patient_id`], else state empty and no id.
//! - Wave priority list SET: the waves the monitor has (ECG II at 500 samples/s, pleth at 125)
//!   are kept, others dropped without a word (p. 287); the result lists what was kept. Without a
//!   SET both are sent. Wave poll: the samples since the previous wave poll (at most 512 ms, from
//!   8 ms boundaries of the monitor clock), ECG II as a PQRST at the simulated heart rate
//!   (`wave::shape::ecg_ii`), pleth as a beat at the pulse rate; each object's context (sample
//!   period, SaSpec, scale, unit) with the first result and every fourth one after.
//!
//! Values: HR, SpO2, pleth pulse rate, perfusion index, respiration rate, etCO2, temperature,
//! NBP pulse (Philips-private id: arrives unmapped) and a non-invasive blood pressure re-measured
//! every five minutes, whose observation carries a relative time stamp of the cuff measurement.
//! The monitor clock is the `now` it is given, read as local wall time; the reply's absolute
//! time has whole seconds, so replies are stamped at the start of the current second.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::time::Timestamp;
use crate::wire::intellivue::alarms::{self as al, alert_type};
use crate::wire::intellivue::attributes::{
    self, id, spec_type, AbsoluteTime, MeasurementState, NuObsValue, ProductionSpec, RelativeTime, SystemModel, ID_COMP_PRODUCT,
};
use crate::wire::intellivue::client::connection_timeout_ms;
use crate::wire::intellivue::demographics;
use crate::wire::intellivue::frame::{self, Deframer, FrameEvent};
use crate::wire::intellivue::nomenclature::{dim, physio};
use crate::wire::intellivue::pdu::{self, action, command, linked, ro, Apdu, ManagedObjectId, ObjectType, PollRequest};
use crate::wire::intellivue::session::{self, PollProfile, Spdu};
use crate::wire::intellivue::wave::{self as wv, physio as wave_physio, SaObsValue, SaSpec, ScaleRangeSpec16};
use crate::wire::intellivue::Writer;
use crate::wire::sfloat::encode_float;
use alloc::string::String;

use super::{DeviceSimulator, Fault, Rng, Sent, SimOptions, SPO2_LOW_LIMIT, SPO2_LOW_VALUE};

/// Simulators of this module, by protocol name.
pub const SIMULATORS: &[(&str, super::MakeSimulator)] = &[("intellivue", make)];

fn make(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(IntelliVueSim::new(opts, now))
}

/// The FLOAT-Type NaN (protocols.md §3, PP-4).
const FLOAT_NAN: u32 = 0x007F_FFFF;
/// What the simulated monitor calls itself.
pub const MANUFACTURER: &str = "Philips";
pub const MODEL: &str = "M8007A MP70";
pub const SERIAL: &str = "DE71234567";
pub const FIRMWARE: &str = "M.00.03";
/// The 6-byte system id (a MAC address), which medgw does not turn into an EUI-64.
const SYSTEM_ID: [u8; 6] = [0x00, 0x09, 0xFB, 0x12, 0x34, 0x56];
/// The event term of the simulated "SpO2 NO SENSOR" INOP: private (see the module doc).
pub const INOP_NO_SENSOR: u16 = 0xF0A1;
/// The event term of the simulated "LEADS OFF" INOP: MDC_EVT_LEAD_DISCONN's term (268), which
/// the decoder maps because the 10101 table has it; the term a real monitor sends for its
/// leads-off INOP was not confirmed.
pub const INOP_LEADS_OFF: u16 = 268;
/// NOM_DIM_MILLI_VOLT (the DIM term of MDC_DIM_MILLI_VOLT, 4274).
const NOM_DIM_MILLI_VOLT: u16 = 4274;
/// The waves this monitor has, in the order it sends them.
const WAVES: [u16; 2] = [wave_physio::NOM_ECG_ELEC_POTL_II, wave_physio::NOM_PLETH];
/// Sample periods in ms: ECG 500 /s, pleth 125 /s (pp. 286–287).
const ECG_PERIOD_MS: i64 = 2;
const PLETH_PERIOD_MS: i64 = 8;
/// Wave results cover at most this much (a client that polls late loses the rest).
const MAX_WAVE_WINDOW_MS: i64 = 512;
/// NBP is re-measured this often.
const NIBP_INTERVAL_MS: i64 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonState {
    Unassociated,
    AwaitCreateResult { invoke_id: u16 },
    Associated,
}

#[derive(Debug, Clone, Copy)]
struct Vitals {
    hr: i64,
    spo2: i64,
    pr: i64,
    /// Perfusion index in tenths.
    pi: i64,
    rr: i64,
    etco2: i64,
    /// Temperature in tenths of a degree Celsius.
    temp: i64,
    nibp: (i64, i64, i64),
    nibp_pulse: i64,
    nibp_at: Timestamp,
}

/// One numeric the monitor reports, before encoding.
struct Numeric {
    physio_id: u16,
    unit_code: u16,
    value: Option<Decimal>,
    state: u16,
}

/// One message of a multi-part extended poll reply.
struct Part<'a> {
    ro_type: u16,
    linked_id: Option<(u8, u8)>,
    numerics: &'a [Numeric],
    nibp: Option<&'a [Numeric; 3]>,
    handle: u16,
    sent: Vec<Sent>,
}

/// The simulated IntelliVue monitor.
#[derive(Debug)]
pub struct IntelliVueSim {
    record: bool,
    rng: Rng,
    rx: Deframer<4096>,
    /// Relative time zero.
    boot: Timestamp,
    state: MonState,
    last_rx: Timestamp,
    min_poll_ms: u64,
    min_poll_override: Option<u64>,
    connection_timeout_override: Option<u64>,
    refuse: bool,
    silence_until: Timestamp,
    bad_checksum: bool,
    truncate: bool,
    garbage: usize,
    sensor_off: bool,
    spo2_low: bool,
    lead_off: bool,
    patient_id: Option<String>,
    /// The waves selected by the client's priority list (all the monitor has by default).
    wave_list: Vec<u16>,
    /// The monitor-clock time the next wave result starts at (None: since the association).
    wave_next: Option<Timestamp>,
    wave_results: u32,
    ecg_phase: u32,
    pleth_phase: u32,
    /// Wave samples put on the wire, by physio id (only with `record`).
    waves_sent: Vec<(u16, Vec<u16>)>,
    vitals: Vitals,
    last_walk: Timestamp,
    /// The latest `now` seen.
    clock: Timestamp,
    invoke_id: u16,
    sequence: u16,
    sent: Vec<Sent>,
}

impl IntelliVueSim {
    pub fn new(opts: &SimOptions, now: Timestamp) -> IntelliVueSim {
        let mut rng = Rng::new(opts.seed);
        let vitals = Vitals {
            hr: rng.range(62, 88),
            spo2: rng.range(95, 99),
            pr: 0,
            pi: rng.range(15, 40),
            rr: rng.range(12, 18),
            etco2: rng.range(35, 42),
            temp: rng.range(363, 372),
            nibp: (0, 0, 0),
            nibp_pulse: 0,
            nibp_at: Timestamp(now.0 - now.0.rem_euclid(1000) - 40_000),
        };
        let mut sim = IntelliVueSim {
            record: opts.record,
            rng,
            rx: Deframer::new(),
            boot: Timestamp(now.0 - 3_600_000),
            state: MonState::Unassociated,
            last_rx: now,
            min_poll_ms: 1000,
            min_poll_override: None,
            connection_timeout_override: None,
            refuse: false,
            silence_until: Timestamp(i64::MIN),
            bad_checksum: false,
            truncate: false,
            garbage: 0,
            sensor_off: false,
            spo2_low: false,
            lead_off: false,
            patient_id: None,
            wave_list: WAVES.to_vec(),
            wave_next: None,
            wave_results: 0,
            ecg_phase: 0,
            pleth_phase: 0,
            waves_sent: Vec::new(),
            vitals,
            last_walk: now,
            clock: now,
            invoke_id: 0x0100,
            sequence: 0,
            sent: Vec::new(),
        };
        sim.vitals.pr = sim.vitals.hr;
        sim.measure_nibp();
        sim
    }

    /// Refuse association requests (0x0C) instead of accepting them.
    pub fn refuse_associations(&mut self, refuse: bool) {
        self.refuse = refuse;
    }

    /// Answer AARQs with this minimum poll period instead of the client's.
    pub fn set_min_poll_period_ms(&mut self, ms: Option<u64>) {
        self.min_poll_override = ms;
    }

    /// Drop a silent association after this long instead of the protocol's time-out for the
    /// negotiated poll period (tests: a long hold makes a restart without release visible).
    pub fn set_connection_timeout_ms(&mut self, ms: Option<u64>) {
        self.connection_timeout_override = ms;
    }

    fn connection_timeout(&self) -> i64 {
        self.connection_timeout_override.unwrap_or_else(|| connection_timeout_ms(self.min_poll_ms)) as i64
    }

    /// The patient the monitor has admitted (its demographics answer), or none.
    pub fn set_patient_id(&mut self, id: Option<&str>) {
        self.patient_id = id.map(String::from);
    }

    /// The raw samples of wave `physio_id` put on the wire since the last call (needs `record`).
    pub fn take_wave_samples(&mut self, physio_id: u16) -> Vec<u16> {
        self.waves_sent.iter_mut().find(|(p, _)| *p == physio_id).map(|(_, v)| core::mem::take(v)).unwrap_or_default()
    }

    /// The waves the client's priority list selected.
    pub fn wave_list(&self) -> &[u16] {
        &self.wave_list
    }

    pub fn is_associated(&self) -> bool {
        self.state == MonState::Associated
    }

    /// Aborts the association now, as a monitor does when its operator changes the
    /// configuration.
    pub fn abort_now(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 64];
        if let Ok(n) = session::encode_abort(&mut buf) {
            self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
        }
        self.state = MonState::Unassociated;
    }

    /// Relative time at `t`: 8 ticks per ms since boot, wrapping.
    fn rel(&self, t: Timestamp) -> RelativeTime {
        RelativeTime(((t.0 - self.boot.0).max(0) as u64).wrapping_mul(8) as u32)
    }

    fn measure_nibp(&mut self) {
        let r = &mut self.rng;
        let sys = r.range(108, 135);
        let dia = r.range(62, 84);
        self.vitals.nibp = (sys, dia, (sys + 2 * dia) / 3);
        self.vitals.nibp_pulse = self.vitals.hr + r.range(-2, 2);
    }

    /// Slow random walks, once a second of simulated time.
    fn walk(&mut self, now: Timestamp) {
        while now.0 - self.last_walk.0 >= 1000 {
            self.last_walk.0 += 1000;
            let r = &mut self.rng;
            let v = &mut self.vitals;
            v.hr = r.walk(v.hr, 1, 50, 130);
            v.pr = (v.hr + r.range(-1, 1)).clamp(40, 140);
            v.spo2 = r.walk(v.spo2, 1, 90, 100);
            v.pi = r.walk(v.pi, 1, 5, 80);
            v.rr = r.walk(v.rr, 1, 8, 30);
            v.etco2 = r.walk(v.etco2, 1, 30, 50);
            v.temp = r.walk(v.temp, 1, 355, 390);
            if self.last_walk.0 - v.nibp_at.0 >= NIBP_INTERVAL_MS {
                v.nibp_at = self.last_walk;
                self.measure_nibp();
            }
        }
    }

    /// Frames `user_data`, applies pending faults, and records `values` if the frame went out
    /// whole.
    fn emit(&mut self, user_data: &[u8], values: Vec<Sent>, out: &mut Vec<u8>) {
        for _ in 0..core::mem::take(&mut self.garbage) {
            out.push(self.rng.next_u64() as u8);
        }
        let mut bytes = frame::encode_vec(user_data);
        let mut whole = true;
        if core::mem::take(&mut self.bad_checksum) {
            // Flip a bit of the last FCS byte, or the nearest byte before it that neither is nor
            // becomes a delimiter or escape, so the frame stays a frame with a wrong FCS.
            let special = |b: u8| matches!(b, 0x7D | 0xC0 | 0xC1);
            if let Some(b) = bytes.iter_mut().rev().skip(1).find(|b| !special(**b) && !special(**b ^ 0x01)) {
                *b ^= 0x01;
                whole = false;
            }
        }
        if core::mem::take(&mut self.truncate) {
            bytes.truncate(bytes.len() / 2);
            whole = false;
        }
        out.extend_from_slice(&bytes);
        if whole && self.record {
            self.sent.extend(values);
        }
    }

    fn numerics(&self, reply_at: Timestamp) -> (Vec<Numeric>, [Numeric; 3], Vec<Sent>) {
        let v = &self.vitals;
        let off = self.sensor_off;
        let int = |x: i64| Some(Decimal::from_int(x as i32));
        let tenths = |x: i64| Decimal::new(x, -1);
        let oxi = |value: Option<Decimal>| if off { (None, MeasurementState::INVALID | MeasurementState::UNAVAILABLE) } else { (value, 0) };
        let mut list = Vec::with_capacity(8);
        let mut push = |physio_id: u16, unit_code: u16, (value, state): (Option<Decimal>, u16)| {
            list.push(Numeric { physio_id, unit_code, value, state });
        };
        push(physio::NOM_ECG_CARD_BEAT_RATE, dim::NOM_DIM_BEAT_PER_MIN, (int(v.hr), 0));
        let spo2 = if self.spo2_low { SPO2_LOW_VALUE } else { v.spo2 };
        push(physio::NOM_PULS_OXIM_SAT_O2, dim::NOM_DIM_PERCENT, oxi(int(spo2)));
        push(physio::NOM_PLETH_PULS_RATE, dim::NOM_DIM_BEAT_PER_MIN, oxi(int(v.pr)));
        push(physio::NOM_PULS_OXIM_PERF_REL, dim::NOM_DIM_DIMLESS, oxi(tenths(v.pi)));
        push(physio::NOM_RESP_RATE, dim::NOM_DIM_RESP_PER_MIN, (int(v.rr), 0));
        push(physio::NOM_AWAY_CO2_ET, dim::NOM_DIM_MMHG, (int(v.etco2), 0));
        push(physio::NOM_TEMP, dim::NOM_DIM_DEGC, (tenths(v.temp), 0));
        push(physio::NOM_PRESS_BLD_NONINV_PULS_RATE, dim::NOM_DIM_BEAT_PER_MIN, (int(v.nibp_pulse), 0));
        let nibp = [
            Numeric { physio_id: physio::NOM_PRESS_BLD_NONINV_SYS, unit_code: dim::NOM_DIM_MMHG, value: int(v.nibp.0), state: 0 },
            Numeric { physio_id: physio::NOM_PRESS_BLD_NONINV_DIA, unit_code: dim::NOM_DIM_MMHG, value: int(v.nibp.1), state: 0 },
            Numeric { physio_id: physio::NOM_PRESS_BLD_NONINV_MEAN, unit_code: dim::NOM_DIM_MMHG, value: int(v.nibp.2), state: 0 },
        ];
        let mut sent = Vec::new();
        if self.record {
            let metric = |physio_id: u16| crate::wire::intellivue::nomenclature::metric(physio_id).unwrap_or(MdcCode::UNMAPPED);
            let unit = crate::wire::intellivue::nomenclature::unit;
            for n in &list {
                sent.push(Sent {
                    metric: metric(n.physio_id),
                    value: n.value,
                    unit: unit(n.unit_code),
                    device_time: Some(reply_at),
                    seq: None,
                });
            }
            for n in &nibp {
                sent.push(Sent {
                    metric: metric(n.physio_id),
                    value: n.value,
                    unit: unit(n.unit_code),
                    device_time: Some(v.nibp_at),
                    seq: None,
                });
            }
        }
        (list, nibp, sent)
    }

    fn write_numeric(n: &Numeric, w: &mut Writer<'_>) -> crate::Result<()> {
        let value = n.value.and_then(encode_float).unwrap_or(FLOAT_NAN);
        NuObsValue { physio_id: n.physio_id, state: MeasurementState(n.state), unit_code: n.unit_code, value }.write(w)
    }

    /// Writes a PollInfoList of one context with `numerics` (handles from `first_handle`) and,
    /// when given, the NBP object.
    fn write_poll_info(
        &self,
        numerics: &[Numeric],
        nibp: Option<&[Numeric; 3]>,
        first_handle: u16,
        w: &mut Writer<'_>,
    ) -> crate::Result<()> {
        let objects = numerics.len() as u16 + nibp.is_some() as u16;
        w.u16(1)?;
        let list = w.begin_len()?;
        w.u16(0)?; // context id
        w.u16(objects)?;
        let ctx = w.begin_len()?;
        for (i, n) in numerics.iter().enumerate() {
            w.u16(first_handle + i as u16)?;
            attributes::write_attribute_list(w, 1, |w| attributes::write_ava(w, id::NOM_ATTR_NU_VAL_OBS, |w| Self::write_numeric(n, w)))?;
        }
        if let Some(nibp) = nibp {
            w.u16(first_handle + numerics.len() as u16)?;
            let measured = self.rel(self.vitals.nibp_at);
            attributes::write_attribute_list(w, 2, |w| {
                attributes::write_ava(w, id::NOM_ATTR_NU_CMPD_VAL_OBS, |w| {
                    w.u16(3)?;
                    let at = w.begin_len()?;
                    for n in nibp {
                        Self::write_numeric(n, w)?;
                    }
                    w.end_len(at)
                })?;
                attributes::write_ava(w, id::NOM_ATTR_TIME_STAMP_REL, |w| w.u32(measured.0))
            })?;
        }
        w.end_len(ctx)?;
        w.end_len(list)
    }

    fn write_mds_attributes(&self, now: Timestamp, w: &mut Writer<'_>) -> crate::Result<()> {
        let abs = AbsoluteTime::from_civil(&now.to_civil());
        attributes::write_attribute_list(w, 5, |w| {
            attributes::write_ava(w, id::NOM_ATTR_ID_MODEL, |w| SystemModel::write(MANUFACTURER.as_bytes(), MODEL.as_bytes(), w))?;
            attributes::write_ava(w, id::NOM_ATTR_ID_PROD_SPECN, |w| {
                ProductionSpec::write(
                    &[
                        (spec_type::SERIAL_NUMBER, ID_COMP_PRODUCT, SERIAL.as_bytes()),
                        (spec_type::SW_REVISION, ID_COMP_PRODUCT, FIRMWARE.as_bytes()),
                    ],
                    w,
                )
            })?;
            attributes::write_ava(w, id::NOM_ATTR_SYS_ID, |w| {
                w.u16(SYSTEM_ID.len() as u16)?;
                w.put(&SYSTEM_ID)
            })?;
            attributes::write_ava(w, id::NOM_ATTR_TIME_ABS, |w| w.put(&abs.0))?;
            attributes::write_ava(w, id::NOM_ATTR_TIME_REL, |w| w.u32(self.rel(now).0))
        })
    }

    fn send_mds_create(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        self.invoke_id = self.invoke_id.wrapping_add(1);
        let invoke_id = self.invoke_id;
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        let ok = pdu::write_operation(&mut w, ro::ROIV, None, invoke_id, command::CONFIRMED_EVENT_REPORT, |w| {
            pdu::write_event_report(w, &ManagedObjectId::MDS, self.rel(now), pdu::NOM_NOTI_MDS_CREAT, |w| {
                ManagedObjectId::MDS.write(w)?;
                self.write_mds_attributes(now, w)
            })
        });
        let n = w.len();
        if ok.is_ok() {
            self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
            self.state = MonState::AwaitCreateResult { invoke_id };
        }
    }

    fn send_short(&mut self, encode: fn(&mut [u8]) -> crate::Result<usize>, out: &mut Vec<u8>) {
        let mut buf = [0u8; 64];
        if let Ok(n) = encode(&mut buf) {
            self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
        }
    }

    /// Writes one poll result APDU; `body` writes the poll info list.
    #[allow(clippy::too_many_arguments)]
    fn write_reply(
        &self,
        w: &mut Writer<'_>,
        ro_type: u16,
        linked_id: Option<(u8, u8)>,
        invoke_id: u16,
        action_type: u16,
        req: &PollRequest<'_>,
        reply_at: Timestamp,
        body: impl FnOnce(&mut Writer<'_>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        pdu::write_operation(w, ro_type, linked_id, invoke_id, command::CONFIRMED_ACTION, |w| {
            pdu::write_action_result(w, &ManagedObjectId::MDS, action_type, |w| {
                w.u16(req.poll_number)?;
                if action_type == action::NOM_ACT_POLL_MDIB_DATA_EXT {
                    w.u16(self.sequence)?;
                }
                w.u32(self.rel(reply_at).0)?;
                w.put(&AbsoluteTime::from_civil(&reply_at.to_civil()).0)?;
                req.obj_type.write(w)?;
                w.u16(req.attr_group)?;
                body(w)
            })
        })
    }

    fn answer_poll(&mut self, invoke_id: u16, action_type: u16, req: &PollRequest<'_>, now: Timestamp, out: &mut Vec<u8>) {
        self.walk(now);
        let reply_at = Timestamp(now.0 - now.0.rem_euclid(1000));
        let mut buf = [0u8; 2048];
        if req.obj_type == ObjectType::MDS {
            let mut w = Writer::new(&mut buf);
            let ok = self.write_reply(&mut w, ro::RORS, None, invoke_id, action_type, req, reply_at, |w| {
                w.u16(1)?;
                let list = w.begin_len()?;
                w.u16(0)?;
                w.u16(1)?;
                let ctx = w.begin_len()?;
                w.u16(0)?; // MDS handle
                self.write_mds_attributes(reply_at, w)?;
                w.end_len(ctx)?;
                w.end_len(list)
            });
            let n = w.len();
            if ok.is_ok() {
                self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
            }
            return;
        }
        if req.obj_type == ObjectType::ALERT_MONITOR || req.obj_type == ObjectType::PATIENT_DEMOGRAPHICS || req.obj_type == wv::WAVES {
            let waves = req.obj_type == wv::WAVES;
            let (start, end) = if waves { self.wave_window(now) } else { (reply_at, reply_at) };
            let wave_objects = if waves { self.wave_objects(start, end) } else { Vec::new() };
            let mut w = Writer::new(&mut buf);
            let ok = self.write_reply(&mut w, ro::RORS, None, invoke_id, action_type, req, if waves { start } else { reply_at }, |w| {
                w.u16(1)?;
                let list = w.begin_len()?;
                w.u16(0)?; // context id
                if req.obj_type == ObjectType::ALERT_MONITOR {
                    w.u16(1)?;
                    let ctx = w.begin_len()?;
                    w.u16(1)?; // the alert monitor's handle
                    self.write_alarm_lists(w)?;
                    w.end_len(ctx)?;
                } else if req.obj_type == ObjectType::PATIENT_DEMOGRAPHICS {
                    w.u16(1)?;
                    let ctx = w.begin_len()?;
                    w.u16(2)?; // the demographics object's handle
                    self.write_demographics(w)?;
                    w.end_len(ctx)?;
                } else {
                    w.put(&wave_objects)?;
                }
                w.end_len(list)
            });
            let n = w.len();
            if ok.is_ok() {
                self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
                if waves {
                    self.wave_next = Some(end);
                    self.wave_results = self.wave_results.wrapping_add(1);
                }
            }
            return;
        }
        if req.obj_type != ObjectType::NUMERICS {
            // Other object classes: an empty reply.
            let mut w = Writer::new(&mut buf);
            let ok = self.write_reply(&mut w, ro::RORS, None, invoke_id, action_type, req, reply_at, |w| {
                w.u16(0)?;
                w.u16(0)
            });
            let n = w.len();
            if ok.is_ok() {
                self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
            }
            return;
        }
        let (list, nibp, sent) = self.numerics(reply_at);
        if action_type == action::NOM_ACT_POLL_MDIB_DATA {
            let mut w = Writer::new(&mut buf);
            let ok = self.write_reply(&mut w, ro::RORS, None, invoke_id, action_type, req, reply_at, |w| {
                self.write_poll_info(&list, Some(&nibp), 1, w)
            });
            let n = w.len();
            if ok.is_ok() {
                self.emit(buf.get(..n).unwrap_or(&[]), sent, out);
            }
            return;
        }
        self.sequence = self.sequence.wrapping_add(1);
        let half = list.len() / 2;
        let (first, second) = list.split_at(half);
        let split = sent.len().min(half);
        let mut sent_first = sent;
        let sent_second = sent_first.split_off(split);
        let parts = [
            Part { ro_type: ro::ROLRS, linked_id: Some((linked::FIRST, 1)), numerics: first, nibp: None, handle: 1, sent: sent_first },
            Part {
                ro_type: ro::ROLRS,
                linked_id: Some((linked::LAST, 2)),
                numerics: second,
                nibp: Some(&nibp),
                handle: 1 + half as u16,
                sent: sent_second,
            },
            Part { ro_type: ro::RORS, linked_id: None, numerics: &[], nibp: None, handle: 0, sent: Vec::new() },
        ];
        for Part { ro_type, linked_id, numerics, nibp, handle, sent } in parts {
            let mut w = Writer::new(&mut buf);
            let ok = self.write_reply(&mut w, ro_type, linked_id, invoke_id, action_type, req, reply_at, |w| {
                if numerics.is_empty() && nibp.is_none() {
                    w.u16(0)?;
                    w.u16(0)
                } else {
                    self.write_poll_info(numerics, nibp, handle, w)
                }
            });
            let n = w.len();
            if ok.is_ok() {
                self.emit(buf.get(..n).unwrap_or(&[]), sent, out);
            }
        }
    }

    fn handle_data(&mut self, apdu: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        let Ok(apdu) = pdu::parse_apdu(apdu) else { return };
        match (self.state, apdu) {
            (MonState::AwaitCreateResult { invoke_id }, Apdu::Result { invoke_id: got, command: command::CONFIRMED_EVENT_REPORT, .. })
                if got == invoke_id =>
            {
                self.state = MonState::Associated;
            }
            (MonState::Associated, Apdu::Invoke { invoke_id, command: command::CONFIRMED_ACTION, argument }) => {
                let req = pdu::ActionArgument::parse(argument)
                    .ok()
                    .and_then(|a| PollRequest::parse(a.action_type, a.body).ok().map(|r| (a.action_type, r)));
                match req {
                    Some((action_type, req)) => self.answer_poll(invoke_id, action_type, &req, now, out),
                    None => self.send_error(invoke_id, 9, out),
                }
            }
            (MonState::Associated, Apdu::Invoke { invoke_id, command: command::CONFIRMED_SET, argument }) => {
                self.answer_set(invoke_id, argument, out)
            }
            (MonState::Associated, Apdu::Invoke { invoke_id, .. }) => self.send_error(invoke_id, 9, out),
            // A late or repeated result while associated: nothing to do.
            (MonState::Associated, _) => {}
            // Data export before the association is complete: abort (see module doc).
            (_, _) => {
                self.send_short(session::encode_abort, out);
                self.state = MonState::Unassociated;
            }
        }
    }

    fn send_error(&mut self, invoke_id: u16, error_value: u16, out: &mut Vec<u8>) {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        if pdu::write_error(&mut w, invoke_id, error_value).is_ok() {
            let n = w.len();
            self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
        }
    }

    fn handle_frame(&mut self, user_data: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        let Ok(spdu) = session::parse(user_data) else { return };
        if !matches!(spdu, Spdu::Connect(_)) || self.state == MonState::Unassociated {
            // A refused AARQ is not traffic of the association that is up (see module doc).
            self.last_rx = now;
        }
        match spdu {
            Spdu::Connect(info) => {
                if self.state != MonState::Unassociated || self.refuse {
                    self.send_short(session::encode_refuse, out);
                    return;
                }
                let requested = info.and_then(|i| i.poll_profile).map(|p| p.min_poll_period.as_millis()).unwrap_or(1000);
                self.min_poll_ms = self.min_poll_override.unwrap_or(requested);
                let mut profile = PollProfile::client(RelativeTime::from_millis(self.min_poll_ms));
                profile.max_mtu_rx = 1000;
                profile.max_mtu_tx = 2500;
                let mut buf = [0u8; 512];
                if let Ok(n) = session::encode_aare(&profile, &mut buf) {
                    self.wave_list = WAVES.to_vec();
                    self.wave_next = None;
                    self.wave_results = 0;
                    self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
                    self.send_mds_create(now, out);
                }
            }
            Spdu::ReleaseRequest => {
                if self.state != MonState::Unassociated {
                    self.send_short(session::encode_release_response, out);
                    self.state = MonState::Unassociated;
                }
            }
            Spdu::Abort => self.state = MonState::Unassociated,
            Spdu::Data { apdu, .. } => self.handle_data(apdu, now, out),
            Spdu::Accept(_) | Spdu::Refuse | Spdu::ReleaseResponse => {}
        }
    }
}

impl IntelliVueSim {
    /// The alert monitor's two lists (`alarms.rs` layout).
    fn write_alarm_lists(&self, w: &mut Writer<'_>) -> crate::Result<()> {
        struct Entry<'a> {
            source: u16,
            code: u16,
            alert_type: u16,
            text: &'a str,
        }
        let mut low_text = String::new();
        let mut p = Vec::new();
        if self.spo2_low && !self.sensor_off {
            use core::fmt::Write as _;
            let _ = write!(low_text, "**SpO2 {SPO2_LOW_VALUE}<{SPO2_LOW_LIMIT}");
            p.push(Entry { source: physio::NOM_PULS_OXIM_SAT_O2, code: 62, alert_type: alert_type::HI_PRI_P_AL, text: &low_text });
        }
        let mut t = Vec::new();
        if self.sensor_off {
            t.push(Entry {
                source: physio::NOM_PULS_OXIM_SAT_O2,
                code: INOP_NO_SENSOR,
                alert_type: alert_type::MED_PRI_T_AL,
                text: "SpO2 NO SENSOR",
            });
        }
        if self.lead_off {
            t.push(Entry {
                source: physio::NOM_ECG_CARD_BEAT_RATE,
                code: INOP_LEADS_OFF,
                alert_type: alert_type::MED_PRI_T_AL,
                text: "LEADS OFF",
            });
        }
        let list = |w: &mut Writer<'_>, entries: &[Entry<'_>]| -> crate::Result<()> {
            w.u16(entries.len() as u16)?;
            let at = w.begin_len()?;
            for (i, e) in entries.iter().enumerate() {
                w.u16(e.source)?;
                w.u16(e.code)?;
                w.u16(e.alert_type)?;
                w.u16(0)?; // state
                ManagedObjectId { class: pdu::class::NOM_MOC_VMO_METRIC_NU, context_id: 0, handle: 2 }.write(w)?;
                w.u16(al::STR_ALMON_INFO)?;
                let info = w.begin_len()?;
                w.u16(i as u16 + 1)?; // al_inst_no
                w.u32(0)?; // al_text
                w.u16(0)?; // priority
                w.u16(0)?; // flags
                demographics::write_string(w, e.text)?;
                w.end_len(info)?;
            }
            w.end_len(at)
        };
        attributes::write_attribute_list(w, 2, |w| {
            attributes::write_ava(w, al::NOM_ATTR_AL_MON_P_AL_LIST, |w| list(w, &p))?;
            attributes::write_ava(w, al::NOM_ATTR_AL_MON_T_AL_LIST, |w| list(w, &t))
        })
    }

    fn write_demographics(&self, w: &mut Writer<'_>) -> crate::Result<()> {
        match &self.patient_id {
            Some(pid) => attributes::write_attribute_list(w, 2, |w| {
                attributes::write_ava(w, demographics::NOM_ATTR_PT_DEMOG_ST, |w| w.u16(demographics::state::ADMITTED))?;
                attributes::write_ava(w, demographics::NOM_ATTR_PT_ID, |w| demographics::write_string(w, pid))
            }),
            None => attributes::write_attribute_list(w, 1, |w| {
                attributes::write_ava(w, demographics::NOM_ATTR_PT_DEMOG_ST, |w| w.u16(demographics::state::EMPTY))
            }),
        }
    }

    /// The monitor-clock span the next wave result covers: from where the last one ended (or
    /// 256 ms back at the first) to the last 8 ms boundary, at most 512 ms.
    fn wave_window(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let align = |t: Timestamp| Timestamp(t.0 - (t.0 - self.boot.0).rem_euclid(PLETH_PERIOD_MS));
        let end = align(now);
        let start = self.wave_next.unwrap_or(Timestamp(end.0 - wv::WAVE_POLL_PERIOD_MS)).max(Timestamp(end.0 - MAX_WAVE_WINDOW_MS));
        (start.min(end), end)
    }

    /// The selected wave objects: the SingleContextPoll's count, length and observations.
    fn wave_objects(&mut self, start: Timestamp, end: Timestamp) -> Vec<u8> {
        let mut buf = alloc::vec![0u8; 1536];
        let mut w = Writer::new(&mut buf);
        let n = match self.write_waves(start, end, &mut w) {
            Ok(()) => w.len(),
            Err(_) => 0,
        };
        buf.truncate(n);
        if n == 0 {
            buf.extend_from_slice(&[0, 0, 0, 0]);
        }
        buf
    }

    fn write_waves(&mut self, start: Timestamp, end: Timestamp, w: &mut Writer<'_>) -> crate::Result<()> {
        let span = end.0 - start.0;
        let context = self.wave_results % 4 == 0;
        let list = self.wave_list.clone();
        w.u16(list.len() as u16)?;
        let ctx_len = w.begin_len()?;
        for physio_id in list {
            let ecg = physio_id == wave_physio::NOM_ECG_ELEC_POTL_II;
            let period = if ecg { ECG_PERIOD_MS } else { PLETH_PERIOD_MS };
            let n = (span / period) as usize;
            let rate = if ecg { self.vitals.hr } else { self.vitals.pr }.max(1) as u32;
            // Beat phase advance per sample, in 1/65536 of a beat.
            let step = rate * 65536 * period as u32 / 60_000;
            let invalid = !ecg && self.sensor_off;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let v = if ecg {
                    self.ecg_phase = (self.ecg_phase + step) % 65536;
                    (2048 + crate::wave::shape::ecg_ii(self.ecg_phase) / 5).clamp(0, 4095) as u16
                } else {
                    self.pleth_phase = (self.pleth_phase + step) % 65536;
                    if invalid {
                        0
                    } else {
                        (crate::wave::shape::pleth(self.pleth_phase) * 4) as u16
                    }
                };
                samples.push(v);
            }
            let mut bytes = Vec::with_capacity(n * 2);
            for v in &samples {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            if self.record {
                match self.waves_sent.iter_mut().find(|(p, _)| *p == physio_id) {
                    Some((_, v)) => v.extend_from_slice(&samples),
                    None => self.waves_sent.push((physio_id, samples)),
                }
            }
            w.u16(if ecg { 0x0201 } else { 0x0202 })?; // handle
            let count = if context { 5 } else { 1 };
            attributes::write_attribute_list(w, count, |w| {
                if context {
                    attributes::write_ava(w, wv::id::NOM_ATTR_TIME_PD_SAMP, |w| w.u32(period as u32 * 8))?;
                    attributes::write_ava(w, wv::id::NOM_ATTR_SA_SPECN, |w| {
                        SaSpec { array_size: n as u16, sample_size: 16, significant_bits: 12, flags: SaSpec::STATIC_SCALE }.write(w)
                    })?;
                    let (lower, upper, unit) = if ecg {
                        (Decimal::new(-1024, -2).and_then(encode_float), Decimal::new(10235, -3).and_then(encode_float), NOM_DIM_MILLI_VOLT)
                    } else {
                        (Some(FLOAT_NAN), Some(FLOAT_NAN), dim::NOM_DIM_DIMLESS)
                    };
                    attributes::write_ava(w, wv::id::NOM_ATTR_SCALE_SPECN_I16, |w| {
                        ScaleRangeSpec16 {
                            lower_absolute: lower.unwrap_or(FLOAT_NAN),
                            upper_absolute: upper.unwrap_or(FLOAT_NAN),
                            lower_scaled: 0,
                            upper_scaled: 4095,
                        }
                        .write(w)
                    })?;
                    attributes::write_ava(w, wv::id::NOM_ATTR_UNIT_CODE, |w| w.u16(unit))?;
                }
                let state = MeasurementState(if invalid { MeasurementState::INVALID } else { 0 });
                attributes::write_ava(w, wv::id::NOM_ATTR_SA_VAL_OBS, |w| SaObsValue { physio_id, state, array: &bytes }.write(w))
            })?;
        }
        w.end_len(ctx_len)
    }

    /// A SET of the wave priority list: keeps the waves this monitor has (others are dropped
    /// without a word, p. 287) and answers with the list as set. Other SETs: "no such action"
    /// would be wrong for a SET; ROER invalid argument value (15).
    fn answer_set(&mut self, invoke_id: u16, argument: &[u8], out: &mut Vec<u8>) {
        let mut list = None;
        if let Ok((_object, mods)) = pdu::parse_set_argument(argument) {
            for m in mods.flatten() {
                if m.attribute_id == wv::NOM_ATTR_POLL_RTSA_PRIO_LIST && m.operator == pdu::MODIFY_REPLACE {
                    if let Ok(ids) = wv::text_id_list(m.value) {
                        list = Some(ids.filter(|p| WAVES.contains(p)).take(wv::MAX_WAVES).collect::<Vec<u16>>());
                    }
                }
            }
        }
        let Some(list) = list else { return self.send_error(invoke_id, 15, out) };
        self.wave_list = list;
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        let waves = self.wave_list.clone();
        let ok = pdu::write_operation(&mut w, ro::RORS, None, invoke_id, command::CONFIRMED_SET, |w| {
            ManagedObjectId::MDS.write(w)?;
            attributes::write_attribute_list(w, 1, |w| {
                attributes::write_ava(w, wv::NOM_ATTR_POLL_RTSA_PRIO_LIST, |w| wv::write_text_id_list(w, &waves))
            })
        });
        let n = w.len();
        if ok.is_ok() {
            self.emit(buf.get(..n).unwrap_or(&[]), Vec::new(), out);
        }
    }
}

impl DeviceSimulator for IntelliVueSim {
    fn protocol(&self) -> &'static str {
        "intellivue"
    }

    fn receive(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        self.clock = self.clock.max(now);
        if now < self.silence_until {
            return;
        }
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for &b in bytes {
            if let FrameEvent::Frame { user_data, .. } = self.rx.push(b) {
                frames.push(user_data.to_vec());
            }
        }
        for f in frames {
            self.handle_frame(&f, now, out);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        self.clock = self.clock.max(now);
        self.walk(now);
        if now < self.silence_until {
            return;
        }
        if self.state != MonState::Unassociated && now.0 - self.last_rx.0 > self.connection_timeout() {
            self.send_short(session::encode_abort, out);
            self.state = MonState::Unassociated;
        }
    }

    fn next_tick(&self) -> Timestamp {
        let mut t = Timestamp(self.last_walk.0 + 1000);
        if self.state != MonState::Unassociated {
            t = t.min(Timestamp(self.last_rx.0 + self.connection_timeout() + 1));
        }
        t.max(self.silence_until)
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::BadChecksum => self.bad_checksum = true,
            Fault::Truncate => self.truncate = true,
            Fault::Garbage(n) => self.garbage = self.garbage.saturating_add(n),
            Fault::SensorOff(off) => self.sensor_off = off,
            Fault::Silence(ms) => self.silence_until = Timestamp(self.clock.0 + ms as i64),
            Fault::Spo2Low(low) => self.spo2_low = low,
            Fault::LeadOff(off) => self.lead_off = off,
        }
    }

    fn take_sent(&mut self) -> Vec<Sent> {
        core::mem::take(&mut self.sent)
    }

    fn set_session_timeout_ms(&mut self, ms: u64) {
        self.set_connection_timeout_ms(Some(ms));
    }

    fn set_patient_id(&mut self, id: Option<&str>) {
        IntelliVueSim::set_patient_id(self, id);
    }
}
