//! The node's link against the gateway's `medgw-link` decoder, in simulated time.

use std::collections::BTreeMap;

use medgw_firmware::app::{App, PpgSource, Serial, TemperatureSource};
use medgw_firmware::identity::{eui64_from_unique_id, Identity};
use medgw_firmware::link::{Item, NodeLink, CAPACITY, TX_BUF};
use medgw_firmware::synth::{PpgSynth, SynthConfig, TempSynth};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::Measurement;
use medgw_protocols::quality::Flags;
use medgw_protocols::time::{DeviceTime, Timestamp};
use medgw_protocols::wire::link::{self, LinkDecoder, Message};

/// The gateway's clock when the node boots (uptime 0).
const T0: i64 = 1_710_498_125_000;

fn identity() -> Identity {
    Identity { eui64: eui64_from_unique_id(b"test-node"), model: "medgw-node", firmware: "fw-test", boot_id: 0xB007_1D01 }
}

/// A UART whose two directions can be cut.
#[derive(Default)]
struct Wire {
    to_gateway: Vec<u8>,
    to_node: Vec<u8>,
    up: bool,
    frames: Vec<Vec<u8>>,
}

impl Serial for Wire {
    fn write(&mut self, bytes: &[u8]) {
        if self.up {
            self.to_gateway.extend_from_slice(bytes);
            self.frames.push(bytes.to_vec());
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.to_node.len());
        buf[..n].copy_from_slice(&self.to_node[..n]);
        self.to_node.drain(..n);
        n
    }
}

struct Rig {
    app: App,
    ppg: PpgSynth,
    temp: TempSynth,
    wire: Wire,
    dec: LinkDecoder,
    events: Vec<Event>,
    now: u64,
}

impl Rig {
    fn new() -> Rig {
        let mut dec = LinkDecoder::new(&DecoderOptions::default());
        let mut events = Vec::new();
        dec.start(Timestamp(T0), &mut events);
        let mut wire = Wire { up: true, ..Wire::default() };
        for e in &events {
            if let Event::Transmit(b) = e {
                wire.to_node.extend(b);
            }
        }
        Rig {
            app: App::new(identity(), 0),
            ppg: PpgSynth::new(SynthConfig { pulse_rate: 66.0, spo2: 94.0, ..SynthConfig::default() }),
            temp: TempSynth::new(3700),
            wire,
            dec,
            events,
            now: 0,
        }
    }

    /// Runs for `ms` in 1 ms steps with the line up or down.
    fn run(&mut self, ms: u64, up: bool) {
        self.wire.up = up;
        for _ in 0..ms {
            self.app.step(self.now, &mut self.ppg, &mut self.temp, &mut self.wire);
            let bytes = std::mem::take(&mut self.wire.to_gateway);
            if !bytes.is_empty() {
                let mut ev = Vec::new();
                self.dec.feed(&bytes, Timestamp(T0 + self.now as i64), &mut ev);
                for e in &ev {
                    if let Event::Transmit(b) = e {
                        if up {
                            self.wire.to_node.extend(b);
                        }
                    }
                }
                self.events.extend(ev);
            }
            if !up {
                self.wire.to_node.clear();
            }
            self.now += 1;
        }
    }

    fn measurements(&self) -> Vec<Measurement> {
        self.events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m.clone()) } else { None }).collect()
    }

    fn gaps(&self) -> Vec<(u32, u32)> {
        self.events
            .iter()
            .filter_map(|e| if let Event::SequenceGap { expected, found } = e { Some((*expected, *found)) } else { None })
            .collect()
    }
}

#[test]
fn the_gateway_decoder_reads_the_node_byte_for_byte() {
    let mut rig = Rig::new();
    rig.run(25_000, true);
    // Nothing rejected, and every frame the node wrote is the canonical encoding of what the
    // decoder read from it.
    assert!(!rig.events.iter().any(|e| matches!(e, Event::Rejected { .. })), "{:?}", rig.events);
    let mut decoded = 0;
    for f in &rig.wire.frames {
        let body = f.strip_prefix(&[0u8][..]).unwrap_or(f);
        let msg = link::decode(&body[..body.len() - 1]).unwrap();
        assert_eq!(&LinkDecoder::frame(&msg).unwrap(), body);
        decoded += 1;
    }
    assert!(decoded >= 20, "{decoded}");
    // Identity from the Hello.
    let id = rig.events.iter().find_map(|e| if let Event::Identity(i) = e { Some(i.clone()) } else { None }).unwrap();
    assert_eq!(id.eui64.unwrap().0, eui64_from_unique_id(b"test-node"));
    assert_eq!(
        (id.model.as_deref(), id.firmware.as_deref(), id.manufacturer.as_deref()),
        (Some("medgw-node"), Some("fw-test"), Some("medgw"))
    );
    // The clock was set by the first TimeSync: batches carry UTC, exactly the gateway's clock at
    // the end of the estimate's window (the simulated line has no delay; estimates are made every
    // second and describe the window that ended one second earlier).
    assert!(rig.app.link.clock_offset() == Some(T0));
    let ms = rig.measurements();
    assert_eq!(ms.len() % 3, 0);
    for m in &ms {
        let seq = m.seq.unwrap() as i64;
        assert_eq!(m.device_time, Some(DeviceTime::Utc(Timestamp(T0 + 1_000 * seq))), "{m:?}");
        assert!(!m.flags.contains(Flags::CLOCK_NOT_SET));
    }
    // Values: the synthetic patient (66 /min, 94 %, 37.00 degC) once the estimator has settled.
    let pr: Vec<_> = ms.iter().filter(|m| m.metric == code::MDC_PULS_OXIM_PULS_RATE).filter_map(|m| m.value.numeric()).collect();
    let sp: Vec<_> = ms.iter().filter(|m| m.metric == code::MDC_PULS_OXIM_SAT_O2).filter_map(|m| m.value.numeric()).collect();
    let tc: Vec<_> = ms.iter().filter(|m| m.metric == code::MDC_TEMP_BODY).collect();
    assert!(pr.len() >= 5 && sp.len() >= 5, "{} {}", pr.len(), sp.len());
    assert!(pr.iter().all(|v| (v.to_f64() - 66.0).abs() <= 3.0), "{pr:?}");
    assert!(sp.iter().all(|v| (v.to_f64() - 94.0).abs() <= 2.0), "{sp:?}");
    // The first batch has no temperature yet (it goes with the estimate released one second late).
    assert!(tc[0].value.numeric().is_none());
    assert!(tc[1..].iter().all(|m| m.unit == unit::MDC_DIM_DEGC && (m.value.numeric().unwrap().to_f64() - 37.0).abs() <= 0.06));
    assert_eq!(tc[1].value.numeric().unwrap().exponent(), -2);
    // Before the estimator has a pulse, SpO2 and pulse rate are absent with PULSE_SEARCH.
    let first = ms.iter().find(|m| m.metric == code::MDC_PULS_OXIM_SAT_O2).unwrap();
    assert!(first.value.numeric().is_none() && first.flags.contains(Flags::PULSE_SEARCH | Flags::UNAVAILABLE), "{first:?}");
    // Everything acknowledged.
    assert!(rig.app.link.unacked() <= 1);
    assert!(rig.gaps().is_empty());
}

fn by_seq(ms: &[Measurement]) -> BTreeMap<(u32, u32), Option<String>> {
    ms.iter().map(|m| ((m.seq.unwrap(), m.metric.0), m.value.numeric().map(|d| d.to_string()))).collect()
}

#[test]
fn batches_made_while_the_link_is_down_arrive_after_it_comes_back() {
    let mut rig = Rig::new();
    rig.run(15_000, true);
    let before = rig.app.link.stats.batches;
    rig.run(60_000, false);
    assert!(rig.app.link.unacked() >= 59, "{}", rig.app.link.unacked());
    rig.run(30_000, true);
    let ms = rig.measurements();
    let got = by_seq(&ms);
    let total = rig.app.link.stats.batches;
    for seq in 0..total - 1 {
        for slot in medgw_firmware::link::SLOTS {
            assert!(got.contains_key(&(seq, slot.0 .0)), "batch {seq} metric {} missing", slot.0 .0);
        }
    }
    assert!(rig.gaps().is_empty(), "{:?}", rig.gaps());
    assert!(rig.app.link.unacked() <= 1);
    assert_eq!(rig.app.link.stats.dropped, 0);
    // Batches made during the outage are marked as sent from storage, with their own time.
    let late: Vec<_> = ms.iter().filter(|m| m.seq.is_some_and(|s| s > before + 2 && s < before + 55)).collect();
    assert!(!late.is_empty());
    assert!(late.iter().all(|m| m.flags.contains(Flags::FROM_STORAGE)), "{:?}", late[0]);
    assert!(late.iter().all(|m| m.device_time == Some(DeviceTime::Utc(Timestamp(T0 + 1_000 * m.seq.unwrap() as i64)))));
}

#[test]
fn an_outage_longer_than_the_ring_is_a_gap_of_the_dropped_batches() {
    let mut rig = Rig::new();
    rig.run(10_000, true);
    rig.run(200_000, false);
    assert!(rig.app.link.stats.dropped >= 200 - CAPACITY as u32 - 2, "{}", rig.app.link.stats.dropped);
    rig.run(20_000, true);
    // The ring keeps dropping until the resend reaches the gateway: count at the end.
    let dropped = rig.app.link.stats.dropped;
    let g = rig.gaps();
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].1 - g[0].0, dropped, "{g:?}");
    assert!(rig.app.link.unacked() <= 1);
}

#[test]
fn a_node_without_time_sends_uptime_and_converts_once_synchronised() {
    // No gateway answers at first: the batches carry uptime and CLOCK_NOT_SET.
    let mut node = NodeLink::new(identity());
    let mut out = [0u8; TX_BUF];
    let mut frames = Vec::new();
    for now in (0..3_000u64).step_by(10) {
        if now % 1000 == 0 && now > 0 {
            node.record(now, [Item::value(97, Flags::NONE), Item::value(70, Flags::NONE), Item::absent(Flags::NONE)]);
        }
        let n = node.poll(now, &mut out);
        if n > 0 {
            frames.push(out[..n].to_vec());
        }
    }
    let msgs: Vec<Message> =
        frames.iter().map(|f| f.strip_prefix(&[0u8][..]).unwrap_or(f)).map(|f| link::decode(&f[..f.len() - 1]).unwrap()).collect();
    assert!(matches!(msgs[0], Message::Hello { version: 1, boot_id: 0xB007_1D01, .. }), "{msgs:?}");
    assert_eq!(msgs[1], Message::TimeRequest { uptime_ms: 10 });
    let Message::Observations { seq: 0, items, .. } = &msgs[2] else { panic!("{msgs:?}") };
    assert_eq!(items[0].time_ms, 1_000);
    assert!(Flags(items[0].flags).contains(Flags::CLOCK_NOT_SET));
    assert!(Flags(items[2].flags).contains(Flags::UNAVAILABLE));
    // A TimeSync for another request is ignored; the right one sets the offset with half the
    // round trip (request at 10 ms, answer at 3010 ms: 1500 ms transit assumed).
    node.receive(&LinkDecoder::frame(&Message::TimeSync { utc_ms: T0, echo_uptime_ms: 11 }).unwrap(), 3_010);
    assert_eq!(node.clock_offset(), None);
    node.receive(&LinkDecoder::frame(&Message::TimeSync { utc_ms: T0, echo_uptime_ms: 10 }).unwrap(), 3_010);
    assert_eq!(node.clock_offset(), Some(T0 + 1_500 - 3_010));
    // Acks of another boot, or of a batch never sent, are refused; a good one empties the ring.
    node.receive(&LinkDecoder::ack_bytes(1, 1), 3_020);
    node.receive(&LinkDecoder::ack_bytes(0xB007_1D01, 9), 3_020);
    assert_eq!(node.unacked(), 2);
    // After the resend timeout the node goes back to batch 0, now with UTC times.
    let mut resent = None;
    for now in (3_020..8_000u64).step_by(10) {
        let n = node.poll(now, &mut out);
        if n > 0 {
            if let Ok(Message::Observations { seq: 0, items, .. }) = link::decode(&out[..n - 1]) {
                resent = Some(items);
                break;
            }
        }
    }
    let items = resent.expect("batch 0 resent");
    assert_eq!(items[0].time_ms, T0 + 1_500 - 3_010 + 1_000);
    assert!(!Flags(items[0].flags).contains(Flags::CLOCK_NOT_SET));
    node.receive(&LinkDecoder::ack_bytes(0xB007_1D01, 1), 8_000);
    assert_eq!(node.unacked(), 0);
    // HelloRequest: a Hello next.
    node.receive(&LinkDecoder::frame(&Message::HelloRequest).unwrap(), 8_010);
    let n = node.poll(8_020, &mut out);
    assert!(matches!(link::decode(&out[..n - 1]), Ok(Message::Hello { .. })));
}

/// A sensor that stops answering: samples are held, not invented.
struct Dead;
impl PpgSource for Dead {
    fn sample(&mut self) -> Option<(u32, u32)> {
        None
    }
}
impl TemperatureSource for Dead {
    fn centi_celsius(&mut self) -> Option<i32> {
        None
    }
}

#[test]
fn a_dead_sensor_gives_flagged_absent_values() {
    let mut app = App::new(identity(), 0);
    let mut wire = Wire { up: true, ..Wire::default() };
    for now in 0..12_000 {
        app.step(now, &mut Dead, &mut Dead, &mut wire);
    }
    assert_eq!(app.missed_samples, 1_200);
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let mut ev = Vec::new();
    dec.feed(&wire.to_gateway, Timestamp(T0), &mut ev);
    let ms: Vec<_> = ev.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect();
    assert!(ms.len() >= 30);
    assert!(ms.iter().all(|m| m.value.numeric().is_none() && m.flags.contains(Flags::UNAVAILABLE)));
    // (The first batch releases the estimator's initial "pulse search".)
    assert!(ms.iter().filter(|m| m.metric != code::MDC_TEMP_BODY && m.seq > Some(0)).all(|m| m.flags.contains(Flags::SENSOR_OFF)));
}
