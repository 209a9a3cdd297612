//! Simulator `medgw-link`: a medgw sensor node as the gateway sees it over the UART.
//!
//! The node boots (a lone `0x00`, `Hello`, `TimeRequest`), makes one batch per period with SpO2,
//! pulse rate and body temperature, numbers batches per boot, keeps every batch until it is
//! acknowledged and goes back to the oldest unacknowledged one when acknowledgements stop making
//! progress (the protocol of `wire::link`). It answers `HelloRequest` with a `Hello` and a resend,
//! and `TimeSync` by setting its clock from the echoed request (half the round trip). It ignores
//! what a node would refuse: acknowledgements of batches it never sent or of another boot, and
//! time answers to a request it did not make.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{DeviceSimulator, Fault, Rng, Sent, SimOptions};
use crate::decimal::Decimal;
use crate::mdc::{code, unit, MdcCode};
use crate::quality::{AbsentReason, Flags};
use crate::time::Timestamp;
use crate::wire::link::{self, Feed, FrameAccumulator, LinkObservation, LinkValue, Message, LINK_VERSION, MAX_FRAME};

/// The registry rows of this module.
pub const SIMULATORS: &[(&str, super::MakeSimulator)] = &[(link::PROTOCOL, make)];

fn make(options: &SimOptions, now: Timestamp) -> Box<dyn DeviceSimulator> {
    Box::new(LinkNodeSim::new(options, now))
}

/// Batches the simulated node keeps while unacknowledged (older ones are dropped, as the
/// firmware's ring buffer does).
pub const CAPACITY: usize = 256;
/// Without acknowledgement progress for this long the node resends from its oldest batch.
pub const RESEND_MS: i64 = 3_000;
/// The node asks for the time this often once synchronised (every 5 s before).
pub const TIME_SYNC_MS: i64 = 60_000;

#[derive(Debug, Clone)]
struct Batch {
    seq: u32,
    items: heapless::Vec<LinkObservation, { link::MAX_ITEMS }>,
}

/// The simulated node.
#[derive(Debug)]
pub struct LinkNodeSim {
    options: SimOptions,
    rng: Rng,
    boot: Timestamp,
    boot_id: u32,
    eui64: [u8; 8],
    booted: bool,
    next_seq: u32,
    next_batch: Timestamp,
    /// Unacknowledged batches, oldest first.
    unacked: VecDeque<Batch>,
    /// The next batch to transmit.
    send_seq: u32,
    last_progress: Timestamp,
    /// UTC minus uptime, once synchronised.
    clock_offset: Option<i64>,
    time_request: Option<u64>,
    next_time_request: Timestamp,
    spo2: i64,
    pulse: i64,
    temp_decicelsius: i64,
    sensor_off: bool,
    fault: Option<Fault>,
    silent_until: Timestamp,
    pending_silence: Option<u32>,
    acc: FrameAccumulator,
    sent: Vec<Sent>,
}

impl LinkNodeSim {
    pub fn new(options: &SimOptions, now: Timestamp) -> LinkNodeSim {
        let mut rng = Rng::new(options.seed);
        let boot_id = rng.next_u64() as u32;
        let mut eui64 = rng.next_u64().to_be_bytes();
        // A locally administered unicast EUI-64 (IEEE 802 U/L bit set, I/G bit clear).
        eui64[0] = (eui64[0] | 0x02) & !0x01;
        LinkNodeSim {
            options: options.clone(),
            rng,
            boot: now,
            boot_id,
            eui64,
            booted: false,
            next_seq: 0,
            next_batch: Timestamp(now.0 + i64::from(options.period_ms.max(1))),
            unacked: VecDeque::new(),
            send_seq: 0,
            last_progress: now,
            clock_offset: None,
            time_request: None,
            next_time_request: now,
            spo2: 97,
            pulse: 72,
            temp_decicelsius: 368,
            sensor_off: false,
            fault: None,
            silent_until: now,
            pending_silence: None,
            acc: FrameAccumulator::new(),
            sent: Vec::new(),
        }
    }

    /// The boot id the node announces.
    pub fn boot_id(&self) -> u32 {
        self.boot_id
    }

    /// The node's EUI-64.
    pub fn eui64(&self) -> [u8; 8] {
        self.eui64
    }

    /// Batches held for resend.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Whether the node's clock is synchronised.
    pub fn synced(&self) -> bool {
        self.clock_offset.is_some()
    }

    fn uptime(&self, now: Timestamp) -> i64 {
        now.0.saturating_sub(self.boot.0).max(0)
    }

    fn hello(&self) -> Message {
        let mut model = heapless::String::new();
        let _ = model.push_str("medgw-sim-node");
        let mut firmware = heapless::String::new();
        let _ = firmware.push_str("sim-1.0.0");
        Message::Hello { version: LINK_VERSION, eui64: self.eui64, model, firmware, boot_id: self.boot_id }
    }

    /// Writes one frame, applying a pending fault.
    fn emit(&mut self, msg: &Message, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_FRAME];
        let Ok(n) = link::encode(msg, &mut buf) else {
            return;
        };
        let frame = buf.get(..n).unwrap_or_default();
        match self.fault.take() {
            Some(Fault::BadChecksum) => {
                // Re-encode with the CRC's first byte flipped.
                let mut raw = [0u8; link::MAX_ENCODED];
                if let Ok(len) = link::cobs::decode(frame.get(..n - 1).unwrap_or_default(), &mut raw) {
                    if let Some(b) = raw.get_mut(len.saturating_sub(link::CRC_LEN)) {
                        *b ^= 0x5A;
                    }
                    let mut enc = [0u8; MAX_FRAME];
                    if let Ok(m) = link::cobs::encode(raw.get(..len).unwrap_or_default(), &mut enc) {
                        out.extend_from_slice(enc.get(..m).unwrap_or_default());
                        out.push(0);
                    }
                }
            }
            Some(Fault::Truncate) => {
                out.extend_from_slice(frame.get(..n / 2).unwrap_or_default());
                out.push(0);
            }
            Some(Fault::Garbage(count)) => {
                for _ in 0..count {
                    out.push(self.rng.next_u64() as u8);
                }
                out.extend_from_slice(frame);
            }
            other => {
                self.fault = other;
                out.extend_from_slice(frame);
            }
        }
    }

    fn make_batch(&mut self, at: Timestamp) {
        let uptime = self.uptime(at);
        let (time_ms, clock_flag) = match self.clock_offset {
            Some(off) => (uptime.saturating_add(off), Flags::NONE),
            None => (uptime, Flags::CLOCK_NOT_SET),
        };
        self.spo2 = self.rng.walk(self.spo2, 1, 90, 100);
        self.pulse = self.rng.walk(self.pulse, 2, 50, 130);
        self.temp_decicelsius = self.rng.walk(self.temp_decicelsius, 1, 360, 385);
        let mut items = heapless::Vec::new();
        let rows: [(MdcCode, MdcCode, i64, i8); 3] = [
            (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, self.spo2, 0),
            (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, self.pulse, 0),
            (code::MDC_TEMP_BODY, unit::MDC_DIM_DEGC, self.temp_decicelsius, -1),
        ];
        for (i, (metric, u, value, exponent)) in rows.into_iter().enumerate() {
            let off = self.sensor_off && i < 2;
            let obs = if off {
                LinkObservation::absent(metric.0, u.0, AbsentReason::Unavailable, time_ms, clock_flag | Flags::SENSOR_OFF)
            } else {
                LinkObservation::numeric(metric.0, u.0, value as i32, exponent, time_ms, clock_flag)
            };
            if self.options.record {
                self.sent.push(Sent {
                    metric,
                    value: match obs.value {
                        LinkValue::Numeric { mantissa, exponent } => Decimal::new(mantissa as i64, exponent),
                        LinkValue::Absent(_) => None,
                    },
                    unit: u,
                    device_time: self.clock_offset.map(|_| Timestamp(time_ms)),
                    seq: Some(self.next_seq),
                });
            }
            let _ = items.push(obs);
        }
        if self.unacked.len() == CAPACITY {
            self.unacked.pop_front();
        }
        self.unacked.push_back(Batch { seq: self.next_seq, items });
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    fn oldest(&self) -> u32 {
        self.unacked.front().map_or(self.next_seq, |b| b.seq)
    }

    fn rewind(&mut self, now: Timestamp) {
        self.send_seq = self.oldest();
        self.last_progress = now;
    }

    fn transmit(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if let Some(ms) = self.pending_silence.take() {
            self.silent_until = Timestamp(now.0 + i64::from(ms));
        }
        if now < self.silent_until {
            return;
        }
        if !self.booted {
            self.booted = true;
            out.push(0);
            let hello = self.hello();
            self.emit(&hello, out);
        }
        if now >= self.next_time_request {
            let uptime = self.uptime(now) as u64;
            self.time_request = Some(uptime);
            self.emit(&Message::TimeRequest { uptime_ms: uptime }, out);
            let every = if self.clock_offset.is_some() { TIME_SYNC_MS } else { 5_000 };
            self.next_time_request = Timestamp(now.0 + every);
        }
        if !self.unacked.is_empty() && now.0 - self.last_progress.0 >= RESEND_MS {
            self.rewind(now);
        }
        // Never send a batch that was dropped from the ring.
        if self.send_seq < self.oldest() {
            self.send_seq = self.oldest();
        }
        let pending: Vec<Message> = self
            .unacked
            .iter()
            .filter(|b| b.seq >= self.send_seq)
            .map(|b| Message::Observations { seq: b.seq, boot_id: self.boot_id, items: b.items.clone() })
            .collect();
        for msg in &pending {
            self.emit(msg, out);
        }
        self.send_seq = self.next_seq;
    }
}

impl DeviceSimulator for LinkNodeSim {
    fn protocol(&self) -> &'static str {
        link::PROTOCOL
    }

    fn receive(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        let mut input = bytes;
        let mut messages = Vec::new();
        loop {
            match self.acc.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { result, rest, .. } => {
                    if let Ok(msg) = result.and_then(link::parse_payload) {
                        messages.push(msg);
                    }
                    input = rest;
                }
            }
        }
        for msg in messages {
            match msg {
                Message::Ack { boot_id, seq } if boot_id == self.boot_id && seq < self.next_seq && seq >= self.oldest() => {
                    while self.unacked.front().is_some_and(|b| b.seq <= seq) {
                        self.unacked.pop_front();
                    }
                    self.last_progress = now;
                }
                Message::TimeSync { utc_ms, echo_uptime_ms } if self.time_request == Some(echo_uptime_ms) => {
                    self.time_request = None;
                    let uptime = self.uptime(now);
                    let rtt = uptime.saturating_sub(echo_uptime_ms as i64).max(0);
                    self.clock_offset = Some(utc_ms + rtt / 2 - uptime);
                    self.next_time_request = Timestamp(now.0 + TIME_SYNC_MS);
                }
                Message::HelloRequest if now >= self.silent_until => {
                    let hello = self.hello();
                    self.emit(&hello, out);
                    self.booted = true;
                    self.rewind(now);
                    self.transmit(now, out);
                }
                // Anything else is refused silently, as the firmware does.
                _ => {}
            }
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        let period = i64::from(self.options.period_ms.max(1));
        while now >= self.next_batch {
            let at = self.next_batch;
            self.make_batch(at);
            self.next_batch = Timestamp(at.0 + period);
        }
        self.transmit(now, out);
    }

    fn next_tick(&self) -> Timestamp {
        let mut t = self.next_batch;
        if !self.booted {
            t = t.min(self.boot);
        }
        if !self.unacked.is_empty() {
            t = t.min(Timestamp(self.last_progress.0 + RESEND_MS));
        }
        t.min(self.next_time_request).max(self.silent_until)
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::SensorOff(off) => self.sensor_off = off,
            Fault::Silence(ms) => self.pending_silence = Some(ms),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, DecoderOptions, Event};
    use crate::wire::link::LinkDecoder;

    /// Runs the node against the decoder for `secs` seconds, passing transmits back.
    fn run(sim: &mut LinkNodeSim, dec: &mut LinkDecoder, from: i64, secs: i64, events: &mut Vec<Event>) {
        for t in (from..from + secs * 1000).step_by(100) {
            let now = Timestamp(t);
            let mut bytes = Vec::new();
            sim.tick(now, &mut bytes);
            while !bytes.is_empty() {
                let mut ev = Vec::new();
                dec.feed(&bytes, now, &mut ev);
                bytes.clear();
                for e in &ev {
                    if let Event::Transmit(b) = e {
                        sim.receive(b, now, &mut bytes);
                    }
                }
                events.extend(ev);
            }
        }
    }

    #[test]
    fn node_boots_syncs_and_is_acknowledged() {
        let t0 = 1_710_498_125_000;
        let opts = SimOptions { seed: 3, period_ms: 1000, record: true };
        let mut sim = LinkNodeSim::new(&opts, Timestamp(t0));
        let mut dec = LinkDecoder::new(&DecoderOptions::default());
        let mut events = Vec::new();
        run(&mut sim, &mut dec, t0, 10, &mut events);
        assert!(sim.synced());
        assert!(events.iter().any(|e| matches!(e, Event::Identity(id) if id.eui64.map(|e| e.0) == Some(sim.eui64()))));
        assert!(sim.unacked() <= 1, "{} batches unacknowledged", sim.unacked());
        let sent = sim.take_sent();
        assert!(sent.len() >= 27, "{}", sent.len());
        assert!(sent.iter().any(|s| s.device_time.is_some()));
    }
}
