//! The Nonin stream decoders (`nonin-df2`, `nonin-df7`, `nonin-df8`).
//!
//! Which values are published:
//! - DF2/DF7: per complete packet (3 per second) one SpO2 and one pulse rate, from the
//!   **standard 4-beat values** (HR frames 1–2, SpO2 frame 3), not the display values (-D).
//!   The standard values are updated with every packet and become "missing" (511/127) as soon
//!   as the signal is lost, whereas the display values are updated only every 1.5 s and hold
//!   their last value for 10 s after the finger is removed (spec p. 10): publishing them would
//!   repeat a stale number as if it were current. The extended (8-beat) and display values are
//!   available on [`super::Packet`] for whoever needs them.
//! - DF8: per frame (1 per second) one SpO2 and one pulse rate. DF8 carries only the display
//!   values; while the sensor is off the device may still send the held value for 10 s, which
//!   is published as the device sent it, flagged [`Flags::SENSOR_OFF`].
//!
//! DF8 has no checksum: random bytes pass its frame checks about once in a thousand positions.
//! Its frames are published only under a confirmed lock, through a rate gate
//! ([`crate::lock`]): [`LOCK_FRAMES`](crate::lock::LOCK_FRAMES) frames back to back before
//! the first value and after every resynchronisation, at most [`DF8_MAX_FRAME_RATE`] frames per
//! second after a backlog of at most [`DF8_BURST_FRAMES`]. DF2 and DF7 need neither: a value takes 25 checksummed frames back to back that
//! open with a SYNC frame (see [`super::packet`]), which noise or another protocol's stream
//! does not produce.
//!
//! Frames lost whole, without a damaged byte, are invisible to the framing; the count of frames
//! between SYNC frames catches most such losses, and a pause of more than [`GAP_MS`] between
//! two `feed` calls drops the packet in progress, which catches the loss of exactly 25·n frames
//! (at least 333 ms) that the count cannot see. On a UART, lost bytes show up as damaged frames,
//! which the checksum and the packet rules (see [`super::packet`]) catch.
//!
//! DF2/DF7 also give one pleth sample per frame (75 per second), published as
//! [`Event::Wave`] chunks of [`code::MDC_PULS_OXIM_PLETH`]: every frame that passes its checksum
//! contributes its sample, whether or not its packet completes (the numerics need the whole
//! packet, the wave does not). Raw values are kept, 0–255 (DF2) or 0–65535 (DF7), dimensionless,
//! on the identity scale: the spec gives the pleth no physical unit. A sample from a frame with
//! the sensor alarm (SNSA) or out-of-track (OOT) bit is marked invalid; a chunk carries the
//! status flags of its frames. Chunks are one per `feed` (cut where a frame was rejected, after
//! a pause of more than [`GAP_MS`] and after `start`, which break continuity: frames lost whole
//! cannot be counted). Nonin sends no time: the first sample's time is the receipt time backed
//! off by the chunk's duration.
//! Technical alerts: SNSA, OOT, ARTF, low/marginal perfusion (DF8 LPRF/MPRF, DF2/DF7 the
//! RPRF/GPRF colour) and low battery become an [`Event::Alarms`] report
//! ([`crate::alarm::flags::NONIN`]) with each published reading whose set of these bits differs
//! from the last report's, and with the first reading after (re)start. Under the DF8 lock, so
//! noise raises no alert. DF2/DF7 show the perfusion colour only around each pulse, so the last
//! colour shown stands until another is shown. ARTF and OOT follow the device packet by packet
//! and may start and end often during motion.
//!
//! Nonin sends no time and no sequence number: `device_time` and `seq` are `None`.
//! The firmware revision (SREV, frame 4) becomes an identity event the first time it is seen
//! and whenever it changes.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::frame::{perfusion_flags, Df8Frame, Format, Perfusion, DF8_LEN};
use super::packet::{Packet, PacketAssembler, PacketEvent};
use super::sync::{Df8Sync, FrameSync, SyncEvent};
use crate::alarm::{flags as alarm_flags, AlarmReport, ReportScope};
use crate::decimal::Decimal;
use crate::decode::{push_event, Decoder, DecoderOptions, Event};
use crate::error::Error;
use crate::lock::StreamLock;
use crate::mdc::{code, unit, MdcCode};
use crate::observation::{AbsentReason, DeviceIdentity, Flags, Measurement, Status, Value};
use crate::time::Timestamp;
use crate::wave::{Continuity, SampleMarks, SamplePeriod, WaveChunk, WaveScale};

/// The alert flags of a DF2/DF7 packet. The perfusion colour is shown for 12 frames per pulse
/// (spec p. 9), so a packet between pulses shows none: the colour of the last packet that
/// showed one stands, else low perfusion would start and end with every pulse.
fn packet_alerts(p: &Packet, colour: &mut Perfusion) -> Flags {
    if p.perfusion() != Perfusion::None {
        *colour = p.perfusion();
    }
    let perfusion = Flags::LOW_PERFUSION | Flags::MARGINAL_PERFUSION;
    Flags(p.flags().0 & !perfusion.0) | perfusion_flags(*colour)
}

/// An alarm report when the alert bits in `flags` differ from the last report's.
fn alarm_report(flags: Flags, last: &mut Option<Flags>, out: &mut Vec<Event>) {
    let bits = Flags(flags.0 & alarm_flags::mask(alarm_flags::NONIN).0);
    if *last == Some(bits) {
        return;
    }
    *last = Some(bits);
    let conditions = alarm_flags::conditions(bits, alarm_flags::NONIN, "nonin", code::MDC_PULS_OXIM_SAT_O2);
    out.push(Event::Alarms(AlarmReport::new(ReportScope::All, conditions)));
}

/// A Nonin reading: the value, or absent ([`Flags::UNAVAILABLE`]) for the missing-data value.
/// Built in one piece: DF8 makes two per 4 bytes, so the copies matter.
#[inline(always)]
fn reading(metric: MdcCode, unit: MdcCode, value: Option<i32>, flags: Flags) -> Measurement {
    let (value, flags) = match value {
        Some(v) => (Value::Numeric(Decimal::from_int(v)), flags),
        None => (Value::Absent(AbsentReason::Unavailable), flags | Flags::UNAVAILABLE),
    };
    Measurement { metric, vendor: None, value, unit, device_time: None, seq: None, flags, status: Status::Final }
}

/// The SpO2 measurement of one reading, absent when the device said "missing".
#[inline(always)]
pub fn spo2_measurement(value: Option<u8>, flags: Flags) -> Measurement {
    reading(code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, value.map(i32::from), flags)
}

/// The pulse-rate measurement of one reading, absent when the device said "missing".
#[inline(always)]
pub fn pulse_rate_measurement(value: Option<u16>, flags: Flags) -> Measurement {
    reading(code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, value.map(i32::from), flags)
}

/// The firmware string published for an SREV byte: the raw byte in hex, since the spec gives
/// no other rendering.
pub fn firmware_string(srev: u8) -> String {
    format!("0x{srev:02X}")
}

/// A pause in the DF2/DF7 byte stream longer than this drops the packet in progress: the device
/// sends a frame every 13.3 ms, a packet every 333 ms; 200 ms is longer than serial and
/// Bluetooth delivery jitter and shorter than the 25 frames whose loss the frame count cannot
/// detect.
pub const GAP_MS: i64 = 200;

/// The DF8 rate gate's default limit in frames per second. The device sends one frame a second
/// (spec p. 16); twenty is far above that and far below a line that delivers frames at the
/// speed of noise (a pseudo-terminal: tens of thousands a second).
pub const DF8_MAX_FRAME_RATE: u32 = 20;
/// Frames the DF8 rate gate passes at once before the rate applies: a backlog of over an hour
/// of output (16 KiB), as a reader stalled by a full buffer or a device server's port buffer
/// delivers it when reading resumes (see [`crate::lock::RateGate`]).
pub const DF8_BURST_FRAMES: u32 = 4096;

/// DF2/DF7 frames per second (spec p. 8): the pleth sample rate.
pub const PLETH_RATE: SamplePeriod = SamplePeriod::per_second(75);

/// The pleth samples of one `feed`, cut where continuity broke.
#[derive(Debug)]
struct PlethChunks {
    scale: WaveScale,
    chunks: Vec<WaveChunk>,
    /// How the next sample continues the last one sent.
    next: Continuity,
}

impl PlethChunks {
    fn new(format: Format) -> PlethChunks {
        let max = match format {
            Format::Df2 => 255,
            Format::Df7 => 65_535,
        };
        PlethChunks { scale: WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, max), chunks: Vec::new(), next: Continuity::Broken }
    }

    fn sample(&mut self, pleth: u16, flags: Flags) {
        let marks = if flags.intersects(Flags::SENSOR_OFF | Flags::OUT_OF_TRACK) { SampleMarks::INVALID } else { SampleMarks::NONE };
        let open = self.chunks.last().is_some() && self.next == Continuity::Continuous;
        if !open {
            self.chunks.push(WaveChunk {
                metric: code::MDC_PULS_OXIM_PLETH,
                period: PLETH_RATE,
                scale: self.scale,
                start: Timestamp(0),
                continuity: self.next,
                flags: Flags::NONE,
                samples: Vec::with_capacity(32),
                marks: Vec::new(),
            });
            self.next = Continuity::Continuous;
        }
        if let Some(c) = self.chunks.last_mut() {
            if !marks.is_empty() || !c.marks.is_empty() {
                c.marks.resize(c.samples.len(), SampleMarks::NONE);
                c.marks.push(marks);
            }
            c.samples.push(pleth as i32);
            c.flags.insert(flags);
        }
    }

    fn broken(&mut self) {
        self.next = Continuity::Broken;
    }

    /// Sends this feed's chunks, timing the last sample at `now`.
    fn emit(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let total: u64 = self.chunks.iter().map(|c| c.samples.len() as u64).sum();
        let mut before = 0u64;
        for mut c in self.chunks.drain(..) {
            let after_first = total.saturating_sub(before + 1);
            c.start = Timestamp(now.0.saturating_sub(PLETH_RATE.offset_us(after_first) / 1000));
            before += c.samples.len() as u64;
            out.push(Event::Wave(Box::new(c)));
        }
    }
}

#[derive(Debug)]
enum Inner {
    Packets {
        sync: FrameSync,
        packets: PacketAssembler,
        last_srev: Option<u8>,
        last_rx: Option<Timestamp>,
        pleth: PlethChunks,
        last_alarm: Option<Flags>,
        /// The last perfusion colour a packet showed (see [`packet_alerts`]).
        colour: Perfusion,
    },
    Df8 {
        sync: Df8Sync,
        lock: StreamLock<Df8Frame>,
        last_alarm: Option<Flags>,
    },
}

/// A Nonin decoder for one data format.
#[derive(Debug)]
pub struct NoninDecoder {
    name: &'static str,
    inner: Inner,
}

impl NoninDecoder {
    pub fn df2() -> NoninDecoder {
        NoninDecoder::packets("nonin-df2", Format::Df2)
    }

    pub fn df7() -> NoninDecoder {
        NoninDecoder::packets("nonin-df7", Format::Df7)
    }

    /// DF8 with the default rate gate ([`DF8_MAX_FRAME_RATE`]).
    pub fn df8() -> NoninDecoder {
        NoninDecoder::df8_with_rate(DF8_MAX_FRAME_RATE)
    }

    /// DF8 accepting up to `max_frame_rate` frames per second.
    pub fn df8_with_rate(max_frame_rate: u32) -> NoninDecoder {
        NoninDecoder {
            name: "nonin-df8",
            inner: Inner::Df8 {
                sync: Df8Sync::new(),
                lock: StreamLock::new(max_frame_rate, DF8_BURST_FRAMES.max(max_frame_rate.saturating_mul(3))),
                last_alarm: None,
            },
        }
    }

    fn packets(name: &'static str, format: Format) -> NoninDecoder {
        NoninDecoder {
            name,
            inner: Inner::Packets {
                sync: FrameSync::new(format),
                packets: PacketAssembler::new(),
                last_srev: None,
                last_rx: None,
                pleth: PlethChunks::new(format),
                last_alarm: None,
                colour: Perfusion::None,
            },
        }
    }
}

fn emit_packet(p: &Packet, last_srev: &mut Option<u8>, last_alarm: &mut Option<Flags>, colour: &mut Perfusion, out: &mut Vec<Event>) {
    if *last_srev != Some(p.srev()) {
        *last_srev = Some(p.srev());
        out.push(Event::Identity(DeviceIdentity {
            manufacturer: Some(String::from("Nonin")),
            firmware: Some(firmware_string(p.srev())),
            ..DeviceIdentity::default()
        }));
    }
    let flags = p.flags();
    push_event(out, Event::Measurement(spo2_measurement(p.spo2(), flags)));
    push_event(out, Event::Measurement(pulse_rate_measurement(p.hr(), flags)));
    alarm_report(packet_alerts(p, colour), last_alarm, out);
}

fn emit_df8(f: &Df8Frame, out: &mut Vec<Event>) {
    let flags = f.flags();
    // Two pushes, not `extend` of an array: the array is built on the stack and then copied,
    // which cost 40 % of DF8 decoding (perf).
    push_event(out, Event::Measurement(spo2_measurement(f.spo2(), flags)));
    push_event(out, Event::Measurement(pulse_rate_measurement(f.hr(), flags)));
}

impl Decoder for NoninDecoder {
    fn protocol(&self) -> &'static str {
        self.name
    }

    fn feed(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Event>) {
        match &mut self.inner {
            Inner::Packets { sync, packets, last_srev, last_rx, pleth, last_alarm, colour } => {
                if bytes.is_empty() {
                    return;
                }
                if last_rx.is_some_and(|t| now.0.saturating_sub(t.0) > GAP_MS) {
                    packets.gap();
                    pleth.broken();
                }
                *last_rx = Some(now);
                sync.feed(bytes, |e| match e {
                    SyncEvent::Skipped { offset, error } => {
                        packets.skipped();
                        pleth.broken();
                        out.push(Event::Rejected { offset, error });
                    }
                    SyncEvent::Frame { frame, offset } => {
                        pleth.sample(frame.pleth, frame.status.flags());
                        match packets.push(&frame) {
                            PacketEvent::Pending => {}
                            PacketEvent::Complete(p) => emit_packet(&p, last_srev, last_alarm, colour, out),
                            PacketEvent::Broken(error) => out.push(Event::Rejected { offset, error }),
                        }
                    }
                });
                pleth.emit(now, out);
            }
            Inner::Df8 { sync, lock, last_alarm } => {
                // Two measurements per 4-byte frame: reserve once rather than grow per frame.
                out.reserve(bytes.len() / 2 + 2);
                sync.feed(bytes, |e| match e {
                    SyncEvent::Skipped { offset, error } => {
                        let skipped = match error {
                            Error::Garbage { skipped } => skipped,
                            Error::Truncated { got, .. } => got,
                            _ => DF8_LEN,
                        };
                        out.push(Event::Rejected { offset, error });
                        lock.skipped(skipped, out);
                    }
                    SyncEvent::Frame { frame, offset } => lock.frame(frame, offset, now, out, |f, out| {
                        emit_df8(f, out);
                        alarm_report(f.flags(), last_alarm, out);
                    }),
                })
            }
        }
    }

    fn start(&mut self, _now: Timestamp, out: &mut Vec<Event>) {
        match &mut self.inner {
            Inner::Packets { sync, packets, last_srev, last_rx, pleth, last_alarm, colour } => {
                *last_alarm = None;
                *colour = Perfusion::None;
                sync.reset();
                packets.reset();
                pleth.broken();
                *last_rx = None;
                // Another device may be on the other end after a reconnect.
                *last_srev = None;
            }
            Inner::Df8 { sync, lock, last_alarm } => {
                *last_alarm = None;
                sync.reset();
                lock.reset(out);
            }
        }
    }
}

pub(super) fn make_df2(_: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(NoninDecoder::df2())
}

pub(super) fn make_df7(_: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(NoninDecoder::df7())
}

pub(super) fn make_df8(opts: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(NoninDecoder::df8_with_rate(opts.max_frame_rate.unwrap_or(DF8_MAX_FRAME_RATE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::observation::Value;
    use crate::wire::nonin::frame::{Frame, Status};
    use crate::wire::nonin::packet::tests::NP3;

    fn decode(d: &mut NoninDecoder, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        d.feed(bytes, Timestamp(0), &mut out);
        out
    }

    fn values(events: &[Event]) -> Vec<(u32, Option<Decimal>, Flags)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Measurement(m) => Some((m.metric.0, m.value.numeric(), m.flags)),
                _ => None,
            })
            .collect()
    }

    fn np3() -> Vec<u8> {
        NP3.concat()
    }

    #[test]
    fn np3_gives_identity_spo2_and_pulse_rate() {
        let mut d = NoninDecoder::df2();
        let mut ev = decode(&mut d, &np3());
        // The pleth chunk comes last, after the values of the packet it completed.
        assert!(matches!(ev.pop(), Some(Event::Wave(w)) if w.samples.len() == 25));
        assert_eq!(ev.len(), 4, "{ev:?}"); // identity, SpO2, pulse rate, the (empty) first alarm report
        let Event::Identity(id) = &ev[0] else { panic!("{:?}", ev[0]) };
        assert_eq!((id.manufacturer.as_deref(), id.firmware.as_deref()), (Some("Nonin"), Some("0x41")));
        let Event::Measurement(spo2) = &ev[1] else { panic!() };
        assert_eq!(spo2.metric, code::MDC_PULS_OXIM_SAT_O2);
        assert_eq!(spo2.unit, unit::MDC_DIM_PERCENT);
        assert_eq!(spo2.value, Value::Numeric(Decimal::from_int(97)));
        assert_eq!((spo2.device_time, spo2.seq, spo2.flags), (None, None, Flags::NONE));
        let Event::Measurement(pr) = &ev[2] else { panic!() };
        assert_eq!(
            (pr.metric, pr.unit, pr.value.numeric()),
            (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, Some(Decimal::from_int(72)))
        );
        // The identity is not repeated for the next packet with the same SREV.
        assert_eq!(decode(&mut d, &np3()).len(), 3);
    }

    #[test]
    fn missing_data_is_absent_never_a_number() {
        let mut raw = NP3;
        // HR 511: MSB bits 0-1 set, LSB 0x7F; SpO2 127; SNSA set on frame 5.
        for (i, v) in [(0usize, 0x03u8), (1, 0x7F), (2, 0x7F)] {
            raw[i][3] = v;
        }
        raw[4][1] |= Status::SNSA;
        let bytes: Vec<u8> = raw
            .iter()
            .flat_map(|f| {
                let fr = Frame { status: Status(f[1]), pleth: f[2] as u16, float: f[3] };
                let mut b = [0u8; 5];
                fr.emit(Format::Df2, &mut b).unwrap();
                b
            })
            .collect();
        let mut d = NoninDecoder::df2();
        let ev = decode(&mut d, &bytes);
        let ms: Vec<&Measurement> = ev.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect();
        assert_eq!(ms.len(), 2);
        for m in ms {
            assert_eq!(m.value, Value::Absent(AbsentReason::Unavailable));
            assert!(m.flags.contains(Flags::UNAVAILABLE | Flags::SENSOR_OFF), "{:?}", m.flags);
        }
    }

    #[test]
    fn df7_packets_decode_like_df2() {
        let bytes: Vec<u8> = NP3
            .iter()
            .flat_map(|f| {
                let fr = Frame { status: Status(f[1]), pleth: 0x1234, float: f[3] };
                let mut b = [0u8; 5];
                fr.emit(Format::Df7, &mut b).unwrap();
                b
            })
            .collect();
        let mut d = NoninDecoder::df7();
        let v = values(&decode(&mut d, &bytes));
        assert_eq!(v, alloc::vec![(150456, Some(Decimal::from_int(97)), Flags::NONE), (149530, Some(Decimal::from_int(72)), Flags::NONE)]);
    }

    #[test]
    fn a_bad_frame_mid_packet_produces_no_values_from_mixed_packets() {
        let mut stream = np3();
        stream[5 * 10 + 4] ^= 0xFF; // frame 11's checksum
        stream.extend(np3());
        stream.extend(np3());
        let mut d = NoninDecoder::df2();
        let ev = decode(&mut d, &stream);
        assert!(matches!(ev[0], Event::Rejected { offset: 50, error: Error::BadChecksum { .. } }), "{ev:?}");
        // Packet 1 is broken; packet 2 follows back to back after frame 12..25 of packet 1,
        // which were contiguous after the skip, so packet 2 and 3 decode.
        assert_eq!(values(&ev).len(), 4);
    }

    #[test]
    fn a_pause_longer_than_the_gap_drops_the_packet_in_progress() {
        let stream = [np3(), np3()].concat();
        let mut d = NoninDecoder::df2();
        let mut out = Vec::new();
        // Packet 1 in two halves 300 ms apart: dropped. Packet 2 right after: decoded.
        d.feed(&stream[..60], Timestamp(0), &mut out);
        d.feed(&stream[60..], Timestamp(300), &mut out);
        assert_eq!(values(&out).len(), 2, "{out:?}");
        // Without the pause both packets decode.
        let mut out = Vec::new();
        let mut d = NoninDecoder::df2();
        d.feed(&stream[..60], Timestamp(0), &mut out);
        d.feed(&stream[60..], Timestamp(150), &mut out);
        assert_eq!(values(&out).len(), 4);
    }

    #[test]
    fn df8_vectors_and_flags() {
        let mut d = NoninDecoder::df8();
        // NP-1, NP-2, then SNSA with missing values.
        let ev = decode(&mut d, &[0x80, 0x48, 0x61, 0x00, 0x81, 0x16, 0x5F, 0x20, 0x83, 0x7F, 0x7F, 0x08]);
        let v = values(&ev);
        assert_eq!(v.len(), 6);
        assert_eq!(v[0], (150456, Some(Decimal::from_int(97)), Flags::NONE));
        assert_eq!(v[1], (149530, Some(Decimal::from_int(72)), Flags::NONE));
        assert_eq!(v[2], (150456, Some(Decimal::from_int(95)), Flags::NONE));
        assert_eq!(v[3], (149530, Some(Decimal::from_int(150)), Flags::NONE));
        assert_eq!(v[4], (150456, None, Flags::UNAVAILABLE | Flags::SENSOR_OFF));
        assert_eq!(v[5], (149530, None, Flags::UNAVAILABLE | Flags::SENSOR_OFF));
    }

    #[test]
    fn start_drops_a_partial_frame() {
        let mut d = NoninDecoder::df8();
        let mut out = Vec::new();
        d.feed(&[0x80, 0x48], Timestamp(0), &mut out);
        d.start(Timestamp(0), &mut out);
        d.feed(&[0x61, 0x00, 0x80, 0x48, 0x61, 0x00, 0x80, 0x48, 0x61, 0x00, 0x80, 0x48, 0x61, 0x00], Timestamp(0), &mut out);
        // The orphaned tail is garbage; the three full frames lock and decode.
        assert!(matches!(out[0], Event::Rejected { offset: 2, error: Error::Garbage { skipped: 2 } }), "{out:?}");
        assert_eq!(values(&out).len(), 6);
    }

    #[test]
    fn df8_publishes_only_under_a_lock_and_start_drops_it() {
        const NP1: [u8; 4] = [0x80, 0x48, 0x61, 0x00];
        let mut d = NoninDecoder::df8();
        let mut out = Vec::new();
        // Two frames, one second apart: held.
        d.feed(&NP1, Timestamp(0), &mut out);
        d.feed(&NP1, Timestamp(1000), &mut out);
        assert!(values(&out).is_empty(), "{out:?}");
        // The third confirms the lock: all three are published.
        d.feed(&NP1, Timestamp(2000), &mut out);
        assert_eq!(values(&out).len(), 6);
        // A garbage byte drops the lock; the frame after it is held again.
        out.clear();
        d.feed(&[0x11], Timestamp(2500), &mut out);
        d.feed(&NP1, Timestamp(3000), &mut out);
        assert!(values(&out).is_empty(), "{out:?}");
        // A reconnect drops the held frame, reported as unconfirmed.
        d.start(Timestamp(3500), &mut out);
        assert!(out.contains(&Event::Rejected { offset: 13, error: Error::Unconfirmed { frames: 1 } }), "{out:?}");
    }

    fn waves(events: &[Event]) -> Vec<&WaveChunk> {
        events.iter().filter_map(|e| if let Event::Wave(w) = e { Some(&**w) } else { None }).collect()
    }

    #[test]
    fn every_checksummed_frame_gives_a_pleth_sample_even_in_a_broken_packet() {
        let mut stream = np3();
        stream[5 * 10 + 4] ^= 0xFF; // frame 11's checksum
        stream.extend(np3());
        let mut d = NoninDecoder::df2();
        let ev = decode(&mut d, &stream);
        let w = waves(&ev);
        // Frames 1-10, then (frame 11 lost) 12-25 and the second packet: 10 + 39 samples.
        assert_eq!(w.iter().map(|c| c.samples.len()).collect::<Vec<_>>(), alloc::vec![10, 39]);
        assert_eq!((w[0].continuity, w[1].continuity), (Continuity::Broken, Continuity::Broken));
        assert!(w.iter().all(|c| c.samples.iter().all(|&s| s == 0x80)));
        assert_eq!((w[0].metric, w[0].period, w[0].scale.max_raw), (code::MDC_PULS_OXIM_PLETH, PLETH_RATE, 255));
        // Timing: the last of the 49 samples at the receipt time, the first 48 periods earlier.
        assert_eq!(w[1].start, Timestamp(-(PLETH_RATE.offset_us(38) / 1000)));
        assert_eq!(w[0].start, Timestamp(-(PLETH_RATE.offset_us(48) / 1000)));
        // The numerics are what they were: packet 2 only.
        assert_eq!(values(&ev).len(), 2);
        // The next feed continues the stream.
        let ev = decode(&mut d, &np3());
        assert_eq!(waves(&ev)[0].continuity, Continuity::Continuous);
        // A reconnect breaks it.
        d.start(Timestamp(0), &mut Vec::new());
        assert_eq!(waves(&decode(&mut d, &np3()))[0].continuity, Continuity::Broken);
    }

    #[test]
    fn df7_pleth_is_16_bit_and_sensor_off_samples_are_invalid() {
        let bytes: Vec<u8> = NP3
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let status = if i >= 20 { f[1] | Status::SNSA } else { f[1] };
                let fr = Frame { status: Status(status), pleth: 0x1234 + i as u16, float: f[3] };
                let mut b = [0u8; 5];
                fr.emit(Format::Df7, &mut b).unwrap();
                b
            })
            .collect();
        let mut d = NoninDecoder::df7();
        let ev = decode(&mut d, &bytes);
        let w = waves(&ev);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].samples, (0..25).map(|i| 0x1234 + i).collect::<Vec<i32>>());
        assert_eq!(w[0].scale.max_raw, 65_535);
        assert_eq!(w[0].marks.iter().filter(|m| **m == SampleMarks::INVALID).count(), 5);
        assert_eq!(w[0].mark(19), SampleMarks::NONE);
        assert!(w[0].flags.contains(Flags::SENSOR_OFF));
    }

    fn alarm_codes(ev: &[Event]) -> Vec<Vec<&str>> {
        ev.iter()
            .filter_map(
                |e| if let Event::Alarms(r) = e { Some(r.conditions.iter().map(|c| c.vendor.code.as_ref()).collect()) } else { None },
            )
            .collect()
    }

    #[test]
    fn df8_sensor_alarm_starts_and_clears_under_the_lock() {
        let mut d = NoninDecoder::df8();
        let normal = [0x80, 0x48, 0x61, 0x00]; // NP-1
        let off = [0x83, 0x7F, 0x7F, 0x08]; // missing values, SNSA (STATUS2 bit 3, spec p. 16)
        let mut stream = Vec::new();
        for _ in 0..6 {
            stream.extend_from_slice(&normal);
        }
        for _ in 0..3 {
            stream.extend_from_slice(&off);
        }
        stream.extend_from_slice(&normal);
        let ev = decode(&mut d, &stream);
        assert_eq!(alarm_codes(&ev), [vec![], vec!["SNSA"], vec![]]);
        let Some(Event::Alarms(r)) = ev.iter().find(|e| matches!(e, Event::Alarms(r) if !r.conditions.is_empty())) else { panic!() };
        assert_eq!(r.conditions[0].kind, crate::alarm::AlarmKind::Technical);
        // Noise that never locks raises nothing.
        let mut d = NoninDecoder::df8();
        assert!(alarm_codes(&decode(&mut d, &off)).is_empty());
    }

    #[test]
    fn df2_packet_artifact_is_an_alert_with_its_mdc_code() {
        let mut d = NoninDecoder::df2();
        let mut bytes = np3();
        // Frame 13: ARTF (STATUS bit 5, spec p. 9).
        let f = 12 * 5;
        bytes[f + 1] |= Status::ARTF;
        bytes[f + 4] = crate::wire::nonin::frame::checksum(&bytes[f..f + 4]);
        let ev = decode(&mut d, &bytes);
        let Some(Event::Alarms(r)) = ev.iter().find(|e| matches!(e, Event::Alarms(_))) else { panic!("{ev:?}") };
        assert_eq!(r.conditions.len(), 1);
        assert_eq!((r.conditions[0].vendor.code.as_ref(), r.conditions[0].code), ("ARTF", crate::alarm::codes::MDC_EVT_WAVE_ARTIF_ERR));
    }

    #[test]
    fn df2_perfusion_colour_holds_between_pulses() {
        let mut d = NoninDecoder::df2();
        let mut red = np3();
        // Frames 2..13 of the first packet show red (RPRF only, spec p. 9), as around a pulse.
        for f in 1..13 {
            let at = f * 5;
            red[at + 1] |= Status::RPRF;
            red[at + 4] = crate::wire::nonin::frame::checksum(&red[at..at + 4]);
        }
        let mut stream = red.clone();
        stream.extend_from_slice(&np3()); // a packet between pulses: no colour
        stream.extend_from_slice(&red);
        let ev = decode(&mut d, &stream);
        assert_eq!(alarm_codes(&ev), [vec!["LPRF"]], "one report: low perfusion, held");
    }
}
