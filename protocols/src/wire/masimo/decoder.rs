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
use super::status::{alarm_flags, exc_flags};
use crate::decode::{push_event, Decoder, DecoderOptions, Event};
use crate::error::Error;
use crate::framing::{LineAccumulator, LineEvent};
use crate::mdc::{code, unit, MdcCode};
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

/// Decodes one line (without its terminator) that started at stream offset `offset`.
fn decode_line(line: &[u8], offset: u64, last_serial: &mut Option<String>, out: &mut Vec<Event>) {
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
    for &(tag, reading) in record.readings.get(..record.count).unwrap_or(&[]) {
        let flags = exc_flags(record.exc, tag) | alarm_flags(record.alarm, tag);
        push_event(out, Event::Measurement(measurement(tag, reading, record.time, flags)));
    }
}

/// The `masimo` decoder.
#[derive(Debug, Default)]
pub struct MasimoDecoder {
    lines: LineAccumulator<MAX_LINE>,
    last_serial: Option<String>,
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
        let MasimoDecoder { lines, last_serial } = self;
        for &b in bytes {
            match lines.push(b) {
                LineEvent::Pending => {}
                LineEvent::Line(line, offset) => decode_line(line, offset, last_serial, out),
                LineEvent::Overflow(offset) => out.push(Event::Rejected { offset, error: Error::TooLong { max: MAX_LINE } }),
            }
        }
    }

    fn start(&mut self, _now: Timestamp, _out: &mut Vec<Event>) {
        self.lines.clear();
        self.last_serial = None;
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
}
