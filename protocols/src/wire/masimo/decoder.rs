//! The Masimo ASCII 1 stream decoder (`masimo`).
//!
//! Each line gives one measurement per known numeric tag, in line order, stamped with the
//! line's own time as a [`DeviceTime::Local`] (the line carries no zone; the gateway applies the
//! device's configured zone), and `SN=` gives an identity event when it is first seen or
//! changes. Tag → code:
//!
//! | tag     | metric                         | unit                                       |
//! |---------|--------------------------------|--------------------------------------------|
//! | SPO2    | MDC_PULS_OXIM_SAT_O2           | % (MDC_DIM_PERCENT)                        |
//! | BPM     | MDC_PULS_OXIM_PULS_RATE        | /min (MDC_DIM_BEAT_PER_MIN)                |
//! | PI      | MDC_PULS_OXIM_PERF_REL         | %                                          |
//! | SPCO    | unmapped (`masimo`, `SPCO`)    | % (the line writes `%`)                    |
//! | SPMET   | unmapped (`masimo`, `SPMET`)   | % (the line writes `%`)                    |
//! | PVI     | unmapped (`masimo`, `PVI`)     | % (PVI is (PImax − PImin)/PImax × 100)     |
//! | DESAT   | unmapped (`masimo`, `DESAT`)   | dimensionless (an index)                   |
//! | PIDELTA | unmapped (`masimo`, `PIDELTA`) | dimensionless (no unit on the line)        |
//! | SPHB    | unmapped (`masimo`, `SPHB`)    | unknown: g/dL, g/L or mmol/L as configured |
//! | SPOC    | unmapped (`masimo`, `SPOC`)    | unknown, follows the SpHb unit setting     |
//!
//! No IEEE 11073-10101 code for SpCO, SpMet, PVI, the desaturation index, ΔPI, SpHb or SpOC
//! could be confirmed from two sources, so they are published unmapped with their vendor code
//! (a site maps them through the nomenclature override). Where the unit is unknown, the unit is
//! [`MdcCode::UNMAPPED`] too, rather than a guess. Every measurement carries its vendor code
//! (`masimo`, tag), mapped or not, so a site can also correct a mapping.
//!
//! Alarms: the ALARM and EXC words also become an [`Event::Alarms`] report (scope all), sent
//! for the first line after (re)start and whenever either word changes (table in
//! [`alarm_conditions`]).
//!
//! Quality: the EXC and ALARM words of the same line set flags on every value (see
//! [`super::status`]). A line is decoded whole or not at all: one field that does not parse
//! means the line is damaged (the format has no checksum), and its other values are not
//! trusted either; so does a percentage outside 0–100 ([`Error::Implausible`]). The line's
//! syntax is the format's only guard, and it is a strong one: a line needs a valid
//! `MM/DD/YY HH:MM:SS` time stamp and `TAG=value` fields whose values parse, which random bytes
//! and the binary or differently framed output of the other protocols do not produce
//! (`tests/hostile.rs` feeds both). So Masimo needs no lock or rate gate.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::line::{looks_like_timestamp, parse_hex, parse_number, record_start, Line, Reading, Tag, ALARM_WIDTHS, EXC_WIDTHS};
use super::status::{self as st, alarm_flags, exc_flags};
use crate::alarm::{codes, AlarmCondition, AlarmKind, AlarmReport, Inactivation, ReportScope};
use crate::decode::{push_event, Decoder, DecoderOptions, Event};
use crate::error::Error;
use crate::framing::{LineAccumulator, LineEvent};
use crate::mdc::{code, unit, MdcCode};
use crate::observation::VendorCode;
use crate::observation::{AbsentReason, DeviceIdentity, Flags, Measurement};
use crate::time::{DeviceTime, Timestamp};

/// The longest line kept: the longest reference line (Radical-7 with SpHb, SpOC and EXC1) is
/// under 250 bytes.
pub const MAX_LINE: usize = 512;
/// The longest serial number accepted (the reference lines have 10 digits).
pub const MAX_SERIAL: usize = 32;

/// The metric, unit and whether the tag is mapped to MDC (table above).
pub fn mapping(tag: Tag) -> (MdcCode, MdcCode) {
    match tag {
        Tag::Spo2 => (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT),
        Tag::Bpm => (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN),
        Tag::Pi => (code::MDC_PULS_OXIM_PERF_REL, unit::MDC_DIM_PERCENT),
        Tag::Spco | Tag::Spmet | Tag::Pvi => (MdcCode::UNMAPPED, unit::MDC_DIM_PERCENT),
        Tag::Desat | Tag::Pidelta => (MdcCode::UNMAPPED, unit::MDC_DIM_DIMLESS),
        Tag::Sphb | Tag::Spoc | Tag::Sn | Tag::Alarm | Tag::Exc => (MdcCode::UNMAPPED, MdcCode::UNMAPPED),
    }
}

/// The measurement of one numeric field.
pub fn measurement(tag: Tag, reading: Reading, time: DeviceTime, flags: Flags) -> Measurement {
    let (metric, unit) = mapping(tag);
    let m = match reading {
        Reading::Number(d) => Measurement::numeric(metric, d, unit),
        Reading::Absent => Measurement::absent(metric, AbsentReason::Unavailable, unit),
    };
    let flags = if metric.is_unmapped() { flags | Flags::UNMAPPED } else { flags };
    m.with_vendor("masimo", tag.name()).with_time(Some(time)).with_flags(flags)
}

/// A serial number: printable ASCII without spaces; all dashes means "not given".
fn parse_serial(value: &[u8]) -> Result<Option<&str>, Error> {
    let bad = Error::BadText { field: "SN" };
    if value.is_empty() || value.len() > MAX_SERIAL || !value.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad);
    }
    if value.iter().all(|&b| b == b'-') {
        return Ok(None);
    }
    core::str::from_utf8(value).map(Some).map_err(|_| bad)
}

/// The line has no checksum, so a value the device cannot send marks the line damaged: SpO2,
/// PI, SpCO and SpMet are percentages of a whole (0–100).
fn plausible(tag: Tag, d: crate::decimal::Decimal) -> Result<(), Error> {
    let v = d.to_f64();
    if tag.percent() && !(0.0..=100.0).contains(&v) {
        return Err(Error::Implausible { field: tag.name(), value: v.clamp(0.0, u32::MAX as f64) as u32 });
    }
    Ok(())
}

/// What one line said, checked in full before anything is emitted.
struct Record<'a> {
    time: DeviceTime,
    serial: Option<&'a str>,
    alarm: u32,
    exc: u32,
    readings: [(Tag, Reading); Tag::ALL.len()],
    count: usize,
}

fn parse_record(rec: &[u8]) -> Result<Record<'_>, Error> {
    let line = Line::parse(rec)?;
    let time = DeviceTime::Local(line.time.to_timestamp()?);
    let mut r = Record { time, serial: None, alarm: 0, exc: 0, readings: [(Tag::Sn, Reading::Absent); Tag::ALL.len()], count: 0 };
    let mut seen = [false; Tag::ALL.len()];
    for field in line.fields() {
        let (name, value) = field?;
        let Some(tag) = Tag::from_bytes(name) else { continue };
        let i = Tag::ALL.iter().position(|&t| t == tag).unwrap_or(0);
        if core::mem::replace(&mut seen[i], true) {
            return Err(Error::BadText { field: "masimo duplicate tag" });
        }
        match tag {
            Tag::Sn => r.serial = parse_serial(value)?,
            Tag::Alarm => r.alarm = parse_hex(tag, value, ALARM_WIDTHS)?,
            Tag::Exc => r.exc = parse_hex(tag, value, EXC_WIDTHS)?,
            _ => {
                let reading = parse_number(tag, value)?;
                if let Reading::Number(d) = reading {
                    plausible(tag, d)?;
                }
                if let Some(slot) = r.readings.get_mut(r.count) {
                    *slot = (tag, reading);
                    r.count += 1;
                }
            }
        }
    }
    Ok(r)
}

/// ALARM bits → conditions (MD PnP `poxrad_discrete.h`; bits 0–5 agree with remkolems' Rad-8
/// experiments; [PARTLY UNCONFIRMED], see [`super::status`]): (bit, text, kind, event code,
/// source tag). Limit alarms use MDC_EVT_HI / MDC_EVT_LO with the parameter as source.
const ALARM_BITS: &[(u32, &str, AlarmKind, crate::mdc::MdcCode, Option<Tag>)] = &[
    (st::ALARM_SPO2_HIGH, "SpO2 high", AlarmKind::Physiological, codes::MDC_EVT_HI, Some(Tag::Spo2)),
    (st::ALARM_SPO2_LOW, "SpO2 low", AlarmKind::Physiological, codes::MDC_EVT_LO, Some(Tag::Spo2)),
    (st::ALARM_PR_HIGH, "pulse rate high", AlarmKind::Physiological, codes::MDC_EVT_HI, Some(Tag::Bpm)),
    (st::ALARM_PR_LOW, "pulse rate low", AlarmKind::Physiological, codes::MDC_EVT_LO, Some(Tag::Bpm)),
    (st::ALARM_LOW_BATTERY, "low battery", AlarmKind::Technical, MdcCode::UNMAPPED, None),
    (st::ALARM_SPCO_HIGH, "SpCO high", AlarmKind::Physiological, codes::MDC_EVT_HI, Some(Tag::Spco)),
    (st::ALARM_SPCO_LOW, "SpCO low", AlarmKind::Physiological, codes::MDC_EVT_LO, Some(Tag::Spco)),
    (st::ALARM_SPMET_HIGH, "SpMet high", AlarmKind::Physiological, codes::MDC_EVT_HI, Some(Tag::Spmet)),
    (st::ALARM_SPMET_LOW, "SpMet low", AlarmKind::Physiological, codes::MDC_EVT_LO, Some(Tag::Spmet)),
    (st::ALARM_DESAT_INDEX, "desaturation index", AlarmKind::Physiological, MdcCode::UNMAPPED, Some(Tag::Desat)),
    (st::ALARM_PI_DELTA, "PI rate of change", AlarmKind::Physiological, MdcCode::UNMAPPED, Some(Tag::Pidelta)),
];

/// EXC bits → technical alerts (Rad-8 Operator's Manual p. 4-24, MD PnP; see
/// [`super::status`]). 0x000800 (Masimo SET running) is the normal state and no alert.
const EXC_BITS: &[(u32, &str)] = &[
    (st::EXC_NO_SENSOR, "No Sensor"),
    (st::EXC_DEFECTIVE_SENSOR, "Defective Sensor"),
    (st::EXC_LOW_PERFUSION, "Low Perfusion"),
    (st::EXC_PULSE_SEARCH, "Pulse Search"),
    (st::EXC_INTERFERENCE, "Interference"),
    (st::EXC_SENSOR_OFF, "Sensor Off"),
    (st::EXC_AMBIENT_LIGHT, "Ambient Light"),
    (st::EXC_UNRECOGNIZED_SENSOR, "Unrecognized Sensor"),
    (st::EXC_INCOMPATIBLE_SENSOR, "Incompatible Sensor"),
    (st::EXC_LOW_SIGNAL_IQ, "Low Signal IQ"),
    (st::EXC_NO_CABLE, "No Cable"),
    (st::EXC_CABLE_LIFE_EXPIRED, "Cable Life Expired"),
    (st::EXC_INCOMPATIBLE_CABLE, "Incompatible Cable"),
    (st::EXC_UNRECOGNIZED_CABLE, "Unrecognized Cable"),
    (st::EXC_DEFECTIVE_CABLE, "Defective Cable"),
    (st::EXC_SENSOR_CALIBRATING, "Sensor Calibrating"),
    (st::EXC_SENSOR_LIFE_EXPIRED, "Sensor Life Expired"),
    (st::EXC_EMITTER_TEMP, "Emitter Temp Out of Range"),
    (st::EXC_CURRENT_LIMIT, "Sensor Current Limit Exceeded"),
    (st::EXC_SPCO_LOW_CONFIDENCE, "SpCO Low Confidence"),
    (st::EXC_SPMET_LOW_CONFIDENCE, "SpMET Low Confidence"),
];

/// The alarm conditions of one line's ALARM and EXC words. Vendor codes are `ALARM:hhhh` and
/// `EXC:hhhhhh` (the bit, in the line's hex). Bits the tables do not know are passed through
/// unchanged as conditions of their own (ALARM: physiological, since the word is the alarm
/// word and over-reporting is safer; EXC: technical), so nothing the device says is lost.
/// 0x0010 "alarm active" with no parameter bit becomes one generic MDC_EVT_ALARM condition;
/// 0x0020 "alarm silenced" sets every condition's inactivation to audio-paused. The line has
/// no priorities and no limits: priority is `None`. The triggering value is the same line's
/// value of the source parameter.
pub fn alarm_conditions(alarm: u32, exc: u32, readings: &[(Tag, Reading)]) -> Vec<AlarmCondition> {
    let value = |tag: Tag| {
        readings.iter().find(|(t, _)| *t == tag).and_then(|(_, r)| match r {
            Reading::Number(d) => Some(*d),
            Reading::Absent => None,
        })
    };
    let vendor = |word: &str, width: usize, bit: u32| VendorCode {
        namespace: "masimo".into(),
        code: alloc::format!("{word}:{bit:0width$X}").into(),
    };
    let mut out = Vec::new();
    let mut known = st::ALARM_ACTIVE | st::ALARM_SILENCED;
    for &(bit, text, kind, code, tag) in ALARM_BITS {
        known |= bit;
        if alarm & bit == 0 {
            continue;
        }
        let (source, unit) = tag.map(mapping).unwrap_or((MdcCode::UNMAPPED, MdcCode::UNMAPPED));
        let c = AlarmCondition::new(code, vendor("ALARM", 4, bit), source, kind, text).with_value(tag.and_then(value), unit);
        out.push(c);
    }
    for b in 0..32 {
        let bit = 1u32 << b;
        if alarm & bit != 0 && known & bit == 0 {
            let text = alloc::format!("unknown alarm bit 0x{bit:04X}");
            out.push(AlarmCondition::new(MdcCode::UNMAPPED, vendor("ALARM", 4, bit), MdcCode::UNMAPPED, AlarmKind::Physiological, text));
        }
    }
    if alarm & st::ALARM_ACTIVE != 0 && out.iter().all(|c| c.kind != AlarmKind::Physiological) {
        let c = AlarmCondition::new(
            codes::MDC_EVT_ALARM,
            vendor("ALARM", 4, st::ALARM_ACTIVE),
            MdcCode::UNMAPPED,
            AlarmKind::Physiological,
            "alarm active (not specified)",
        );
        out.push(c);
    }
    let mut known_exc = st::EXC_MASIMO_SET;
    for &(bit, text) in EXC_BITS {
        known_exc |= bit;
        if exc & bit != 0 {
            out.push(AlarmCondition::new(MdcCode::UNMAPPED, vendor("EXC", 6, bit), MdcCode::UNMAPPED, AlarmKind::Technical, text));
        }
    }
    for b in 0..32 {
        let bit = 1u32 << b;
        if exc & bit != 0 && known_exc & bit == 0 {
            let text = alloc::format!("unknown exception bit 0x{bit:06X}");
            out.push(AlarmCondition::new(MdcCode::UNMAPPED, vendor("EXC", 6, bit), MdcCode::UNMAPPED, AlarmKind::Technical, text));
        }
    }
    if alarm & st::ALARM_SILENCED != 0 {
        for c in &mut out {
            c.inactivation = Inactivation::AudioPaused;
        }
    }
    out
}

/// Decodes one line (without its terminator) that started at stream offset `offset`.
fn decode_line(line: &[u8], offset: u64, last_serial: &mut Option<String>, last_words: &mut Option<(u32, u32)>, out: &mut Vec<Event>) {
    let Some(start) = record_start(line) else {
        out.push(Event::Rejected { offset, error: Error::BadText { field: "masimo timestamp" } });
        return;
    };
    if start > 0 {
        // The bytes before this line's timestamp: a line cut short, or garbage.
        let error =
            if looks_like_timestamp(line) { Error::BadText { field: "masimo line cut short" } } else { Error::Garbage { skipped: start } };
        out.push(Event::Rejected { offset, error });
    }
    let at = offset + start as u64;
    let record = match parse_record(line.get(start..).unwrap_or(&[])) {
        Ok(r) => r,
        Err(error) => {
            out.push(Event::Rejected { offset: at, error });
            return;
        }
    };
    if let Some(sn) = record.serial {
        if last_serial.as_deref() != Some(sn) {
            *last_serial = Some(String::from(sn));
            out.push(Event::Identity(DeviceIdentity {
                manufacturer: Some(String::from("Masimo")),
                serial: Some(String::from(sn)),
                ..DeviceIdentity::default()
            }));
        }
    }
    let readings = record.readings.get(..record.count).unwrap_or(&[]);
    for &(tag, reading) in readings {
        let flags = exc_flags(record.exc, tag) | alarm_flags(record.alarm, tag);
        push_event(out, Event::Measurement(measurement(tag, reading, record.time, flags)));
    }
    let words = (record.alarm, record.exc);
    if *last_words != Some(words) {
        *last_words = Some(words);
        let mut report = AlarmReport::new(ReportScope::All, alarm_conditions(record.alarm, record.exc, readings));
        report.device_time = Some(record.time);
        out.push(Event::Alarms(report));
    }
}

/// The `masimo` decoder.
#[derive(Debug, Default)]
pub struct MasimoDecoder {
    lines: LineAccumulator<MAX_LINE>,
    last_serial: Option<String>,
    /// The ALARM and EXC words of the last alarm report.
    last_words: Option<(u32, u32)>,
}

impl MasimoDecoder {
    pub fn new() -> MasimoDecoder {
        MasimoDecoder::default()
    }
}

impl Decoder for MasimoDecoder {
    fn protocol(&self) -> &'static str {
        "masimo"
    }

    fn feed(&mut self, bytes: &[u8], _now: Timestamp, out: &mut Vec<Event>) {
        let MasimoDecoder { lines, last_serial, last_words } = self;
        for &b in bytes {
            match lines.push(b) {
                LineEvent::Pending => {}
                LineEvent::Line(line, offset) => decode_line(line, offset, last_serial, last_words, out),
                LineEvent::Overflow(offset) => out.push(Event::Rejected { offset, error: Error::TooLong { max: MAX_LINE } }),
            }
        }
    }

    fn start(&mut self, _now: Timestamp, _out: &mut Vec<Event>) {
        self.lines.clear();
        self.last_serial = None;
        self.last_words = None;
    }
}

pub(super) fn make(_: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(MasimoDecoder::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::observation::Value;
    use crate::time::CivilTime;

    /// MP-1 (protocols.md §2).
    const MP1: &[u8] = b"03/15/24 10:22:05 SN=0000123456 SPO2=097% BPM=072 PI=03.45% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800\r\n";
    /// MP-2 (protocols.md §2).
    const MP2: &[u8] = b"11/02/23 08:00:01 SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=021\r\n";

    fn decode(bytes: &[u8]) -> Vec<Event> {
        let mut d = MasimoDecoder::new();
        let mut out = Vec::new();
        d.feed(bytes, Timestamp(0), &mut out);
        out
    }

    fn measurements(ev: &[Event]) -> Vec<&Measurement> {
        ev.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect()
    }

    fn local(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> Option<DeviceTime> {
        let c = CivilTime { year: y, month: mo, day: d, hour: h, minute: mi, second: s, millisecond: 0 };
        Some(DeviceTime::Local(c.to_timestamp().unwrap()))
    }

    #[test]
    fn mp1() {
        let ev = decode(MP1);
        let Event::Identity(id) = &ev[0] else { panic!("{:?}", ev[0]) };
        assert_eq!((id.manufacturer.as_deref(), id.serial.as_deref()), (Some("Masimo"), Some("0000123456")));
        let m = measurements(&ev);
        assert_eq!(m.len(), 8);
        let t = local(2024, 3, 15, 10, 22, 5);
        assert!(m.iter().all(|m| m.device_time == t && m.seq.is_none()));
        assert_eq!(
            (m[0].metric, m[0].unit, &m[0].value, m[0].flags),
            (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, &Value::Numeric(Decimal::from_int(97)), Flags::NONE)
        );
        assert_eq!(
            (m[1].metric, m[1].unit, &m[1].value),
            (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, &Value::Numeric(Decimal::from_int(72)))
        );
        assert_eq!(
            (m[2].metric, m[2].unit, &m[2].value),
            (code::MDC_PULS_OXIM_PERF_REL, unit::MDC_DIM_PERCENT, &Value::Numeric(Decimal::new(345, -2).unwrap()))
        );
        for (m, tag) in m[3..].iter().zip(["SPCO", "SPMET", "DESAT", "PIDELTA", "PVI"]) {
            assert!(m.metric.is_unmapped());
            assert_eq!(m.vendor.as_ref().map(|v| (v.namespace.as_ref(), v.code.as_ref())), Some(("masimo", tag)));
            assert_eq!(m.value, Value::Absent(AbsentReason::Unavailable));
            assert_eq!(m.flags, Flags::UNMAPPED | Flags::UNAVAILABLE, "{tag}");
        }
        assert_eq!(m[3].unit, unit::MDC_DIM_PERCENT);
        assert_eq!(m[5].unit, unit::MDC_DIM_DIMLESS);
    }

    #[test]
    fn mp2_no_sensor() {
        let ev = decode(MP2);
        let m = measurements(&ev);
        assert_eq!(m.len(), 3);
        assert!(ev.iter().all(|e| !matches!(e, Event::Identity(_))));
        for m in &m {
            assert_eq!(m.value, Value::Absent(AbsentReason::Unavailable));
            assert_eq!(m.flags, Flags::UNAVAILABLE | Flags::SENSOR_OFF);
            assert_eq!(m.device_time, local(2023, 11, 2, 8, 0, 1));
        }
        assert_eq!(
            m.iter().map(|m| m.metric).collect::<Vec<_>>(),
            [code::MDC_PULS_OXIM_SAT_O2, code::MDC_PULS_OXIM_PULS_RATE, code::MDC_PULS_OXIM_PERF_REL]
        );
    }

    #[test]
    fn identity_only_when_the_serial_changes() {
        let ev = decode(&[MP1, MP1].concat());
        assert_eq!(ev.iter().filter(|e| matches!(e, Event::Identity(_))).count(), 1);
    }

    #[test]
    fn fields_by_tag_in_any_order_unknown_tags_ignored_alarm_flags() {
        let line = b"01/01/25 00:00:00 FOO=bar EXC=000804 BPM=131 RESVD=1 SPO2=088% ALARM=000016\r\n";
        let ev = decode(line);
        let m = measurements(&ev);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].metric, m[0].value.numeric()), (code::MDC_PULS_OXIM_PULS_RATE, Some(Decimal::from_int(131))));
        assert_eq!(m[0].flags, Flags::LOW_PERFUSION | Flags::ALARM);
        assert_eq!(m[1].flags, Flags::LOW_PERFUSION | Flags::ALARM);
    }

    #[test]
    fn a_damaged_field_rejects_the_whole_line() {
        let ev = decode(b"03/15/24 10:22:05 SPO2=0#7% BPM=072 EXC=000800\r\n");
        assert_eq!(ev, [Event::Rejected { offset: 0, error: Error::BadText { field: "SPO2" } }]);
        let ev = decode(b"03/15/24 10:22:05 SPO2=097% BPM=072 EXC=0800\r\n");
        assert!(matches!(ev[..], [Event::Rejected { error: Error::BadField { field: "EXC", value: 4 }, .. }]));
        let ev = decode(b"03/15/24 10:22:05 SPO2=097% SPO2=098%\r\n");
        assert!(matches!(ev[..], [Event::Rejected { .. }]));
        let ev = decode(b"03/15/24 10:22:05 SPO2=107% BPM=072 EXC=000800\r\n");
        assert_eq!(ev, [Event::Rejected { offset: 0, error: Error::Implausible { field: "SPO2", value: 107 } }]);
    }

    #[test]
    fn a_cut_line_merged_with_the_next_loses_only_itself() {
        let cut = &MP1[..60];
        let stream = [b"\r\n".as_slice(), cut, MP2].concat();
        let ev = decode(&stream);
        assert_eq!(ev[0], Event::Rejected { offset: 2, error: Error::BadText { field: "masimo line cut short" } });
        assert_eq!(measurements(&ev).len(), 3);
        // Garbage without a line end before a line.
        let ev = decode(&[b"\x00\xfe\x13xx".as_slice(), MP2].concat());
        assert_eq!(ev[0], Event::Rejected { offset: 0, error: Error::Garbage { skipped: 5 } });
        assert_eq!(measurements(&ev).len(), 3);
    }

    #[test]
    fn overlong_lines_are_bounded() {
        let mut stream = alloc::vec![b'x'; 2000];
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(MP2);
        let ev = decode(&stream);
        assert_eq!(ev[0], Event::Rejected { offset: 0, error: Error::TooLong { max: MAX_LINE } });
        assert_eq!(measurements(&ev).len(), 3);
    }

    fn reports(ev: &[Event]) -> Vec<&AlarmReport> {
        ev.iter().filter_map(|e| if let Event::Alarms(r) = e { Some(r) } else { None }).collect()
    }

    #[test]
    fn alarm_and_exc_bits_become_a_report_when_they_change() {
        // MP-1: no alarm, EXC = SET only: one empty report (the first line), then none.
        let ev = decode(&[MP1, MP1].concat());
        let r = reports(&ev);
        assert_eq!(r.len(), 1);
        assert!(r[0].conditions.is_empty() && r[0].scope == ReportScope::All);
        // MP-2: No Sensor + Sensor Off, technical, unmapped, vendor codes kept.
        let ev = decode(MP2);
        let c = &reports(&ev)[0].conditions;
        let got: Vec<(&str, AlarmKind, bool)> = c.iter().map(|c| (c.vendor.code.as_ref(), c.kind, c.is_mapped())).collect();
        assert_eq!(got, [("EXC:000001", AlarmKind::Technical, false), ("EXC:000020", AlarmKind::Technical, false)]);
        assert_eq!(c[1].text, "Sensor Off");
    }

    #[test]
    fn spo2_low_carries_the_value_the_code_and_silencing() {
        let line = b"01/01/25 00:00:00 SPO2=084% BPM=131 ALARM=0036 EXC=000800\r\n";
        let ev = decode(line);
        let r = reports(&ev);
        let c = &r[0].conditions;
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!((c[0].code, c[0].source, c[0].value), (codes::MDC_EVT_LO, code::MDC_PULS_OXIM_SAT_O2, Some(Decimal::from_int(84))));
        assert_eq!(c[0].unit, unit::MDC_DIM_PERCENT);
        assert_eq!((c[1].code, c[1].source, c[1].value), (codes::MDC_EVT_HI, code::MDC_PULS_OXIM_PULS_RATE, Some(Decimal::from_int(131))));
        assert!(c.iter().all(|c| c.inactivation == Inactivation::AudioPaused && c.priority.is_none()));
        assert_eq!(r[0].device_time, local(2025, 1, 1, 0, 0, 0));
    }

    #[test]
    fn unknown_bits_pass_through_and_alarm_active_alone_is_generic() {
        let c = alarm_conditions(0x8010, 0x000A00, &[]);
        let codes_: Vec<&str> = c.iter().map(|c| c.vendor.code.as_ref()).collect();
        assert_eq!(codes_, ["ALARM:8000", "EXC:000200"]);
        let c = alarm_conditions(0x0010, 0, &[]);
        assert_eq!((c[0].code, c[0].kind), (codes::MDC_EVT_ALARM, AlarmKind::Physiological));
    }
}
