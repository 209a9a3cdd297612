//! medgw-link: frames, the accumulator, the gateway decoder and the simulated node.
#![cfg(feature = "alloc")]
// The simulator-driven tests need `--features sim`; the rest run with the default features.

use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::error::Error;
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::observation::{Measurement, Value};
use medgw_protocols::quality::{AbsentReason, Flags, Status};
#[cfg(feature = "sim")]
use medgw_protocols::sim::link::{LinkNodeSim, CAPACITY};
#[cfg(feature = "sim")]
use medgw_protocols::sim::{DeviceSimulator, Fault, SimOptions};
use medgw_protocols::time::{DeviceTime, Timestamp};
use medgw_protocols::wire::link::{self, LinkDecoder, LinkObservation, LinkValue, Message, MAX_FRAME, MAX_ITEMS};
use proptest::prelude::*;

const T0: i64 = 1_710_498_125_000; // 2024-03-15T10:22:05Z

fn text(s: &str) -> heapless::String<16> {
    let mut t = heapless::String::new();
    t.push_str(s).unwrap();
    t
}

fn frame(msg: &Message) -> Vec<u8> {
    LinkDecoder::frame(msg).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn hello(boot_id: u32) -> Message {
    Message::Hello {
        version: 1,
        eui64: [0x00, 0x12, 0x34, 0x56, 0x78, 0xAB, 0xCD, 0xEF],
        model: text("MG-1"),
        firmware: text("0.1.0"),
        boot_id,
    }
}

fn batch(boot_id: u32, seq: u32) -> Message {
    let mut items = heapless::Vec::new();
    items
        .push(LinkObservation::numeric(
            code::MDC_PULS_OXIM_SAT_O2.0,
            unit::MDC_DIM_PERCENT.0,
            90 + (seq % 10) as i32,
            0,
            T0 + seq as i64 * 1000,
            Flags::NONE,
        ))
        .unwrap();
    Message::Observations { seq, boot_id, items }
}

/// The observations of the byte-exact vector "observations" below.
fn three_items() -> Message {
    let mut items = heapless::Vec::new();
    items.push(LinkObservation::numeric(150456, 262688, 97, 0, T0, Flags::NONE)).unwrap();
    items.push(LinkObservation::numeric(150364, 268192, 368, -1, T0, Flags::NONE)).unwrap();
    items.push(LinkObservation::absent(149530, 264864, AbsentReason::Unavailable, T0, Flags::SENSOR_OFF)).unwrap();
    Message::Observations { seq: 5, boot_id: 0xDEAD_BEEF, items }
}

fn feed_all(dec: &mut LinkDecoder, bytes: &[u8], now: i64) -> Vec<Event> {
    let mut out = Vec::new();
    dec.feed(bytes, Timestamp(now), &mut out);
    out
}

fn acks(events: &[Event]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Transmit(b) => match link::decode(&b[..b.len() - 1]) {
                Ok(Message::Ack { boot_id, seq }) => Some((boot_id, seq)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn measurements(events: &[Event]) -> Vec<Measurement> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Measurement(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn gaps(events: &[Event]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SequenceGap { expected, found } => Some((*expected, *found)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Byte-exact frames.
//
// The expected bytes were computed independently of this crate with a 40-line Python 3 script
// (standard library only): postcard v1 written by hand from the wire-format specification
// (LEB128 varints, zigzag for signed integers, variant index first, fields in order), the CRC
// from `zlib.crc32` (which is CRC-32/ISO-HDLC) appended little-endian, and COBS written from the
// Cheshire & Baker description. For example, for `Ack { boot_id: 0x12345678, seq: 300 }`:
//   payload = 04 | varint(0x12345678) = f8 ac d1 91 01 | varint(300) = ac 02
//   crc32(payload) = 0x84305c6e -> 6e 5c 30 84
//   COBS: no zero in 12 bytes -> code 0x0d, the 12 bytes; then the 00 delimiter.
// ---------------------------------------------------------------------------------------------

#[test]
fn byte_exact_frames() {
    let cases: Vec<(&str, Message, &str, &str)> = vec![
        ("ack", Message::Ack { boot_id: 0x1234_5678, seq: 300 }, "04 f8 ac d1 91 01 ac 02", "0d 04 f8 ac d1 91 01 ac 02 6e 5c 30 84 00"),
        ("hello_request", Message::HelloRequest, "05", "06 05 02 1b 68 a2 00"),
        // A zero in the payload and none in the CRC: COBS code 02 then 05.
        ("time_request", Message::TimeRequest { uptime_ms: 0 }, "02 00", "02 02 05 7d 70 ef 73 00"),
        (
            "time_sync",
            Message::TimeSync { utc_ms: T0, echo_uptime_ms: 1234 },
            "03 90 d3 90 9a c8 63 d2 09",
            "0b 03 90 d3 90 9a c8 63 d2 09 19 03 45 df 00",
        ),
        (
            "hello",
            hello(0xDEAD_BEEF),
            "00 01 00 12 34 56 78 ab cd ef 04 4d 47 2d 31 05 30 2e 31 2e 30 ef fd b6 f5 0d",
            "01 02 01 1c 12 34 56 78 ab cd ef 04 4d 47 2d 31 05 30 2e 31 2e 30 ef fd b6 f5 0d 6b 79 e8 4a 00",
        ),
        (
            "observations",
            three_items(),
            "01 05 ef fd b6 f5 0d 03 b8 97 09 a0 84 10 00 c2 01 00 90 d3 90 9a c8 63 00 dc 96 09 a0 af 10 00 e0 05 ff 90 d3 90 9a \
             c8 63 00 9a 90 09 a0 95 10 01 00 90 d3 90 9a c8 63 21",
            "0f 01 05 ef fd b6 f5 0d 03 b8 97 09 a0 84 10 03 c2 01 07 90 d3 90 9a c8 63 07 dc 96 09 a0 af 10 0a e0 05 ff 90 d3 90 \
             9a c8 63 08 9a 90 09 a0 95 10 01 0c 90 d3 90 9a c8 63 21 57 c8 72 1f 00",
        ),
    ];
    for (name, msg, payload, want) in cases {
        assert_eq!(postcard::to_allocvec(&msg).unwrap(), hex(payload), "{name}: payload");
        let got = frame(&msg);
        assert_eq!(got, hex(want), "{name}: frame");
        assert_eq!(link::decode(&got[..got.len() - 1]), Ok(msg), "{name}: decode");
    }
}

#[test]
fn decoder_turns_the_vectors_into_identity_measurements_and_an_ack() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let mut stream = frame(&hello(0xDEAD_BEEF));
    stream.extend(frame(&three_items()));
    let ev = feed_all(&mut dec, &stream, T0 + 300);
    let Event::Identity(id) = &ev[0] else { panic!("{ev:?}") };
    assert_eq!(id.eui64.unwrap().to_string(), "0012345678ABCDEF");
    assert_eq!(id.manufacturer.as_deref(), Some("medgw"));
    assert_eq!(id.model.as_deref(), Some("MG-1"));
    assert_eq!(id.firmware.as_deref(), Some("0.1.0"));
    let ms = measurements(&ev);
    assert_eq!(ms.len(), 3);
    let t = Some(DeviceTime::Utc(Timestamp(T0)));
    assert_eq!(
        ms[0],
        Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT).with_time(t).with_seq(Some(5))
    );
    assert_eq!(ms[1].value, Value::Numeric(Decimal::new(368, -1).unwrap()));
    assert_eq!(ms[1].value.numeric().unwrap().to_string(), "36.8");
    assert_eq!(ms[1].metric, code::MDC_TEMP_BODY);
    assert_eq!(ms[1].unit, unit::MDC_DIM_DEGC);
    assert_eq!(ms[2].value, Value::Absent(AbsentReason::Unavailable));
    assert!(ms[2].flags.contains(Flags::SENSOR_OFF | Flags::UNAVAILABLE));
    // The ack is the last event of the batch, after its measurements (the durability contract).
    assert!(matches!(ev.last(), Some(Event::Transmit(_))));
    assert_eq!(acks(&ev), vec![(0xDEAD_BEEF, 5)]);
}

#[test]
fn clock_not_set_means_no_device_time_and_flags_travel() {
    let mut items = heapless::Vec::new();
    items.push(LinkObservation::numeric(150456, 262688, 95, 0, 12_345, Flags::CLOCK_NOT_SET | Flags::ARTIFACT)).unwrap();
    items.push(LinkObservation::numeric(149530, 264864, 70, 0, T0, Flags::EARLY_ESTIMATE)).unwrap();
    items
        .push(LinkObservation { metric: 0, unit: 262688, value: LinkValue::Numeric { mantissa: 1, exponent: 0 }, time_ms: T0, flags: 0 })
        .unwrap();
    items
        .push(LinkObservation {
            metric: 150456,
            unit: 262688,
            value: LinkValue::Numeric { mantissa: 1, exponent: 40 },
            time_ms: T0,
            flags: 0,
        })
        .unwrap();
    items.push(LinkObservation { metric: 150456, unit: 262688, value: LinkValue::Absent(99), time_ms: T0, flags: 0 }).unwrap();
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let ms = measurements(&feed_all(&mut dec, &frame(&Message::Observations { seq: 0, boot_id: 1, items }), T0));
    assert_eq!(ms[0].device_time, None);
    assert!(ms[0].flags.contains(Flags::CLOCK_NOT_SET | Flags::ARTIFACT));
    assert_eq!(ms[1].status, Status::Preliminary);
    assert_eq!(ms[1].device_time, Some(DeviceTime::Utc(Timestamp(T0))));
    // Metric 0 is kept, marked unmapped with the link's vendor code.
    assert_eq!(ms[2].metric, MdcCode::UNMAPPED);
    assert!(ms[2].flags.contains(Flags::UNMAPPED));
    assert_eq!(ms[2].vendor.as_ref().unwrap().namespace, "medgw-link");
    // An exponent no device uses, or an unknown absent reason, is never a number.
    assert_eq!(ms[3].value, Value::Absent(AbsentReason::Reserved));
    assert!(ms[3].flags.contains(Flags::INVALID));
    assert_eq!(ms[4].value, Value::Absent(AbsentReason::Reserved));
    assert!(ms[4].flags.contains(Flags::INVALID));
}

// ---------------------------------------------------------------------------------------------
// Rejections and framing edge cases.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_crc_is_rejected_at_its_offset_and_the_next_frame_decodes() {
    let good = frame(&Message::TimeRequest { uptime_ms: 77 });
    // Un-stuff a good frame, flip one payload bit, stuff it again: only the CRC can tell.
    let f = frame(&batch(1, 0));
    let mut raw = [0u8; MAX_FRAME];
    let n = link::cobs::decode(&f[..f.len() - 1], &mut raw).unwrap();
    raw[2] ^= 0x01;
    let mut enc = [0u8; MAX_FRAME];
    let m = link::cobs::encode(&raw[..n], &mut enc).unwrap();
    let mut bad = enc[..m].to_vec();
    bad.push(0);
    let mut stream = good.clone();
    stream.extend(&bad);
    stream.extend(&good);
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let ev = feed_all(&mut dec, &stream, T0);
    let rejected: Vec<_> = ev.iter().filter(|e| matches!(e, Event::Rejected { .. })).collect();
    assert_eq!(rejected.len(), 1, "{ev:?}");
    let Event::Rejected { offset, error: Error::BadChecksum { expected, found } } = rejected[0] else { panic!("{ev:?}") };
    assert_eq!(*offset, good.len() as u64);
    assert_ne!(expected, found);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Transmit(_))).count(), 2, "two TimeSync answers");
}

#[test]
fn truncated_and_overlong_frames() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    // Shorter than a CRC.
    let ev = feed_all(&mut dec, &[0x03, 0x11, 0x22, 0x00], T0);
    assert!(matches!(ev[..], [Event::Rejected { offset: 0, error: Error::Truncated { needed: 5, got: 2 } }]), "{ev:?}");
    // A code byte pointing past the delimiter.
    let ev = feed_all(&mut dec, &[0x09, 0x11, 0x22, 0x00], T0);
    assert!(matches!(ev[..], [Event::Rejected { offset: 4, error: Error::Truncated { .. } }]), "{ev:?}");
    // Half a frame, then its delimiter: the CRC or the COBS structure fails.
    let f = frame(&three_items());
    let mut half = f[..f.len() / 2].to_vec();
    half.push(0);
    let ev = feed_all(&mut dec, &half, T0);
    assert!(matches!(ev[..], [Event::Rejected { offset: 8, .. }]), "{ev:?}");
    // 300 bytes without a delimiter: rejected as too long, never buffered, and the stream recovers.
    let mut long = vec![0x42u8; 300];
    long.push(0);
    long.extend(frame(&Message::TimeRequest { uptime_ms: 1 }));
    let start = 8 + half.len() as u64;
    let ev = feed_all(&mut dec, &long, T0);
    assert!(matches!(ev[0], Event::Rejected { error: Error::TooLong { max: 255 }, .. }), "{ev:?}");
    if let Event::Rejected { offset, .. } = ev[0] {
        assert_eq!(offset, start);
    }
    assert!(matches!(ev[1], Event::Transmit(_)), "{ev:?}");
    // Valid CRC, postcard garbage: a payload error, not a panic.
    let raw = [0x09u8, 0x01, 0x02];
    let mut with_crc = raw.to_vec();
    with_crc.extend(link::crc32(&raw).to_le_bytes());
    let mut enc = [0u8; MAX_FRAME];
    let n = link::cobs::encode(&with_crc, &mut enc).unwrap();
    let mut f = enc[..n].to_vec();
    f.push(0);
    let ev = feed_all(&mut dec, &f, T0);
    assert!(matches!(ev[..], [Event::Rejected { error: Error::Payload(_), .. }]), "{ev:?}");
}

#[test]
fn payload_limit_is_enforced_on_encode_and_decode() {
    // Eight items with the widest varints (about 32 bytes each) do not fit in 255 bytes.
    let wide = LinkObservation {
        metric: u32::MAX,
        unit: u32::MAX,
        value: LinkValue::Numeric { mantissa: i32::MIN, exponent: -128 },
        time_ms: i64::MIN,
        flags: u32::MAX,
    };
    let items: heapless::Vec<_, MAX_ITEMS> = core::iter::repeat_n(wide, MAX_ITEMS).collect();
    let msg = Message::Observations { seq: u32::MAX, boot_id: u32::MAX, items };
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(link::encode(&msg, &mut buf), Err(Error::TooLong { max: 255 }));
    // Eight realistic items fit.
    let real = LinkObservation::numeric(150456, 262688, 97, 0, T0, Flags::CLOCK_NOT_SET | Flags::LOW_PERFUSION);
    let items: heapless::Vec<_, MAX_ITEMS> = core::iter::repeat_n(real, MAX_ITEMS).collect();
    let msg = Message::Observations { seq: 1_000_000, boot_id: u32::MAX, items };
    let n = link::encode(&msg, &mut buf).unwrap();
    assert!(n <= MAX_FRAME);
    assert_eq!(link::decode(&buf[..n - 1]), Ok(msg));
    // A CRC-valid frame with a 256-byte payload is refused by the checked view.
    let raw = [0x07u8; 256 + 4];
    assert_eq!(link::check_raw(&raw), Err(Error::TooLong { max: 255 }));
}

#[test]
fn runs_of_254_non_zero_bytes_and_zero_heavy_payloads_pass_the_accumulator() {
    // A 251-byte payload of non-zero bytes and its CRC: one 0xFF COBS block and a tail.
    let mut raw: Vec<u8> = (0..251).map(|i| (i % 255 + 1) as u8).collect();
    raw.extend(link::crc32(&raw).to_le_bytes());
    let mut enc = [0u8; MAX_FRAME];
    let n = link::cobs::encode(&raw, &mut enc).unwrap();
    assert_eq!(enc[0], 0xFF);
    let mut acc = link::FrameAccumulator::new();
    let mut stream = enc[..n].to_vec();
    stream.push(0);
    match acc.feed(&stream) {
        link::Feed::Frame { result: Ok(p), .. } => assert_eq!(p, &raw[..251]),
        other => panic!("{other:?}"),
    }
    // Zero-heavy: a batch of zero values, zero times and zero flags.
    let zero = LinkObservation { metric: 0, unit: 0, value: LinkValue::Numeric { mantissa: 0, exponent: 0 }, time_ms: 0, flags: 0 };
    let items: heapless::Vec<_, MAX_ITEMS> = core::iter::repeat_n(zero, MAX_ITEMS).collect();
    let msg = Message::Observations { seq: 0, boot_id: 0, items };
    let f = frame(&msg);
    assert!(f.iter().filter(|&&b| b == 0).count() == 1);
    assert_eq!(link::decode(&f[..f.len() - 1]), Ok(msg));
}

// ---------------------------------------------------------------------------------------------
// Sequence tracking: gaps, duplicates, boots.
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_in_order_and_duplicates() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    feed_all(&mut dec, &frame(&hello(7)), T0);
    // The first batch after Hello is the node's oldest: baseline, whatever its seq.
    let ev = feed_all(&mut dec, &frame(&batch(7, 40)), T0);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, 40)], vec![]));
    let ev = feed_all(&mut dec, &frame(&batch(7, 41)), T0);
    assert_eq!(acks(&ev), vec![(7, 41)]);
    // A resend of 40 (the ack was lost): decoded again, re-acknowledged cumulatively, no gap.
    let ev = feed_all(&mut dec, &frame(&batch(7, 40)), T0);
    assert_eq!(measurements(&ev).len(), 1);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, 41)], vec![]));
    let ev = feed_all(&mut dec, &frame(&batch(7, 41)), T0);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, 41)], vec![]));
    let ev = feed_all(&mut dec, &frame(&batch(7, 42)), T0);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, 42)], vec![]));
}

#[test]
fn a_lost_frame_is_not_acknowledged_past_and_is_filled_by_the_resend() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    feed_all(&mut dec, &frame(&hello(7)), T0);
    feed_all(&mut dec, &frame(&batch(7, 0)), T0);
    // Batch 1 is lost on the line; 2 and 3 arrive: decoded, but the ack stays at 0.
    for seq in [2, 3] {
        let ev = feed_all(&mut dec, &frame(&batch(7, seq)), T0);
        assert_eq!(measurements(&ev).len(), 1);
        assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, 0)], vec![]));
    }
    // The node's timeout: it resends from its oldest unacknowledged batch, 1.
    for (seq, ack) in [(1, 1), (2, 2), (3, 3)] {
        let ev = feed_all(&mut dec, &frame(&batch(7, seq)), T0);
        assert_eq!((acks(&ev), gaps(&ev)), (vec![(7, ack)], vec![]));
    }
}

#[test]
fn a_hole_the_node_cannot_fill_is_a_gap() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    feed_all(&mut dec, &frame(&hello(7)), T0);
    feed_all(&mut dec, &frame(&batch(7, 0)), T0);
    // Batches 1..=4 dropped from the node's full ring; 5 and 6 arrive while 1 is expected.
    feed_all(&mut dec, &frame(&batch(7, 5)), T0);
    feed_all(&mut dec, &frame(&batch(7, 6)), T0);
    // The resend run starts at 5, the node's oldest: 1..=4 are gone.
    let ev = feed_all(&mut dec, &frame(&batch(7, 5)), T0);
    assert_eq!((gaps(&ev), acks(&ev)), (vec![(1, 5)], vec![(7, 5)]));
    assert!(matches!(ev[0], Event::SequenceGap { .. }), "the gap comes before the batch's measurements");
    let ev = feed_all(&mut dec, &frame(&batch(7, 6)), T0);
    assert_eq!((gaps(&ev), acks(&ev)), (vec![], vec![(7, 6)]));

    // After a Hello, the first batch is the node's oldest: a jump there is a gap at once.
    feed_all(&mut dec, &frame(&hello(7)), T0);
    let ev = feed_all(&mut dec, &frame(&batch(7, 10)), T0);
    assert_eq!((gaps(&ev), acks(&ev)), (vec![(7, 10)], vec![(7, 10)]));
}

#[test]
fn a_new_boot_resets_tracking_and_an_unknown_boot_is_not_acknowledged() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    feed_all(&mut dec, &frame(&hello(7)), T0);
    feed_all(&mut dec, &frame(&batch(7, 0)), T0);
    feed_all(&mut dec, &frame(&batch(7, 1)), T0);
    // The node rebooted and its Hello was lost: batches of boot 8 are decoded, not acknowledged,
    // and the gateway asks for a Hello (at most every 2 s).
    let ev = feed_all(&mut dec, &frame(&batch(8, 0)), T0);
    assert_eq!(measurements(&ev).len(), 1);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![], vec![]));
    let requests = |ev: &[Event]| ev.iter().filter(|e| matches!(e, Event::Transmit(b) if *b == frame(&Message::HelloRequest))).count();
    assert_eq!(requests(&ev), 1);
    assert_eq!(requests(&feed_all(&mut dec, &frame(&batch(8, 1)), T0 + 500)), 0);
    assert_eq!(requests(&feed_all(&mut dec, &frame(&batch(8, 1)), T0 + 2500)), 1);
    // The Hello of boot 8: a restart event, and seq 0 again is a fresh baseline, not a duplicate.
    let ev = feed_all(&mut dec, &frame(&hello(8)), T0);
    assert!(ev.contains(&Event::Session("node-restarted")));
    let ev = feed_all(&mut dec, &frame(&batch(8, 0)), T0);
    assert_eq!((acks(&ev), gaps(&ev)), (vec![(8, 0)], vec![]));
}

#[test]
fn time_requests_hello_requests_and_listen_only() {
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    assert!(dec.sends_requests());
    let mut out = Vec::new();
    dec.start(Timestamp(T0), &mut out);
    assert_eq!(out, vec![Event::Transmit(frame(&Message::HelloRequest))]);
    let ev = feed_all(&mut dec, &frame(&Message::TimeRequest { uptime_ms: 5_000 }), T0 + 7);
    assert_eq!(ev, vec![Event::Transmit(frame(&Message::TimeSync { utc_ms: T0 + 7, echo_uptime_ms: 5_000 }))]);
    // The gateway's own messages are refused.
    let ev = feed_all(&mut dec, &frame(&Message::Ack { boot_id: 1, seq: 1 }), T0);
    assert!(matches!(ev[..], [Event::Rejected { error: Error::UnexpectedMessage { got: "Ack", .. }, .. }]), "{ev:?}");
    // An unknown link version.
    let mut h = hello(1);
    if let Message::Hello { version, .. } = &mut h {
        *version = 2;
    }
    let ev = feed_all(&mut dec, &frame(&h), T0);
    assert!(matches!(ev[..], [Event::Rejected { error: Error::Unsupported { value: 2, .. }, .. }]), "{ev:?}");

    // Listen-only: decodes and tracks gaps, never transmits.
    let mut quiet = LinkDecoder::new(&DecoderOptions { listen_only: true, ..Default::default() });
    assert!(!quiet.sends_requests());
    let mut out = Vec::new();
    quiet.start(Timestamp(T0), &mut out);
    // 9 after 4 may be a lost frame; 9 again starts a resend run, so 5..=8 are gone.
    for (seq, want_gap) in [(3, vec![]), (4, vec![]), (9, vec![]), (9, vec![(5, 9)])] {
        let ev = feed_all(&mut quiet, &frame(&batch(1, seq)), T0);
        assert_eq!(gaps(&ev), want_gap);
        out.extend(ev);
    }
    out.extend(feed_all(&mut quiet, &frame(&Message::TimeRequest { uptime_ms: 1 }), T0));
    assert!(!out.iter().any(|e| matches!(e, Event::Transmit(_))), "{out:?}");
}

#[test]
fn registry_rows() {
    assert_eq!(link::PROTOCOLS.len(), 1);
    let p = &link::PROTOCOLS[0];
    assert_eq!(
        (p.name, p.serial, p.gatt),
        ("medgw-link", Some(medgw_protocols::serial::SerialSettings::new(115_200, 8, medgw_protocols::serial::Parity::None, 1)), false)
    );
    assert_eq!((p.make)(&DecoderOptions::default()).protocol(), "medgw-link");
    #[cfg(feature = "sim")]
    assert_eq!(medgw_protocols::sim::link::SIMULATORS[0].0, "medgw-link");
}

// ---------------------------------------------------------------------------------------------
// The simulated node against the decoder.
// ---------------------------------------------------------------------------------------------

/// Drives node and gateway decoder together in 100 ms steps; `line_up(t)` says whether the UART
/// carries bytes at `t` (both directions). Returns all events.
#[cfg(feature = "sim")]
fn converse(sim: &mut LinkNodeSim, dec: &mut LinkDecoder, from: i64, to: i64, line_up: impl Fn(i64) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    let mut out = Vec::new();
    dec.start(Timestamp(from), &mut out);
    let mut to_node: Vec<u8> =
        out.iter().filter_map(|e| if let Event::Transmit(b) = e { Some(b.clone()) } else { None }).flatten().collect();
    events.extend(out);
    let mut t = from;
    while t < to {
        let now = Timestamp(t);
        let mut to_gateway = Vec::new();
        if line_up(t) && !to_node.is_empty() {
            sim.receive(&to_node, now, &mut to_gateway);
        }
        to_node.clear();
        sim.tick(now, &mut to_gateway);
        if line_up(t) {
            let mut ev = Vec::new();
            dec.feed(&to_gateway, now, &mut ev);
            for e in &ev {
                if let Event::Transmit(b) = e {
                    to_node.extend(b);
                }
            }
            events.extend(ev);
        }
        t += 100;
    }
    events
}

/// (metric, seq) -> value of everything the node recorded as sent.
#[cfg(feature = "sim")]
fn sent_keys(sim: &mut LinkNodeSim) -> std::collections::BTreeMap<(u32, u32), Option<Decimal>> {
    sim.take_sent().into_iter().map(|s| ((s.metric.0, s.seq.unwrap()), s.value)).collect()
}

#[cfg(feature = "sim")]
fn received_keys(events: &[Event]) -> std::collections::BTreeMap<(u32, u32), Option<Decimal>> {
    measurements(events).into_iter().map(|m| ((m.metric.0, m.seq.unwrap()), m.value.numeric())).collect()
}

#[test]
#[cfg(feature = "sim")]
fn store_and_forward_over_an_outage_loses_nothing() {
    let opts = SimOptions { seed: 11, period_ms: 1000, record: true };
    let mut sim = LinkNodeSim::new(&opts, Timestamp(T0));
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    // The line is cut from 20 s to 80 s; the node keeps 60 batches (< CAPACITY) and resends.
    let ev = converse(&mut sim, &mut dec, T0, T0 + 120_000, |t| !(T0 + 20_000..T0 + 80_000).contains(&t));
    let sent = sent_keys(&mut sim);
    let got = received_keys(&ev);
    assert!(sent.len() >= 3 * 118, "{}", sent.len());
    for (k, v) in &sent {
        if k.1 < 118 {
            assert_eq!(got.get(k), Some(v), "batch {k:?} lost");
        }
    }
    assert!(gaps(&ev).is_empty(), "{:?}", gaps(&ev));
    assert!(sim.unacked() <= 1);
    // Values made before the clock was set carry no device time; later ones carry UTC.
    let ms = measurements(&ev);
    assert!(ms.iter().any(|m| m.device_time.is_none() && m.flags.contains(Flags::CLOCK_NOT_SET)) || ms[0].device_time.is_some());
    assert!(ms.iter().filter(|m| m.seq > Some(5)).all(|m| matches!(m.device_time, Some(DeviceTime::Utc(_)))));
}

#[test]
#[cfg(feature = "sim")]
fn an_outage_longer_than_the_node_ring_is_a_reported_gap() {
    let opts = SimOptions { seed: 12, period_ms: 100, record: true };
    let mut sim = LinkNodeSim::new(&opts, Timestamp(T0));
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    // 100 ms batches; a 40 s outage makes 400 batches, more than the ring's CAPACITY.
    let ev = converse(&mut sim, &mut dec, T0, T0 + 60_000, |t| !(T0 + 5_000..T0 + 45_000).contains(&t));
    let g = gaps(&ev);
    assert_eq!(g.len(), 1, "{g:?}");
    let (expected, found) = g[0];
    // At least the batches beyond the ring are gone (more are dropped while the node waits
    // for its resend timeout), and nothing outside the reported gap is lost.
    assert!(found - expected >= 400 - CAPACITY as u32, "{g:?}");
    let sent = sent_keys(&mut sim);
    let got = received_keys(&ev);
    let last = sent.keys().map(|k| k.1).max().unwrap();
    for (k, v) in &sent {
        if !(expected..found).contains(&k.1) && k.1 + 5 < last {
            assert_eq!(got.get(k), Some(v), "batch {k:?} lost outside the gap {g:?}");
        }
    }
    assert!(sim.unacked() <= 5);
}

#[test]
#[cfg(feature = "sim")]
fn faults_cost_a_frame_not_a_batch() {
    let opts = SimOptions { seed: 13, period_ms: 1000, record: true };
    let mut sim = LinkNodeSim::new(&opts, Timestamp(T0));
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let mut ev = converse(&mut sim, &mut dec, T0, T0 + 10_000, |_| true);
    for (i, fault) in
        [Fault::BadChecksum, Fault::Truncate, Fault::Garbage(40), Fault::SensorOff(true), Fault::Silence(5_000), Fault::SensorOff(false)]
            .into_iter()
            .enumerate()
    {
        sim.inject(fault);
        let from = T0 + 10_000 + i as i64 * 10_000;
        ev.extend(converse(&mut sim, &mut dec, from, from + 10_000, |_| true));
    }
    let sent = sent_keys(&mut sim);
    let got = received_keys(&ev);
    let rejected = ev.iter().filter(|e| matches!(e, Event::Rejected { .. })).count();
    assert!(rejected >= 3, "{rejected}");
    for (k, v) in &sent {
        if k.1 < 65 {
            assert_eq!(got.get(k), Some(v), "batch {k:?} lost");
        }
    }
    assert!(measurements(&ev).iter().any(|m| m.flags.contains(Flags::SENSOR_OFF) && m.value.numeric().is_none()));
    assert!(gaps(&ev).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

fn arb_text() -> impl Strategy<Value = heapless::String<16>> {
    "[ -~]{0,16}".prop_map(|s| text(&s))
}

fn arb_obs() -> impl Strategy<Value = LinkObservation> {
    let value = prop_oneof![
        (any::<i32>(), any::<i8>()).prop_map(|(mantissa, exponent)| LinkValue::Numeric { mantissa, exponent }),
        any::<u8>().prop_map(LinkValue::Absent),
    ];
    (any::<u32>(), any::<u32>(), value, any::<i64>(), any::<u32>()).prop_map(|(metric, unit, value, time_ms, flags)| LinkObservation {
        metric,
        unit,
        value,
        time_ms,
        flags,
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u8>(), any::<[u8; 8]>(), arb_text(), arb_text(), any::<u32>())
            .prop_map(|(version, eui64, model, firmware, boot_id)| Message::Hello { version, eui64, model, firmware, boot_id }),
        (any::<u32>(), any::<u32>(), proptest::collection::vec(arb_obs(), 0..=MAX_ITEMS))
            .prop_map(|(seq, boot_id, items)| Message::Observations { seq, boot_id, items: items.into_iter().collect() }),
        any::<u64>().prop_map(|uptime_ms| Message::TimeRequest { uptime_ms }),
        (any::<i64>(), any::<u64>()).prop_map(|(utc_ms, echo_uptime_ms)| Message::TimeSync { utc_ms, echo_uptime_ms }),
        (any::<u32>(), any::<u32>()).prop_map(|(boot_id, seq)| Message::Ack { boot_id, seq }),
        Just(Message::HelloRequest),
    ]
}

#[cfg(feature = "sim")]
fn sim_stream(seed: u64, secs: i64) -> Vec<u8> {
    let mut sim = LinkNodeSim::new(&SimOptions { seed, period_ms: 250, record: false }, Timestamp(T0));
    let mut bytes = Vec::new();
    let mut t = T0;
    while t < T0 + secs * 1000 {
        sim.tick(Timestamp(t), &mut bytes);
        if t == T0 + 2_000 {
            let mut reply = Vec::new();
            sim.receive(&frame(&Message::TimeSync { utc_ms: t, echo_uptime_ms: 0 }), Timestamp(t), &mut reply);
            bytes.extend(reply);
        }
        t += 250;
    }
    bytes
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in arb_message()) {
        let mut buf = [0u8; MAX_FRAME];
        match link::encode(&msg, &mut buf) {
            Ok(n) => {
                prop_assert_eq!(buf[n - 1], 0);
                prop_assert!(!buf[..n - 1].contains(&0));
                prop_assert_eq!(link::decode(&buf[..n - 1]), Ok(msg));
            }
            // Only a batch can exceed the payload limit.
            Err(e) => {
                prop_assert_eq!(e, Error::TooLong { max: 255 });
                prop_assert!(postcard::to_allocvec(&msg).unwrap().len() > 255);
            }
        }
    }

    #[test]
    #[cfg(feature = "sim")]
    fn any_chunking_decodes_the_same(seed in 0u64..1000, cuts in proptest::collection::vec(0usize..2000, 0..40), bytewise in any::<bool>()) {
        let stream = sim_stream(seed, 30);
        let whole = feed_all(&mut LinkDecoder::new(&DecoderOptions { listen_only: true, ..Default::default() }), &stream, T0);
        prop_assert!(measurements(&whole).len() >= 300);
        let mut dec = LinkDecoder::new(&DecoderOptions { listen_only: true, ..Default::default() });
        let mut chunked = Vec::new();
        if bytewise {
            for b in &stream {
                dec.feed(core::slice::from_ref(b), Timestamp(T0), &mut chunked);
            }
        } else {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort();
            let mut prev = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                dec.feed(&stream[prev..c], Timestamp(T0), &mut chunked);
                prev = c;
            }
        }
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn any_chunking_of_a_conversation_decodes_the_same(msgs in proptest::collection::vec(arb_message(), 1..20), cut in 1usize..64) {
        let mut stream = frame(&hello(3));
        for m in &msgs {
            if let Ok(f) = LinkDecoder::frame(m) {
                stream.extend(f);
            }
        }
        let whole = feed_all(&mut LinkDecoder::new(&DecoderOptions::default()), &stream, T0);
        let mut dec = LinkDecoder::new(&DecoderOptions::default());
        let mut chunked = Vec::new();
        for c in stream.chunks(cut) {
            dec.feed(c, Timestamp(T0), &mut chunked);
        }
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..8)) {
        let mut dec = LinkDecoder::new(&DecoderOptions::default());
        let mut out = Vec::new();
        for c in &chunks {
            dec.feed(c, Timestamp(T0), &mut out);
            let _ = link::decode(c);
        }
        // Garbage then a valid frame: the frame still decodes.
        let mut tail = vec![0u8];
        tail.extend(frame(&Message::TimeRequest { uptime_ms: 9 }));
        let mut ev = Vec::new();
        dec.feed(&tail, Timestamp(T0), &mut ev);
        prop_assert!(ev.iter().any(|e| matches!(e, Event::Transmit(_))));
    }

    #[test]
    fn corrupting_one_byte_never_yields_a_wrong_batch(flip_at in any::<usize>(), mask in 1u8..=255) {
        let msg = three_items();
        let mut f = frame(&msg);
        let i = flip_at % (f.len() - 1);
        f[i] ^= mask;
        let mut dec = LinkDecoder::new(&DecoderOptions::default());
        let ev = feed_all(&mut dec, &f, T0);
        // Either rejected, or (if the flip made a delimiter) split into rejected pieces: never
        // a measurement with a changed value.
        let good = measurements(&feed_all(&mut LinkDecoder::new(&DecoderOptions::default()), &frame(&msg), T0));
        for m in measurements(&ev) {
            prop_assert!(good.contains(&m));
        }
    }
}
