//! Simulator: a Nonin oximeter streaming DF2, DF7 or DF8 (spec pp. 8–16).
//!
//! The device talks without being asked: DF2/DF7 send 75 frames (3 packets) per second of
//! device output, DF8 one frame. [`SimOptions::period_ms`] is the length of that "second"
//! (1000 = the real rate; the benchmark lowers it). Values walk slowly: pulse rate 55–110 /min,
//! SpO2 92–100 %, changing once per period; the display values (-D) follow them and, after the
//! sensor is taken off, hold for 10 periods as the spec describes (p. 10).
//!
//! Anything the gateway sends is ignored: the gateway never talks to a Nonin (the 9560's
//! format-selection command is accepted only in the first 5 s after connecting and is not
//! simulated).
//!
//! Faults, and what the gateway must then publish ([`Sent`]):
//! - `BadChecksum`: the next frame's checksum is inverted (DF8 has no checksum: its SpO2 byte
//!   is set to 112, which a receiver must reject);
//! - `Truncate`: only the first half of the next frame is sent;
//! - `Garbage(n)`: `n` random bytes before the next frame, drawn from bytes that cannot start a
//!   frame (DF2: anything but 0x01; DF7/DF8: bit 7 clear), so that the values the gateway must
//!   publish are exactly predictable; arbitrary garbage is covered by the property tests;
//! - `SensorOff`: SNSA set, standard values missing, display values held then missing;
//! - `Silence(ms)`: no output for at least `ms`, from the next packet boundary to a packet
//!   boundary (DF8: frame boundaries).
//!
//! A DF2/DF7 packet is recorded as sent when the decoder must accept it (see
//! `wire::nonin::packet`): all 25 frames intact and back to back, and nothing but an intact
//! frame right before its SYNC frame. After a damaged frame, the next frame's pleth is nudged
//! if, by chance, the damaged bytes and the next frame would together look like a valid frame
//! (probability about 1/256), so the record stays exact.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{DeviceSimulator, Fault, MakeSimulator, Rng, Sent, SimOptions};
use crate::decimal::Decimal;
use crate::mdc::{code, unit};
use crate::time::Timestamp;
use crate::wire::nonin::frame::{Df8Frame, Format, Frame, Status, DF2_START, HR_MISSING, SPO2_MISSING};
use crate::wire::nonin::packet::PACKET_FRAMES;
use crate::wire::nonin::sync::{FrameSync, SyncEvent};

/// The simulated firmware revision (as in NP-3).
pub const SREV: u8 = 0x41;
/// DF2/DF7 frames per second of device output (spec p. 8).
const FRAMES_PER_PERIOD: u64 = 75;
/// Periods the display values hold after the sensor is taken off (spec p. 10: 10 s).
const DISPLAY_HOLD_PERIODS: i64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Packets(Format),
    Df8,
}

/// A simulated Nonin oximeter.
#[derive(Debug)]
pub struct NoninSim {
    name: &'static str,
    kind: Kind,
    opts: SimOptions,
    rng: Rng,
    start: Timestamp,
    /// Number of the next frame.
    frame_no: u64,
    hr: i64,
    spo2: i64,
    /// Display values and when the sensor went off.
    hr_d: u16,
    spo2_d: u8,
    sensor_off: bool,
    spo2_low: bool,
    sensor_off_since: Option<Timestamp>,
    beat_phase: u32,
    /// The packet in progress (DF2/DF7).
    floats: [u8; PACKET_FRAMES],
    values: (Option<u8>, Option<u16>),
    packet_ok: bool,
    packet_silent: bool,
    /// The previous frame was intact and nothing came after it.
    clean_link: bool,
    /// Bytes sent since the last intact frame.
    dirty: Vec<u8>,
    bad_checksum: bool,
    truncate: bool,
    garbage: usize,
    silence_request: Option<u32>,
    silent_until: Option<Timestamp>,
    sent: Vec<Sent>,
    pleth_sent: Vec<u16>,
}

impl NoninSim {
    pub fn new(name: &'static str, format: Option<Format>, opts: &SimOptions, now: Timestamp) -> NoninSim {
        let mut rng = Rng::new(opts.seed);
        let hr = rng.range(65, 85);
        let spo2 = rng.range(95, 99);
        NoninSim {
            name,
            kind: format.map_or(Kind::Df8, Kind::Packets),
            opts: opts.clone(),
            rng,
            start: now,
            frame_no: 0,
            hr,
            spo2,
            hr_d: hr as u16,
            spo2_d: spo2 as u8,
            sensor_off: false,
            spo2_low: false,
            sensor_off_since: None,
            beat_phase: 0,
            floats: [0; PACKET_FRAMES],
            values: (None, None),
            packet_ok: false,
            packet_silent: false,
            clean_link: true,
            dirty: Vec::new(),
            bad_checksum: false,
            truncate: false,
            garbage: 0,
            silence_request: None,
            silent_until: None,
            sent: Vec::new(),
            pleth_sent: Vec::new(),
        }
    }

    fn frames_per_period(&self) -> u64 {
        match self.kind {
            Kind::Packets(_) => FRAMES_PER_PERIOD,
            Kind::Df8 => 1,
        }
    }

    fn period(&self) -> u64 {
        self.opts.period_ms.max(1) as u64
    }

    fn due(&self, n: u64) -> Timestamp {
        let ms = (n as u128 * self.period() as u128 / self.frames_per_period() as u128).min(i64::MAX as u128 / 2) as i64;
        Timestamp(self.start.0.saturating_add(ms))
    }

    /// Moves the values once per period and keeps the display values (held after sensor off).
    fn update_values(&mut self, t: Timestamp) {
        self.hr = self.rng.walk(self.hr, 1, 55, 110);
        // Nonin frames carry no alarm bits: a low SpO2 is just the value.
        self.spo2 = if self.spo2_low { super::SPO2_LOW_VALUE } else { self.rng.walk(self.spo2.max(92), 1, 92, 100) };
        if self.sensor_off {
            let since = *self.sensor_off_since.get_or_insert(t);
            if t.0 - since.0 >= DISPLAY_HOLD_PERIODS * self.period() as i64 {
                self.hr_d = HR_MISSING;
                self.spo2_d = SPO2_MISSING;
            }
        } else {
            self.sensor_off_since = None;
            self.hr_d = self.hr as u16;
            self.spo2_d = self.spo2 as u8;
        }
    }

    fn standard(&self) -> (u8, u16) {
        if self.sensor_off {
            (SPO2_MISSING, HR_MISSING)
        } else {
            (self.spo2 as u8, self.hr as u16)
        }
    }

    /// A pleth sample, 0–1000 along one beat's shape ([`crate::wave::shape::pleth`]) at the
    /// simulated pulse rate, and whether a pulse is being shown (12 frames per beat, spec p. 9).
    fn pleth(&mut self) -> (u32, bool) {
        // Beat phase in 1/65536 of a beat, advanced by hr/(60·75) per frame.
        let step = (self.hr.max(1) as u32 * 65536) / (60 * FRAMES_PER_PERIOD as u32);
        self.beat_phase = self.beat_phase.wrapping_add(step) % 65536;
        let x = self.beat_phase as i64; // 0..65536
        let frames_per_beat = (60 * FRAMES_PER_PERIOD) as i64 / self.hr.max(1);
        let showing = x * frames_per_beat / 65536 < 12;
        (crate::wave::shape::pleth(self.beat_phase), showing)
    }

    /// The pleth samples of intact frames sent since the last call, in order (empty unless
    /// `record` is on): what the gateway's wave must hold.
    pub fn take_pleth(&mut self) -> Vec<u16> {
        core::mem::take(&mut self.pleth_sent)
    }

    fn garbage_byte(&mut self) -> u8 {
        let b = self.rng.next_u64() as u8;
        match self.kind {
            Kind::Packets(Format::Df2) if b == DF2_START => 0x02,
            Kind::Packets(Format::Df2) => b,
            _ => b & 0x7F,
        }
    }

    fn emit_garbage(&mut self, out: &mut Vec<u8>) {
        let n = core::mem::take(&mut self.garbage);
        if n == 0 {
            return;
        }
        for _ in 0..n {
            let b = self.garbage_byte();
            out.push(b);
            self.dirty.push(b);
        }
        self.clean_link = false;
    }

    /// Whether a fresh synchroniser fed `dirty + frame` finds exactly `frame`, at its place.
    fn settles(&self, format: Format, bytes: &[u8]) -> bool {
        let mut sync = FrameSync::new(format);
        let mut frames = 0;
        let mut at = None;
        sync.feed(&self.dirty, |e| {
            if let SyncEvent::Frame { .. } = e {
                frames += 1;
            }
        });
        sync.feed(bytes, |e| {
            if let SyncEvent::Frame { offset, .. } = e {
                frames += 1;
                at = Some(offset);
            }
        });
        frames == 1 && at == Some(self.dirty.len() as u64)
    }

    fn next_packet_frame(&mut self, format: Format, t: Timestamp, out: &mut Vec<u8>) {
        let index = (self.frame_no % PACKET_FRAMES as u64) as usize;
        if index == 0 {
            if (self.frame_no / PACKET_FRAMES as u64) % 3 == 0 {
                self.update_values(t);
            }
            if let Some(ms) = self.silence_request.take() {
                self.silent_until = Some(Timestamp(t.0.saturating_add(ms as i64)));
            }
            self.packet_silent = self.silent_until.is_some_and(|u| t < u);
            if !self.packet_silent {
                self.silent_until = None;
            }
            self.build_packet(t);
        }
        let (pleth, pulse) = self.pleth();
        if self.packet_silent {
            return;
        }
        let mut status = Status::ALWAYS;
        if index == 0 {
            status |= Status::SYNC;
        }
        if self.sensor_off {
            status |= Status::SNSA;
        } else if pulse {
            status |= Status::GPRF;
        }
        let mut frame = Frame {
            status: Status(status),
            // DF2 shows the beat over most of its 8 bits; DF7 over most of its 16, with the
            // low byte carrying detail the 8-bit form cannot.
            pleth: match format {
                Format::Df2 => (20 + pleth * 215 / 1000) as u16,
                Format::Df7 => (5_000 + pleth * 55_000 / 1000) as u16,
            },
            float: self.floats.get(index).copied().unwrap_or(0),
        };
        self.emit_garbage(out);
        let mut bytes = [0u8; 5];
        let _ = frame.emit(format, &mut bytes);
        let mut len = bytes.len();
        let damaged = if core::mem::take(&mut self.bad_checksum) {
            bytes[4] ^= 0xFF;
            true
        } else if core::mem::take(&mut self.truncate) {
            len /= 2;
            true
        } else {
            false
        };
        if !damaged && !self.dirty.is_empty() {
            let mut tries = 0;
            while !self.settles(format, &bytes) && tries < 512 {
                frame.pleth = match format {
                    Format::Df2 => (frame.pleth + 1) % 256,
                    Format::Df7 => frame.pleth.wrapping_add(1),
                };
                let _ = frame.emit(format, &mut bytes);
                tries += 1;
            }
        }
        let sent = bytes.get(..len).unwrap_or(&[]);
        out.extend_from_slice(sent);
        if !damaged && self.opts.record {
            self.pleth_sent.push(frame.pleth);
        }
        if damaged {
            self.dirty.extend_from_slice(sent);
        } else {
            self.dirty.clear();
        }
        let good = self.clean_link && !damaged;
        self.packet_ok = if index == 0 { good } else { self.packet_ok && good };
        self.clean_link = !damaged;
        if index == PACKET_FRAMES - 1 && self.packet_ok {
            let (spo2, hr) = self.values;
            self.record(spo2, hr);
        }
    }

    /// The 25 FLOAT bytes of the next packet (spec pp. 9–10).
    fn build_packet(&mut self, t: Timestamp) {
        let (spo2, hr) = self.standard();
        let (spo2_d, hr_d) = (self.spo2_d, self.hr_d);
        let hr_msb = |v: u16| ((v >> 7) & 0x03) as u8;
        let hr_lsb = |v: u16| (v & 0x7F) as u8;
        let tmr = ((t.0 - self.start.0) / self.period() as i64) as u16;
        let mut f = [0u8; PACKET_FRAMES];
        f[0] = hr_msb(hr);
        f[1] = hr_lsb(hr);
        f[2] = spo2;
        f[3] = SREV;
        f[5] = (tmr >> 8) as u8;
        f[6] = tmr as u8;
        f[7] = 0; // STAT2: no SmartPoint, battery good.
        f[8] = spo2_d;
        f[9] = spo2;
        f[10] = spo2;
        f[13] = hr_msb(hr);
        f[14] = hr_lsb(hr);
        f[15] = spo2;
        f[16] = spo2_d;
        f[19] = hr_msb(hr_d);
        f[20] = hr_lsb(hr_d);
        f[21] = hr_msb(hr_d);
        f[22] = hr_lsb(hr_d);
        self.floats = f;
        self.values = ((spo2 != SPO2_MISSING).then_some(spo2), (hr != HR_MISSING).then_some(hr));
    }

    fn next_df8_frame(&mut self, t: Timestamp, out: &mut Vec<u8>) {
        self.update_values(t);
        if let Some(ms) = self.silence_request.take() {
            self.silent_until = Some(Timestamp(t.0.saturating_add(ms as i64)));
        }
        if self.silent_until.is_some_and(|u| t < u) {
            return;
        }
        self.silent_until = None;
        let mut status2 = 0;
        if self.sensor_off {
            status2 |= Df8Frame::SNSA;
        }
        let frame = Df8Frame { status: Df8Frame::ALWAYS, hr: self.hr_d, spo2: self.spo2_d, status2 };
        self.emit_garbage(out);
        let mut bytes = [0u8; 4];
        let _ = frame.emit(&mut bytes);
        let mut len = bytes.len();
        let damaged = if core::mem::take(&mut self.bad_checksum) {
            // No checksum in DF8: an impossible SpO2 is what a receiver can catch.
            bytes[2] = 112;
            true
        } else if core::mem::take(&mut self.truncate) {
            len /= 2;
            true
        } else {
            false
        };
        out.extend_from_slice(bytes.get(..len).unwrap_or(&[]));
        self.dirty.clear();
        if !damaged {
            self.record(frame.spo2(), frame.hr());
        }
    }

    fn record(&mut self, spo2: Option<u8>, hr: Option<u16>) {
        if !self.opts.record {
            return;
        }
        self.sent.push(Sent {
            metric: code::MDC_PULS_OXIM_SAT_O2,
            value: spo2.map(|v| Decimal::from_int(v as i32)),
            unit: unit::MDC_DIM_PERCENT,
            device_time: None,
            seq: None,
        });
        self.sent.push(Sent {
            metric: code::MDC_PULS_OXIM_PULS_RATE,
            value: hr.map(|v| Decimal::from_int(v as i32)),
            unit: unit::MDC_DIM_BEAT_PER_MIN,
            device_time: None,
            seq: None,
        });
    }
}

impl DeviceSimulator for NoninSim {
    fn protocol(&self) -> &'static str {
        self.name
    }

    fn receive(&mut self, _bytes: &[u8], _now: Timestamp, _out: &mut Vec<u8>) {}

    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        while self.due(self.frame_no) <= now {
            let t = self.due(self.frame_no);
            match self.kind {
                Kind::Packets(format) => self.next_packet_frame(format, t, out),
                Kind::Df8 => self.next_df8_frame(t, out),
            }
            self.frame_no += 1;
        }
    }

    fn next_tick(&self) -> Timestamp {
        self.due(self.frame_no)
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

fn make_df2(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(NoninSim::new("nonin-df2", Some(Format::Df2), opts, now))
}

fn make_df7(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(NoninSim::new("nonin-df7", Some(Format::Df7), opts, now))
}

fn make_df8(opts: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(NoninSim::new("nonin-df8", None, opts, now))
}

/// The Nonin simulators, by protocol name.
pub const SIMULATORS: &[(&str, MakeSimulator)] = &[("nonin-df2", make_df2), ("nonin-df7", make_df7), ("nonin-df8", make_df8)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, Event};
    use crate::wire::nonin::decoder::NoninDecoder;

    fn opts() -> SimOptions {
        SimOptions { seed: 7, period_ms: 1000, record: true }
    }

    /// Runs the simulator for `ms`, feeding its output to `d` at each tick's time; returns the
    /// decoded (metric, value) pairs.
    fn run(sim: &mut NoninSim, d: &mut NoninDecoder, from: i64, ms: i64, out: &mut Vec<Event>) {
        let mut t = from;
        while t <= from + ms {
            let mut bytes = Vec::new();
            sim.tick(Timestamp(t), &mut bytes);
            d.feed(&bytes, Timestamp(t), out);
            t += 10;
        }
    }

    fn decoded(events: &[Event]) -> Vec<(u32, Option<Decimal>)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Measurement(m) => Some((m.metric.0, m.value.numeric())),
                _ => None,
            })
            .collect()
    }

    fn sent(s: &[Sent]) -> Vec<(u32, Option<Decimal>)> {
        s.iter().map(|s| (s.metric.0, s.value)).collect()
    }

    #[test]
    fn df2_stream_decodes_to_what_was_sent_with_every_fault() {
        for (name, format, mut d) in [
            ("nonin-df2", Some(Format::Df2), NoninDecoder::df2()),
            ("nonin-df7", Some(Format::Df7), NoninDecoder::df7()),
            ("nonin-df8", None, NoninDecoder::df8()),
        ] {
            let mut sim = NoninSim::new(name, format, &opts(), Timestamp(0));
            let mut out = Vec::new();
            run(&mut sim, &mut d, 0, 3_000, &mut out);
            let clean = sim.take_sent();
            assert!(clean.len() >= if format.is_some() { 16 } else { 6 }, "{name}: {}", clean.len());
            assert_eq!(decoded(&out), sent(&clean), "{name}");
            let mut t = 3_010;
            // The display values hold for 10 s after the sensor goes off (DF8 sends only those).
            // Faults are 5 s apart: after each, DF8 holds its frames until three in a row
            // confirm the lock again, and a fault within those frames would cost them.
            for (fault, ms) in [
                (Fault::BadChecksum, 5_000),
                (Fault::Truncate, 5_000),
                (Fault::Garbage(40), 5_000),
                (Fault::SensorOff(true), 12_000),
                (Fault::Silence(2_000), 5_000),
                (Fault::SensorOff(false), 5_000),
            ] {
                sim.inject(fault);
                run(&mut sim, &mut d, t, ms, &mut out);
                t += ms + 10;
            }
            let all = [clean, sim.take_sent()].concat();
            assert_eq!(decoded(&out), sent(&all), "{name}");
            assert!(out.iter().any(|e| matches!(e, Event::Rejected { .. })), "{name}");
            assert!(all.iter().any(|s| s.value.is_none()), "{name}: sensor off sends missing values");
        }
    }

    #[test]
    fn period_sets_the_output_rate() {
        let mut sim = NoninSim::new("nonin-df2", Some(Format::Df2), &SimOptions { period_ms: 100, ..opts() }, Timestamp(0));
        let mut bytes = Vec::new();
        sim.tick(Timestamp(999), &mut bytes);
        // 10 periods of 75 frames, less the one due at 1000 ms.
        assert_eq!(bytes.len(), 750 * 5);
        assert_eq!(sim.take_sent().len(), 30 * 2);
        assert_eq!(sim.next_tick(), Timestamp(1000));
    }
}
