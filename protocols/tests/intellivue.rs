//! IntelliVue Data Export: public vectors and session tests of the client against the
//! simulated monitor.

#[path = "intellivue_harness.rs"]
mod harness;

use harness::{Link, T0};
use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::observation::{Measurement, Scalar, Value};
use medgw_protocols::quality::{AbsentReason, Flags};
use medgw_protocols::sim::intellivue::{FIRMWARE, MANUFACTURER, MODEL, SERIAL};
use medgw_protocols::sim::{DeviceSimulator, Fault, Sent};
use medgw_protocols::time::DeviceTime;
use medgw_protocols::wire::intellivue::attributes::{self, id, AbsoluteTime, RelativeTime};
use medgw_protocols::wire::intellivue::pdu::{self, action, command, linked, ro, ManagedObjectId, ObjectType};
use medgw_protocols::wire::intellivue::{frame, session, IntelliVueClient, Writer, PROTOCOLS};
use medgw_protocols::{Error, Timestamp};

/// PP-1 (protocols.md §3): the numeric poll request, full frame.
const PP1_FRAME: [u8; 44] = [
    0xC0, 0x11, 0x01, 0x00, 0x24, 0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x07, 0x00, 0x16, 0x00, 0x21, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x16, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x8E, 0x95, 0xC1,
];
/// PP-2 (protocols.md §3): the MDS-create event result, full frame.
const PP2_FRAME: [u8; 36] = [
    0xC0, 0x11, 0x01, 0x00, 0x1C, 0xE1, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x21, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x0A, 0xBD, 0x00, 0x0D, 0x06, 0x00, 0x00, 0x39, 0x17, 0xC1,
];

#[test]
fn pp1_and_pp2_frames_byte_for_byte() {
    let mut ud = [0u8; 64];
    let n = pdu::encode_poll_request(&mut ud, 0, 1, ObjectType::NUMERICS, 0).unwrap();
    assert_eq!(frame::encode_vec(&ud[..n]), PP1_FRAME);
    let n = pdu::encode_mds_create_result(&mut ud, 1, &ManagedObjectId::MDS, RelativeTime(0x000A_BD00), pdu::NOM_NOTI_MDS_CREAT).unwrap();
    assert_eq!(frame::encode_vec(&ud[..n]), PP2_FRAME);
}

#[test]
fn registry_row() {
    assert_eq!(PROTOCOLS.len(), 1);
    let p = &PROTOCOLS[0];
    assert_eq!(p.name, "intellivue");
    assert_eq!(p.serial, Some(medgw_protocols::serial::SerialSettings::new(115_200, 8, medgw_protocols::serial::Parity::None, 1)));
    assert!(!p.gatt);
    let d = (p.make)(&DecoderOptions::default());
    assert_eq!(d.protocol(), "intellivue");
    assert!(d.sends_requests());
    let d = (p.make)(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
    assert!(!d.sends_requests());
    let sims = medgw_protocols::sim::intellivue::SIMULATORS;
    assert_eq!(sims[0].0, "intellivue");
}

/// A measurement flattened to comparable rows (compounds to their components).
fn rows(m: &Measurement) -> Vec<(MdcCode, Option<Decimal>, MdcCode, Option<Timestamp>)> {
    let t = match m.device_time {
        Some(DeviceTime::Local(t)) => Some(t),
        Some(DeviceTime::Utc(_)) => panic!("IntelliVue times are local"),
        None => None,
    };
    match &m.value {
        Value::Numeric(d) => vec![(m.metric, Some(*d), m.unit, t)],
        Value::Absent(_) => vec![(m.metric, None, m.unit, t)],
        Value::Compound(c) => c
            .iter()
            .map(|c| {
                let v = match c.value {
                    Scalar::Numeric(d) => Some(d),
                    Scalar::Absent(_) => None,
                };
                (c.metric, v, m.unit, t)
            })
            .collect(),
        other => panic!("unexpected value {other:?}"),
    }
}

fn sent_rows(sent: &[Sent]) -> Vec<(MdcCode, Option<Decimal>, MdcCode, Option<Timestamp>)> {
    sent.iter().map(|s| (s.metric, s.value, s.unit, s.device_time)).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn key(r: &(MdcCode, Option<Decimal>, MdcCode, Option<Timestamp>)) -> (u32, Option<(i64, i8)>, u32, Option<i64>) {
    (r.0 .0, r.1.map(|d| (d.mantissa(), d.exponent())), r.2 .0, r.3.map(|t| t.0))
}

#[test]
fn happy_path_full_poll_cycles() {
    let mut l = Link::new(1000, 7).with_tap();
    l.start();
    l.run_for(10_500);
    assert!(l.client.is_associated());
    let s = l.sessions();
    assert_eq!(&s[..2], &["association-accepted", "associated"]);
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
    // First frame sent: the AARQ (0x0D, LI 0xEC); second: the MDS create result.
    let first = frame::encode_vec(&[]);
    assert_ne!(l.sent_frames[0], first);
    assert_eq!(&l.sent_frames[0][..3], &[0xC0, 0x11, 0x01]);
    let mut ud = [0u8; 512];
    let mut d = frame::Deframer::<1024>::new();
    let mut uds = Vec::new();
    for f in &l.sent_frames {
        for &b in f {
            if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) {
                uds.push(user_data.to_vec());
            }
        }
    }
    assert_eq!(&uds[0][..2], &[0x0D, 0xEC]);
    assert!(matches!(session::parse(&uds[1]).unwrap(), session::Spdu::Data { .. }));
    let _ = &mut ud;
    // Per second one extended numeric poll and one alert monitor poll: 11 each (at 0 s .. 10 s),
    // and the demographics every 10 s (2), after AARQ and create result.
    assert_eq!(uds.len(), 2 + 11 + 11 + 2, "{}", uds.len());
    let objects = |code: u16| uds.iter().filter(|u| u.len() > 34 && u[30..34] == [0x00, 0x01, (code >> 8) as u8, code as u8]).count();
    assert_eq!((objects(6), objects(0x36), objects(0x2A)), (11, 11, 2), "numerics, alert monitor, demographics");

    // Identity from the MDS create event.
    let ids: Vec<_> = l.events.iter().filter_map(|e| if let Event::Identity(i) = e { Some(i.clone()) } else { None }).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].manufacturer.as_deref(), Some(MANUFACTURER));
    assert_eq!(ids[0].model.as_deref(), Some(MODEL));
    assert_eq!(ids[0].serial.as_deref(), Some(SERIAL));
    assert_eq!(ids[0].firmware.as_deref(), Some(FIRMWARE));
    assert_eq!(ids[0].eui64, None, "a 6-byte system id is not an EUI-64");

    // Every value the monitor put on the wire arrived with its code, unit, value and time.
    let sent = l.sim.take_sent();
    let ms = l.measurements();
    let got = sorted(ms.iter().flat_map(|m| rows(m)).map(|r| key(&r)).collect());
    assert_eq!(sent.len(), 11 * 11);
    let want = sorted(sent_rows(&sent).iter().map(key).collect());
    assert_eq!(got, want);

    // The listen-only tap decoded the same measurements from the monitor's line alone.
    let tapped: Vec<_> = l.tap_events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect();
    assert_eq!(sorted(tapped.iter().flat_map(|m| rows(m)).map(|r| key(&r)).collect()), got);

    // NIBP is one compound with its components, timed at the cuff measurement.
    let nibp: Vec<_> = ms.iter().filter(|m| m.metric == code::MDC_PRESS_BLD_NONINV).collect();
    assert_eq!(nibp.len(), 11);
    let Value::Compound(c) = &nibp[0].value else { panic!() };
    assert_eq!(
        c.iter().map(|c| c.metric).collect::<Vec<_>>(),
        [code::MDC_PRESS_BLD_NONINV_SYS, code::MDC_PRESS_BLD_NONINV_DIA, code::MDC_PRESS_BLD_NONINV_MEAN]
    );
    assert_eq!(nibp[0].unit, unit::MDC_DIM_MMHG);
    assert_eq!(nibp[0].device_time, Some(DeviceTime::Local(Timestamp(T0.0 - 40_000))));
    // The others are stamped at the reply's whole second.
    let spo2: Vec<_> = ms.iter().filter(|m| m.metric == code::MDC_PULS_OXIM_SAT_O2).collect();
    assert_eq!(spo2.len(), 11);
    assert_eq!(spo2[0].device_time, Some(DeviceTime::Local(T0)));
    assert_eq!(spo2[1].device_time, Some(DeviceTime::Local(Timestamp(T0.0 + 1000))));
    assert_eq!(spo2[0].unit, unit::MDC_DIM_PERCENT);
    // Temperature keeps its tenth.
    let temp = ms.iter().find(|m| m.metric == code::MDC_TEMP).unwrap();
    assert_eq!(temp.value.numeric().unwrap().exponent(), -1);
    assert_eq!(temp.unit, unit::MDC_DIM_DEGC);
    // The Philips-private NBP pulse arrives unmapped with its vendor code.
    let unmapped: Vec<_> = ms.iter().filter(|m| m.metric.is_unmapped()).collect();
    assert_eq!(unmapped.len(), 11);
    assert!(unmapped.iter().all(|m| m.flags.contains(Flags::UNMAPPED) && m.vendor.as_ref().unwrap().code == "61669"));
}

#[test]
fn association_refused_backs_off_and_retries() {
    let mut l = Link::new(1000, 2);
    l.sim.refuse_associations(true);
    l.start();
    l.run_for(6_500);
    // Refused at 0 s, retried after 1 s, 2 s (t = 1 s, 3 s), still refused.
    assert_eq!(l.sessions(), ["association-refused"; 3]);
    assert!(!l.client.is_associated());
    l.sim.refuse_associations(false);
    l.run_for(9_000); // next retry after 4 s (t = 7 s)
    assert!(l.client.is_associated());
    assert_eq!(l.sessions().last(), Some(&"associated"));
    assert!(!l.measurements().is_empty());
    assert!(l.rejections().is_empty());
}

#[test]
fn abort_mid_session_reassociates() {
    let mut l = Link::new(1000, 3);
    l.start();
    l.run_for(3_000);
    let before = l.measurements().len();
    let mut abort = Vec::new();
    l.sim.abort_now(&mut abort);
    l.inject_to_client(&abort);
    assert!(!l.client.is_associated());
    assert_eq!(l.sessions().last(), Some(&"aborted"));
    l.run_for(5_000);
    assert!(l.client.is_associated());
    assert_eq!(l.sessions().iter().filter(|s| **s == "associated").count(), 2);
    assert!(l.measurements().len() > before + 20);
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
}

#[test]
fn missing_reply_times_out_aborts_and_reassociates() {
    let mut l = Link::new(1000, 4);
    l.start();
    l.run_for(2_500);
    l.sim.inject(Fault::Silence(6_000));
    l.run_for(20_000);
    let s = l.sessions();
    assert!(s.contains(&"poll-timeout"), "{s:?}");
    assert!(l.client.is_associated(), "{s:?}");
    assert_eq!(s.last(), Some(&"associated"));
    // The client aborted the stale association before backing off: an abort frame was sent.
    let aborts = l.sent_frames.iter().filter(|f| f.get(5) == Some(&0x19)).count();
    assert!(aborts >= 1);
}

#[test]
fn association_result_timeout() {
    let mut l = Link::new(1000, 5);
    l.cut_uplink = true;
    l.start();
    l.run_for(5_000);
    assert_eq!(l.sessions(), ["association-timeout"]);
    l.run_for(1_000); // back-off 1 s, then a new AARQ
    assert_eq!(l.sent_frames.iter().filter(|f| f.get(5) == Some(&0x0D)).count(), 2);
    l.cut_uplink = false;
    l.run_for(12_000);
    assert!(l.client.is_associated());
}

#[test]
fn keep_alive_holds_a_slow_poll_association() {
    // Poll every 20 s, but the monitor negotiates a 1 s minimum poll period: its connection
    // time-out is 10 s, so the client keeps the association alive in between.
    let mut l = Link::new(20_000, 6);
    l.sim.set_min_poll_period_ms(Some(1000));
    l.start();
    l.run_for(65_000);
    assert!(l.sim.is_associated());
    assert!(l.client.is_associated());
    assert_eq!(l.sessions(), ["association-accepted", "associated"]);
    // Keep-alive single polls of the MDS (action 0x0C16 in the frame).
    // (the MDS type and system production group; the demographics are single polls too).
    let is_keep_alive = |f: &&Vec<u8>| f.windows(4).any(|w| w == [0x00, 0x21, 0x08, 0x0C]);
    let keep_alives = l.sent_frames.iter().filter(is_keep_alive).count();
    assert!(keep_alives >= 4, "{keep_alives}");
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
    // Without the override the minimum poll period is the client's 20 s and polls suffice.
    let mut l = Link::new(20_000, 6);
    l.start();
    l.run_for(65_000);
    assert!(l.sim.is_associated());
    assert_eq!(l.sent_frames.iter().filter(is_keep_alive).count(), 0);
}

#[test]
fn monitor_faults_are_rejected_and_the_session_survives() {
    let mut l = Link::new(1000, 8);
    l.start();
    l.run_for(2_500);
    l.sim.inject(Fault::BadChecksum);
    l.run_for(1_000);
    l.sim.inject(Fault::Garbage(5));
    l.run_for(1_000);
    l.sim.inject(Fault::Truncate);
    l.run_for(4_000);
    let r = l.rejections();
    let reasons: Vec<_> = r.iter().map(|(_, e)| e.reason()).collect();
    assert!(reasons.contains(&"bad-checksum"), "{reasons:?}");
    assert!(reasons.contains(&"garbage"), "{reasons:?}");
    assert!(reasons.contains(&"truncated"), "{reasons:?}");
    // Offsets point into the monitor's byte stream at a BOF (or the garbage's first byte).
    for (offset, e) in &r {
        if e.reason() != "garbage" {
            assert_eq!(l.monitor_bytes[*offset as usize], 0xC0, "{e:?} at {offset}");
        }
    }
    // A lost linked part shows as a sequence gap or a poll time-out, never as invented data.
    assert!(l.client.is_associated());
    // Every measurement that arrived is one the monitor sent whole.
    let sent = l.sim.take_sent();
    let got = sorted(l.measurements().iter().flat_map(|m| rows(m)).map(|r| key(&r)).collect::<Vec<_>>());
    let want = sorted(sent_rows(&sent).iter().map(key).collect::<Vec<_>>());
    assert_eq!(got, want);
}

#[test]
fn sensor_off_gives_absent_flagged_oximetry() {
    let mut l = Link::new(1000, 9);
    l.start();
    l.run_for(1_500);
    l.sim.inject(Fault::SensorOff(true));
    l.run_for(1_000);
    let spo2: Vec<_> = l.measurements().into_iter().filter(|m| m.metric == code::MDC_PULS_OXIM_SAT_O2).cloned().collect();
    let last = spo2.last().unwrap();
    assert_eq!(last.value.absent_reason(), Some(AbsentReason::NotANumber));
    assert!(last.flags.contains(Flags::INVALID | Flags::UNAVAILABLE));
    assert!(spo2[0].value.numeric().is_some());
    // Heart rate from the ECG is unaffected.
    let hr = l.measurements().into_iter().rfind(|m| m.metric == code::MDC_ECG_HEART_RATE).unwrap().clone();
    assert!(hr.value.numeric().is_some());
}

/// Wraps user data in a frame for injection into the client.
fn framed(build: impl FnOnce(&mut Writer<'_>) -> medgw_protocols::Result<()>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let mut w = Writer::new(&mut buf);
    build(&mut w).unwrap();
    let n = w.len();
    frame::encode_vec(&buf[..n])
}

fn ext_poll_part(invoke_id: u16, ro_type: u16, linked_id: Option<(u8, u8)>, spo2: u32) -> Vec<u8> {
    framed(|w| {
        pdu::write_operation(w, ro_type, linked_id, invoke_id, command::CONFIRMED_ACTION, |w| {
            pdu::write_action_result(w, &ManagedObjectId::MDS, action::NOM_ACT_POLL_MDIB_DATA_EXT, |w| {
                w.u16(1)?;
                w.u16(1)?;
                w.u32(0)?;
                w.put(&AbsoluteTime::UNSET.0)?;
                ObjectType::NUMERICS.write(w)?;
                w.u16(0)?;
                w.u16(1)?;
                let l = w.begin_len()?;
                w.u16(0)?;
                w.u16(1)?;
                let l2 = w.begin_len()?;
                w.u16(5)?;
                attributes::write_attribute_list(w, 1, |w| {
                    attributes::write_ava(w, id::NOM_ATTR_NU_VAL_OBS, |w| {
                        attributes::NuObsValue { physio_id: 0x4BB8, state: attributes::MeasurementState(0), unit_code: 0x0220, value: spo2 }
                            .write(w)
                    })
                })?;
                w.end_len(l2)?;
                w.end_len(l)
            })
        })
    })
}

#[test]
fn out_of_order_messages() {
    // A poll result and an MDS create event before the association result are refused.
    let mut c = IntelliVueClient::new(&DecoderOptions::default());
    let mut ev = Vec::new();
    c.start(T0, &mut ev);
    ev.clear();
    let part = ext_poll_part(1, ro::RORS, None, 97);
    c.feed(&part, T0, &mut ev);
    assert_eq!(
        ev,
        [Event::Rejected { offset: 0, error: Error::UnexpectedMessage { state: "awaiting association result", got: "poll result" } }]
    );
    ev.clear();
    let mut l = Link::new(1000, 10);
    l.start();
    let create_first = l.monitor_bytes.clone(); // AARE + MDS create, as the monitor sent them
    l.run_for(1_500);
    assert!(l.rejections().is_empty());
    // The same AARE again while associated: unexpected; the association stays.
    let n_before = l.events.len();
    l.inject_to_client(&create_first);
    let new: Vec<_> = l.events[n_before..].to_vec();
    assert!(
        new.iter().any(|e| matches!(e, Event::Rejected { error: Error::UnexpectedMessage { got: "association result", .. }, .. })),
        "{new:?}"
    );
    assert!(l.client.is_associated());
    // A linked result that skips a part: sequence gap, and the data of the parts that came.
    let n_before = l.events.len();
    l.inject_to_client(&ext_poll_part(0x7777, ro::ROLRS, Some((linked::FIRST, 1)), 95));
    l.inject_to_client(&ext_poll_part(0x7777, ro::ROLRS, Some((linked::LAST, 3)), 96));
    let new: Vec<_> = l.events[n_before..].to_vec();
    assert!(new.contains(&Event::SequenceGap { expected: 2, found: 3 }), "{new:?}");
    let spo2: Vec<_> =
        new.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m.value.numeric().unwrap()) } else { None }).collect();
    assert_eq!(spo2, [Decimal::from_int(95), Decimal::from_int(96)]);
    // Unset absolute time in the reply: the MDS clock pair places the value.
    // The simulated monitor booted an hour before T0 and its MDS create event paired
    // NOM_ATTR_TIME_REL = rel(T0) with NOM_ATTR_TIME_ABS = T0; a reply at relative time 0 is
    // therefore its boot instant.
    let Some(Event::Measurement(m)) = new.iter().find(|e| matches!(e, Event::Measurement(_))) else { panic!() };
    assert_eq!(m.device_time, Some(DeviceTime::Local(Timestamp(T0.0 - 3_600_000))));
    // A remote operation error: rejected with its meaning.
    let n_before = l.events.len();
    let roer_at = l.monitor_bytes.len() as u64;
    l.inject_to_client(&framed(|w| pdu::write_error(w, 0x7777, 9)));
    assert_eq!(
        l.events[n_before..].to_vec(),
        [Event::Rejected { offset: roer_at, error: Error::Refused { reason: "remote operation error: no such action" } }]
    );

    // The monitor answers a poll before association with an abort.
    let mut sim = medgw_protocols::sim::intellivue::IntelliVueSim::new(&Default::default(), T0);
    let mut out = Vec::new();
    sim.receive(&PP1_FRAME, T0, &mut out);
    let mut d = frame::Deframer::<256>::new();
    let frames: Vec<Vec<u8>> = out
        .iter()
        .filter_map(|&b| if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) { Some(user_data.to_vec()) } else { None })
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(session::parse(&frames[0]).unwrap(), session::Spdu::Abort);
}

#[test]
fn monitor_release_request_is_answered() {
    let mut l = Link::new(1000, 11);
    l.start();
    l.run_for(1_500);
    let mut buf = [0u8; 64];
    let n = session::encode_release_request(&mut buf).unwrap();
    let frames_before = l.sent_frames.len();
    l.inject_to_client(&frame::encode_vec(&buf[..n]));
    assert_eq!(l.sessions().last(), Some(&"released"));
    // The client answered with a release response (SPDU 0x0A).
    assert_eq!(l.sent_frames[frames_before].get(5), Some(&0x0A));
    // The simulated monitor honours a release too: release response, unassociated.
    let mut out = Vec::new();
    let mut sim = medgw_protocols::sim::intellivue::IntelliVueSim::new(&Default::default(), T0);
    let mut aarq = [0u8; 512];
    let n = session::encode_aarq(&session::PollProfile::client(RelativeTime::from_millis(1000)), &mut aarq).unwrap();
    sim.receive(&frame::encode_vec(&aarq[..n]), T0, &mut out);
    let n = session::encode_release_request(&mut buf).unwrap();
    out.clear();
    sim.receive(&frame::encode_vec(&buf[..n]), T0, &mut out);
    assert_eq!(out.get(5), Some(&0x0A));
    assert!(!sim.is_associated());
}

#[test]
fn listen_only_never_transmits() {
    let mut c = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
    let mut ev = Vec::new();
    c.start(T0, &mut ev);
    c.poll(Timestamp(T0.0 + 60_000), &mut ev);
    assert!(ev.is_empty());
    assert_eq!(c.next_wakeup(), None);
    // An MDS create event from the monitor: decoded (identity), not confirmed.
    let mut l = Link::new(1000, 12);
    l.start();
    let mut ev = Vec::new();
    c.feed(&l.monitor_bytes, T0, &mut ev);
    assert!(ev.iter().any(|e| matches!(e, Event::Identity(_))));
    assert!(!ev.iter().any(|e| matches!(e, Event::Transmit(_))));
}

/// The SPDU type of every frame the client sent (the first user-data byte).
fn sent_spdus(l: &Link) -> Vec<u8> {
    l.sent_frames.iter().filter_map(|f| f.get(5).copied()).collect()
}

/// The gateway restarts: a new client on the same line, as after `medgw` was restarted.
fn restart_client(l: &mut Link) {
    l.client = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: false, ..Default::default() });
    l.events.clear();
    l.sent_frames.clear();
    l.start();
}

fn release(l: &mut Link) {
    let mut ev = Vec::new();
    l.client.release(l.now, &mut ev);
    l.exchange(ev, Vec::new());
}

#[test]
fn a_client_that_vanishes_without_release_is_refused_for_the_monitors_hold_time() {
    let mut l = Link::new(1000, 20);
    l.sim.set_connection_timeout_ms(Some(30_000));
    l.start();
    l.run_for(3_000);
    assert!(l.client.is_associated() && l.sim.is_associated());
    // The gateway dies; its successor asks for an association at once and keeps asking.
    restart_client(&mut l);
    l.run_for(20_000);
    assert!(!l.client.is_associated());
    assert!(l.sessions().iter().all(|s| *s == "association-refused"), "{:?}", l.sessions());
    assert_eq!(l.client.session_state(), Some("refused"));
    // The refused requests do not keep the dead association alive: it goes after 30 s.
    l.run_for(30_000);
    assert!(l.client.is_associated(), "{:?}", l.sessions());
}

#[test]
fn release_on_stop_lets_the_next_client_associate_at_once() {
    let mut l = Link::new(1000, 21);
    l.sim.set_connection_timeout_ms(Some(30_000));
    assert_eq!(l.client.session_state(), Some("idle"));
    let mut c = IntelliVueClient::new(&DecoderOptions::default());
    c.start(T0, &mut Vec::new());
    assert_eq!(c.session_state(), Some("associating"), "AARQ sent, no answer yet");
    l.start();
    l.run_for(3_000);
    assert_eq!(l.client.session_state(), Some("associated"));
    let before = l.sent_frames.len();
    release(&mut l);
    // Release request (SPDU 0x09, protocols.md §3) out, release response back: done.
    assert_eq!(sent_spdus(&l)[before..], [0x09]);
    assert_eq!(l.sessions().last(), Some(&"released"));
    assert!(!l.client.releasing());
    assert_eq!(l.client.next_wakeup(), None, "nothing more to do after the release");
    assert!(!l.sim.is_associated());
    // The next gateway associates at once, not after the monitor's 30 s.
    restart_client(&mut l);
    l.run_for(2_000);
    assert!(l.client.is_associated(), "{:?}", l.sessions());
    assert!(!l.sessions().contains(&"association-refused"));
    // Nothing to release when there is no association.
    let mut c = IntelliVueClient::new(&DecoderOptions::default());
    let mut ev = Vec::new();
    c.release(T0, &mut ev);
    assert!(ev.is_empty() && !c.releasing());
}

#[test]
fn a_release_without_answer_ends_in_an_abort_after_a_second() {
    let mut l = Link::new(1000, 22);
    l.start();
    l.run_for(2_500);
    l.cut_uplink = true;
    release(&mut l);
    assert!(l.client.releasing());
    assert_eq!(l.client.session_state(), Some("releasing"));
    // A poll reply still in flight is decoded, not dropped.
    let before = l.measurements().len();
    l.inject_to_client(&ext_poll_part(0x7777, ro::RORS, None, 96));
    assert_eq!(l.measurements().len(), before + 1);
    assert!(l.client.releasing());
    l.run_for(999);
    assert!(l.client.releasing());
    l.run_for(1);
    assert!(!l.client.releasing());
    assert_eq!(l.sessions().last(), Some(&"release-timeout"));
    assert_eq!(sent_spdus(&l).last(), Some(&0x19), "abort after the unanswered release");
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
}

#[test]
fn abort_on_a_connection_error_frees_the_monitor_at_once() {
    let mut l = Link::new(1000, 23);
    l.sim.set_connection_timeout_ms(Some(30_000));
    l.start();
    l.run_for(2_500);
    let mut ev = Vec::new();
    l.client.abort(l.now, &mut ev);
    l.exchange(ev, Vec::new());
    assert_eq!(sent_spdus(&l).last(), Some(&0x19));
    assert!(!l.sim.is_associated());
    assert_eq!(l.client.session_state(), Some("idle"));
    restart_client(&mut l);
    l.run_for(2_000);
    assert!(l.client.is_associated(), "{:?}", l.sessions());
    // An abort with no association sends nothing (a listen-only tap never does).
    let mut c = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
    let mut ev = Vec::new();
    c.abort(T0, &mut ev);
    assert!(ev.is_empty());
    assert_eq!(c.session_state(), Some("listening"));
}
