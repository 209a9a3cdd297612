//! IntelliVue polls beyond numerics, client against the simulated monitor: the alert monitor
//! (issue 16), the waves (issue 17), the patient demographics (issue 14).

#[path = "intellivue_harness.rs"]
mod harness;

use harness::Link;
use medgw_protocols::alarm::{codes, AlarmKind, AlarmReport, Priority, ReportScope};
use medgw_protocols::decode::{DecoderOptions, Event};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::sim::intellivue::INOP_NO_SENSOR;
use medgw_protocols::sim::{DeviceSimulator, Fault};
use medgw_protocols::wave::{Continuity, WaveChunk};
use medgw_protocols::wire::intellivue::pdu::{self, Apdu, ObjectType};
use medgw_protocols::wire::intellivue::wave::{physio, WAVES};
use medgw_protocols::wire::intellivue::{frame, session, IntelliVueClient};

fn link_with_waves(waves: &[u16], seed: u64) -> Link {
    let mut l = Link::new(1000, seed);
    l.client = IntelliVueClient::new(&DecoderOptions { waves: waves.to_vec(), ..Default::default() });
    l
}

fn reports(l: &Link) -> Vec<&AlarmReport> {
    l.events.iter().filter_map(|e| if let Event::Alarms(r) = e { Some(r) } else { None }).collect()
}

fn last_report(l: &Link, scope: ReportScope) -> AlarmReport {
    reports(l).into_iter().rev().find(|r| r.scope == scope).cloned().expect("a report of this scope")
}

fn chunks(l: &Link, metric: MdcCode) -> Vec<&WaveChunk> {
    l.events.iter().filter_map(|e| if let Event::Wave(c) = e { Some(&**c) } else { None }).filter(|c| c.metric == metric).collect()
}

/// The minimum poll period the client's association request announced, in ms.
fn announced_min_poll_ms(l: &Link) -> u64 {
    let mut d = frame::Deframer::<4096>::new();
    for &b in &l.sent_frames[0] {
        if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) {
            if let Ok(session::Spdu::Connect(Some(info))) = session::parse(user_data) {
                return info.poll_profile.unwrap().min_poll_period.as_millis();
            }
        }
    }
    panic!("the first frame is no association request");
}

/// The polled object types of the requests the client sent, in order (SETs as `None`).
fn requests(l: &Link) -> Vec<Option<ObjectType>> {
    let mut out = Vec::new();
    for f in &l.sent_frames {
        let mut d = frame::Deframer::<4096>::new();
        for &b in f {
            if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) {
                let Ok(session::Spdu::Data { apdu, .. }) = session::parse(user_data) else { continue };
                match pdu::parse_apdu(apdu) {
                    Ok(Apdu::Invoke { command: pdu::command::CONFIRMED_ACTION, argument, .. }) => {
                        let a = pdu::ActionArgument::parse(argument).unwrap();
                        out.push(Some(pdu::PollRequest::parse(a.action_type, a.body).unwrap().obj_type));
                    }
                    Ok(Apdu::Invoke { command: pdu::command::CONFIRMED_SET, .. }) => out.push(None),
                    _ => {}
                }
            }
        }
    }
    out
}

#[test]
fn alert_monitor_is_polled_each_period_and_reports_spo2_low_and_the_sensor_inop() {
    let mut l = Link::new(1000, 5);
    l.start();
    l.run_for(3_500);
    let polls = requests(&l).iter().filter(|r| **r == Some(ObjectType::ALERT_MONITOR)).count();
    assert!((3..=5).contains(&polls), "one alert poll per poll period: {polls}");
    // Nothing active: both scopes report none, with every answer.
    let r = reports(&l);
    assert!(r.iter().filter(|r| r.scope == ReportScope::Physiological).count() >= 3, "{r:?}");
    assert!(r.iter().all(|r| r.conditions.is_empty()));
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());

    l.sim.inject(Fault::Spo2Low(true));
    l.run_for(2_000);
    let p = last_report(&l, ReportScope::Physiological);
    assert_eq!(p.conditions.len(), 1, "{p:?}");
    let c = &p.conditions[0];
    assert_eq!(
        (c.code, c.source, c.kind, c.priority),
        (codes::MDC_EVT_LO, code::MDC_PULS_OXIM_SAT_O2, AlarmKind::Physiological, Some(Priority::High))
    );
    assert_eq!(c.text, "**SpO2 85<90");
    assert!(last_report(&l, ReportScope::Technical).conditions.is_empty());
    let spo2 = l.measurements().into_iter().rev().find(|m| m.metric == code::MDC_PULS_OXIM_SAT_O2).unwrap().value.numeric().unwrap();
    assert_eq!(spo2.to_string(), "85");

    // Sensor off: the INOP comes, the low alarm goes (no value to be low).
    l.sim.inject(Fault::SensorOff(true));
    l.run_for(2_000);
    let t = last_report(&l, ReportScope::Technical);
    assert_eq!(t.conditions.len(), 1, "{t:?}");
    let c = &t.conditions[0];
    assert_eq!((c.kind, c.priority, c.source), (AlarmKind::Technical, Some(Priority::Medium), code::MDC_PULS_OXIM_SAT_O2));
    assert!(c.code.is_unmapped(), "a private INOP term stays unmapped");
    assert_eq!((c.text.as_str(), c.vendor.code.as_ref()), ("SpO2 NO SENSOR", format!("19384:{INOP_NO_SENSOR}").as_str()));
    assert!(last_report(&l, ReportScope::Physiological).conditions.is_empty());

    l.sim.inject(Fault::SensorOff(false));
    l.sim.inject(Fault::Spo2Low(false));
    l.run_for(2_000);
    assert!(last_report(&l, ReportScope::Technical).conditions.is_empty());
    assert!(last_report(&l, ReportScope::Physiological).conditions.is_empty());
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
}

#[test]
fn leads_off_is_a_technical_alert_with_the_lead_disconnect_event_on_the_heart_rate() {
    let mut l = Link::new(1000, 9);
    l.start();
    l.run_for(2_000);
    l.sim.inject(Fault::LeadOff(true));
    l.run_for(2_000);
    let t = last_report(&l, ReportScope::Technical);
    assert_eq!(t.conditions.len(), 1, "{t:?}");
    let c = &t.conditions[0];
    assert_eq!(
        (c.code, c.source, c.kind, c.priority),
        (codes::MDC_EVT_LEAD_DISCONN, code::MDC_ECG_HEART_RATE, AlarmKind::Technical, Some(Priority::Medium))
    );
    assert_eq!(c.text, "LEADS OFF");
    assert!(last_report(&l, ReportScope::Physiological).conditions.is_empty());
    l.sim.inject(Fault::LeadOff(false));
    l.run_for(2_000);
    assert!(last_report(&l, ReportScope::Technical).conditions.is_empty());
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());
}

#[test]
fn a_listen_only_tap_decodes_the_alarm_answers_too() {
    let mut l = Link::new(1000, 6).with_tap();
    l.start();
    l.sim.inject(Fault::Spo2Low(true));
    l.run_for(3_000);
    let tap: Vec<&AlarmReport> = l.tap_events.iter().filter_map(|e| if let Event::Alarms(r) = e { Some(r) } else { None }).collect();
    assert!(tap.iter().any(|r| r.scope == ReportScope::Physiological && r.conditions.len() == 1), "{tap:?}");
}

#[test]
fn waves_are_off_by_default() {
    let mut l = Link::new(1000, 7);
    l.start();
    l.run_for(3_000);
    let req = requests(&l);
    assert!(!req.contains(&Some(WAVES)) && !req.contains(&None), "{req:?}");
    assert!(!l.events.iter().any(|e| matches!(e, Event::Wave(_))));
    assert_eq!(announced_min_poll_ms(&l), 1000, "the association request as before");
}

#[test]
fn waves_are_polled_every_256_ms_and_carry_every_sample_the_monitor_sent() {
    let mut l = link_with_waves(&[physio::NOM_ECG_ELEC_POTL_II, physio::NOM_PLETH], 8);
    l.start();
    l.run_for(10_000);
    let req = requests(&l);
    assert_eq!(req[0], None, "the priority list SET goes first: {req:?}");
    assert_eq!(announced_min_poll_ms(&l), 256, "the wave poll period is the shortest the client uses");
    let wave_polls = req.iter().filter(|r| **r == Some(WAVES)).count();
    assert!((36..=40).contains(&wave_polls), "a wave poll every 256 ms: {wave_polls}");
    assert!(l.rejections().is_empty(), "{:?}", l.rejections());

    let sent_ecg = l.sim.take_wave_samples(physio::NOM_ECG_ELEC_POTL_II);
    let sent_pleth = l.sim.take_wave_samples(physio::NOM_PLETH);
    let ecg = chunks(&l, code::MDC_ECG_ELEC_POTL_II);
    let pleth = chunks(&l, MdcCode::scada(physio::NOM_PLETH));
    assert!(ecg.len() >= 36 && pleth.len() >= 36, "{} {}", ecg.len(), pleth.len());
    // No sample lost or duplicated: the decoded samples are the monitor's, in order, and every
    // chunk after the first continues the one before.
    let got: Vec<u16> = ecg.iter().flat_map(|c| c.samples.iter().map(|&s| s as u16)).collect();
    assert_eq!(got, sent_ecg);
    let got: Vec<u16> = pleth.iter().flat_map(|c| c.samples.iter().map(|&s| s as u16)).collect();
    assert_eq!(got, sent_pleth);
    assert!(
        ecg.iter().skip(1).all(|c| c.continuity == Continuity::Continuous),
        "{:?}",
        ecg.iter().map(|c| c.continuity).collect::<Vec<_>>()
    );
    for w in ecg.windows(2) {
        let expect = w[0].start.0 + w[0].samples.len() as i64 * 2;
        assert_eq!(w[1].start.0, expect, "chunk starts follow the samples");
    }
    // 500 and 125 samples/s from the sample period; ECG in mV with 5 uV per step around 2048.
    assert_eq!((ecg[0].period.micros / ecg[0].period.samples, pleth[0].period.micros / pleth[0].period.samples), (2_000, 8_000));
    assert_eq!(ecg[0].scale.unit, unit::MDC_DIM_MILLI_VOLT);
    assert_eq!(ecg[0].samples.len(), 128, "256 ms of ECG at 500/s");

    // A PQRST at the simulated heart rate: R peaks (> 0.8 mV) once per beat.
    let ecg_raw: Vec<i32> = ecg.iter().flat_map(|c| c.samples.iter().copied()).collect();
    let r_peaks = ecg_raw.windows(2).filter(|w| w[0] <= 2048 + 160 && w[1] > 2048 + 160).count() as f64;
    let seconds = ecg_raw.len() as f64 / 500.0;
    let hr: Vec<f64> = l
        .measurements()
        .into_iter()
        .filter(|m| m.metric == code::MDC_ECG_HEART_RATE)
        .map(|m| m.value.numeric().unwrap().to_string().parse().unwrap())
        .collect();
    let mean_hr = hr.iter().sum::<f64>() / hr.len() as f64;
    let expected = mean_hr * seconds / 60.0;
    assert!((r_peaks - expected).abs() <= 1.5, "{r_peaks} R peaks in {seconds} s at {mean_hr}/min");
    assert!(ecg_raw.iter().any(|&v| v < 2048 - 40), "Q/S waves below the baseline");
}

#[test]
fn the_wave_list_selects_what_the_monitor_sends() {
    let mut l = link_with_waves(&[physio::NOM_PLETH, physio::NOM_PRESS_BLD_ART_ABP], 9);
    l.start();
    l.run_for(2_000);
    // ABP is not on this monitor: dropped without a word, as the guide says (p. 287).
    assert_eq!(l.sim.wave_list(), &[physio::NOM_PLETH]);
    assert!(chunks(&l, code::MDC_ECG_ELEC_POTL_II).is_empty());
    assert!(!chunks(&l, MdcCode::scada(physio::NOM_PLETH)).is_empty());
    // Sensor off: the pleth arrays come flagged invalid.
    l.sim.inject(Fault::SensorOff(true));
    l.run_for(1_000);
    let last = *chunks(&l, MdcCode::scada(physio::NOM_PLETH)).last().unwrap();
    assert!(last.flags.contains(medgw_protocols::quality::Flags::INVALID), "{:?}", last.flags);
}

#[test]
fn demographics_report_the_monitors_patient_id() {
    let mut l = Link::new(1000, 10);
    l.sim.set_patient_id(Some("MRN-4711"));
    l.start();
    l.run_for(1_000);
    let ids =
        |l: &Link| l.events.iter().filter_map(|e| if let Event::PatientId(p) = e { Some(p.clone()) } else { None }).collect::<Vec<_>>();
    assert_eq!(ids(&l), ["MRN-4711"], "reported once the association is up");
    l.run_for(20_000);
    assert_eq!(ids(&l).len(), 3, "and again every 10 s");
    // Discharged at the monitor: no id, nothing reported (never an old id again).
    l.sim.set_patient_id(None);
    let before = ids(&l).len();
    l.run_for(20_000);
    assert_eq!(ids(&l).len(), before);
    let demog = requests(&l).iter().filter(|r| **r == Some(ObjectType::PATIENT_DEMOGRAPHICS)).count();
    assert!((5..=6).contains(&demog), "{demog}");
}
