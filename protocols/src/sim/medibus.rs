//! Simulator: a Dräger device speaking MEDIBUS (protocols.md §4).
//!
//! The device only answers: it sends nothing on its own, so [`SimOptions::period_ms`] does not
//! apply (the gateway's poll period sets the rate). It answers
//! - ICC (0x51) with its echo, which opens the session;
//! - device identification (0x52) with `0161'medgw sim'01.00:06.00` (id, 'name', revision,
//!   `:` MEDIBUS version, the layout VSCaptureDrgVent writes);
//! - measured data CP1 (0x24) with 11 records (HR, pulse rate, SpO2, etCO2 in mmHg, kPa and %,
//!   respiratory rates, arterial pressures) whose values walk slowly;
//! - current alarms CP1 (0x27) with `SpO2 low` under [`Fault::Spo2Low`] and `SpO2 sensor?`
//!   under `SensorOff` (none otherwise);
//! - NOP, stop (which closes the session) and any other command with its echo, since every
//!   command must be answered;
//! - a corrupt command with `SOH NAK cs CR`.
//!
//! Before ICC it refuses every other command with NAK rather than staying silent: a refusal
//! is what a MEDIBUS device sends when it cannot serve a command (the open mdrepo driver reads
//! a NAK as "no session established"), and it lets the gateway re-initialise at once instead
//! of waiting for a timeout. Whether real Dräger devices NAK or ignore such a command could
//! not be confirmed from the protocol document, whose body was not read.
//!
//! Faults apply to the next answer: `BadChecksum` flips its checksum, `Truncate` sends its first
//! half (no CR), `Garbage(n)` sends `n` random bytes before it, `SensorOff` sends SpO2 and
//! pulse rate as ` ---`, `Silence(ms)` ignores every command for `ms` from the next one.
//! [`Sent`] records each value of each measured-data answer sent intact.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{DeviceSimulator, Fault, MakeSimulator, Rng, Sent, SimOptions};
use crate::decimal::Decimal;
use crate::time::Timestamp;
use crate::wire::medibus::data::lookup;
use crate::wire::medibus::frame::{cmd, Kind, Message, NAK};
use crate::wire::medibus::framer::{Framer, FramerEvent};

/// The simulated device's identification response data.
pub const DEVICE_ID: &[u8] = b"0161'medgw sim'01.00:06.00";

/// A simulated Dräger device.
#[derive(Debug)]
pub struct MedibusSim {
    opts: SimOptions,
    rng: Rng,
    framer: Framer<1024>,
    session: bool,
    hr: i64,
    spo2: i64,
    etco2: i64,
    rr: i64,
    sys: i64,
    dia: i64,
    sensor_off: bool,
    spo2_low: bool,
    bad_checksum: bool,
    truncate: bool,
    garbage: usize,
    silence_request: Option<u32>,
    silent_until: Option<Timestamp>,
    sent: Vec<Sent>,
}

impl MedibusSim {
    pub fn new(opts: &SimOptions, _now: Timestamp) -> MedibusSim {
        let mut rng = Rng::new(opts.seed);
        MedibusSim {
            opts: opts.clone(),
            hr: rng.range(65, 85),
            spo2: rng.range(95, 99),
            etco2: rng.range(34, 40),
            rr: rng.range(12, 16),
            sys: rng.range(110, 130),
            dia: rng.range(65, 80),
            rng,
            framer: Framer::new(),
            session: false,
            sensor_off: false,
            spo2_low: false,
            bad_checksum: false,
            truncate: false,
            garbage: 0,
            silence_request: None,
            silent_until: None,
            sent: Vec::new(),
        }
    }

    /// Sends `m`, with the pending faults applied; returns whether it went out intact.
    fn answer(&mut self, m: Message<'_>, out: &mut Vec<u8>) -> bool {
        for _ in 0..core::mem::take(&mut self.garbage) {
            out.push(self.rng.next_u64() as u8);
        }
        let mut bytes = alloc::vec![0u8; m.wire_len()];
        let _ = m.emit(&mut bytes);
        if core::mem::take(&mut self.bad_checksum) {
            // The checksum's low digit: 'A' ↔ '0' style flip keeps it a hex digit.
            let i = bytes.len() - 2;
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            out.extend_from_slice(&bytes);
            return false;
        }
        if core::mem::take(&mut self.truncate) {
            out.extend_from_slice(&bytes[..bytes.len() / 2]);
            return false;
        }
        out.extend_from_slice(&bytes);
        true
    }

    /// The current-alarms answer (wire/medibus/alarms.rs layout): the codes and priorities
    /// are the simulator's own, not Dräger's (whose code table was not read); the priority
    /// bytes avoid the framing's control bytes.
    fn alarms(&self) -> Vec<u8> {
        let mut data = Vec::new();
        if self.spo2_low && !self.sensor_off {
            data.push(30);
            data.extend_from_slice(b"40SpO2 low    ");
        }
        if self.sensor_off {
            data.push(10);
            data.extend_from_slice(b"41SpO2 sensor?");
        }
        data
    }

    /// The measured-data records and the values they carry.
    fn measured_data(&mut self) -> (String, Vec<(u8, Option<Decimal>)>) {
        let r = &mut self.rng;
        self.hr = r.walk(self.hr, 1, 55, 110);
        self.spo2 = if self.spo2_low { super::SPO2_LOW_VALUE } else { r.walk(self.spo2.max(92), 1, 92, 100) };
        self.etco2 = r.walk(self.etco2, 1, 30, 45);
        self.rr = r.walk(self.rr, 1, 8, 22);
        self.sys = r.walk(self.sys, 2, 95, 150);
        self.dia = r.walk(self.dia, 1, 55, 90).min(self.sys - 20);
        let pr = self.hr + r.range(-1, 1);
        let mean = (self.sys + 2 * self.dia) / 3;
        // etCO2 in kPa and in % of 760 mmHg, to one decimal.
        let kpa = (self.etco2 * 1333 + 500) / 1000;
        let pct = (self.etco2 * 1000 + 3800) / 7600;
        let tenths = |v: i64| (format!("{}.{}", v / 10, v % 10), Decimal::new(v, -1));
        let int = |v: i64| (format!("{v}"), Some(Decimal::from_int(v as i32)));
        let off = self.sensor_off;
        let oximeter = |v: i64| if off { (String::from("---"), None) } else { int(v) };
        let rows: [(u8, (String, Option<Decimal>)); 11] = [
            (0xDC, int(self.hr)),
            (0xE1, oximeter(pr)),
            (0xEB, oximeter(self.spo2)),
            (0xE6, int(self.etco2)),
            (0xE3, tenths(kpa)),
            (0xDB, tenths(pct)),
            (0xD6, int(self.rr)),
            (0xD5, int(self.rr)),
            (0xD2, int(self.sys)),
            (0xC8, int(self.dia)),
            (0xCD, int(mean)),
        ];
        let mut text = String::with_capacity(rows.len() * 6);
        let mut values = Vec::with_capacity(rows.len());
        for (code, (v, d)) in rows {
            text.push_str(&format!("{code:02X}{v:>4}"));
            values.push((code, d));
        }
        (text, values)
    }

    fn on_command(&mut self, code: u8, now: Timestamp, out: &mut Vec<u8>) {
        if let Some(ms) = self.silence_request.take() {
            self.silent_until = Some(Timestamp(now.0.saturating_add(ms as i64)));
        }
        if self.silent_until.is_some_and(|u| now < u) {
            return;
        }
        self.silent_until = None;
        match code {
            cmd::ICC => {
                self.session = true;
                self.answer(Message::response(code, b""), out);
            }
            _ if !self.session => {
                self.answer(Message::response(NAK, b""), out);
            }
            cmd::DEVICE_ID => {
                self.answer(Message::response(code, DEVICE_ID), out);
            }
            cmd::CUR_DATA_CP1 => {
                let (text, values) = self.measured_data();
                if self.answer(Message::response(code, text.as_bytes()), out) && self.opts.record {
                    // etCO2 goes out in mmHg, kPa and %: one reading, which the decoder
                    // publishes once, in mmHg.
                    for (code, value) in values.into_iter().filter(|(c, _)| !matches!(c, 0xE3 | 0xDB)) {
                        let def = lookup(code);
                        self.sent.push(Sent { metric: def.metric, value, unit: def.unit, device_time: None, seq: None });
                    }
                }
            }
            cmd::ALARMS_CP1 => {
                let alarms = self.alarms();
                self.answer(Message::response(code, &alarms), out);
            }
            cmd::STOP => {
                self.answer(Message::response(code, b""), out);
                self.session = false;
            }
            _ => {
                self.answer(Message::response(code, b""), out);
            }
        }
    }
}

impl DeviceSimulator for MedibusSim {
    fn protocol(&self) -> &'static str {
        "medibus"
    }

    fn receive(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        let mut messages: Vec<Vec<u8>> = Vec::new();
        self.framer.feed(bytes, |e| {
            if let FramerEvent::Message(m, _) = e {
                messages.push(m.to_vec());
            }
        });
        for m in messages {
            match Message::parse(&m) {
                Ok(Message { kind: Kind::Command, code, .. }) => self.on_command(code, now, out),
                // Answers to commands: the simulator sends none, so there is nothing to match.
                Ok(_) => {}
                Err(_) if m.first() == Some(&crate::wire::medibus::frame::ESC) => {
                    if self.silent_until.is_none_or(|u| now >= u) {
                        self.answer(Message::response(NAK, b""), out);
                    }
                }
                Err(_) => {}
            }
        }
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<u8>) {}

    fn next_tick(&self) -> Timestamp {
        Timestamp(i64::MAX)
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::BadChecksum => self.bad_checksum = true,
            Fault::Truncate => self.truncate = true,
            Fault::Garbage(n) => self.garbage = self.garbage.saturating_add(n),
            Fault::SensorOff(off) => self.sensor_off = off,
            Fault::Silence(ms) => self.silence_request = Some(ms),
            // No ECG on this device.
            Fault::LeadOff(_) => {}
            Fault::Spo2Low(low) => self.spo2_low = low,
        }
    }

    fn take_sent(&mut self) -> Vec<Sent> {
        core::mem::take(&mut self.sent)
    }
}

fn make(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(MedibusSim::new(opts, now))
}

/// The MEDIBUS simulator, by protocol name.
pub const SIMULATORS: &[(&str, MakeSimulator)] = &[("medibus", make)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, DecoderOptions, Event};
    use crate::wire::medibus::decoder::MedibusDecoder;

    /// DP-1 and DP-3 (ICC).
    const DP1: &[u8] = &[0x1B, 0x24, 0x33, 0x46, 0x0D];
    const ICC: &[u8] = &[0x1B, 0x51, 0x36, 0x43, 0x0D];
    const NAK_RESPONSE: &[u8] = b"\x01\x1516\r";

    fn opts() -> SimOptions {
        SimOptions { seed: 5, period_ms: 1000, record: true }
    }

    #[test]
    fn refuses_data_before_icc_then_answers() {
        let mut sim = MedibusSim::new(&opts(), Timestamp(0));
        let mut out = Vec::new();
        sim.receive(DP1, Timestamp(0), &mut out);
        assert_eq!(out, NAK_RESPONSE);
        out.clear();
        sim.receive(ICC, Timestamp(1), &mut out);
        assert_eq!(out, b"\x01Q52\r");
        out.clear();
        sim.receive(DP1, Timestamp(2), &mut out);
        let m = Message::parse(&out[..out.len() - 1]).unwrap();
        assert_eq!((m.kind, m.code, m.data.len()), (Kind::Response, cmd::CUR_DATA_CP1, 11 * 6));
        assert_eq!(sim.take_sent().len(), 9);
        out.clear();
        sim.receive(b"\x1b$00\r", Timestamp(3), &mut out);
        assert_eq!(out, NAK_RESPONSE, "a corrupt command is refused");
    }

    /// Runs decoder and simulator against each other from `from` for `ms`, in 100 ms steps.
    fn exchange(d: &mut MedibusDecoder, sim: &mut MedibusSim, from: i64, ms: i64, events: &mut Vec<Event>) {
        let mut now = from;
        while now < from + ms {
            let mut ev = Vec::new();
            d.poll(Timestamp(now), &mut ev);
            deliver(d, sim, now, ev, events);
            now += 100;
        }
    }

    fn deliver(d: &mut MedibusDecoder, sim: &mut MedibusSim, now: i64, mut ev: Vec<Event>, events: &mut Vec<Event>) {
        // Each transmit is answered at once; answers may cause further transmits.
        for _ in 0..16 {
            let tx: Vec<u8> = ev.iter().filter_map(|e| if let Event::Transmit(b) = e { Some(b.clone()) } else { None }).flatten().collect();
            events.append(&mut ev);
            if tx.is_empty() {
                return;
            }
            let mut answer = Vec::new();
            sim.receive(&tx, Timestamp(now), &mut answer);
            d.feed(&answer, Timestamp(now), &mut ev);
        }
    }

    fn decoded(ev: &[Event]) -> Vec<Sent> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Measurement(m) => {
                    Some(Sent { metric: m.metric, value: m.value.numeric(), unit: m.unit, device_time: None, seq: m.seq })
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_session_decodes_what_was_sent_with_every_fault() {
        let mut sim = MedibusSim::new(&opts(), Timestamp(0));
        let mut d = MedibusDecoder::new(&DecoderOptions::default());
        let mut events = Vec::new();
        let mut ev = Vec::new();
        d.start(Timestamp(0), &mut ev);
        deliver(&mut d, &mut sim, 0, ev, &mut events);
        exchange(&mut d, &mut sim, 0, 5_000, &mut events);
        assert!(events.iter().any(|e| matches!(e, Event::Identity(id) if id.model.as_deref() == Some("medgw sim"))));
        let first = sim.take_sent();
        assert_eq!(first.len(), 5 * 9, "one answer per poll period (11 records, etCO2 once)");
        let mut t = 5_000;
        for (fault, ms) in [
            (Fault::BadChecksum, 3_000),
            (Fault::Truncate, 8_000),
            (Fault::Garbage(50), 3_000),
            (Fault::SensorOff(true), 3_000),
            (Fault::Silence(10_000), 20_000),
            (Fault::SensorOff(false), 3_000),
        ] {
            sim.inject(fault);
            exchange(&mut d, &mut sim, t, ms, &mut events);
            t += ms;
        }
        let all = [first, sim.take_sent()].concat();
        assert_eq!(decoded(&events), all);
        assert!(all.iter().any(|s| s.value.is_none()));
        for want in [Event::Session("reinitialising"), Event::Session("connected")] {
            assert!(events.contains(&want), "{want:?}");
        }
        assert!(events.iter().any(|e| matches!(e, Event::Rejected { error: crate::error::Error::Timeout { .. }, .. })));
        assert!(events.iter().any(|e| matches!(e, Event::Rejected { error: crate::error::Error::BadChecksum { .. }, .. })));
    }
}
