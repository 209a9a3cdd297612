//! Alarms end to end inside the crate: simulators with injected faults → decoders → the
//! lifecycle tracker → PCD-04 / FHIR / canonical JSON; and the tracker's guarantees as a
//! property test.
#![cfg(feature = "sim")]

use std::collections::HashMap;
use std::sync::Arc;

use medgw_protocols::alarm::{
    codes, AlarmCondition, AlarmEvent, AlarmKind, AlarmReport, AlarmTracker, EndReason, Phase, Priority, ReportScope,
};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::encode::{canonical_alarm, fhir_alarm, pcd04};
use medgw_protocols::mdc::{code, MdcCode};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Location, Patient, VendorCode};
use medgw_protocols::sim::masimo::MasimoSim;
use medgw_protocols::sim::medibus::MedibusSim;
use medgw_protocols::sim::nonin::NoninSim;
use medgw_protocols::sim::{DeviceSimulator, Fault, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::masimo::decoder::MasimoDecoder;
use medgw_protocols::wire::medibus::decoder::MedibusDecoder;
use medgw_protocols::wire::nonin::decoder::NoninDecoder;
use proptest::prelude::*;

const T0: i64 = 1_764_000_000_000;

/// Runs a decoder against a simulator from `from` to `to` ms after T0 in 50 ms steps: the
/// decoder's requests go to the simulator at once, the simulator's bytes to the decoder.
/// `faults` are injected at their times. Returns the decoder's events other than Transmit.
fn run(
    d: &mut dyn Decoder,
    sim: &mut dyn DeviceSimulator,
    from: i64,
    to: i64,
    faults: &[(i64, Fault)],
    start: bool,
) -> Vec<(Timestamp, Event)> {
    let mut events = Vec::new();
    let mut pending: Vec<Event> = Vec::new();
    if start {
        d.start(Timestamp(T0 + from), &mut pending);
    }
    let mut t = from;
    while t <= to {
        let now = Timestamp(T0 + t);
        for (at, f) in faults {
            if *at == t {
                sim.inject(*f);
            }
        }
        let mut bytes = Vec::new();
        if sim.next_tick() <= now {
            sim.tick(now, &mut bytes);
        }
        if d.next_wakeup().is_some_and(|w| w <= now) {
            d.poll(now, &mut pending);
        }
        if !bytes.is_empty() {
            d.feed(&bytes, now, &mut pending);
        }
        // Requests and answers until the exchange settles.
        for _ in 0..8 {
            let mut answers = Vec::new();
            for e in pending.drain(..) {
                match e {
                    Event::Transmit(b) => sim.receive(&b, now, &mut answers),
                    other => events.push((now, other)),
                }
            }
            if answers.is_empty() {
                break;
            }
            d.feed(&answers, now, &mut pending);
        }
        t += 50;
    }
    events.extend(pending.into_iter().filter(|e| !matches!(e, Event::Transmit(_))).map(|e| (Timestamp(T0 + to), e)));
    events
}

/// Feeds the reports to a tracker; returns the lifecycle events.
fn track(tracker: &mut AlarmTracker, events: &[(Timestamp, Event)]) -> Vec<AlarmEvent> {
    let mut out = Vec::new();
    for (t, e) in events {
        if let Event::Alarms(r) = e {
            tracker.report(r, *t, &mut out);
        }
    }
    out
}

fn summary(ev: &[AlarmEvent]) -> Vec<(Phase, String)> {
    ev.iter().map(|e| (e.phase, e.condition.vendor.code.to_string())).collect()
}

fn ctx(patient: bool) -> DeviceContext {
    DeviceContext {
        gateway: "gw1".into(),
        name: "bed4-spo2".into(),
        protocol: "masimo".into(),
        port: "/dev/ttyUSB0".into(),
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: Some("12".into()), bed: "BED4".into() },
        patient: patient.then(|| Patient::configured("MRN12345", Some("urn:oid:1.2.3.4.5".into()))),
        ..DeviceContext::default()
    }
}

#[test]
fn masimo_spo2_low_and_sensor_off_start_and_end() {
    let mut sim = MasimoSim::new(&SimOptions::default(), Timestamp(T0));
    let mut d = MasimoDecoder::new();
    let faults = [
        (3_000, Fault::Spo2Low(true)),
        (8_000, Fault::Spo2Low(false)),
        (12_000, Fault::SensorOff(true)),
        (15_000, Fault::SensorOff(false)),
    ];
    let events = run(&mut d, &mut sim, 0, 20_000, &faults, true);
    let mut tracker = AlarmTracker::new(ctx(false).key());
    let ev = track(&mut tracker, &events);
    assert_eq!(
        summary(&ev),
        [
            (Phase::Start, "ALARM:0002".to_string()),
            (Phase::End, "ALARM:0002".to_string()),
            (Phase::Start, "EXC:000020".to_string()),
            (Phase::End, "EXC:000020".to_string()),
        ]
    );
    let low = &ev[0].condition;
    assert_eq!((low.code, low.source, low.kind), (codes::MDC_EVT_LO, code::MDC_PULS_OXIM_SAT_O2, AlarmKind::Physiological));
    assert_eq!(low.value.map(|v| v.to_string()), Some("85".to_string()));
    assert_eq!(ev[1].id, ev[0].id);
    assert_eq!(ev[1].end_reason, Some(EndReason::Cleared));
    assert_eq!(ev[2].condition.kind, AlarmKind::Technical);
    // Each transition within a line or two of the fault (one line per second).
    assert!((ev[0].receipt_time.0 - T0 - 3_000).abs() <= 1_100, "{:?}", ev[0].receipt_time);
    assert!(tracker.is_empty());
}

#[test]
fn nonin_df8_sensor_off_is_a_technical_alert_until_the_sensor_is_back() {
    let mut sim = NoninSim::new("nonin-df8", None, &SimOptions::default(), Timestamp(T0));
    let mut d = NoninDecoder::df8();
    let faults = [(6_000, Fault::SensorOff(true)), (12_000, Fault::SensorOff(false))];
    let events = run(&mut d, &mut sim, 0, 18_000, &faults, true);
    let mut tracker = AlarmTracker::new("cfg:gw1:nonin");
    let ev = track(&mut tracker, &events);
    let s = summary(&ev);
    assert_eq!(s.first(), Some(&(Phase::Start, "SNSA".to_string())), "{s:?}");
    assert_eq!(s.iter().filter(|(p, c)| *p == Phase::Start && c == "SNSA").count(), 1, "{s:?}");
    assert!(s.contains(&(Phase::End, "SNSA".to_string())), "{s:?}");
    assert!(tracker.is_empty(), "{s:?}");
}

#[test]
fn medibus_polled_alarms_start_and_end_and_a_disconnect_ends_them_with_a_reason() {
    let mut sim = MedibusSim::new(&SimOptions::default(), Timestamp(T0));
    let mut d = MedibusDecoder::new(&DecoderOptions::default());
    let faults = [(3_000, Fault::Spo2Low(true)), (7_000, Fault::Spo2Low(false)), (9_000, Fault::SensorOff(true))];
    let events = run(&mut d, &mut sim, 0, 12_000, &faults, true);
    let mut tracker = AlarmTracker::new("cfg:gw1:evita");
    let mut ev = track(&mut tracker, &events);
    assert_eq!(
        summary(&ev),
        [(Phase::Start, "ALARM:40".to_string()), (Phase::End, "ALARM:40".to_string()), (Phase::Start, "ALARM:41".to_string())]
    );
    assert_eq!(ev[0].condition.text, "SpO2 low");
    assert_eq!(ev[0].condition.device_priority, Some(30));
    // The device is unplugged while its sensor alarm is active.
    tracker.disconnected("silent", Timestamp(T0 + 20_000), &mut ev);
    assert_eq!(ev[3].phase, Phase::End);
    assert_eq!(ev[3].id, ev[2].id);
    assert_eq!(ev[3].end_reason, Some(EndReason::Disconnected("silent".into())));
    assert_eq!((ev[4].phase, ev[4].condition.vendor.code.as_ref()), (Phase::Start, "device-disconnected"));
}

fn spo2_low_event() -> AlarmEvent {
    let mut t = AlarmTracker::new(ctx(true).key());
    let c = AlarmCondition::new(
        codes::MDC_EVT_LO,
        VendorCode::new_static("masimo", "ALARM:0002"),
        code::MDC_PULS_OXIM_SAT_O2,
        AlarmKind::Physiological,
        "SpO2 low",
    )
    .with_priority(Some(Priority::High))
    .with_value(Some(medgw_protocols::Decimal::from_int(85)), medgw_protocols::mdc::unit::MDC_DIM_PERCENT);
    let mut out = Vec::new();
    t.report(&AlarmReport::new(ReportScope::All, vec![c]), Timestamp(T0), &mut out);
    out.remove(0)
}

fn segments(msg: &str) -> Vec<Vec<&str>> {
    msg.split('\r').filter(|s| !s.is_empty()).map(|s| s.split('|').collect()).collect()
}

#[test]
fn pcd04_has_the_acm_structure_and_facets() {
    let nom = Nomenclature::builtin();
    let ev = spo2_low_event();
    let msg = pcd04::oru_r40(&ev, &ctx(true), &nom, "ALM0001", Timestamp(T0));
    let segs = segments(&msg);
    let names: Vec<&str> = segs.iter().map(|s| s[0]).collect();
    assert_eq!(names, ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX"], "{msg}");
    let msh = &segs[0];
    assert_eq!(msh[8], "ORU^R40^ORU_R40");
    assert_eq!((msh[11], msh[14], msh[15]), ("2.6", "AL", "NE"));
    assert!(pcd04::is_acm_profile(msh[20]), "{}", msh[20]);
    // Both OIDs seen in the field are accepted; another profile is not.
    assert!(pcd04::is_acm_profile("IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"));
    assert!(pcd04::is_acm_profile("IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO"));
    assert!(!pcd04::is_acm_profile("IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"));
    let obr = &segs[3];
    assert_eq!(obr[4], "196616^MDC_EVT_ALARM^MDC");
    assert!(obr[3].starts_with(&ev.id.to_string()) && obr[3].ends_with("^EUI-64"), "{}", obr[3]);
    let obx: Vec<&Vec<&str>> = segs.iter().filter(|s| s[0] == "OBX").collect();
    let facets: Vec<(&str, &str, &str)> = obx.iter().map(|s| (s[3], s[4], s[5])).collect();
    assert_eq!(
        facets,
        [
            ("196670^MDC_EVT_LO^MDC", "1.1.1.1.1", "SpO2 low"),
            ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.1.1.1.2", "85"),
            ("68165^MDC_ATTR_EVENT_PHASE^MDC", "1.1.1.1.3", "start"),
            ("68166^MDC_ATTR_ALARM_STATE^MDC", "1.1.1.1.4", "active"),
            ("68167^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC", "1.1.1.1.5", "enabled"),
            ("68168^MDC_ATTR_ALARM_PRIORITY^MDC", "1.1.1.1.6", "PH"),
            ("68485^MDC_ATTR_ALERT_TYPE^MDC", "1.1.1.1.7", "SP"),
        ]
    );
    // Priority and type in OBX-8 of facet 1 only; OBX-18 the device's EUI-64 on facet 1.
    assert_eq!(obx[0][8], "L~PH~SP");
    assert!(obx[1..].iter().all(|s| s.get(8).is_none_or(|v| v.is_empty())));
    assert!(obx[0][18].ends_with("^EUI-64"));
    assert_eq!(obx[1][6], "262688^MDC_DIM_PERCENT^MDC");
    assert!(obx.iter().all(|s| s[2] == "ST" || s[2] == "NM" || s[2] == "CWE"));
    // The OBX set ids count up.
    for (i, s) in obx.iter().enumerate() {
        assert_eq!(s[1], (i + 1).to_string());
    }
}

#[test]
fn pcd04_end_by_disconnect_says_why_and_omits_an_unknown_priority() {
    let nom = Nomenclature::builtin();
    let mut t = AlarmTracker::new("k");
    let c = AlarmCondition::new(
        MdcCode::UNMAPPED,
        VendorCode::new_static("masimo", "EXC:000020"),
        MdcCode::UNMAPPED,
        AlarmKind::Technical,
        "Sensor Off",
    );
    let mut out = Vec::new();
    t.report(&AlarmReport::new(ReportScope::All, vec![c]), Timestamp(T0), &mut out);
    t.disconnected("closed", Timestamp(T0 + 5_000), &mut out);
    let msg = pcd04::oru_r40(&out[1], &ctx(false), &nom, "ALM2", Timestamp(T0 + 5_000));
    let segs = segments(&msg);
    let obx: Vec<&Vec<&str>> = segs.iter().filter(|s| s[0] == "OBX").collect();
    assert_eq!(obx[0][3], "EXC:000020^masimo^99MEDGW");
    assert_eq!(obx[0][8], "ST");
    assert!(!msg.contains("MDC_ATTR_ALARM_PRIORITY"), "{msg}");
    assert!(obx.iter().any(|s| s[5] == "end") && obx.iter().any(|s| s[5] == "inactive"));
    let nte = segs.iter().find(|s| s[0] == "NTE").expect("NTE");
    assert!(nte[3].contains("device disconnected (closed)"), "{nte:?}");
    let obr = segs.iter().find(|s| s[0] == "OBR").unwrap();
    assert!(!obr[8].is_empty(), "OBR-8 end time");
    // Unassociated: the PID is the unidentified one, PV1-3 the bed.
    assert!(msg.contains("^^^MEDGW^ANON"));
}

#[test]
fn fhir_communication_form() {
    let nom = Nomenclature::builtin();
    let ev = spo2_low_event();
    let r = fhir_alarm::communication(&ev, &ctx(true), &nom);
    assert_eq!(r["resourceType"], "Communication");
    assert_eq!(r["status"], "in-progress");
    assert_eq!(r["category"][0]["coding"][0]["code"], "alert");
    assert_eq!(r["category"][1]["coding"][0]["code"], "physiological");
    assert_eq!(r["priority"], "stat");
    assert_eq!(r["reasonCode"][0]["coding"][0]["code"], "196670");
    assert_eq!(r["reasonCode"][0]["coding"][0]["system"], "urn:iso:std:iso:11073:10101");
    assert_eq!(r["identifier"][0]["value"], format!("urn:uuid:{}", ev.id));
    assert_eq!(r["subject"]["identifier"]["value"], "MRN12345");
    assert!(r["sender"]["reference"].as_str().unwrap().starts_with("Device/"));
    assert!(r.get("about").is_none());
    // Without a patient: no subject, the bed in `about`, tagged unassociated; end = completed.
    let mut end = ev.clone();
    end.phase = Phase::End;
    end.end_reason = Some(EndReason::Shutdown);
    let r = fhir_alarm::communication(&end, &ctx(false), &nom);
    assert!(r.get("subject").is_none());
    assert_eq!(r["about"][0]["identifier"]["value"], "HOSP/ICU/12/BED4");
    assert_eq!(r["meta"]["tag"][0]["code"], "unassociated");
    assert_eq!(r["status"], "completed");
    let exts: HashMap<String, serde_json::Value> = r["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(exts["alarm-end-reason"]["valueCode"], "shutdown");
    assert_eq!(exts["alarm-priority"]["valueCode"], "PH");
    // Every extension carries exactly one value[x].
    for e in exts.values() {
        assert_eq!(e.as_object().unwrap().keys().filter(|k| k.starts_with("value")).count(), 1, "{e}");
    }
}

#[test]
fn canonical_alarm_json() {
    let ev = spo2_low_event();
    let j = canonical_alarm::alarm_json(&ev, &Arc::new(ctx(true)));
    assert_eq!(j["phase"], "start");
    assert_eq!(j["code"], 196670);
    assert_eq!(j["ref_id"], "MDC_EVT_LO");
    assert_eq!(j["kind"], "physiological");
    assert_eq!(j["priority"], "high");
    assert_eq!(j["ihe_priority"], "PH");
    assert_eq!(j["vendor"]["code"], "ALARM:0002");
    assert_eq!(j["value"], 85);
    assert_eq!(j["source"], 150456);
    assert_eq!(j["end_reason"], serde_json::Value::Null);
    assert_eq!(j["id"], ev.id.to_string());
}

#[derive(Clone, Debug)]
enum Op {
    Report(ReportScope, u8, u8),
    Disconnect,
    Connect,
}

fn op() -> impl Strategy<Value = Op> {
    let scope = prop_oneof![Just(ReportScope::All), Just(ReportScope::Physiological), Just(ReportScope::Technical)];
    prop_oneof![
        6 => (scope, any::<u8>(), any::<u8>()).prop_map(|(s, set, pri)| Op::Report(s, set, pri)),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
    ]
}

/// A universe of 6 conditions (3 physiological, 3 technical); `set` picks some, `pri` their
/// priorities.
fn conditions(set: u8, pri: u8) -> Vec<AlarmCondition> {
    (0..6u8)
        .filter(|i| set & (1 << i) != 0)
        .map(|i| {
            let kind = if i < 3 { AlarmKind::Physiological } else { AlarmKind::Technical };
            let p = [None, Some(Priority::Low), Some(Priority::Medium), Some(Priority::High)][((pri >> (i % 4)) & 3) as usize];
            AlarmCondition::new(
                MdcCode::UNMAPPED,
                VendorCode { namespace: "t".into(), code: format!("C{i}").into() },
                MdcCode::UNMAPPED,
                kind,
                format!("c{i}"),
            )
            .with_priority(p)
        })
        .collect()
}

proptest! {
    /// Every start gets exactly one end, with nothing after it; nothing ends or updates
    /// without a start; after a disconnect no device alarm is active; after shutdown nothing is.
    #[test]
    fn every_start_gets_exactly_one_end(ops in prop::collection::vec(op(), 0..60)) {
        let mut t = AlarmTracker::new("cfg:gw:dev");
        let mut out = Vec::new();
        let mut now = 0i64;
        for o in &ops {
            now += 1000;
            match o {
                Op::Report(scope, set, pri) => t.report(&AlarmReport::new(*scope, conditions(*set, *pri)), Timestamp(now), &mut out),
                Op::Disconnect => {
                    t.disconnected("silent", Timestamp(now), &mut out);
                    prop_assert!(t.active().all(|(_, c, _)| c.vendor.namespace == "medgw"));
                }
                Op::Connect => t.connected(Timestamp(now), &mut out),
            }
        }
        t.shutdown(Timestamp(now + 1), &mut out);
        prop_assert!(t.is_empty());
        let mut seen: HashMap<uuid::Uuid, (usize, usize)> = HashMap::new();
        for e in &out {
            let entry = seen.entry(e.id).or_insert((0, 0));
            match e.phase {
                Phase::Start => {
                    prop_assert_eq!(*entry, (0, 0), "a second start for {}", e.id);
                    entry.0 = 1;
                }
                Phase::Update => prop_assert_eq!(*entry, (1, 0), "update outside start..end"),
                Phase::End => {
                    prop_assert_eq!(*entry, (1, 0), "end without start, or a second end");
                    entry.1 = 1;
                    prop_assert!(e.end_reason.is_some());
                }
            }
        }
        prop_assert!(seen.values().all(|v| *v == (1, 1)));
    }
}

#[test]
fn sensor_node_flags_are_technical_alerts_but_stored_readings_raise_nothing() {
    use medgw_protocols::quality::Flags;
    use medgw_protocols::wire::link::{LinkDecoder, LinkObservation, Message};
    let batch = |seq: u32, flags: Flags| {
        let mut items = heapless::Vec::new();
        items.push(LinkObservation::numeric(150456, 262688, 95, 0, T0 + seq as i64 * 1000, flags)).unwrap();
        LinkDecoder::frame(&Message::Observations { seq, boot_id: 7, items }).unwrap()
    };
    let mut d = LinkDecoder::new(&DecoderOptions::default());
    let mut tracker = AlarmTracker::new("eui64:0012345678ABCDEF");
    let mut events = Vec::new();
    for (seq, flags) in [
        (0, Flags::NONE),
        (1, Flags::SENSOR_OFF | Flags::FROM_STORAGE),
        (2, Flags::SENSOR_OFF | Flags::LOW_BATTERY),
        (3, Flags::LOW_BATTERY),
        (4, Flags::NONE),
    ] {
        let mut out = Vec::new();
        d.feed(&batch(seq, flags), Timestamp(T0 + seq as i64 * 1000), &mut out);
        events.extend(out.into_iter().map(|e| (Timestamp(T0 + seq as i64 * 1000), e)));
    }
    let ev = track(&mut tracker, &events);
    assert_eq!(
        summary(&ev),
        [
            (Phase::Start, "sensor-off".to_string()),
            (Phase::Start, "low-battery".to_string()),
            (Phase::End, "sensor-off".to_string()),
            (Phase::End, "low-battery".to_string()),
        ]
    );
    assert_eq!(ev[0].receipt_time, Timestamp(T0 + 2000), "the stored reading raised nothing");
}
