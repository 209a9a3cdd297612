//! Simulator: a Masimo Radical-7 writing ASCII 1 lines (protocols.md §2).
//!
//! One line every [`SimOptions::period_ms`] (1000 = the device's once a second), stamped with
//! the simulator's clock written as the device's local wall-clock time, with slowly changing
//! SpO2, pulse rate, PI, SpCO, SpMet, desaturation index, ΔPI and PVI:
//!
//! ```text
//! 03/15/24 10:22:05 SN=0000000007 SPO2=097% BPM=072 PI=03.45% SPCO=01.2% SPMET=00.8% DESAT=00 PIDELTA=+05 PVI=012 ALARM=0000 EXC=000800
//! ```
//!
//! The device never reads its serial port here: anything the gateway sends is ignored.
//!
//! Faults: `BadChecksum` (the format has no checksum) puts a `#` into the SpO2 digits, so the
//! line must be rejected; `Truncate` sends the first half of the next line without its CR LF,
//! so it runs into the following line, which the decoder must still decode; `Garbage(n)` sends
//! `n` random bytes before the next line (the line itself must still be decoded); `SensorOff`
//! fills every value with dashes and sets EXC 0x000020 (Sensor Off); `Silence(ms)` sends
//! nothing for `ms`.
//!
//! [`Sent`] records each value of each line the gateway must decode, with the line's time as a
//! timestamp read as UTC (the device's time is local: the gateway's configured zone applies).
//! SpCO, SpMet, DESAT, PIDELTA and PVI are recorded with [`MdcCode::UNMAPPED`] and their unit,
//! as the decoder publishes them.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{DeviceSimulator, Fault, MakeSimulator, Rng, Sent, SimOptions};
use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::time::Timestamp;
use crate::wire::masimo::decoder::mapping;
use crate::wire::masimo::line::Tag;

/// A simulated Radical-7.
#[derive(Debug)]
pub struct MasimoSim {
    opts: SimOptions,
    rng: Rng,
    start: Timestamp,
    line_no: u64,
    serial: String,
    spo2: i64,
    bpm: i64,
    /// Hundredths of a percent.
    pi: i64,
    /// Tenths of a percent.
    spco: i64,
    spmet: i64,
    desat: i64,
    pidelta: i64,
    pvi: i64,
    sensor_off: bool,
    spo2_low: bool,
    corrupt: bool,
    truncate: bool,
    garbage: usize,
    silence_request: Option<u32>,
    silent_until: Option<Timestamp>,
    sent: Vec<Sent>,
}

impl MasimoSim {
    pub fn new(opts: &SimOptions, now: Timestamp) -> MasimoSim {
        let mut rng = Rng::new(opts.seed);
        // Lines go out on whole seconds when the period allows, so that the time written on a
        // line (to the second) is the moment it was sent.
        let start = if opts.period_ms % 1000 == 0 { Timestamp(now.0 + (1000 - now.0.rem_euclid(1000)) % 1000) } else { now };
        MasimoSim {
            opts: opts.clone(),
            start,
            line_no: 0,
            serial: format!("{:010}", opts.seed % 10_000_000_000),
            spo2: rng.range(95, 99),
            bpm: rng.range(65, 85),
            pi: rng.range(200, 600),
            spco: rng.range(5, 20),
            spmet: rng.range(3, 12),
            desat: 0,
            pidelta: 0,
            pvi: rng.range(8, 20),
            rng,
            sensor_off: false,
            spo2_low: false,
            corrupt: false,
            truncate: false,
            garbage: 0,
            silence_request: None,
            silent_until: None,
            sent: Vec::new(),
        }
    }

    fn period(&self) -> i64 {
        self.opts.period_ms.max(1) as i64
    }

    fn due(&self, n: u64) -> Timestamp {
        Timestamp(self.start.0.saturating_add((n.min(i64::MAX as u64 / 2) as i64).saturating_mul(self.period())))
    }

    fn walk(&mut self) {
        let r = &mut self.rng;
        self.spo2 = if self.spo2_low { super::SPO2_LOW_VALUE } else { r.walk(self.spo2.max(92), 1, 92, 100) };
        self.bpm = r.walk(self.bpm, 1, 55, 110);
        self.pi = r.walk(self.pi, 5, 50, 1000);
        self.spco = r.walk(self.spco, 1, 0, 50);
        self.spmet = r.walk(self.spmet, 1, 0, 20);
        self.desat = r.walk(self.desat, 1, 0, 9);
        self.pidelta = r.walk(self.pidelta, 2, -30, 30);
        self.pvi = r.walk(self.pvi, 1, 5, 40);
    }

    /// The line for time `t` and the values it carries (`None` = dashes).
    fn line(&self, t: Timestamp) -> (String, Vec<(Tag, Option<Decimal>)>) {
        let c = t.to_civil();
        let mut s = String::with_capacity(160);
        let _ =
            write!(s, "{:02}/{:02}/{:02} {:02}:{:02}:{:02} SN={}", c.month, c.day, c.year % 100, c.hour, c.minute, c.second, self.serial);
        let mut values = Vec::with_capacity(8);
        let off = self.sensor_off;
        let mut field = |s: &mut String, tag: Tag, text: String, dashes: &str, value: Option<Decimal>| {
            let (text, value) = if off { (String::from(dashes), None) } else { (text, value) };
            let _ = write!(s, " {}={}{}", tag.name(), text, if tag.percent() { "%" } else { "" });
            values.push((tag, value));
        };
        field(&mut s, Tag::Spo2, format!("{:03}", self.spo2), "---", Some(Decimal::from_int(self.spo2 as i32)));
        field(&mut s, Tag::Bpm, format!("{:03}", self.bpm), "---", Some(Decimal::from_int(self.bpm as i32)));
        field(&mut s, Tag::Pi, format!("{:02}.{:02}", self.pi / 100, self.pi % 100), "--.--", Decimal::new(self.pi, -2));
        field(&mut s, Tag::Spco, format!("{:02}.{}", self.spco / 10, self.spco % 10), "--.-", Decimal::new(self.spco, -1));
        field(&mut s, Tag::Spmet, format!("{:02}.{}", self.spmet / 10, self.spmet % 10), "--.-", Decimal::new(self.spmet, -1));
        field(&mut s, Tag::Desat, format!("{:02}", self.desat), "--", Some(Decimal::from_int(self.desat as i32)));
        let sign = if self.pidelta < 0 { '-' } else { '+' };
        field(&mut s, Tag::Pidelta, format!("{sign}{:02}", self.pidelta.abs()), "+--", Some(Decimal::from_int(self.pidelta as i32)));
        field(&mut s, Tag::Pvi, format!("{:03}", self.pvi), "---", Some(Decimal::from_int(self.pvi as i32)));
        let exc = if off { 0x000020 } else { 0x000800 };
        // SpO2 low (0x0002) with "alarm active" (0x0010): MD PnP ALARM bits.
        let alarm = if self.spo2_low && !off { 0x0012 } else { 0x0000 };
        let _ = write!(s, " ALARM={alarm:04X} EXC={exc:06X}\r\n");
        (s, values)
    }

    fn next_line(&mut self, t: Timestamp, out: &mut Vec<u8>) {
        if let Some(ms) = self.silence_request.take() {
            self.silent_until = Some(Timestamp(t.0.saturating_add(ms as i64)));
        }
        if self.silent_until.is_some_and(|u| t < u) {
            return;
        }
        self.silent_until = None;
        self.walk();
        for _ in 0..core::mem::take(&mut self.garbage) {
            out.push(self.rng.next_u64() as u8);
        }
        let (line, values) = self.line(t);
        let mut bytes = line.into_bytes();
        if core::mem::take(&mut self.corrupt) {
            // The first SpO2 digit (or dash) becomes '#'.
            if let Some(i) = bytes.windows(5).position(|w| w == b"SPO2=") {
                if let Some(b) = bytes.get_mut(i + 5) {
                    *b = b'#';
                }
            }
            out.extend_from_slice(&bytes);
            return;
        }
        if core::mem::take(&mut self.truncate) {
            out.extend_from_slice(bytes.get(..bytes.len() / 2).unwrap_or(&[]));
            return;
        }
        out.append(&mut bytes);
        if self.opts.record {
            // The line's wall-clock time, to the second, read as UTC.
            let device_time = Some(Timestamp(t.0 - t.0.rem_euclid(1000)));
            for (tag, value) in values {
                let (metric, unit): (MdcCode, MdcCode) = mapping(tag);
                self.sent.push(Sent { metric, value, unit, device_time, seq: None });
            }
        }
    }
}

impl DeviceSimulator for MasimoSim {
    fn protocol(&self) -> &'static str {
        "masimo"
    }

    fn receive(&mut self, _bytes: &[u8], _now: Timestamp, _out: &mut Vec<u8>) {}

    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        while self.due(self.line_no) <= now {
            let t = self.due(self.line_no);
            self.next_line(t, out);
            self.line_no += 1;
        }
    }

    fn next_tick(&self) -> Timestamp {
        self.due(self.line_no)
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::BadChecksum => self.corrupt = true,
            Fault::Truncate => self.truncate = true,
            Fault::Garbage(n) => self.garbage = self.garbage.saturating_add(n),
            Fault::SensorOff(off) => self.sensor_off = off,
            Fault::Silence(ms) => self.silence_request = Some(ms),
            // No ECG on this device.
            Fault::LeadOff(_) => {}
            Fault::Spo2Low(low) => {
                self.spo2_low = low;
                if low {
                    self.spo2 = super::SPO2_LOW_VALUE;
                }
            }
        }
    }

    fn take_sent(&mut self) -> Vec<Sent> {
        core::mem::take(&mut self.sent)
    }
}

fn make(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(MasimoSim::new(opts, now))
}

/// The Masimo simulator, by protocol name.
pub const SIMULATORS: &[(&str, MakeSimulator)] = &[("masimo", make)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, Event};
    use crate::time::DeviceTime;
    use crate::wire::masimo::decoder::MasimoDecoder;

    /// 2024-03-15T10:22:05Z.
    const T0: Timestamp = Timestamp(1_710_498_125_000);

    fn decoded(ev: &[Event]) -> Vec<Sent> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Measurement(m) => Some(Sent {
                    metric: m.metric,
                    value: m.value.numeric(),
                    unit: m.unit,
                    device_time: m.device_time.map(|t| match t {
                        DeviceTime::Local(t) | DeviceTime::Utc(t) => t,
                    }),
                    seq: m.seq,
                }),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_start_on_a_whole_second() {
        let mut sim = MasimoSim::new(&SimOptions { seed: 3, period_ms: 1000, record: true }, Timestamp(T0.0 - 250));
        assert_eq!(sim.next_tick(), T0);
        let mut out = Vec::new();
        sim.tick(T0, &mut out);
        assert!(out.starts_with(b"03/15/24 10:22:05 "));
        assert_eq!(sim.take_sent()[0].device_time, Some(T0));
    }

    #[test]
    fn lines_decode_to_what_was_sent_with_every_fault() {
        let mut sim = MasimoSim::new(&SimOptions { seed: 3, period_ms: 1000, record: true }, T0);
        let mut d = MasimoDecoder::new();
        let mut out = Vec::new();
        let mut t = T0.0;
        let mut step = |sim: &mut MasimoSim, d: &mut MasimoDecoder, out: &mut Vec<Event>, ms: i64| {
            let end = t + ms;
            while t < end {
                let mut bytes = Vec::new();
                sim.tick(Timestamp(t), &mut bytes);
                d.feed(&bytes, Timestamp(t), out);
                t += 100;
            }
        };
        step(&mut sim, &mut d, &mut out, 3_000);
        let first = sim.take_sent();
        assert_eq!(first.len(), 3 * 8);
        assert_eq!(first[0].device_time, Some(T0));
        for fault in [
            Fault::BadChecksum,
            Fault::Truncate,
            Fault::Garbage(64),
            Fault::SensorOff(true),
            Fault::Silence(2_500),
            Fault::SensorOff(false),
        ] {
            sim.inject(fault);
            step(&mut sim, &mut d, &mut out, 3_000);
        }
        let all = [first, sim.take_sent()].concat();
        // 3 clean lines + 6 × 3 lines, less the corrupted, the truncated and 3 silent ones.
        assert_eq!(all.len(), (3 + 18 - 2 - 3) * 8);
        assert_eq!(decoded(&out), all);
        assert!(all.iter().any(|s| s.value.is_none()));
        let rejected = out.iter().filter(|e| matches!(e, Event::Rejected { .. })).count();
        assert!(rejected >= 2, "{rejected}");
    }
}
